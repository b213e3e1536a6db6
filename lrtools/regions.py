r"""The linear region of an input: activation patterns and exact H-representations.

For a ReLU network and an input :math:`x^*`, every hidden unit :math:`i` (every element of a
tensor entering a ReLU) has a pre-activation :math:`h_i(x)` that is affine on the region of
:math:`x^*`. The region is (eq. 1-4 of [1])

.. math::

    S_L = \{x : w_i^T x + b_i \ge 0 \;\forall i\},\qquad
    w_i = \operatorname{sgn}(h_i(x^*))\,\nabla_x h_i(x^*),\quad
    b_i = \operatorname{sgn}(h_i(x^*))\,[h_i(x^*) - \nabla_x h_i(x^*)^T x^*],

intersected with the input box, and on it the logits are the affine map
:math:`z(x) = J (x - x^*) + z(x^*)` (eq. 7).

The rows are built by layer-wise affine propagation in float64 (Appendix B): the input's
affine parametrisation ``x = x* + I (x - x*)`` is pushed through each layer with the ReLU masks
frozen at :math:`x^*`, so every affine layer (Linear, Conv2d, BatchNorm in eval mode, Dropout in
eval mode, Flatten) is applied to a batch of ``d`` basis directions at once; no per-row autograd.
A unit with :math:`h_i(x^*) = 0` is treated as inactive (its row reads :math:`-h_i \ge 0`).

References
----------
.. [1] X. Zhang and D. Wu, ICLR 2020.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ._validation import check_array
from .polytope import Polytope

__all__ = [
    "SUPPORTED_LAYERS",
    "Region",
    "linear_region",
    "activation_patterns",
    "preactivations",
    "predict",
    "layer_sizes",
]

SUPPORTED_LAYERS = (
    nn.Linear,
    nn.Conv2d,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.Dropout,
    nn.Flatten,
    nn.Identity,
    nn.ReLU,
)


def _layers(model: nn.Module) -> list[nn.Module]:
    """Flatten (nested) ``nn.Sequential`` into its leaf layers, rejecting unsupported ones."""
    if not isinstance(model, nn.Sequential):
        raise TypeError(
            f"model must be a torch.nn.Sequential of supported layers; got {type(model).__name__}. "
            "Wrap your layers in nn.Sequential(...)."
        )
    out: list[nn.Module] = []
    for m in model:
        if isinstance(m, nn.Sequential):
            out += _layers(m)
        elif isinstance(m, SUPPORTED_LAYERS):
            out.append(m)
        else:
            names = ", ".join(c.__name__ for c in SUPPORTED_LAYERS)
            raise TypeError(
                f"layer {type(m).__name__} is not supported by lrtools.regions; supported layers "
                f"are {names} (piecewise-linear networks with ReLU only)."
            )
    return out


def _eval64(model: nn.Module) -> list[nn.Module]:
    """Float64 eval-mode copies of the layers (BatchNorm: running statistics; Dropout: off)."""
    layers = _layers(model)
    return [copy.deepcopy(m).double().eval() for m in layers]


def _as_batch(model: nn.Module, X, name: str = "X") -> torch.Tensor:
    X = check_array(X, name)
    if X.ndim == 0:
        raise ValueError(f"{name} must be a batch of inputs; got a scalar.")
    return torch.from_numpy(np.ascontiguousarray(X))


@torch.no_grad()
def preactivations(model: nn.Module, X) -> list[np.ndarray]:
    """Pre-activations of every hidden layer (the tensors entering each ReLU), in float64.

    Parameters
    ----------
    model : torch.nn.Sequential
        A ReLU network of supported layers, used in eval mode.
    X : array-like of shape (n, *input_shape)
        A batch of inputs.

    Returns
    -------
    list of ndarray of shape (n, n_l)
        One array per hidden layer, units flattened in (C, H, W) order.
    """
    h = _as_batch(model, X)
    out = []
    for m in _eval64(model):
        if isinstance(m, nn.ReLU):
            out.append(h.reshape(h.shape[0], -1).numpy().copy())
        h = m(h)
    return out


def activation_patterns(model: nn.Module, X) -> np.ndarray:
    """Activation pattern (unit active iff its pre-activation is > 0) of each input.

    Returns
    -------
    ndarray of bool, shape (n, n_hidden)
        Hidden units of all layers concatenated in layer order.
    """
    return np.concatenate([p > 0 for p in preactivations(model, X)], axis=1)


@torch.no_grad()
def predict(model: nn.Module, X) -> np.ndarray:
    """Logits of a batch of inputs in float64 and eval mode, shape (n, M)."""
    h = _as_batch(model, X)
    for m in _eval64(model):
        h = m(h)
    return h.reshape(h.shape[0], -1).numpy()


def layer_sizes(model: nn.Module, input_shape: tuple[int, ...]) -> list[int]:
    """Number of hidden units of each hidden layer for inputs of ``input_shape``."""
    return [p.shape[1] for p in preactivations(model, np.zeros((1, *input_shape)))]


@dataclass(frozen=True, eq=False)
class Region:
    """The linear region of ``x_star`` (eq. 4 of [1]) and the network's affine map on it.

    Attributes
    ----------
    x_star : ndarray of shape (d,)
        The (flattened) input the region was built around.
    input_shape : tuple of int
        The model's input shape, e.g. ``(784,)`` or ``(3, 32, 32)``.
    polytope : Polytope
        ``{x : A x + b >= 0, lo <= x <= hi}``, one row per hidden unit, sign-flipped (eq. 2-3).
    layer : ndarray of int, shape (m,)
        Hidden layer (0-based) of each row.
    unit : ndarray of int, shape (m,)
        Index of each row's unit within its layer (flattened C, H, W order).
    preact : ndarray of shape (m,)
        Pre-activation :math:`h_i(x^*)` of each unit.
    logit_W : ndarray of shape (M, d)
        Jacobian :math:`J = \\nabla_x z(x^*)` of the logits on the region (eq. 7).
    logit_b : ndarray of shape (M,)
        Offset so that ``z(x) = logit_W @ x + logit_b`` on the region.
    """

    x_star: np.ndarray
    input_shape: tuple[int, ...]
    polytope: Polytope
    layer: np.ndarray
    unit: np.ndarray
    preact: np.ndarray
    logit_W: np.ndarray
    logit_b: np.ndarray

    @property
    def pattern(self) -> np.ndarray:
        """Activation pattern of ``x_star`` (bool, shape (m,))."""
        return self.preact > 0

    @property
    def n_layers(self) -> int:
        """Number of hidden layers."""
        return int(self.layer.max()) + 1 if self.layer.size else 0

    @property
    def activation_rate(self) -> float:
        """Fraction of active hidden units (the colour of Fig. 1 and Fig. 8)."""
        return float(self.pattern.mean())

    def logits(self, x: np.ndarray) -> np.ndarray:
        """The region's affine logits ``z(x) = J x + c`` (eq. 7), valid for ``x`` in the region."""
        x = np.asarray(x, dtype=np.float64)
        return x @ self.logit_W.T + self.logit_b

    def up_to_layer(self, n_layers: int) -> Polytope:
        """The polytope :math:`S_l` of the first ``n_layers`` hidden layers (Fig. 2)."""
        return self.polytope.with_rows(self.layer < n_layers)


def _propagate(
    layers: list[nn.Module], x: torch.Tensor, track_linear: bool = True
) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], torch.Tensor, torch.Tensor]:
    """Push ``x`` and the identity directions through the layers with ReLU masks frozen at x.

    Returns the (value, linear part) entering each ReLU, and the final value and linear part.
    ``value`` has shape (1, *shape); ``lin`` has shape (d, *shape) with ``lin[k]`` the derivative
    of the tensor along input coordinate ``k``.
    """
    d = x.numel()
    v = x.reshape(1, *x.shape)
    lin = torch.eye(d, dtype=torch.float64).reshape(d, *x.shape)
    relu_inputs = []
    for m in layers:
        if isinstance(m, nn.ReLU):
            relu_inputs.append((v, lin))
            mask = (v > 0).to(v.dtype)
            v, lin = v * mask, lin * mask
        elif isinstance(m, nn.Flatten | nn.Dropout | nn.Identity):
            v, lin = m(v), m(lin)
        else:
            # affine layer f(y) = L y + f(0): the linear part maps directions by L only
            offset = m(torch.zeros_like(v))
            v, lin = m(v), m(lin) - offset
    return relu_inputs, v, lin


@torch.no_grad()
def linear_region(model: nn.Module, x, *, box: tuple[float, float] = (-1.0, 1.0)) -> Region:
    """The linear region of ``x`` as a float64 H-representation (eq. 1-4, Appendix B of [1]).

    Parameters
    ----------
    model : torch.nn.Sequential
        ReLU network of Linear, Conv2d, BatchNorm1d/2d, Dropout, Flatten and ReLU layers.
        BatchNorm and Dropout are used in eval mode (BN folds to an affine map; dropout is the
        identity), whatever mode the model is in; the model itself is not modified.
    x : array-like of shape input_shape
        One input, without batch dimension: ``(784,)`` for an MLP, ``(3, 32, 32)`` for a CNN.
    box : tuple of float, default=(-1.0, 1.0)
        The input domain ``[lo, hi]^d`` (pixels rescaled to [-1, 1] in the paper).

    Returns
    -------
    Region
        Rows ordered by layer then unit; the logits' affine map (eq. 7).

    Examples
    --------
    >>> from lrtools.models import build_mlp
    >>> net = build_mlp(2, [4, 4], 2, seed=0)
    >>> r = linear_region(net, [0.1, -0.3])
    >>> bool(r.polytope.contains(r.x_star))
    True
    """
    layers = _eval64(model)
    xt = torch.from_numpy(np.ascontiguousarray(check_array(x, "x")))
    if xt.ndim == 0:
        raise ValueError("x must be one input with the model's input shape; got a scalar.")
    try:
        relu_inputs, v_out, lin_out = _propagate(layers, xt)
    except RuntimeError as exc:
        raise ValueError(
            f"x of shape {tuple(xt.shape)} does not fit the model ({exc}). Pass one input without "
            "the batch dimension, e.g. x.reshape(784) for an MLP or (3, 32, 32) for a CNN."
        ) from exc
    d = xt.numel()
    x_flat = xt.reshape(-1).numpy().copy()
    rows, offs, layer_ids, unit_ids, pre = [], [], [], [], []
    for l_idx, (v, lin) in enumerate(relu_inputs):
        h = v.reshape(-1).numpy()
        grad = lin.reshape(d, -1).T.numpy()  # (n_l, d): row i is grad of h_i
        sign = np.where(h > 0, 1.0, -1.0)
        rows.append(sign[:, None] * grad)
        offs.append(sign * (h - grad @ x_flat))
        layer_ids.append(np.full(h.size, l_idx))
        unit_ids.append(np.arange(h.size))
        pre.append(h.copy())
    if not rows:
        raise ValueError("model has no ReLU layer, so it has a single linear region (all of R^d).")
    A = np.ascontiguousarray(np.concatenate(rows))
    b = np.concatenate(offs)
    J = lin_out.reshape(d, -1).T.numpy().copy()
    z = v_out.reshape(-1).numpy()
    lo, hi = (float(box[0]), float(box[1]))
    return Region(
        x_star=x_flat,
        input_shape=tuple(xt.shape),
        polytope=Polytope(A, b, np.full(d, lo), np.full(d, hi)),
        layer=np.concatenate(layer_ids),
        unit=np.concatenate(unit_ids),
        preact=np.concatenate(pre),
        logit_W=J,
        logit_b=z - J @ x_flat,
    )
