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
frozen at :math:`x^*` (the push kernel of :mod:`lrtools._forward`, the one place that knows the
supported layers: Linear, Conv2d, BatchNorm in eval mode, Dropout in eval mode, Flatten), so
every affine layer is applied to a batch of ``d`` basis directions at once; no per-row autograd.
On a CNN the convolutional prefix pushes fewer, compressed directions and reads the same rows
from them (:mod:`lrtools._jacobian`).
A unit with :math:`h_i(x^*) = 0` is treated as inactive (its row reads :math:`-h_i \ge 0`).

Beside the region live its two derived quantities used by Section 3.5: the logit Jacobian
:math:`J` of eq. (7) (:func:`logit_jacobian`, cheaper than the whole region) and random
directions of its null space :math:`N(A)` of eq. (10) (:func:`null_space_directions`).

Inputs follow one contract (:class:`lrtools._forward.InputSpec`): one input is
``input_shape`` or ``(1, *input_shape)``, a batch is ``(n, *input_shape)``; anything else
raises a ``ValueError`` that names the expected and the received shape.

References
----------
.. [1] X. Zhang and D. Wu, ICLR 2020.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral

import numpy as np
import torch
from torch import nn

from ._forward import SUPPORTED_LAYERS, ReLUNetwork
from ._jacobian import region_rows
from ._validation import check_array, check_scalar
from .exceptions import LRToolsError
from .polytope import Polytope

__all__ = [
    "SUPPORTED_LAYERS",
    "Region",
    "linear_region",
    "activation_patterns",
    "preactivations",
    "predict",
    "layer_sizes",
    "logit_jacobian",
    "null_space_directions",
]


def _tensor(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64))


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

    Raises
    ------
    ValueError
        If ``X`` is not a batch of the model's inputs (e.g. a single input: use ``X[None]``).
    """
    net = ReLUNetwork(model)
    X = net.spec.batch(X, "X")
    return [h.numpy().copy() for h in net.preactivations(_tensor(X))]


def activation_patterns(model: nn.Module, X) -> np.ndarray:
    """Activation pattern (unit active iff its pre-activation is > 0) of each input.

    Parameters
    ----------
    model : torch.nn.Sequential
    X : array-like of shape (n, *input_shape)

    Returns
    -------
    ndarray of bool, shape (n, n_hidden)
        Hidden units of all layers concatenated in layer order.
    """
    pre = preactivations(model, X)
    if not pre:
        return np.zeros((len(np.asarray(X)), 0), dtype=bool)
    return np.concatenate([p > 0 for p in pre], axis=1)


@torch.no_grad()
def predict(model: nn.Module, X) -> np.ndarray:
    """Logits of a batch of inputs in float64 and eval mode.

    Parameters
    ----------
    model : torch.nn.Sequential
    X : array-like of shape (n, *input_shape)
        A batch; one input ``x`` is ``x[None]``.

    Returns
    -------
    ndarray of shape (n, M)
    """
    net = ReLUNetwork(model)
    X = net.spec.batch(X, "X")
    return net.forward(_tensor(X)).numpy()


def layer_sizes(model: nn.Module, input_shape: tuple[int, ...]) -> list[int]:
    """Number of hidden units of each hidden layer for inputs of ``input_shape``."""
    net = ReLUNetwork(model)
    return net.layer_sizes(net.spec.check_shape(input_shape))


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


@torch.no_grad()
def linear_region(model: nn.Module, x, *, box: tuple[float, float] = (-1.0, 1.0)) -> Region:
    """The linear region of ``x`` as a float64 H-representation (eq. 1-4, Appendix B of [1]).

    Parameters
    ----------
    model : torch.nn.Sequential
        ReLU network of Linear, Conv2d, BatchNorm1d/2d, Dropout, Flatten and ReLU layers.
        BatchNorm and Dropout are used in eval mode (BN folds to an affine map; dropout is the
        identity), whatever mode the model is in; the model itself is not modified.
    x : array-like of shape input_shape or (1, *input_shape)
        One input: ``(784,)`` for an MLP, ``(3, 32, 32)`` for a CNN.
    box : tuple of float, default=(-1.0, 1.0)
        The input domain ``[lo, hi]^d`` (pixels rescaled to [-1, 1] in the paper).

    Returns
    -------
    Region
        Rows ordered by layer then unit; the logits' affine map (eq. 7).

    Raises
    ------
    TypeError
        If the model is not supported (:func:`lrtools._forward.leaf_layers`).
    ValueError
        If ``x`` is not one input of the model (e.g. a batch of several), or the model has no
        ReLU.

    Examples
    --------
    >>> from lrtools.models import build_mlp
    >>> net = build_mlp(2, [4, 4], 2, seed=0)
    >>> r = linear_region(net, [0.1, -0.3])
    >>> bool(r.polytope.contains(r.x_star))
    True
    """
    net = ReLUNetwork(model).require_relu()
    x = net.spec.point(x, "x")
    d = x.size
    x_flat = x.reshape(-1).copy()
    A, hs, J, z = region_rows(net, _tensor(x))
    pre, sizes = np.concatenate(hs), [h.size for h in hs]
    # b_i = sgn(h_i) (h_i - grad_i^T x*) = sgn(h_i) h_i - A_i x* (a sign flip is exact)
    b = np.where(pre > 0, 1.0, -1.0) * pre - A @ x_flat
    lo, hi = (float(box[0]), float(box[1]))
    return Region(
        x_star=x_flat,
        input_shape=tuple(x.shape),
        polytope=Polytope(A, b, np.full(d, lo), np.full(d, hi)),
        layer=np.repeat(np.arange(len(sizes)), sizes),
        unit=np.concatenate([np.arange(n) for n in sizes]),
        preact=pre,
        logit_W=J,
        logit_b=z - J @ x_flat,
    )


# --------------------------------------------------------------------------------------------
# The logit Jacobian (eq. 7) and its null space (eq. 10)
# --------------------------------------------------------------------------------------------


def logit_jacobian(model: nn.Module, x) -> np.ndarray:
    r"""Jacobian :math:`J = \nabla_x z(x)` of the logits on the region of ``x`` (eq. 7).

    Equals ``linear_region(model, x).logit_W`` and is cheaper when only :math:`J` is needed
    (the matrix :math:`A^T` of eq. 10): one batched reverse pass with the ReLU masks frozen at
    ``x`` (unit active iff its pre-activation is > 0, as in :func:`linear_region`).

    Parameters
    ----------
    model : torch.nn.Sequential
        ReLU network of supported layers (eval mode).
    x : array-like of shape input_shape or (1, *input_shape)
        One input.

    Returns
    -------
    ndarray of shape (M, d)
    """
    net = ReLUNetwork(model)
    x = net.spec.point(x, "x")
    X = _tensor(x)[None]
    with torch.no_grad():
        out = net.push(X)
    M = out.value.reshape(1, -1).shape[1]
    masks = torch.cat([m for m in out.masks] or [torch.zeros((1, 0), dtype=torch.bool)], 1)
    Xr = X.expand(M, *x.shape).clone().requires_grad_(True)
    with torch.enable_grad():
        z = net.push(Xr, masks=masks.expand(M, -1)).value.reshape(M, -1)
        (J,) = torch.autograd.grad(z.diagonal().sum(), Xr)
    return J.reshape(M, -1).numpy()


def null_space_directions(W, n: int, rng=None, *, check_tol: float = 1e-12) -> np.ndarray:
    r"""Random unit directions in the null space of the logit Jacobian (eq. 10 of [1]).

    Parameters
    ----------
    W : array-like of shape (M, d)
        Logit Jacobian :math:`A^T = [\nabla z_1, \dots, \nabla z_M]^T` of a region, e.g.
        ``linear_region(model, x).logit_W``.
    n : int
        Number of directions.
    rng : numpy.random.Generator or int or None, default=None
        Random generator or seed.
    check_tol : float, default=1e-12
        Every returned ``e`` satisfies ``max|W e| <= check_tol * max(1, ||W||_2)``.

    Returns
    -------
    ndarray of shape (n, d)
        Rows :math:`e` with :math:`\|e\| = 1` and :math:`W e = 0`, Gaussian vectors projected
        onto the null space (uniform on its unit sphere).

    Raises
    ------
    ValueError
        If ``W`` has full column rank (trivial null space).
    LRToolsError
        If the check ``W e ~ 0`` fails.

    Notes
    -----
    .. math::

        N(A) = \{e \in \mathbb{R}^d : A^T e = 0,\ \|e\| = 1\}.

    The row space of ``W`` gets an orthonormal basis :math:`Q` from a thin SVD (numerical rank
    with the usual ``max(M, d) * eps * s_max`` cut-off); each Gaussian vector is projected by
    :math:`I - QQ^T` twice (re-orthogonalisation) and normalised.
    """
    W = check_array(W, "W", ndim=2, hint="Pass the (M, d) logit Jacobian, e.g. region.logit_W.")
    check_scalar(n, "n", Integral, min_val=1)
    M, d = W.shape
    rng = np.random.default_rng(rng)
    _, s, Vt = np.linalg.svd(W, full_matrices=False)
    smax = s[0] if s.size else 0.0
    rank = int(np.sum(s > max(M, d) * np.finfo(float).eps * smax)) if smax > 0 else 0
    if rank >= d:
        raise ValueError(f"W of shape {W.shape} has full column rank {d}: its null space is {{0}}.")
    Q = Vt[:rank].T
    G = rng.standard_normal((int(n), d))
    for _ in range(2):
        G -= (G @ Q) @ Q.T
    G /= np.linalg.norm(G, axis=1, keepdims=True)
    resid = np.abs(G @ W.T).max() if M else 0.0
    if resid > check_tol * max(1.0, smax):
        raise LRToolsError(f"null-space check failed: max|W e| = {resid:.3e} (||W|| = {smax:.3e}).")
    return G
