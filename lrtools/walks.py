r"""Exact 1-D walks through linear regions, and the first class change on a segment.

On a segment :math:`x(\beta) = x_0 + \beta e`, :math:`\beta \in [0, \epsilon]`, the activation
pattern is piecewise constant. Within a piece every pre-activation is affine in :math:`\beta`,

.. math::

    h_i(x_0 + \beta e) = h_i(x(\beta_k)) + (\beta - \beta_k)\, \partial_e h_i,
    \qquad \beta \in [\beta_k, \beta_{k+1}],

so the next breakpoint :math:`\beta_{k+1}` is the smallest :math:`\beta > \beta_k` at which some
unit's affine pre-activation changes sign. Values and directional derivatives are pushed layer by
layer in float64 with the ReLU masks frozen (forward mode), for all directions at once, and the
values are recomputed from scratch at every breakpoint, so rounding errors do not accumulate.

The pattern of the piece that starts at a breakpoint is decided layer by layer
(lexicographic rule): a unit whose value is not at zero keeps the sign of its value; a unit at
zero takes the sign of its directional derivative, computed with the masks just decided for the
layers below it (the right derivative). Several units crossing at the same :math:`\beta` (ties,
including units of different layers) are thereby resolved exactly, and a unit that touches zero
and turns back does not create a piece. A value counts as zero when

.. math::

    |h_i| \le \mathrm{tol}\,\bigl(\max_{j \in \text{layer}} |h_j| + |\partial_e h_i|\bigr),

i.e. within rounding noise of the layer's scale, or zero within ``tol`` along :math:`\beta`;
pieces shorter than about ``tol`` are merged into their neighbours, and every piece recorded is
longer than ``tol``.

This gives Section 3.5 of [1] (eq. 10-13, Fig. 6): unique regions met along null-space
directions of the logit Jacobian and the cosine similarity of their decision directions, and
Section 3.2 (Fig. 3): the decision region, where the class of a test point stops on the segment
towards a target point. The input box is not enforced along a walk (the paper does not clip
:math:`x^* + \beta e`): patterns are those of the network on all of :math:`\mathbb{R}^d`.

References
----------
.. [1] X. Zhang and D. Wu, "Empirical Studies on the Properties of Linear Regions in Deep
   Neural Networks", ICLR 2020.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
import torch
from torch import nn

from ._forward import CHUNK, ReLUNetwork
from ._validation import check_array, check_choice, check_scalar
from .exceptions import LRToolsError

# moved beside the region (eq. 7 and eq. 10); importable from here for existing callers
from .regions import logit_jacobian, null_space_directions  # noqa: F401

__all__ = [
    "Walk",
    "walk",
    "count_unique_regions",
    "SurroundingRegions",
    "surrounding_regions",
    "ClassChange",
    "first_class_change",
    "first_class_changes",
]


# --------------------------------------------------------------------------------------------
# One piece of a walk: the frozen-mask push of lrtools._forward with the lexicographic rule
# --------------------------------------------------------------------------------------------


def _piece(net: ReLUNetwork, X: torch.Tensor, E: torch.Tensor, tol: float, first=None):
    """Pattern of the piece starting at ``X`` along ``E``, its logits, slopes and length
    (``first``: the input of the first ReLU, from :class:`_FirstLayer`)."""
    t = torch.full((X.shape[0],), torch.inf, dtype=X.dtype)

    def decide(_l, v, D):
        nonlocal t
        mask, t_l = _relu_piece(v, D[:, 0], tol)
        t = torch.minimum(t, t_l)
        return mask.reshape(v.shape)

    with torch.no_grad():
        out = net.push(X, E[:, None], decide=decide, first=first)
    B = X.shape[0]
    return torch.cat(out.masks, 1), out.value.reshape(B, -1), out.directions.reshape(B, -1), t


def _preacts(net: ReLUNetwork, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pre-activations (n, n_hidden) and each unit's layer scale ``max_j |h_j|``."""
    with torch.no_grad():
        h = net.preactivations(X)
    scale = [hl.abs().amax(1, keepdim=True).expand_as(hl) for hl in h]
    return torch.cat(h, 1), torch.cat(scale, 1)


def _logits(net: ReLUNetwork, X: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return net.forward(X).numpy()


def _masked_logits(net: ReLUNetwork, X: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Logits with the ReLU masks frozen to ``masks`` (n, n_hidden); differentiable in X."""
    return net.push(X, masks=masks).value.reshape(X.shape[0], -1)


def _relu_piece(v: torch.Tensor, dv: torch.Tensor, tol: float):
    """Decide one layer's masks (lexicographic rule) and the distance to its next sign change."""
    h, dh = v.reshape(v.shape[0], -1), dv.reshape(v.shape[0], -1)
    ah = h.abs()
    at_zero = ah <= tol * (ah.amax(1, keepdim=True) + dh.abs())
    mask = torch.where(at_zero, dh > 0, h > 0)
    # a unit moves towards its sign change iff rate = -sign * dh > 0 (sign = +1 if active);
    # it gets there after max(sign * h, 0) / rate (the same quotients as h / -dh, -h / dh)
    rate = torch.where(mask, -dh, dh)
    dist = torch.where(mask, h, -h).clamp_(min=0)
    t = torch.where(rate > 0, dist / rate, torch.inf)
    return mask, t.amin(1)


# --------------------------------------------------------------------------------------------
# Walks
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Walk:
    r"""The exact sequence of linear regions on :math:`\{x_0 + \beta e : \beta \in [0, \epsilon]\}`.

    Attributes
    ----------
    x0 : ndarray of shape (d,)
        Start point (flattened).
    direction : ndarray of shape (d,)
        Direction :math:`e`; :math:`\beta` is measured in multiples of it (the Euclidean length
        when ``e`` is a unit vector).
    input_shape : tuple of int
        The model's input shape.
    breakpoints : ndarray of shape (K + 1,)
        :math:`0 = \beta_0 < \beta_1 < \dots < \beta_K = \epsilon`.
    packed_patterns : ndarray of uint8, shape (K, ceil(n_hidden / 8))
        ``np.packbits`` of the activation pattern (unit active iff pre-activation > 0) on the
        open piece :math:`(\beta_k, \beta_{k+1})`, units in layer order.
    logits_start, logits_slope : ndarray of shape (K, M)
        On piece ``k`` the logits are ``logits_start[k] + (beta - breakpoints[k]) *
        logits_slope[k]`` (eq. 7 restricted to the segment).
    x0_packed : ndarray of uint8
        Packed pattern of ``x0`` itself (differs from piece 0 only if ``x0`` is on a boundary).
    layer_sizes : tuple of int
        Hidden units per hidden layer.
    """

    x0: np.ndarray
    direction: np.ndarray
    input_shape: tuple[int, ...]
    breakpoints: np.ndarray
    packed_patterns: np.ndarray
    logits_start: np.ndarray
    logits_slope: np.ndarray
    x0_packed: np.ndarray
    layer_sizes: tuple[int, ...]

    @property
    def n_pieces(self) -> int:
        """Number of pieces ``K``."""
        return int(self.packed_patterns.shape[0])

    @property
    def n_hidden(self) -> int:
        """Number of hidden units."""
        return int(sum(self.layer_sizes))

    @property
    def midpoints(self) -> np.ndarray:
        """Piece midpoints in :math:`\\beta`, shape (K,)."""
        return 0.5 * (self.breakpoints[:-1] + self.breakpoints[1:])

    def points(self, betas: np.ndarray | None = None) -> np.ndarray:
        """Points ``x0 + beta * e`` flattened to (n, d); the piece midpoints by default."""
        b = self.midpoints if betas is None else np.asarray(betas, dtype=np.float64)
        return self.x0 + b[:, None] * self.direction

    def patterns(self) -> np.ndarray:
        """Activation patterns of the pieces, bool of shape (K, n_hidden)."""
        return np.unpackbits(self.packed_patterns, axis=1, count=self.n_hidden).astype(bool)

    def piece_of(self, betas: np.ndarray) -> np.ndarray:
        """Index of the piece containing each ``beta`` (a breakpoint goes to the later piece)."""
        idx = np.searchsorted(self.breakpoints, np.asarray(betas, dtype=np.float64), "right") - 1
        return np.clip(idx, 0, self.n_pieces - 1)


def _input_batch(x0: np.ndarray, directions, name: str = "directions") -> np.ndarray:
    E = check_array(directions, name)
    d = x0.size
    if E.ndim == 1 and E.size == d:
        E = E[None]
    if E.ndim < 2 or E[0].size != d or E.shape[1:] not in {(d,), x0.shape}:
        raise ValueError(
            f"{name} must have shape (n, {d}) or (n, *{x0.shape}) for x0 of shape {x0.shape}; "
            f"got {E.shape}. Stack one direction per row."
        )
    E = E.reshape(E.shape[0], d)
    if E.shape[0] == 0 or np.any(np.linalg.norm(E, axis=1) == 0):
        raise ValueError(
            f"{name} must hold at least one row and no zero rows (a zero direction "
            "does not define a segment)."
        )
    return E


def _check_tol(tol: float) -> float:
    check_scalar(tol, "tol", Real, min_val=0.0, max_val=1e-3, include_min=False)
    return float(tol)


def _to_model(X: np.ndarray, shape: tuple[int, ...]) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(X).reshape(X.shape[0], *shape))


def _run_piece(net: ReLUNetwork, X: np.ndarray, E: np.ndarray, shape: tuple[int, ...], tol: float,
               first=None):
    mask, z, dz, t = _piece(net, _to_model(X, shape), _to_model(E, shape), tol, first)
    return np.packbits(mask.numpy(), axis=1), z.numpy(), dz.numpy(), t.numpy()


class _FirstLayer:
    """Segment 0 of the network (everything before the first ReLU, an affine map) at the
    start points ``X0`` and along the directions ``E`` of a batch of walks, computed once.

    The input of the first ReLU at ``X0[i] + a E[i]`` is ``v0[i] + a D0[i]``, so the pieces of
    a walk skip segment 0 (on the paper's MLP its 784 x 1,024 layer is 28% of the weights a
    piece reads). ``X0`` may hold one row shared by every walk.
    """

    def __init__(self, net: ReLUNetwork, X0: np.ndarray, E: np.ndarray, shape: tuple[int, ...]):
        with torch.no_grad():
            self.v0, self.D0 = net.segment(0, _to_model(X0, shape), _to_model(E, shape)[:, None])
        self.shared = self.v0.shape[0] == 1

    def at(self, rows: np.ndarray, a: np.ndarray):
        """``(v, D)`` entering the first ReLU at ``X0[rows] + a E[rows]``."""
        idx = torch.from_numpy(np.asarray(rows, dtype=np.int64))
        D = self.D0[idx]
        v0 = self.v0 if self.shared else self.v0[idx]
        scale = torch.from_numpy(np.asarray(a, dtype=np.float64)).reshape(-1, *[1] * (v0.ndim - 1))
        return v0 + scale * D[:, 0], D


def _walk_all(net, x0, E, eps, shape, tol, max_pieces):
    """Advance every direction piece by piece; returns per-direction lists of piece records."""
    n = E.shape[0]
    beta = np.zeros(n)
    recs: list[list[tuple]] = [[] for _ in range(n)]
    rows = np.arange(n)
    first = _FirstLayer(net, x0[None], E, shape)
    while rows.size:
        packed, z, dz, t = _run_piece(net, x0 + beta[rows, None] * E[rows], E[rows], shape, tol,
                                      first.at(rows, beta[rows]))
        end = np.minimum(beta[rows] + t, eps)
        if np.any(end <= beta[rows]):
            raise LRToolsError(
                f"walk made no progress at beta={beta[rows][end <= beta[rows]][0]!r}; increase "
                "tol (pieces shorter than about tol are merged)."
            )
        for i, r in enumerate(rows):
            recs[r].append((beta[r], packed[i], z[i], dz[i]))
        beta[rows] = end
        if max(len(recs[r]) for r in rows) > max_pieces:
            raise LRToolsError(f"a walk met more than max_pieces={max_pieces} pieces; raise it.")
        rows = rows[end < eps]
    return recs


def _verify_patterns(net, points, packed, n_hidden, shape, tol, what):
    """Raise if a point's pattern differs from its recorded one by more than rounding noise."""
    for s in range(0, len(points), CHUNK):
        h, scale = _preacts(net, _to_model(points[s : s + CHUNK], shape))
        want = np.unpackbits(packed[s : s + CHUNK], axis=1, count=n_hidden).astype(bool)
        h, scale = h.numpy(), scale.numpy()
        bad = ((h > 0) != want) & (np.abs(h) > tol * scale)
        if bad.any():
            i = int(np.nonzero(bad.any(1))[0][0]) + s
            raise LRToolsError(
                f"verification failed: the pattern at {what} {i} differs from the walk's in "
                f"{int(bad.sum())} unit(s) beyond rounding noise; try a smaller tol."
            )


@torch.no_grad()
def walk(
    model: nn.Module,
    x0,
    directions,
    eps: float,
    *,
    tol: float = 1e-10,
    max_pieces: int = 100_000,
    verify: bool = True,
) -> list[Walk]:
    r"""Exact linear regions met on the segments :math:`x_0 + \beta e,\ \beta \in [0, \epsilon]`.

    Parameters
    ----------
    model : torch.nn.Sequential
        ReLU network of the layers supported by :mod:`lrtools.regions` (BatchNorm and Dropout in
        eval mode, whatever the model's mode).
    x0 : array-like of shape input_shape
        Start point, one input without batch dimension (:math:`x^*` of eq. 11).
    directions : array-like of shape (n, d) or (n, *input_shape)
        One direction :math:`e` per row, walked in one batch. They need not be unit vectors:
        :math:`\beta` is in multiples of ``e`` (use unit rows, e.g. from
        :func:`null_space_directions`, for the paper's Euclidean :math:`\epsilon`).
    eps : float
        Walk length :math:`\epsilon > 0` (0.2 in Section 3.5 of [1]).
    tol : float, default=1e-10
        Zero tolerance of the lexicographic rule (see the module notes); pieces shorter than
        about ``tol`` in :math:`\beta` are merged into a neighbour.
    max_pieces : int, default=100000
        Safety limit per direction.
    verify : bool, default=True
        Recompute the pattern at every piece midpoint and raise if it differs from the walk's
        beyond rounding noise.

    Returns
    -------
    list of Walk
        One per direction, breakpoints strictly increasing from 0 to ``eps``.

    Raises
    ------
    LRToolsError
        If verification fails or a walk exceeds ``max_pieces``.

    Notes
    -----
    Implements the search along eq. (11) of [1],

    .. math::

        x = x^* + \beta e,\qquad \beta \in [0, \epsilon],

    exactly: piece ``k`` spans :math:`[\beta_k, \beta_{k+1}]`, and
    :math:`\beta_{k+1} = \beta_k + \min_i t_i` with :math:`t_i = -h_i / \partial_e h_i` over
    units whose affine pre-activation moves towards a sign change.

    Examples
    --------
    >>> import numpy as np
    >>> from lrtools.models import build_mlp
    >>> net = build_mlp(2, [8, 8], 3, seed=0)
    >>> w = walk(net, [0.1, -0.2], np.eye(2), 0.5)
    >>> [float(x.breakpoints[-1]) for x in w]
    [0.5, 0.5]
    """
    net = ReLUNetwork(model).require_relu()
    x0 = net.spec.point(x0, "x0")
    E = _input_batch(x0, directions)
    check_scalar(eps, "eps", Real, min_val=0.0, include_min=False)
    if not np.isfinite(eps):
        raise ValueError(f"eps == {eps}, must be finite.")
    tol = _check_tol(tol)
    check_scalar(max_pieces, "max_pieces", Integral, min_val=1)
    shape, xf = x0.shape, x0.reshape(-1)
    recs = _walk_all(net, xf, E, float(eps), shape, tol, max_pieces)
    h0 = _preacts(net, _to_model(xf[None], shape))[0].numpy()[0]
    x0_packed = np.packbits(h0 > 0)
    sizes = net.layer_sizes(shape)
    walks = [
        _make_walk(xf, E[j], shape, r, float(eps), x0_packed, sizes)
        for j, r in enumerate(recs)
    ]
    if verify:
        pts = np.concatenate([w.points() for w in walks])
        packed = np.concatenate([w.packed_patterns for w in walks])
        _verify_patterns(net, pts, packed, walks[0].n_hidden, shape, tol, "piece midpoint")
    return walks


def _make_walk(x0, e, shape, rec, eps, x0_packed, layer_sizes) -> Walk:
    starts, packed, z, dz = zip(*rec, strict=True)
    return Walk(
        x0=x0,
        direction=e,
        input_shape=tuple(shape),
        breakpoints=np.append(np.asarray(starts, dtype=np.float64), eps),
        packed_patterns=np.stack(packed),
        logits_start=np.stack(z),
        logits_slope=np.stack(dz),
        x0_packed=x0_packed,
        layer_sizes=tuple(layer_sizes),
    )


def _check_walks(walks) -> list[Walk]:
    walks = list(walks)
    if not walks or not all(isinstance(w, Walk) for w in walks):
        raise TypeError("walks must be a non-empty sequence of Walk objects from walk(...).")
    if any(w.x0 is not walks[0].x0 and not np.array_equal(w.x0, walks[0].x0) for w in walks):
        raise ValueError("all walks must start at the same x0; group them per start point.")
    return walks


def count_unique_regions(walks) -> int:
    """Number of distinct activation patterns met by walks from one ``x0``, its own included.

    Parameters
    ----------
    walks : sequence of Walk
        Walks from the same ``x0`` (e.g. the 100 null-space directions of Section 3.5 of [1]).

    Returns
    -------
    int
        The count of unique linear regions of Fig. 6(a) (``x0``'s own region counts as one).
    """
    walks = _check_walks(walks)
    keys = {walks[0].x0_packed.tobytes()}
    for w in walks:
        keys.update(row.tobytes() for row in w.packed_patterns)
    return len(keys)


# --------------------------------------------------------------------------------------------
# Decision directions of the surrounding regions (eq. 13)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SurroundingRegions:
    r"""Unique regions met by walks from :math:`x^*` and their decision directions (eq. 13).

    Row 0 is the region of :math:`x^*` itself (``walk_index == -1``, ``rho == 1``); the other
    rows are the surrounding regions in order of first appearance.

    Attributes
    ----------
    points : ndarray of shape (U, d)
        Representative point of each region: :math:`x^*` for row 0, else the midpoint of the
        first piece met with that pattern.
    walk_index : ndarray of int, shape (U,)
        Walk (direction) on which the region was first met; -1 for :math:`x^*`.
    betas : ndarray of shape (U,)
        :math:`\beta` of the representative point on that walk.
    packed_patterns : ndarray of uint8, shape (U, nbytes)
        Packed activation patterns (unique).
    logits : ndarray of shape (U, M)
        Logits at the representative points.
    top2 : ndarray of int, shape (U, 2)
        The pair :math:`(k_1, k_2)` used in :math:`g` (see ``pair`` of
        :func:`surrounding_regions`).
    g : ndarray of shape (U, d)
        Decision directions :math:`g = \nabla_x (z_{k_1} - z_{k_2})` on each region.
    rho : ndarray of shape (U,)
        Cosine similarity to :math:`g(x^*)`; NaN where a gradient vanishes.
    """

    points: np.ndarray
    walk_index: np.ndarray
    betas: np.ndarray
    packed_patterns: np.ndarray
    logits: np.ndarray
    top2: np.ndarray
    g: np.ndarray
    rho: np.ndarray

    @property
    def n_regions(self) -> int:
        """Number of unique regions, that of :math:`x^*` included."""
        return int(self.points.shape[0])

    @property
    def rho_surrounding(self) -> np.ndarray:
        """Cosine similarities of the regions other than :math:`x^*`'s (Fig. 6(b), 6(c))."""
        return self.rho[1:]


def _unique_pieces(walks: list[Walk]):
    seen = {walks[0].x0_packed.tobytes(): 0}
    pts, widx, betas, packed = [walks[0].x0], [-1], [0.0], [walks[0].x0_packed]
    for j, w in enumerate(walks):
        mids = w.midpoints
        for k, row in enumerate(w.packed_patterns):
            key = row.tobytes()
            if key not in seen:
                seen[key] = len(pts)
                pts.append(w.x0 + mids[k] * w.direction)
                widx.append(j)
                betas.append(mids[k])
                packed.append(row)
    return np.stack(pts), np.asarray(widx), np.asarray(betas), np.stack(packed)


def _top2(z: np.ndarray) -> np.ndarray:
    """Indices of the largest and second largest logits (lowest index first on exact ties)."""
    order = np.argsort(-z, axis=1, kind="stable")
    return order[:, :2]


def _decision_directions(net, points, packed, n_hidden, shape, pair0):
    """Logits, top-2 pairs and :math:`g` on each region, by masked reverse mode (batched)."""
    zs, pairs, gs = [], [], []
    for s in range(0, len(points), CHUNK):
        X = _to_model(points[s : s + CHUNK], shape).clone().requires_grad_(True)
        masks = torch.from_numpy(
            np.unpackbits(packed[s : s + CHUNK], axis=1, count=n_hidden).astype(bool)
        )
        with torch.enable_grad():
            z = _masked_logits(net, X, masks)
            zn = z.detach().numpy()
            k = _top2(zn) if pair0 is None else np.broadcast_to(pair0, (len(zn), 2))
            kt = torch.from_numpy(np.ascontiguousarray(k))
            sel = z.gather(1, kt[:, :1]) - z.gather(1, kt[:, 1:])
            (g,) = torch.autograd.grad(sel.sum(), X)
        zs.append(zn)
        pairs.append(np.asarray(k))
        gs.append(g.reshape(len(zn), -1).numpy())
    return np.concatenate(zs), np.concatenate(pairs), np.concatenate(gs)


def surrounding_regions(model: nn.Module, walks, *, pair: str = "own") -> SurroundingRegions:
    r"""Unique regions met by walks from :math:`x^*` and the cosine of their decision directions.

    Parameters
    ----------
    model : torch.nn.Sequential
        The network the walks were computed on.
    walks : sequence of Walk
        Walks from one :math:`x^*` (e.g. from :func:`walk` with :func:`null_space_directions`).
    pair : {"own", "x_star"}, default="own"
        Which logits enter eq. (13): ``"own"`` takes :math:`k_1, k_2` as the two largest logits
        at each region's representative point (the paper's wording); ``"x_star"`` uses the pair
        of :math:`x^*` for every region.

    Returns
    -------
    SurroundingRegions
        Row 0 is :math:`x^*`'s region.

    Notes
    -----
    Implements eq. (13) and the cosine similarity of Section 3.5 of [1]:

    .. math::

        g(x) = \nabla_x \bigl(z_{k_1}(x) - z_{k_2}(x)\bigr),\qquad
        \rho = \frac{g(x)^T g(x^*)}{\|g(x)\|\,\|g(x^*)\|}.

    On a region the logits are affine (eq. 7), so :math:`g` is exact: it is computed by reverse
    mode with the ReLU masks frozen to the region's pattern, for all regions in batches.
    """
    walks = _check_walks(walks)
    check_choice(pair, "pair", ("own", "x_star"))
    net, w0 = ReLUNetwork(model).require_relu(), walks[0]
    pts, widx, betas, packed = _unique_pieces(walks)
    pair0 = None
    if pair == "x_star":
        z0 = _masked_logits(
            net,
            _to_model(w0.x0[None], w0.input_shape),
            torch.from_numpy(np.unpackbits(w0.x0_packed, count=w0.n_hidden).astype(bool)[None]),
        )
        pair0 = _top2(z0.detach().numpy())[0]
    z, top2, g = _decision_directions(net, pts, packed, w0.n_hidden, w0.input_shape, pair0)
    norms = np.linalg.norm(g, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = (g @ g[0]) / (norms * norms[0])
    return SurroundingRegions(pts, widx, betas, packed, z, top2, g, rho)


# --------------------------------------------------------------------------------------------
# First class change on a segment (decision regions, Fig. 3)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ClassChange:
    r"""Where the class of ``x_start`` stops on the segment to ``x_end`` (Fig. 3 of [1]).

    Attributes
    ----------
    alpha : float
        :math:`\alpha^* = \sup\{\alpha \in [0, 1] : \text{every } x_a,\ a \in [0, \alpha],
        \text{ has class } c_0\}`; 1 when the class never changes.
    point : ndarray of shape input_shape
        :math:`x_{\alpha^*}` (on the decision boundary when ``changed``).
    changed : bool
        Whether the class changes on the segment; False means ``alpha == 1``.
    start_class : int
        :math:`c_0`, the class of ``x_start`` (lowest index on an exact tie of logits).
    new_class : int
        The class that overtakes :math:`c_0` at :math:`\alpha^*` (lowest index on ties); -1 if
        none.
    region_alpha : float
        :math:`\alpha` of ``region_point``: the midpoint of :math:`[\alpha_k, \alpha^*]` where
        piece ``k`` is the last piece met before the crossing (:math:`\alpha_k < \alpha^*`).
        When :math:`\alpha^* = 0` it is the midpoint of the first piece.
    region_point : ndarray of shape input_shape
        A point strictly inside the decision region (the region of :math:`x_\alpha` just before
        :math:`\alpha^*`), on the :math:`c_0` side; pass it to
        :func:`lrtools.regions.linear_region`.
    region_packed : ndarray of uint8
        Packed activation pattern of that region.
    n_pieces : int
        Pieces walked until the crossing.
    """

    alpha: float
    point: np.ndarray
    changed: bool
    start_class: int
    new_class: int
    region_alpha: float
    region_point: np.ndarray
    region_packed: np.ndarray
    n_pieces: int


def _crossing_in_piece(z, dz, c0, tol):
    """Smallest t >= 0 at which some logit exceeds logit ``c0`` on an affine piece, and which."""
    rows = np.arange(len(z))
    diff = z - z[rows, c0][:, None]
    slope = dz - dz[rows, c0][:, None]
    scale = np.abs(z).max(1, keepdims=True)
    above = diff > tol * scale  # already ahead (only via rounding at a breakpoint)
    at_tie = np.abs(diff) <= tol * (scale + np.abs(slope))
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(slope > 0, np.maximum(-diff, 0.0) / slope, np.inf)
    t = np.where((at_tie & (slope > 0)) | above, 0.0, t)
    t[rows, c0] = np.inf
    j = np.argmin(t, axis=1)
    return t[rows, j], j


@torch.no_grad()
def first_class_changes(
    model: nn.Module, X_start, X_end, *, tol: float = 1e-10, max_pieces: int = 100_000
) -> list[ClassChange]:
    r"""Exact first class change on each segment ``[X_start[i], X_end[i]]`` (batched).

    Parameters
    ----------
    model : torch.nn.Sequential
        ReLU network of supported layers (eval mode).
    X_start, X_end : array-like of shape (n, *input_shape)
        Test points :math:`x_{test}` and targets :math:`x_{target}` (class means or
        adversarial examples in Section 3.2 of [1]).
    tol : float, default=1e-10
        Zero tolerance of the walk (see :func:`walk`) and of logit ties.
    max_pieces : int, default=100000
        Safety limit per segment.

    Returns
    -------
    list of ClassChange

    Raises
    ------
    LRToolsError
        If the logits at the returned points fail verification.

    Notes
    -----
    Section 3.2 of [1] searches "the maximum :math:`\alpha \in [0, 1]`" such that
    :math:`x_\alpha = \alpha x_{target} + (1-\alpha) x_{test}` keeps the class of
    :math:`x_{test}`. Read literally that maximum may lie beyond a first change of class (the
    class can come back); we return the first exit instead,

    .. math::

        \alpha^* = \sup\{\alpha \in [0,1] : z_{c_0}(x_a) \ge z_j(x_a)\ \forall j,\
        \forall a \in [0, \alpha]\},

    so ties keep the class and :math:`x_{\alpha^*}` lies on the boundary between :math:`c_0` and
    the first class to overtake it. The segment is walked piece by piece (:func:`walk`); on a
    piece the logits are affine in :math:`\alpha` (eq. 7), so the crossing is
    :math:`\alpha_k + \min_j (z_{c_0} - z_j) / (\dot z_j - \dot z_{c_0})` over classes with
    :math:`\dot z_j > \dot z_{c_0}`, in closed form.
    """
    net = ReLUNetwork(model).require_relu()
    Xs, Xe = net.spec.batch(X_start, "X_start"), net.spec.batch(X_end, "X_end")
    if Xs.shape != Xe.shape:
        raise ValueError(
            f"X_start and X_end must both have shape (n, *input_shape); got {Xs.shape} and "
            f"{Xe.shape}. Use first_class_change for one pair."
        )
    tol = _check_tol(tol)
    check_scalar(max_pieces, "max_pieces", Integral, min_val=1)
    shape, n = Xs.shape[1:], Xs.shape[0]
    Xs, E = Xs.reshape(n, -1), (Xe - Xs).reshape(n, -1)
    if np.any(np.linalg.norm(E, axis=1) == 0):
        raise ValueError("X_end must differ from X_start in every row (a segment needs length).")
    found = _search_crossings(net, Xs, E, shape, tol, max_pieces)
    out = [_class_change(Xs[i], E[i], shape, *found[i]) for i in range(n)]
    _verify_changes(net, out, shape, tol)
    return out


#: A segment's walk is cut into this many consecutive sub-segments at most, walked side by side
#: in one batch (:func:`_search_crossings`): one piece of the paper's CIFAR CNN costs 2.6 ms
#: alone and 1.0 ms in a batch of 16, one of the MNIST MLP 2.4 ms and 0.38 ms.
MAX_SUBSEGMENTS = 16
_SUB_ROWS = 32  # rows per batch that the split aims at (fewer sub-segments for many segments)
_N_SAMPLES = 32  # logit samples per segment that place the end of a window


def _search_crossings(net, Xs, E, shape, tol, max_pieces):
    """Walk every segment until its class changes or alpha reaches 1.

    Exact, piece by piece, but not one piece after another: the segment up to a *window end*
    (the first of ``_N_SAMPLES`` evenly spaced points on ``[lo, 1]`` whose class is not the
    start class, so the first change lies before it; else 1) is cut into ``MAX_SUBSEGMENTS``
    consecutive sub-segments (fewer when many segments share the batch: about ``_SUB_ROWS``
    rows in all), walked side by side in one batch. Each is an exact walk of its own (the
    lexicographic rule at a sub-segment's start gives the piece that contains it, so a piece
    met at a cut is split in two, and counted once). The first sub-segment with a crossing
    gives the answer once every sub-segment before it is walked through; the later ones stop
    there. A window without a crossing (a sampled class that only ties the start class) is
    followed by the next window from its end, so the walked sub-segments always cover
    ``[0, alpha*]`` without a gap. With ``MAX_SUBSEGMENTS = 1`` it walks one piece after another.
    """
    n = len(Xs)
    n_sub = int(np.clip(-(-_SUB_ROWS // n), 1, MAX_SUBSEGMENTS))
    first = _FirstLayer(net, Xs, E, shape)
    c0 = np.argmax(_logits(net, _to_model(Xs, shape)), axis=1)  # for the windows only
    exact_c0 = False  # c0 as the walk defines it: from the first piece at alpha = 0
    lo, steps = np.zeros(n), np.zeros(n, dtype=int)
    tail: list[tuple | None] = [None] * n  # the last piece walked before lo
    found: list[tuple | None] = [None] * n
    todo = np.arange(n)
    while todo.size:
        hi = _window_end(net, Xs, E, shape, todo, lo, c0) if n_sub > 1 else np.ones(todo.size)
        seg, k = np.repeat(todo, n_sub), np.tile(np.arange(n_sub), todo.size)
        a, b = np.repeat(lo[todo], n_sub), np.repeat(hi, n_sub)
        start = a + (b - a) * (k / n_sub)
        stop = np.where(k == n_sub - 1, b, a + (b - a) * ((k + 1) / n_sub))
        R = seg.size
        alpha, rsteps = start.copy(), np.zeros(R, dtype=int)
        rfirst: list[tuple | None] = [None] * R  # first and last piece of each sub-segment
        rlast: list[tuple | None] = [None] * R
        rcross: list[tuple | None] = [None] * R  # (alpha*, new class, piece or None)
        cut = np.full(n, n_sub)  # sub-segments from this index on are past a crossing
        rows = np.arange(R)
        while rows.size:
            packed, z, dz, t = _run_piece(net, Xs[seg[rows]] + alpha[rows, None] * E[seg[rows]],
                                          E[seg[rows]], shape, tol,
                                          first.at(seg[rows], alpha[rows]))
            if not exact_c0:  # every sub-segment 0 starts at alpha = 0 in the first batch
                c0[seg[rows][k[rows] == 0]] = np.argmax(z[k[rows] == 0], axis=1)
                exact_c0 = True
            end = np.minimum(alpha[rows] + t, stop[rows])
            tc, j = _crossing_in_piece(z, dz, c0[seg[rows]], tol)
            rsteps[rows] += 1
            keep = []
            for i, r in enumerate(rows):
                piece = (alpha[r], end[i], packed[i])
                if rfirst[r] is None:
                    rfirst[r] = piece
                if alpha[r] + tc[i] <= end[i]:
                    rcross[r] = (alpha[r] + tc[i], int(j[i]), rlast[r] if tc[i] == 0 else piece)
                    cut[seg[r]] = min(cut[seg[r]], k[r])
                else:
                    rlast[r] = piece
                    if end[i] < stop[r]:
                        keep.append(i)
            alpha[rows] = end
            rows = rows[np.asarray(keep, dtype=int)]
            rows = rows[k[rows] < cut[seg[rows]]]
            walked = steps + np.bincount(seg, weights=rsteps * (k <= cut[seg]), minlength=n)
            if walked.max() > max_pieces:
                raise LRToolsError(
                    f"a segment met more than max_pieces={max_pieces} pieces; raise it.")
        for q, i in enumerate(todo):
            prev, total = tail[i], int(steps[i])
            for r in range(q * n_sub, (q + 1) * n_sub):
                split = prev is not None and np.array_equal(prev[2], rfirst[r][2])
                total += int(rsteps[r]) - int(split)  # a piece cut at the sub-segment start
                if rcross[r] is not None:
                    a_star, new, last = rcross[r]
                    if last is None:  # the change is at the sub-segment's start
                        last = prev if prev is not None else rfirst[r]
                    found[i] = (a_star, True, int(c0[i]), new, last, total)
                    break
                prev = rlast[r]
            if found[i] is None:
                if hi[q] >= 1.0:
                    found[i] = (1.0, False, int(c0[i]), -1, prev, total)
                else:
                    lo[i], steps[i], tail[i] = hi[q], total, prev
        todo = np.asarray([i for i in todo if found[i] is None], dtype=int)
    return found


def _window_end(net, Xs, E, shape, segs, lo, c0) -> np.ndarray:
    """For each segment in ``segs``: the first of ``_N_SAMPLES`` evenly spaced points of
    ``(lo, 1]`` where class ``c0`` is strictly below the maximum logit, else 1."""
    frac = np.arange(1, _N_SAMPLES + 1) / _N_SAMPLES
    out = np.ones(segs.size)
    per = max(1, CHUNK // _N_SAMPLES)
    for s in range(0, segs.size, per):
        idx = segs[s : s + per]
        al = lo[idx, None] + (1.0 - lo[idx, None]) * frac  # (m, S)
        X = Xs[idx, None, :] + al[..., None] * E[idx, None, :]
        z = _logits(net, _to_model(X.reshape(-1, Xs.shape[1]), shape)).reshape(*al.shape, -1)
        other = z.max(-1) > np.take_along_axis(z, c0[idx, None, None], -1)[..., 0]
        hit = other.any(1)
        out[s : s + per][hit] = al[hit, np.argmax(other[hit], axis=1)]
    return out


def _class_change(xs, e, shape, a_star, changed, c0, new, last, n_pieces) -> ClassChange:
    a_k, a_end, packed = last
    # alpha* == 0 (a tie at x_start that the other class wins): midpoint of the first piece
    a_reg = 0.5 * (a_k + (a_star if a_star > a_k else a_end))
    return ClassChange(
        alpha=float(a_star),
        point=(xs + a_star * e).reshape(shape),
        changed=bool(changed),
        start_class=c0,
        new_class=new,
        region_alpha=float(a_reg),
        region_point=(xs + a_reg * e).reshape(shape),
        region_packed=packed,
        n_pieces=int(n_pieces),
    )


def _verify_changes(net, out: list[ClassChange], shape, tol, check_tol: float = 1e-7) -> None:
    """Check the pattern and class at each region point and the logit tie at each crossing."""
    pts = np.stack([c.region_point.reshape(-1) for c in out])
    packed = np.stack([c.region_packed for c in out])
    n_hidden = sum(net.layer_sizes(shape))
    _verify_patterns(net, pts, packed, n_hidden, shape, tol, "region point")
    z_reg = _logits(net, _to_model(pts, shape))
    z_cross = _logits(net, _to_model(np.stack([c.point.reshape(-1) for c in out]), shape))
    for c, zr, zc in zip(out, z_reg, z_cross, strict=True):
        slack = check_tol * (1.0 + np.abs(zc).max())
        lead = zc.max() - zc[c.start_class]  # c0 must still be a maximiser at alpha*
        gap = abs(zc[c.new_class] - zc[c.start_class]) if c.changed else 0.0
        region_ok = c.region_alpha >= c.alpha or zr.max() - zr[c.start_class] <= slack
        if lead > slack or gap > slack or not region_ok:
            raise LRToolsError(
                f"class-change verification failed at alpha={c.alpha!r}: class {c.start_class} "
                f"trails the maximum by {lead:.3e}, tie gap to class {c.new_class} is {gap:.3e}, "
                f"region point keeps the class: {region_ok}."
            )


def first_class_change(
    model: nn.Module, x_start, x_end, *, tol: float = 1e-10, max_pieces: int = 100_000
) -> ClassChange:
    r"""Exact :math:`\alpha^*` where the class of ``x_start`` stops towards ``x_end`` (Fig. 3).

    One-pair form of :func:`first_class_changes`, which documents the definition and the
    handling of ties.

    Parameters
    ----------
    model : torch.nn.Sequential
        ReLU network of supported layers.
    x_start, x_end : array-like of shape input_shape
        :math:`x_{test}` and :math:`x_{target}` (Section 3.2 of [1]).
    tol : float, default=1e-10
        Zero tolerance (see :func:`walk`).
    max_pieces : int, default=100000
        Safety limit.

    Returns
    -------
    ClassChange
    """
    spec = ReLUNetwork(model).spec
    xs, xe = spec.point(x_start, "x_start"), spec.point(x_end, "x_end")
    if xs.shape != xe.shape:
        raise ValueError(
            f"x_start and x_end must be single inputs of the same shape; got {xs.shape} and "
            f"{xe.shape}."
        )
    return first_class_changes(model, xs[None], xe[None], tol=tol, max_pieces=max_pieces)[0]
