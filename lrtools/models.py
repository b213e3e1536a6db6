"""ReLU network builders for the paper's three training variants (Section 3.1, Appendix E.1).

``vanilla``: Linear/Conv -> ReLU.  ``bn``: BatchNorm after every pre-activation (before ReLU).
``dropout``: Dropout after every activation.  Weights are Xavier-uniform, biases zero.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ._validation import check_choice, check_scalar

__all__ = ["VARIANTS", "VARIANT_LABELS", "model_name", "build_mlp", "build_cnn"]

VARIANTS = ("vanilla", "bn", "dropout")
#: How the paper names the three training variants (Fig. 3-6, Tables 1-4): the one label table.
VARIANT_LABELS = {"vanilla": "Vanilla", "bn": "BN", "dropout": "Dropout"}


def model_name(variant: str, lr: float | None = None, lrs=()) -> str:
    """The paper's name of a model: ``Vanilla``, ``BN-L``, ``Dropout-S``, ... (Fig. 5).

    Parameters
    ----------
    variant : {"vanilla", "bn", "dropout"}
    lr : float, optional
        The model's learning rate.
    lrs : sequence of float, default=()
        The learning rates compared. With two or more, "-L" marks the largest and "-S" the
        smallest (Section 3.4: "-L" 1e-3, "-S" 1e-4); others get their value, e.g. "BN-3e-4".
    """
    check_choice(variant, "variant", VARIANTS)
    label = VARIANT_LABELS[variant]
    lrs = tuple(float(v) for v in lrs)
    if len(lrs) < 2 or lr is None:
        return label
    lr = float(lr)
    return f"{label}-{'L' if lr == max(lrs) else 'S' if lr == min(lrs) else f'{lr:g}'}"


def _init(module: nn.Module) -> None:
    if isinstance(module, nn.Linear | nn.Conv2d):
        nn.init.xavier_uniform_(module.weight)
        nn.init.zeros_(module.bias)


def _check_variant_args(variant: str, drop_rate: float, seed: int) -> None:
    check_choice(variant, "variant", VARIANTS)
    check_scalar(drop_rate, "drop_rate", float, min_val=0.0, max_val=1.0, include_max=False)
    check_scalar(seed, "seed", int)


def _hidden_block(layer: nn.Module, n: int, variant: str, drop_rate: float, conv: bool):
    block: list[nn.Module] = [layer]
    if variant == "bn":
        block.append(nn.BatchNorm2d(n) if conv else nn.BatchNorm1d(n))
    block.append(nn.ReLU())
    if variant == "dropout":
        block.append(nn.Dropout(drop_rate))
    return block


def build_mlp(
    in_features: int,
    widths: Sequence[int],
    n_classes: int,
    *,
    variant: str = "vanilla",
    drop_rate: float = 0.2,
    seed: int = 0,
) -> nn.Sequential:
    """Fully connected ReLU network ``in -> widths... -> n_classes`` (logits).

    Parameters
    ----------
    in_features : int
        Input dimension ``d`` (2 for the spirals, 784 for MNIST).
    widths : sequence of int
        Hidden widths, e.g. ``[1024, 1024, 1024]`` (Section 3.1) or ``[10, 10, 10]`` (Appendix A).
    n_classes : int
        Number of logits ``M``.
    variant : {"vanilla", "bn", "dropout"}, default="vanilla"
        Training technique, as in Section 3.1.
    drop_rate : float, default=0.2
        Dropout probability (``variant="dropout"`` only).
    seed : int, default=0
        Seed of the Xavier-uniform initialisation.

    Returns
    -------
    torch.nn.Sequential
        The network, in float32 and training mode.
    """
    _check_variant_args(variant, drop_rate, seed)
    check_scalar(in_features, "in_features", int, min_val=1)
    check_scalar(n_classes, "n_classes", int, min_val=2)
    widths = list(widths)
    if not widths or any(not isinstance(w, int) or isinstance(w, bool) or w < 1 for w in widths):
        raise ValueError(f"widths must be a non-empty list of positive ints; got {widths!r}.")
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    prev = in_features
    for w in widths:
        layers += _hidden_block(nn.Linear(prev, w), w, variant, drop_rate, conv=False)
        prev = w
    layers.append(nn.Linear(prev, n_classes))
    net = nn.Sequential(*layers)
    net.apply(_init)
    return net


def build_cnn(
    in_channels: int = 3,
    image_size: int = 32,
    channels: Sequence[int] = (32, 64, 128),
    dense: int = 1024,
    n_classes: int = 10,
    *,
    variant: str = "vanilla",
    drop_rate: float = 0.2,
    seed: int = 0,
) -> nn.Sequential:
    """The CNN of Table 3: 3x3 convolutions with stride 2 and no padding, then dense layers.

    Parameters
    ----------
    in_channels, image_size : int
        Input shape ``(in_channels, image_size, image_size)``; (3, 32) for CIFAR-10.
    channels : sequence of int, default=(32, 64, 128)
        Filters of each convolution.
    dense : int, default=1024
        Width of the hidden dense layer.
    n_classes : int, default=10
        Number of logits.
    variant, drop_rate, seed
        As in :func:`build_mlp`; BN goes before each ReLU, dropout after it (Appendix E.1).
    """
    _check_variant_args(variant, drop_rate, seed)
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    prev, size = in_channels, image_size
    for c in channels:
        layers += _hidden_block(nn.Conv2d(prev, c, 3, stride=2), c, variant, drop_rate, conv=True)
        prev, size = c, (size - 3) // 2 + 1
        if size < 1:
            raise ValueError(
                f"image_size == {image_size} is too small for {len(channels)} convolutions."
            )
    layers.append(nn.Flatten())
    layers += _hidden_block(
        nn.Linear(prev * size * size, dense), dense, variant, drop_rate, conv=False
    )
    layers.append(nn.Linear(dense, n_classes))
    net = nn.Sequential(*layers)
    net.apply(_init)
    return net
