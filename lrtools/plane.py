r"""A 2-D affine plane of input space, and exact convex-polygon primitives on it.

Fig. 1 and Fig. 8 of [1] draw a two-dimensional slice of the input space. A slice is the plane

.. math::

    x(s, t) = o + s\,u + t\,v,\qquad u^T v = 0,\; \|u\| = \|v\| = 1,

and its drawing domain is the convex polygon of plane coordinates :math:`(s, t)` whose points
lie in the input box, :math:`\ell \le o + s u + t v \le h` (2d half-planes), optionally cut to
a rectangular window around the points that define the plane. Every linear region of a ReLU
network meets the plane in a convex polygon (eq. 4 of [1] restricted to the plane), so the
primitives here -- area, centroid, half-plane split, point location and the 2-D Chebyshev
centre -- are all :mod:`lrtools.slices` needs. They are pure numpy (no shapely) and work on
counter-clockwise vertex arrays of shape ``(k, 2)``.

References
----------
.. [1] X. Zhang and D. Wu, "Empirical Studies on the Properties of Linear Regions in Deep
   Neural Networks", ICLR 2020, Fig. 1, Fig. 2, Appendix A (Fig. 8).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linprog

from ._validation import check_array, check_scalar
from .exceptions import SolverError

__all__ = [
    "Plane",
    "polygon_area",
    "polygon_centroid",
    "polygon_centroids",
    "polygon_areas",
    "split_polygon",
    "clip_polygon",
    "polygon_depth",
    "locate_points",
    "chebyshev_centers",
]

_EMPTY = np.zeros((0, 2))


# ----------------------------------------------------------------------------------------------
# convex polygon primitives
# ----------------------------------------------------------------------------------------------
def _nxt(P: np.ndarray) -> np.ndarray:
    """The vertices shifted by one (``P[i + 1]``, cyclically); faster than ``np.roll``."""
    return np.concatenate((P[1:], P[:1]))


def polygon_area(P: np.ndarray) -> float:
    """Signed area of a polygon by the shoelace formula (positive when counter-clockwise)."""
    if len(P) < 3:
        return 0.0
    Q = _nxt(P)
    return 0.5 * float(np.dot(P[:, 0], Q[:, 1]) - np.dot(P[:, 1], Q[:, 0]))


def polygon_centroid(P: np.ndarray) -> np.ndarray:
    """Centroid (centre of mass) of a non-degenerate polygon, shape (2,)."""
    return polygon_centroids([P])[0]


class _Packed:
    """Many polygons packed into one vertex array, for vectorised per-polygon reductions."""

    def __init__(self, polygons: Sequence[np.ndarray]) -> None:
        sizes = np.array([len(P) for P in polygons])
        self.starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        self.owner = np.repeat(np.arange(len(polygons)), sizes)
        self.V = np.concatenate(polygons)
        nxt = np.arange(1, len(self.V) + 1)
        nxt[np.cumsum(sizes) - 1] = self.starts
        self.Vn = self.V[nxt]

    def sum(self, x: np.ndarray) -> np.ndarray:
        return np.add.reduceat(x, self.starts, axis=0)

    def normals(self) -> np.ndarray:
        """Inward unit normals of the edges ``V -> Vn`` (counter-clockwise polygons)."""
        E = self.Vn - self.V
        return np.column_stack([-E[:, 1], E[:, 0]]) / np.linalg.norm(E, axis=1)[:, None]


def polygon_centroids(polygons: Sequence[np.ndarray]) -> np.ndarray:
    """Centroids of non-degenerate polygons, shape (N, 2) (vertex mean for zero area)."""
    if len(polygons) == 0:
        return np.zeros((0, 2))
    pk = _Packed(polygons)
    mean = pk.sum(pk.V) / np.diff(np.append(pk.starts, len(pk.V)))[:, None]
    q, qn = pk.V - mean[pk.owner], pk.Vn - mean[pk.owner]  # shift for accuracy
    cross = q[:, 0] * qn[:, 1] - qn[:, 0] * q[:, 1]
    a = pk.sum(cross)
    m = pk.sum((q + qn) * cross[:, None])
    safe = np.where(a != 0.0, 3.0 * a, 1.0)
    return mean + np.where((a != 0.0)[:, None], m / safe[:, None], 0.0)


def polygon_areas(polygons: Sequence[np.ndarray]) -> np.ndarray:
    """Signed areas of many polygons, shape (N,)."""
    if len(polygons) == 0:
        return np.zeros(0)
    pk = _Packed(polygons)
    return 0.5 * pk.sum(pk.V[:, 0] * pk.Vn[:, 1] - pk.V[:, 1] * pk.Vn[:, 0])


def _dedupe(P: np.ndarray, tol: float) -> np.ndarray:
    """Drop vertices closer than ``tol`` to their predecessor (cyclically)."""
    if len(P) < 2:
        return P
    gap = np.linalg.norm(_nxt(P) - P, axis=1)
    keep = gap > tol  # drop P[i + 1] when it repeats P[i]
    if not keep.any():
        return P[:1]
    return _nxt(P)[keep]


def split_polygon(
    P: np.ndarray, a: np.ndarray, c: float, tol: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    r"""Split a convex polygon by the line :math:`a^T p + c = 0`.

    Parameters
    ----------
    P : ndarray of shape (k, 2)
        Counter-clockwise vertices.
    a : ndarray of shape (2,)
        Normal of the line (need not be unit); must be non-zero.
    c : float
        Offset.
    tol : float, default=0.0
        Vertices whose distance to the line is at most ``tol`` are snapped onto it: they
        belong to both pieces and no intersection point is created next to them.

    Returns
    -------
    pos, neg : ndarray of shape (k', 2)
        The pieces where :math:`a^T p + c \ge 0` and :math:`\le 0`, counter-clockwise (an
        empty ``(0, 2)`` array, or fewer than 3 vertices, when a side is empty).
    """
    f = (P @ a + c) / np.linalg.norm(a)
    sgn = np.where(f > tol, 1, np.where(f < -tol, -1, 0))
    f_next, sgn_next = _nxt(f), _nxt(sgn)
    cross = sgn * sgn_next < 0
    lam = np.where(cross, f / np.where(cross, f - f_next, 1.0), 0.0)
    X = P + lam[:, None] * (_nxt(P) - P)
    stacked = np.stack([P, X], axis=1).reshape(-1, 2)
    pos = stacked[np.column_stack([sgn >= 0, cross]).ravel()]
    neg = stacked[np.column_stack([sgn <= 0, cross]).ravel()]
    return _dedupe(pos, tol), _dedupe(neg, tol)


def clip_polygon(P: np.ndarray, a: np.ndarray, c: float, tol: float = 0.0) -> np.ndarray:
    r"""The part of a convex polygon where :math:`a^T p + c \ge 0` (see :func:`split_polygon`)."""
    return split_polygon(P, a, c, tol)[0]


def polygon_depth(P: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Signed distance of points to the boundary of a convex CCW polygon (positive inside).

    Parameters
    ----------
    P : ndarray of shape (k, 2)
    X : ndarray of shape (n, 2)

    Returns
    -------
    ndarray of shape (n,)
        ``min_i n_i^T (x - P_i)`` over the inward unit normals ``n_i`` of the edges; equal to
        the distance to the boundary for interior points.
    """
    E = _nxt(P) - P
    N = np.column_stack([-E[:, 1], E[:, 0]]) / np.linalg.norm(E, axis=1)[:, None]
    return (X @ N.T - np.sum(N * P, axis=1)).min(axis=1)


def locate_points(
    polygons: Sequence[np.ndarray], st: np.ndarray, *, tol: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Index of the polygon containing each point, by bounding-box filtering.

    A point on a shared edge is given to the polygon in which it is deepest (ties: the first).

    Parameters
    ----------
    polygons : sequence of ndarray of shape (k, 2)
        Convex counter-clockwise polygons.
    st : ndarray of shape (n, 2)
        Query points.
    tol : float, default=0.0
        A point at most ``tol`` outside a polygon still counts as inside it.

    Returns
    -------
    index : ndarray of int, shape (n,)
        Polygon index, -1 where no polygon contains the point.
    depth : ndarray of shape (n,)
        :func:`polygon_depth` of the point in that polygon (``-inf`` where index is -1).
    """
    order = np.argsort(st[:, 0], kind="stable")
    s_sorted = st[order, 0]
    best = np.full(len(st), -np.inf)
    index = np.full(len(st), -1)
    for i, P in enumerate(polygons):
        (smin, tmin), (smax, tmax) = P.min(axis=0) - tol, P.max(axis=0) + tol
        cand = order[np.searchsorted(s_sorted, smin) : np.searchsorted(s_sorted, smax, "right")]
        t = st[cand, 1]
        cand = cand[(t >= tmin) & (t <= tmax)]
        if cand.size == 0:
            continue
        depth = polygon_depth(P, st[cand])
        better = (depth > best[cand]) & (depth >= -tol)
        best[cand[better]] = depth[better]
        index[cand[better]] = i
    return index, best


def _depths(pk: _Packed, N: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Depth of ``points[j]`` in packed polygon ``j`` for every j."""
    d = np.sum(N * (points[pk.owner] - pk.V), axis=1)
    return np.minimum.reduceat(d, pk.starts)


def chebyshev_centers(polygons: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    r"""2-D Chebyshev centre (centre of the largest inscribed disc) of every convex polygon.

    All polygons are solved as one block-separable LP with HiGHS, each in its own frame
    (centred at its centroid and scaled by its size) so that tiny and large cells are equally
    well conditioned:

    .. math::

        \max_{q_j, \rho_j} \sum_j \rho_j \quad\text{s.t.}\quad
        n_{ji}^T (g_j + \sigma_j q_j - p_{ji}) \ge \sigma_j \rho_j,

    with :math:`n_{ji}` the inward unit normals, :math:`p_{ji}` the vertices, :math:`g_j` the
    centroid and :math:`\sigma_j` the polygon's size. The answer is verified in float64: the
    depth of each centre is recomputed exactly, and where the LP centre is not deeper than the
    centroid (possible only within the solver's tolerance) the centroid is returned instead.

    Returns
    -------
    centers : ndarray of shape (N, 2)
    radii : ndarray of shape (N,)
        The exact depth of each returned centre (> 0 for a non-degenerate polygon).

    Raises
    ------
    SolverError
        If HiGHS does not report an optimal solution.
    """
    n = len(polygons)
    if n == 0:
        return np.zeros((0, 2)), np.zeros(0)
    pk = _Packed(polygons)
    N = pk.normals()
    g = polygon_centroids(polygons)
    extent = np.maximum.reduceat(pk.V, pk.starts) - np.minimum.reduceat(pk.V, pk.starts)
    sigma = np.maximum(extent.max(axis=1), 1e-300)
    # one row per edge: -n^T q_j + rho_j <= n^T (g_j - p) / sigma_j
    rows = np.repeat(np.arange(len(pk.V)), 3)
    cols = (3 * pk.owner[:, None] + np.arange(3)).ravel()
    vals = np.column_stack([-N, np.ones(len(N))]).ravel()
    rhs = np.sum(N * (g[pk.owner] - pk.V), axis=1) / sigma[pk.owner]
    A = sp.csr_array((vals, (rows, cols)), shape=(len(pk.V), 3 * n))
    cost = np.tile([0.0, 0.0, -1.0], n)
    bounds = [(None, None), (None, None), (0.0, None)] * n
    res = linprog(cost, A_ub=A, b_ub=rhs, bounds=bounds, method="highs")
    if res.status != 0:
        raise SolverError(
            f"2-D Chebyshev centres: HiGHS returned status {res.status} ({res.message}) for "
            f"{n} polygons ({len(pk.V)} edges)."
        )
    q = res.x.reshape(n, 3)[:, :2]
    centers = g + sigma[:, None] * q
    depth_lp, depth_g = _depths(pk, N, centers), _depths(pk, N, g)
    use_g = depth_g > depth_lp
    centers[use_g] = g[use_g]
    return centers, np.where(use_g, depth_g, depth_lp)


# ----------------------------------------------------------------------------------------------
# the plane
# ----------------------------------------------------------------------------------------------
def _check_box(box) -> tuple[float, float] | None:
    if box is None:
        return None
    box = check_array(box, "box", shape=(2,), hint="Pass box=(lo, hi), e.g. (-1.0, 1.0).")
    if not box[0] < box[1]:
        raise ValueError(f"box must satisfy lo < hi; got {tuple(box)}. Use e.g. box=(-1.0, 1.0).")
    return float(box[0]), float(box[1])


def _check_window(window) -> np.ndarray:
    w = check_array(window, "window", shape=(4,), hint="Pass (s_min, s_max, t_min, t_max).")
    if not (w[0] < w[1] and w[2] < w[3]):
        raise ValueError(
            f"window must be (s_min, s_max, t_min, t_max) with s_min < s_max and t_min < t_max; "
            f"got {tuple(w)}."
        )
    return w


def _rectangle(s0: float, s1: float, t0: float, t1: float) -> np.ndarray:
    return np.array([[s0, t0], [s1, t0], [s1, t1], [s0, t1]], dtype=np.float64)


def _slice_box(
    origin: np.ndarray, u: np.ndarray, v: np.ndarray, box: tuple[float, float], rect: np.ndarray
) -> np.ndarray:
    """Clip the rectangle ``rect`` (in (s, t)) by ``lo <= origin + s u + t v <= hi``."""
    lo, hi = box
    G = np.concatenate([np.column_stack([u, v]), -np.column_stack([u, v])])  # (2d, 2)
    c = np.concatenate([origin - lo, hi - origin])
    scale = float(np.ptp(rect, axis=0).max())
    P = rect
    for _ in range(2):  # second pass is a no-op unless rounding moved a vertex out
        val = P @ G.T + c
        for i in np.flatnonzero(val.min(axis=0) < 0):
            if not np.any(G[i]):
                return _EMPTY  # constant constraint violated: the plane misses the box
            P = clip_polygon(P, G[i], c[i], 1e-13 * scale)
            if len(P) < 3:
                return _EMPTY
    return P


@dataclass(frozen=True, eq=False)
class Plane:
    r"""A 2-D affine plane :math:`x = o + s u + t v` of input space and its drawing domain.

    Build it with :meth:`through` (three inputs, as in Fig. 1 of [1]), :meth:`from_directions`
    or :meth:`identity2d` (2-D inputs, Fig. 8); the constructor only stores the fields.

    Attributes
    ----------
    origin : ndarray of shape (d,)
        The point :math:`o` with coordinates (0, 0), flattened.
    u, v : ndarray of shape (d,)
        Orthonormal basis of the plane.
    input_shape : tuple of int
        Shape of one model input, e.g. ``(784,)`` or ``(1, 8, 8)``; ``d = prod(input_shape)``.
    box : tuple of float or None
        The input box ``(lo, hi)``: every coordinate of an input lies in ``[lo, hi]``; ``None``
        when the domain ignores the box (it is then the window alone).
    domain : ndarray of shape (k, 2)
        Counter-clockwise vertices, in (s, t), of the convex drawing domain: the plane's
        intersection with the input box, cut to the window if one was given.
    points : ndarray of shape (p, 2)
        Plane coordinates of the defining inputs (the three points of :meth:`through`, the
        origin for :meth:`from_directions`, none for :meth:`identity2d`), for plotting.
    """

    origin: np.ndarray
    u: np.ndarray
    v: np.ndarray
    input_shape: tuple[int, ...]
    box: tuple[float, float] | None
    domain: np.ndarray
    points: np.ndarray

    # -- constructors ------------------------------------------------------------------------
    @classmethod
    def through(
        cls,
        x1,
        x2,
        x3,
        *,
        box: tuple[float, float] | None = (-1.0, 1.0),
        margin: float | None = 0.5,
        window: Sequence[float] | None = None,
        tol: float = 1e-9,
    ) -> Plane:
        r"""The plane through three inputs (Fig. 1 of [1] slices MNIST through three images).

        The origin is the centroid :math:`o = (x_1 + x_2 + x_3)/3`; the basis is
        Gram-Schmidt on :math:`x_2 - x_1`, :math:`x_3 - x_1` (applied twice for accuracy):

        .. math::

            u = \frac{x_2 - x_1}{\|x_2 - x_1\|},\qquad
            v = \frac{w}{\|w\|},\quad w = (x_3 - x_1) - u u^T (x_3 - x_1),

        so :math:`x_1` and :math:`x_2` share the same :math:`t` coordinate.

        Parameters
        ----------
        x1, x2, x3 : array-like of shape input_shape
            Three inputs without batch dimension, e.g. ``(784,)`` or ``(1, 28, 28)``.
        box : tuple of float or None, default=(-1.0, 1.0)
            The input box ``[lo, hi]^d``. ``None`` ignores it (the domain is then the window,
            which must be given by ``margin`` or ``window``). For MNIST the three images have
            many pixels at exactly ``lo``, so the slice of the box is little more than their
            triangle; pass ``box=None`` to show a wider neighbourhood (inputs outside the box
            included).
        margin : float or None, default=0.5
            Window around the three points: their bounding rectangle in (s, t), enlarged on
            every side by ``margin`` times its longer side. ``None``: no window (the whole
            slice of the box).
        window : sequence of 4 floats, optional
            An explicit window ``(s_min, s_max, t_min, t_max)``; overrides ``margin``.
        tol : float, default=1e-9
            Collinearity tolerance: the triangle's height over :math:`x_1 x_2` and the side
            :math:`\|x_2 - x_1\|` must exceed ``tol`` times the largest norm among the points
            and their differences.

        Raises
        ------
        ValueError
            If the points have different shapes, are collinear or coincide, or the domain is
            empty.

        Examples
        --------
        >>> import numpy as np
        >>> X = np.array([[0.5, 0.0, 0.0], [0.0, 0.5, 0.0], [0.0, 0.0, 0.5]])
        >>> plane = Plane.through(*X, margin=0.5)
        >>> bool(np.allclose(plane.to_input(plane.points), X))
        True
        """
        x1, x2, x3 = (check_array(x, name) for x, name in ((x1, "x1"), (x2, "x2"), (x3, "x3")))
        if not (x1.shape == x2.shape == x3.shape) or x1.ndim == 0:
            raise ValueError(
                f"x1, x2, x3 must be three inputs of the same shape (no batch dimension); got "
                f"shapes {x1.shape}, {x2.shape}, {x3.shape}."
            )
        check_scalar(tol, "tol", float, min_val=0.0)
        X = np.stack([x1.ravel(), x2.ravel(), x3.ravel()])
        origin = X.mean(axis=0)
        u, v = _gram_schmidt(X, tol)
        pts = (X - origin) @ np.column_stack([u, v])
        rect = cls._window_rect(pts, margin, window)
        return cls._build(origin, u, v, x1.shape, _check_box(box), rect, pts)

    @classmethod
    def from_directions(
        cls,
        origin,
        d1,
        d2,
        *,
        box: tuple[float, float] | None = (-1.0, 1.0),
        window: Sequence[float] | None = None,
    ) -> Plane:
        """The plane through ``origin`` spanned by ``d1`` and ``d2`` (orthonormalised).

        Parameters
        ----------
        origin, d1, d2 : array-like of shape input_shape
            A point (e.g. an input :math:`x^*`) and two independent directions.
        box : tuple of float or None, default=(-1.0, 1.0)
            As in :meth:`through`.
        window : sequence of 4 floats, optional
            ``(s_min, s_max, t_min, t_max)``; by default the whole slice of the box.
        """
        o = check_array(origin, "origin")
        a, b = check_array(d1, "d1"), check_array(d2, "d2")
        if not (o.shape == a.shape == b.shape) or o.ndim == 0:
            raise ValueError(
                f"origin, d1, d2 must have the same input shape; got {o.shape}, {a.shape}, "
                f"{b.shape}."
            )
        X = np.stack([np.zeros(o.size), a.ravel(), b.ravel()])
        u, v = _gram_schmidt(X, 1e-9, points=False)
        rect = cls._window_rect(np.zeros((1, 2)), None, window)
        return cls._build(o.ravel(), u, v, o.shape, _check_box(box), rect, np.zeros((1, 2)))

    @classmethod
    def identity2d(
        cls,
        *,
        box: tuple[float, float] | None = (-1.0, 1.0),
        window: Sequence[float] | None = None,
    ) -> Plane:
        """The input plane itself, for 2-D inputs (Fig. 8): ``s = x_0``, ``t = x_1``."""
        rect = cls._window_rect(np.zeros((0, 2)), None, window)
        e = np.eye(2)
        return cls._build(np.zeros(2), e[0], e[1], (2,), _check_box(box), rect, np.zeros((0, 2)))

    @staticmethod
    def _window_rect(pts: np.ndarray, margin, window) -> np.ndarray | None:
        if window is not None:
            return _rectangle(*_check_window(window))
        if margin is None or len(pts) == 0:
            return None
        check_scalar(margin, "margin", (int, float), min_val=0.0)
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        pad = margin * float((hi - lo).max())
        return _rectangle(lo[0] - pad, hi[0] + pad, lo[1] - pad, hi[1] + pad)

    @classmethod
    def _build(cls, origin, u, v, input_shape, box, rect, pts) -> Plane:
        if box is None:
            if rect is None:
                raise ValueError(
                    "box=None needs a window to bound the domain; pass margin=... or "
                    "window=(s_min, s_max, t_min, t_max)."
                )
            domain = rect
        else:
            R = float(np.linalg.norm(origin)) + np.sqrt(origin.size) * max(map(abs, box)) + 1.0
            rect = _rectangle(-R, R, -R, R) if rect is None else np.clip(rect, -R, R)
            domain = _slice_box(origin, u, v, box, rect)
        if len(domain) < 3 or polygon_area(domain) <= 0.0:
            raise ValueError(
                "the plane does not meet the input box inside the window (empty domain); widen "
                "the window, increase margin, or choose points inside the box."
            )
        return cls(origin, u, v, tuple(int(n) for n in input_shape), box, domain, pts)

    # -- geometry -----------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        """Input dimension ``d``."""
        return int(self.origin.size)

    @property
    def domain_area(self) -> float:
        """Area of the drawing domain."""
        return polygon_area(self.domain)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """Bounding rectangle ``(s_min, s_max, t_min, t_max)`` of the domain."""
        (s0, t0), (s1, t1) = self.domain.min(axis=0), self.domain.max(axis=0)
        return float(s0), float(s1), float(t0), float(t1)

    @property
    def diameter(self) -> float:
        """Diagonal of the domain's bounding rectangle (the length scale of tolerances)."""
        return float(np.linalg.norm(np.ptp(self.domain, axis=0)))

    def contains(self, st, *, tol: float = 0.0) -> np.ndarray:
        """Whether points ``st`` of shape (n, 2) lie in the domain (within ``tol``)."""
        st = check_array(st, "st", shape=(None, 2), hint="Use st.reshape(-1, 2).")
        return polygon_depth(self.domain, st) >= -tol

    def to_input(self, st, *, flat: bool = False) -> np.ndarray:
        """Map plane coordinates to inputs, :math:`x = o + s u + t v`.

        Parameters
        ----------
        st : array-like of shape (..., 2)
        flat : bool, default=False
            Return flattened inputs of shape ``(..., d)`` instead of ``(..., *input_shape)``.

        Returns
        -------
        ndarray of shape (..., *input_shape), or (..., d) if ``flat``
            Ready for :func:`lrtools.regions.predict` when ``st`` has shape (n, 2).
        """
        st = check_array(st, "st")
        if st.ndim == 0 or st.shape[-1] != 2:
            raise ValueError(f"st must have shape (..., 2); got {st.shape}. Stack (s, t) last.")
        x = np.multiply.outer(st[..., 0], self.u)  # o + s u + t v, without a skinny matmul
        x += np.multiply.outer(st[..., 1], self.v)
        x += self.origin
        return x if flat else x.reshape(*st.shape[:-1], *self.input_shape)

    def to_plane(self, x) -> np.ndarray:
        """Plane coordinates ``(s, t)`` of the orthogonal projection of inputs onto the plane.

        Parameters
        ----------
        x : array-like of shape (..., *input_shape) or (..., d)

        Returns
        -------
        ndarray of shape (..., 2)
        """
        x = check_array(x, "x")
        k = len(self.input_shape)
        if x.shape[x.ndim - k :] == self.input_shape and x.ndim >= k:
            lead = x.shape[: x.ndim - k]
        elif x.ndim >= 1 and x.shape[-1] == self.dim:
            lead = x.shape[:-1]
        else:
            raise ValueError(
                f"x must have shape (..., {self.input_shape}) or (..., {self.dim}); got {x.shape}."
            )
        flat = x.reshape(*lead, self.dim) - self.origin
        return np.stack([flat @ self.u, flat @ self.v], axis=-1)


def _gram_schmidt(
    X: np.ndarray, tol: float, *, points: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Orthonormal (u, v) spanning ``X[1] - X[0]``, ``X[2] - X[0]``; ValueError if degenerate."""
    a, b = X[1] - X[0], X[2] - X[0]
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    scale = max(float(np.linalg.norm(X, axis=1).max()), na, nb)
    u = a / na if na > 0 else a
    w = b - (u @ b) * u
    w = w - (u @ w) * u
    nw = float(np.linalg.norm(w))
    if scale == 0.0 or na <= tol * scale or nw <= tol * scale:
        if points:
            raise ValueError(
                "the three points are collinear (or coincide): the side |x2 - x1| = "
                f"{na:.3g} and the height of x3 over the line x1-x2 = {nw:.3g} must both exceed "
                f"tol * scale = {tol:g} * {scale:.3g}. Choose three points that do not lie on "
                "one line (e.g. three different images)."
            )
        raise ValueError(
            f"the directions are parallel (or zero): |d1| = {na:.3g} and the part of d2 "
            f"orthogonal to d1 has norm {nw:.3g}; both must exceed {tol:g} * {scale:.3g}. "
            "Pass two linearly independent directions."
        )
    return u, w / nw
