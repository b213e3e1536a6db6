r"""The architecture table of a ReLU network, read from the model itself (Appendix E, Table 3).

Table 3 of [1] lists the CIFAR-10 CNN layer by layer (parameters in the paper's words, e.g.
"filters=(3, 3)x32; strides=(2, 2)" and "nodes=1024", and the activation). This module renders
that table from any :class:`torch.nn.Sequential` that :func:`lrtools.regions.linear_region`
accepts, adding what the linear-region analysis needs: the output shape of every layer, its
number of trainable parameters, and the number of hyperplanes it contributes to a linear
region. Every hidden unit (every element of a tensor entering a ReLU) gives one row of the
H-representation (eq. 1-4 of [1]), so for inputs of shape ``input_shape``

.. math::

    m = \sum_{l} n_l, \qquad n_l = \#\{\text{elements entering ReLU } l\}.

For the Table 3 CNN on 3 x 32 x 32 inputs, :math:`m = 15 \cdot 15 \cdot 32 + 7 \cdot 7 \cdot 64
+ 3 \cdot 3 \cdot 128 + 1024 = 7200 + 3136 + 1152 + 1024 = 12{,}512`, the row ranges
0-7,199, 7,200-10,335, 10,336-11,487 and 11,488-12,511 of Fig. 10's caption (Appendix E.2); for
the 784-1024x3-10 MLP of Section 3.1, :math:`m = 3{,}072`.

References
----------
.. [1] X. Zhang and D. Wu, "Empirical Studies on the Properties of Linear Regions in Deep
   Neural Networks", ICLR 2020.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from torch import nn

from .._forward import LayerInfo, layer_infos

__all__ = ["architecture_table", "count_hyperplanes", "region_cost"]

COLUMNS = ["layer", "parameters", "activation", "output_shape", "trainable", "hyperplanes", "rows"]
_FOLDED = ("BatchNorm", "ReLU", "Dropout", "Identity")
# Table 3's names of the layer kinds of lrtools._forward
_NAMES = {
    "linear": "Dense",
    "conv": "Conv",
    "batchnorm": "BatchNorm",
    "relu": "ReLU",
    "dropout": "Dropout",
    "flatten": "Flatten",
    "identity": "Identity",
}


def _check_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
    if isinstance(input_shape, int | np.integer) and not isinstance(input_shape, bool):
        input_shape = (int(input_shape),)
    try:
        shape = tuple(input_shape)
    except TypeError as exc:
        raise TypeError(
            f"input_shape must be a tuple of ints, e.g. (3, 32, 32); got {input_shape!r}."
        ) from exc
    ok = all(isinstance(s, int | np.integer) and not isinstance(s, bool) and s > 0 for s in shape)
    if not shape or not ok:
        raise ValueError(
            f"input_shape must be a non-empty tuple of positive ints, without the batch "
            f"dimension, e.g. (3, 32, 32) or (784,); got {input_shape!r}."
        )
    return tuple(int(s) for s in shape)


def _parameters(info: LayerInfo) -> str:
    """The layer's hyper-parameters in the words of Table 3."""
    p = info.params
    if info.kind == "conv":
        text = f"filters={p['kernel_size']}x{p['out_channels']}; strides={p['stride']}"
        if p["padding"] not in ((0, 0), "valid"):
            text += f"; padding={p['padding']}"
        return text
    if info.kind == "linear":
        return f"nodes={p['out_features']}"
    if info.kind == "batchnorm":
        return f"features={p['num_features']}"
    if info.kind == "dropout":
        return f"rate={p['p']:g}"
    return "-"


def _activations(kinds: list[str]) -> list[str]:
    """Table 3's activation column: what follows each Conv/Dense block (ReLU, Softmax or -)."""
    acts = ["-"] * len(kinds)
    affine = [i for i, k in enumerate(kinds) if k in ("linear", "conv")]
    for j, i in enumerate(affine):
        stop = affine[j + 1] if j + 1 < len(affine) else len(kinds)
        if "relu" in kinds[i + 1 : stop]:
            acts[i] = "ReLU"
        elif j == len(affine) - 1:
            acts[i] = "Softmax"  # the logits; the softmax is applied by the loss
    return acts


def _input_row(input_shape: tuple[int, ...]) -> dict:
    if len(input_shape) == 3:
        c, h, w = input_shape
        text = f"input size=({h}, {w})x{c}"
    else:
        text = f"input size={'x'.join(map(str, input_shape))}"
    return dict(zip(COLUMNS, ["Input", text, "-", input_shape, 0, 0, ""], strict=True))


def architecture_table(
    model: nn.Module, input_shape: Sequence[int], *, compact: bool = False
) -> pd.DataFrame:
    """Table 3 of [1] rendered from ``model``, with shapes, parameters and hyperplane counts.

    Parameters
    ----------
    model : torch.nn.Sequential
        A ReLU network of Linear, Conv2d, BatchNorm1d/2d, Dropout, Flatten and ReLU layers
        (nested Sequentials are flattened), e.g. :func:`lrtools.models.build_cnn`.
    input_shape : tuple of int
        The shape of one input without the batch dimension: ``(3, 32, 32)`` for CIFAR-10,
        ``(784,)`` for a vectorised MNIST image.
    compact : bool, default=False
        False: one row per layer (Conv, BatchNorm, ReLU, Dropout, Flatten, Dense), the
        hyperplanes on the ReLU rows. True: Table 3's layout, one row per Conv/Dense block with
        its BatchNorm/ReLU/Dropout folded into the activation column (e.g. "BN, ReLU"), and the
        block's parameters and hyperplanes summed on that row.

    Returns
    -------
    pandas.DataFrame
        Columns ``layer`` (Input/Conv/BatchNorm/ReLU/Dropout/Flatten/Dense), ``parameters`` (in
        the paper's words), ``activation`` (Table 3's column: ReLU, Softmax for the logits,
        or -), ``output_shape`` (tuple), ``trainable`` (number of trainable parameters),
        ``hyperplanes`` (units entering a ReLU, i.e. rows of a linear region) and ``rows`` (their
        index range in :func:`lrtools.regions.linear_region`'s order, as in Fig. 10's caption).
        The first row is the Input.

    Raises
    ------
    TypeError
        If ``model`` is not an ``nn.Sequential`` of supported layers.
    ValueError
        If ``input_shape`` is not a tuple of positive ints or does not fit the model.

    Examples
    --------
    >>> from lrtools.models import build_cnn
    >>> t = architecture_table(build_cnn(), (3, 32, 32))
    >>> t.loc[t.layer == "Conv", "parameters"].iloc[0]
    'filters=(3, 3)x32; strides=(2, 2)'
    >>> int(t.hyperplanes.sum())
    12512
    """
    if not isinstance(compact, bool):
        raise TypeError(f"compact must be True or False; got {compact!r}.")
    shape = _check_shape(input_shape)
    infos = layer_infos(model, shape)  # TypeError: unsupported model; ValueError: bad shape
    acts = _activations([info.kind for info in infos])
    rows, first = [_input_row(shape)], 0
    for info, act in zip(infos, acts, strict=True):
        n_hyper, span, out = 0, "", info.output_shape
        if info.kind == "relu":  # a ReLU keeps its input's shape: one unit per element
            n_hyper = int(np.prod(out))
            span, first = f"{first}-{first + n_hyper - 1}", first + n_hyper
        values = [_NAMES[info.kind], _parameters(info), act, out, info.trainable, n_hyper, span]
        rows.append(dict(zip(COLUMNS, values, strict=True)))
    table = pd.DataFrame(rows, columns=COLUMNS)
    return _compact(table) if compact else table


def _tag(row: dict) -> str | None:
    """How a folded layer is named in the compact activation column."""
    if row["layer"] == "Dropout":
        return f"Dropout({row['parameters'].removeprefix('rate=')})"
    return {"BatchNorm": "BN", "ReLU": "ReLU"}.get(row["layer"])


def _compact(table: pd.DataFrame) -> pd.DataFrame:
    """Fold BatchNorm/ReLU/Dropout rows into the preceding Conv/Dense row (Table 3's layout)."""
    out: list[dict] = []
    parts: list[list[str]] = []  # the activation column of each output row, as a list
    for row in table.to_dict(orient="records"):
        if row["layer"] in _FOLDED and out and out[-1]["layer"] in ("Conv", "Dense"):
            block, tag = out[-1], _tag(row)
            parts[-1] += [tag] if tag else []
            block["output_shape"] = row["output_shape"]
            block["trainable"] += row["trainable"]
            block["hyperplanes"] += row["hyperplanes"]
            block["rows"] = block["rows"] or row["rows"]
        else:
            out.append(dict(row))
            parts.append(["Softmax"] if row["activation"] == "Softmax" else [])
    for row, p in zip(out, parts, strict=True):
        if row["layer"] in ("Conv", "Dense"):
            row["activation"] = ", ".join(p) or "-"
    return pd.DataFrame(out, columns=COLUMNS)


def count_hyperplanes(model: nn.Module, input_shape: Sequence[int]) -> int:
    """Number of hyperplanes (hidden units) bounding a linear region of ``model``.

    Equals ``linear_region(model, x).polytope.A.shape[0]`` for any ``x`` of ``input_shape``:
    12,512 for the Table 3 CNN on 3 x 32 x 32 inputs (Appendix E.2), 3,072 for the
    784-1024x3-10 MLP (Section 3.1).

    Parameters
    ----------
    model : torch.nn.Sequential
        A supported ReLU network.
    input_shape : tuple of int
        The shape of one input without the batch dimension.

    Returns
    -------
    int

    Examples
    --------
    >>> from lrtools.models import build_mlp
    >>> count_hyperplanes(build_mlp(784, [1024, 1024, 1024], 10), (784,))
    3072
    """
    return int(architecture_table(model, input_shape)["hyperplanes"].sum())


def region_cost(model: nn.Module, x: np.ndarray) -> dict:
    """Size and build time of the region of ``x`` (eq. 4): rows, dimensions, share non-zero.

    Meant to be run under :func:`lrtools.memory.peak_memory` to report the memory of the
    region construction at full CNN size (Appendix E).
    """
    import time

    from ..regions import linear_region

    t0 = time.perf_counter()
    A = linear_region(model, np.asarray(x, dtype=np.float64)).polytope.A
    seconds = time.perf_counter() - t0
    return {"rows": int(A.shape[0]), "dims": int(A.shape[1]),
            "nonzero": float(np.count_nonzero(A) / A.size), "seconds": seconds}
