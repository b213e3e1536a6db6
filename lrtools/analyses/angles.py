r"""Angles between the hyperplanes of a linear region (Section 3.3, Fig. 4; Appendix E, Fig. 10).

Row :math:`i` of a region's H-representation (eq. 4 of [1]) is the inward normal
:math:`w_i` of the hyperplane of hidden unit :math:`i`, i.e. the gradient of its pre-activation
(eq. 2), sign-flipped for inactive units. Fig. 4 and Fig. 10 show the matrix

.. math::

    \theta_{ij} = \arccos \frac{w_i^T w_j}{\|w_i\|\,\|w_j\|},

with rows ordered by layer. This module computes it, and the statistics behind the paper's
reading of it ("BN makes the directions orthogonal, dropout the opposite"): per pair of hidden
layers the mean angle, the mean :math:`|\cos\theta_{ij}|` and the fraction of nearly orthogonal
pairs. A CIFAR-10 region has 12,512 rows in 3,072 dimensions, so its matrix (1.25 GB) is never
formed: the statistics and the downsampled image (Fig. 10) are accumulated over tiles of
``block x block`` pairs, with the symmetry used to compute each pair once. Tiles of rows with
few nonzeros (convolutional units see a patch of the input: 27 of 3,072 inputs in the first
layer) are multiplied as CSR matrices, the dense-layer rows with BLAS.

A row with :math:`w_i = 0` (a unit whose pre-activation is constant on the region, e.g. a
deeper unit all of whose inputs are inactive) has no direction: its angles are NaN in
:func:`angle_matrix` and in the image, and it is left out of the statistics (counted in
``zero_rows``).

Near :math:`\theta = 0` and :math:`180^\circ` the arccos of a rounded cosine is accurate to about
:math:`10^{-8}` rad (its derivative is unbounded there); the diagonal is set to exactly 0.

References
----------
.. [1] X. Zhang and D. Wu, "Empirical Studies on the Properties of Linear Regions in Deep
   Neural Networks", ICLR 2020.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from numbers import Integral, Real
from typing import NamedTuple

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._validation import check_array, check_choice, check_scalar
from ..polytope import Polytope
from ..regions import Region

__all__ = [
    "AngleImage",
    "angle_matrix",
    "layer_pair_mean_angles",
    "downsampled_angle_image",
    "nonredundant_angles",
    "region_angles",
]

UNITS = ("degrees", "radians")


# --------------------------------------------------------------------------------------------
# Input handling: rows, layers, the selection of rows
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _SelectedRows:
    """The normals to use: ``A[sel]`` (``sel`` a slice or an index array), their layers, norms."""

    A: object  # dense ndarray or scipy.sparse CSR matrix, all m original rows
    sel: slice | np.ndarray  # selected rows, in layer order
    layer: np.ndarray  # layer of each selected row (sorted)
    norm: np.ndarray  # norm of each selected row

    @property
    def m(self) -> int:
        return len(self.layer)

    def take(self, start: int, stop: int):
        """Rows ``start:stop`` of the selection (a view when ``sel`` is a slice)."""
        if isinstance(self.sel, slice):
            return self.A[self.sel.start + start : self.sel.start + stop]
        return self.A[self.sel[start:stop]]


def _matrix_and_layer(region, layer):
    """The (m, d) normals and the layer of each row, from a Region, Polytope or matrix."""
    if isinstance(region, Region):
        if layer is not None:
            raise ValueError("layer must be None for a Region (region.layer is used).")
        return region.polytope.A, region.layer
    A = region.A if isinstance(region, Polytope) else region
    if hasattr(A, "tocsr"):
        A = A.tocsr().astype(np.float64)
        if A.ndim != 2:
            raise ValueError(f"A must be 2-D; got shape {A.shape}.")
    else:
        A = check_array(A, "A", ndim=2, hint="Pass a Region, a Polytope or the (m, d) rows.")
    m = A.shape[0]
    if layer is None:
        return A, np.zeros(m, dtype=np.int64)
    layer = check_array(layer, "layer", ndim=1, dtype=np.int64)
    if len(layer) != m:
        raise ValueError(f"layer must have one entry per row ({m}); got {len(layer)}.")
    return A, layer


def _row_index(rows, m: int) -> np.ndarray:
    """Row indices from None (all), a boolean mask of length m, or an index array (kept as is)."""
    if rows is None:
        return np.arange(m)
    rows = np.asarray(rows)
    if rows.dtype == bool:
        if rows.shape != (m,):
            raise ValueError(f"rows as a mask must have shape ({m},); got {rows.shape}.")
        return np.flatnonzero(rows)
    idx = check_array(rows, "rows", ndim=1, dtype=np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= m):
        raise ValueError(f"rows must index the {m} rows; got indices outside [0, {m}).")
    return idx


def _row_mask(rows, m: int) -> np.ndarray:
    """Boolean mask of length m from None, a boolean mask or an index array."""
    mask = np.zeros(m, dtype=bool)
    mask[_row_index(rows, m)] = True
    return mask


def _row_norms(A) -> np.ndarray:
    if hasattr(A, "multiply"):
        return np.sqrt(np.asarray(A.multiply(A).sum(axis=1)).ravel())
    return np.sqrt(np.einsum("ij,ij->i", A, A))  # no (m, d) temporary, unlike linalg.norm


def _prepare(region, layer, rows, drop_zero: bool) -> tuple[_SelectedRows, np.ndarray]:
    """Select rows (optionally dropping zero rows), sort them by layer; also the zero mask."""
    A, lay = _matrix_and_layer(region, layer)
    keep = _row_mask(rows, A.shape[0])
    norms = _row_norms(A)
    zero = keep & (norms == 0)
    if drop_zero:
        keep &= norms > 0
    idx = np.flatnonzero(keep)
    idx = idx[np.argsort(lay[idx], kind="stable")]
    sel = idx
    if idx.size and np.all(np.diff(idx) == 1):  # a contiguous run: tiles are views, not copies
        sel = slice(int(idx[0]), int(idx[-1]) + 1)
    return _SelectedRows(A, sel, lay[idx], norms[idx]), zero


def _check_tiling(block, unit) -> None:
    check_scalar(block, "block", Integral, min_val=1)
    check_choice(unit, "unit", UNITS)


# --------------------------------------------------------------------------------------------
# The tile kernel
# --------------------------------------------------------------------------------------------


def _inv(norm: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.where(norm > 0, 1.0 / np.where(norm > 0, norm, 1.0), 0.0)


_SPARSE_BELOW = 0.1  # tiles with a smaller fraction of nonzeros are multiplied as CSR


def _tile(R: _SelectedRows, r: tuple[int, int]):
    """Rows ``r[0]:r[1]`` of the selection as CSR when sparse enough (conv rows), else dense."""
    X = R.take(*r)
    if hasattr(X, "toarray"):
        dense = X.nnz >= _SPARSE_BELOW * X.shape[0] * X.shape[1]
        return X.toarray() if dense else X
    if np.count_nonzero(X) < _SPARSE_BELOW * X.size:
        return sp.csr_matrix(X)
    return X


def _gram(X, Y) -> np.ndarray:
    """``X @ Y.T`` as a dense float64 array, using sparsity where either side has it."""
    if sp.issparse(X):
        G = X @ Y.T
    elif sp.issparse(Y):
        G = (Y @ X.T).T
    else:
        G = X @ Y.T
    G = G.toarray() if sp.issparse(G) else np.asarray(G, dtype=np.float64)
    return np.ascontiguousarray(G)


def _cos_tiles(R: _SelectedRows, block: int) -> Iterator[tuple[tuple, tuple, np.ndarray]]:
    """Cosine tiles ``(rows, cols, cos)`` with col block >= row block, clipped to [-1, 1].

    Every unordered pair of rows appears exactly once in the tiles above the diagonal; a
    diagonal tile holds its pairs in both orders.
    """
    m, inv = R.m, _inv(R.norm)
    for r0 in range(0, m, block):
        r = (r0, min(m, r0 + block))
        X = _tile(R, r)
        for c0 in range(r0, m, block):
            c = (c0, min(m, c0 + block))
            G = _gram(X, X if c == r else _tile(R, c))
            G *= inv[r[0] : r[1], None]
            G *= inv[None, c[0] : c[1]]
            yield r, c, np.clip(G, -1.0, 1.0, out=G)


def _to_unit(theta, unit: str):
    return np.degrees(theta) if unit == "degrees" else theta


# --------------------------------------------------------------------------------------------
# Full matrix
# --------------------------------------------------------------------------------------------


def angle_matrix(region, *, rows=None, unit: str = "degrees") -> np.ndarray:
    r"""Angles between the hyperplane normals of a region (the pixels of Fig. 4 / Fig. 10).

    Parameters
    ----------
    region : Region, Polytope or array-like of shape (m, d)
        The rows :math:`w_i` (a ``scipy.sparse`` matrix is accepted).
    rows : array-like of bool (m,) or of int, optional
        Rows to use (default all): a mask keeps the original order, indices give their order.
    unit : {"degrees", "radians"}, default="degrees"

    Returns
    -------
    ndarray of shape (k, k)
        :math:`\theta_{ij}`, symmetric, diagonal exactly 0. A zero row has no direction: its
        row and column (diagonal included) are NaN.

    Notes
    -----
    .. math::

        \theta_{ij} = \arccos \frac{w_i^T w_j}{\|w_i\|\,\|w_j\|} \in [0, \pi].

    Memory is :math:`8k^2` bytes (1.25 GB for a CIFAR-10 region): use
    :func:`layer_pair_mean_angles` or :func:`downsampled_angle_image` for large regions.
    """
    check_choice(unit, "unit", UNITS)
    A, lay = _matrix_and_layer(region, None)
    idx = _row_index(rows, A.shape[0])
    return _full(_SelectedRows(A, idx, lay[idx], _row_norms(A)[idx]), unit)


# --------------------------------------------------------------------------------------------
# Per-layer-pair statistics
# --------------------------------------------------------------------------------------------

_STATS = ("n", "ang", "ang2", "cos", "abs", "orth")


def _accumulate(acc: dict, a: int, b: int, cos: np.ndarray, sin_tol: float) -> None:
    """Add the pairs in ``cos`` (any shape) to the sums of layer pair (a, b)."""
    if cos.size == 0:
        return
    theta = np.arccos(cos)
    acc["n"][a, b] += cos.size
    acc["ang"][a, b] += theta.sum()
    acc["ang2"][a, b] += np.square(theta).sum()
    acc["cos"][a, b] += cos.sum()
    acc["abs"][a, b] += np.abs(cos).sum()
    acc["orth"][a, b] += np.count_nonzero(np.abs(cos) <= sin_tol)


def _layer_runs(lay: np.ndarray, lo: int, hi: int) -> list[tuple[int, int, int]]:
    """(layer position, start, stop) of the layer runs of sorted ``lay`` within [lo, hi)."""
    if hi <= lo:
        return []
    vals = lay[lo:hi]
    cuts = np.flatnonzero(np.diff(vals)) + 1
    starts = np.r_[0, cuts] + lo
    stops = np.r_[cuts, hi - lo] + lo
    return [(int(vals[s - lo]), int(s), int(e)) for s, e in zip(starts, stops, strict=True)]


def _tile_stats(acc, pos, G, r, c, R: _SelectedRows, sin_tol) -> None:
    """Split one tile by layer and keep only pairs j > i (each unordered pair once)."""
    for la, ra, rb in _layer_runs(R.layer, *r):
        for lb, ca, cb in _layer_runs(R.layer, *c):
            if cb - 1 <= ra:  # every column index <= every row index: counted elsewhere
                continue
            sub = G[ra - r[0] : rb - r[0], ca - c[0] : cb - c[0]]
            if ca > rb - 1:  # every column after every row
                _accumulate(acc, pos[la], pos[lb], sub, sin_tol)
            else:
                upper = np.arange(ca, cb)[None, :] > np.arange(ra, rb)[:, None]
                _accumulate(acc, pos[la], pos[lb], sub[upper], sin_tol)


def _stats_table(acc, layers, counts, zero_counts, unit, ortho_tol) -> pd.DataFrame:
    rows = []
    for a, la in enumerate(layers):
        for b in range(a, len(layers)):
            n = acc["n"][a, b]
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = acc["ang"][a, b] / n
                var = max(acc["ang2"][a, b] / n - mean**2, 0.0) if n else np.nan
            rows.append(
                {
                    "layer_i": int(la),
                    "layer_j": int(layers[b]),
                    "n_rows_i": int(counts[a]),
                    "n_rows_j": int(counts[b]),
                    "n_pairs": int(n),
                    "mean_angle": _to_unit(mean, unit),
                    "std_angle": _to_unit(np.sqrt(var), unit),
                    "mean_cos": acc["cos"][a, b] / n if n else np.nan,
                    "mean_abs_cos": acc["abs"][a, b] / n if n else np.nan,
                    "frac_orthogonal": acc["orth"][a, b] / n if n else np.nan,
                    "zero_rows_i": int(zero_counts.get(int(la), 0)),
                    "zero_rows_j": int(zero_counts.get(int(layers[b]), 0)),
                }
            )
    table = pd.DataFrame(rows)
    table.attrs.update(unit=unit, ortho_tol_degrees=float(ortho_tol))
    return table


def layer_pair_mean_angles(
    region,
    *,
    rows=None,
    layer=None,
    block: int = 2048,
    unit: str = "degrees",
    ortho_tol: float = 5.0,
) -> pd.DataFrame:
    r"""Mean angle, mean :math:`|\cos|` and fraction of orthogonal pairs per pair of layers.

    The statistics of Fig. 4 (MLP) and Fig. 10 (CNN) of [1], computed tile by tile so that
    memory stays at a few ``block x block`` arrays besides the rows themselves.

    Parameters
    ----------
    region : Region, Polytope or array-like of shape (m, d)
        The rows :math:`w_i`; a ``scipy.sparse`` matrix is accepted.
    rows : array-like of bool (m,) or of int, optional
        Rows to use (default all), e.g. the non-redundant rows.
    layer : array-like of int, shape (m,), optional
        Layer of each row when ``region`` is not a Region (default: one layer).
    block : int, default=2048
        Tile size; peak memory is a few times ``8 * block**2`` bytes (plus one ``block x d``
        copy per tile when the selected rows are not contiguous).
    unit : {"degrees", "radians"}, default="degrees"
        Unit of ``mean_angle`` and ``std_angle``.
    ortho_tol : float, default=5.0
        A pair is "orthogonal" when :math:`|\theta_{ij} - 90^\circ| \le` ``ortho_tol``
        degrees, i.e. :math:`|\cos\theta_{ij}| \le \sin(\text{ortho\_tol})`.

    Returns
    -------
    pandas.DataFrame
        One row per pair of layers ``layer_i <= layer_j``: ``n_rows_i``, ``n_rows_j`` (rows
        used), ``n_pairs`` (unordered pairs :math:`i \ne j`: :math:`n(n-1)/2` within a layer,
        :math:`n_l n_{l'}` across), ``mean_angle``, ``std_angle``, ``mean_cos``,
        ``mean_abs_cos``, ``frac_orthogonal``, ``zero_rows_i``, ``zero_rows_j`` (rows left
        out for having no direction). Means over several pairs of layers are the
        ``n_pairs``-weighted means of the rows.

    Notes
    -----
    For layers :math:`l, l'` with row sets :math:`I_l, I_{l'}` and
    :math:`P = \{(i, j) \in I_l \times I_{l'} : i \ne j\}` (unordered),

    .. math::

        \bar\theta_{l l'} = \frac{1}{|P|} \sum_{(i,j) \in P} \theta_{ij},\qquad
        \overline{|\cos|}_{l l'} = \frac{1}{|P|} \sum_{(i,j) \in P}
        \frac{|w_i^T w_j|}{\|w_i\|\,\|w_j\|}.

    The paper only shows the matrix (Section 3.3: "BN makes the directions of the hyperplanes
    orthogonal, whereas dropout the opposite"); these numbers make that reading measurable.
    """
    _check_tiling(block, unit)
    check_scalar(ortho_tol, "ortho_tol", Real, min_val=0.0, max_val=90.0)
    R, zero = _prepare(region, layer, rows, drop_zero=True)
    _, all_layers = _matrix_and_layer(region, layer)
    layers = np.unique(all_layers[_row_mask(rows, len(all_layers))])
    pos = {int(la): i for i, la in enumerate(layers)}
    L = len(layers)
    acc = {k: np.zeros((L, L)) for k in _STATS}
    sin_tol = float(np.sin(np.radians(ortho_tol)))
    for r, c, G in _cos_tiles(R, int(block)):
        _tile_stats(acc, pos, G, r, c, R, sin_tol)
    counts = [int(np.count_nonzero(R.layer == la)) for la in layers]
    zl, zc = np.unique(all_layers[zero], return_counts=True)
    zero_counts = dict(zip(zl.tolist(), zc.tolist(), strict=True))
    table = _stats_table(acc, layers, counts, zero_counts, unit, ortho_tol)
    table.attrs["zero_rows"] = int(zero.sum())
    return table


# --------------------------------------------------------------------------------------------
# Downsampled image
# --------------------------------------------------------------------------------------------


class AngleImage(NamedTuple):
    """A (downsampled) angle matrix for a heatmap (Fig. 4, Fig. 10).

    Attributes
    ----------
    image : ndarray of shape (s, s)
        Cell means of :math:`\\theta_{ij}` (NaN where a cell holds only zero rows).
    boundaries : ndarray of float
        Where each layer after the first starts, in image coordinates: a layer starting at
        row ``k`` of the full matrix gives ``k * s / m``. With ``imshow``'s default extent
        draw the line at ``boundaries - 0.5``.
    layer_starts : ndarray of int
        The same boundaries as row indices of the full matrix.
    cell_rows : ndarray of int, shape (s,)
        Number of rows of the full matrix averaged into each image row.
    unit : str
        ``"degrees"`` or ``"radians"``.
    """

    image: np.ndarray
    boundaries: np.ndarray
    layer_starts: np.ndarray
    cell_rows: np.ndarray
    unit: str


def _cell_sums(values: np.ndarray, rcell: np.ndarray, ccell: np.ndarray):
    """Sum ``values`` over the cells of its rows and columns; also the cell index ranges."""
    rs = np.flatnonzero(np.r_[True, rcell[1:] != rcell[:-1]])
    cs = np.flatnonzero(np.r_[True, ccell[1:] != ccell[:-1]])
    summed = np.add.reduceat(np.add.reduceat(values, cs, axis=1), rs, axis=0)
    return summed, slice(rcell[0], rcell[-1] + 1), slice(ccell[0], ccell[-1] + 1)


def downsampled_angle_image(
    region,
    *,
    size: int | None = 1024,
    rows=None,
    layer=None,
    block: int = 2048,
    unit: str = "degrees",
) -> AngleImage:
    r"""The angle matrix averaged down to ``size x size`` cells (Fig. 10's heatmaps).

    Parameters
    ----------
    region : Region, Polytope or array-like of shape (m, d)
        The rows :math:`w_i`.
    size : int or None, default=1024
        Side of the image. Row :math:`i` of the full matrix falls in cell
        :math:`\lfloor i\,s/m \rfloor`, so cells hold :math:`\lfloor m/s \rfloor` or
        :math:`\lceil m/s \rceil` rows. ``None`` or ``size >= m`` returns the full matrix
        (:func:`angle_matrix`), e.g. for an MLP region of 3,072 rows.
    rows : array-like of bool (m,) or of int, optional
        Rows to use (default all), in layer order.
    layer : array-like of int, shape (m,), optional
        Layer of each row when ``region`` is not a Region.
    block : int, default=2048
        Tile size: peak memory is a few ``block x block`` arrays plus the image.
    unit : {"degrees", "radians"}, default="degrees"

    Returns
    -------
    AngleImage

    Notes
    -----
    Pixel :math:`(p, q)` is the mean of :math:`\theta_{ij}` (diagonal :math:`\theta_{ii} = 0`
    included, as in the full matrix) over :math:`i \in C_p, j \in C_q`, skipping NaN angles of
    zero rows. Each tile :math:`(I, J)` with :math:`J > I` is computed once and added to both
    :math:`(p, q)` and :math:`(q, p)`.
    """
    _check_tiling(block, unit)
    if size is not None:
        check_scalar(size, "size", Integral, min_val=1)
    R, _ = _prepare(region, layer, rows, drop_zero=False)
    m = R.m
    starts = np.flatnonzero(np.diff(R.layer)) + 1
    if size is None or size >= m:
        theta = _full(R, unit)
        return AngleImage(theta, starts.astype(float), starts, np.ones(m, dtype=int), unit)
    cells = (np.arange(m) * int(size)) // m
    S, N = _tiled_cell_sums(R, cells, int(size), int(block))
    with np.errstate(invalid="ignore", divide="ignore"):
        image = np.where(N > 0, S / np.where(N > 0, N, 1.0), np.nan)
    cell_rows = np.bincount(cells, minlength=size)
    return AngleImage(_to_unit(image, unit), starts * size / m, starts, cell_rows, unit)


def _full(R: _SelectedRows, unit: str) -> np.ndarray:
    """Full angle matrix of the selected rows, in their order; NaN rows/columns for zero rows."""
    if R.m == 0:
        return np.zeros((0, 0))
    ((_, _, theta),) = _cos_tiles(R, R.m)
    np.arccos(theta, out=theta)  # in place: one (k, k) array in all
    if unit == "degrees":
        np.degrees(theta, out=theta)
    np.fill_diagonal(theta, 0.0)
    zero = R.norm == 0
    theta[zero, :] = np.nan
    theta[:, zero] = np.nan
    return theta


def _tiled_cell_sums(R: _SelectedRows, cells, size: int, block: int):
    """Cell sums of angles and counts of valid pixels over upper tiles, mirrored."""
    valid = R.norm > 0
    diag_S, diag_N = np.zeros((size, size)), np.zeros((size, size))
    off_S, off_N = np.zeros((size, size)), np.zeros((size, size))
    for r, c, theta in _cos_tiles(R, block):
        np.arccos(theta, out=theta)
        if r == c:
            np.fill_diagonal(theta, 0.0)
        ok = valid[r[0] : r[1], None] & valid[None, c[0] : c[1]]
        if not ok.all():
            theta[~ok] = 0.0
        S, N = (diag_S, diag_N) if r == c else (off_S, off_N)
        rc, cc = cells[r[0] : r[1]], cells[c[0] : c[1]]
        s, rsl, csl = _cell_sums(theta, rc, cc)
        if ok.all():  # every pixel counts: cell sizes
            n = np.outer(np.bincount(rc - rc[0]), np.bincount(cc - cc[0]))
        else:
            n, _, _ = _cell_sums(ok.astype(np.float64), rc, cc)
        S[rsl, csl] += s
        N[rsl, csl] += n
    return diag_S + off_S + off_S.T, diag_N + off_N + off_N.T


# --------------------------------------------------------------------------------------------
# Non-redundant rows (Appendix C)
# --------------------------------------------------------------------------------------------


def nonredundant_angles(
    region: Region,
    redundant_mask: np.ndarray | Callable[[Polytope], np.ndarray],
    *,
    block: int = 2048,
    unit: str = "degrees",
    ortho_tol: float = 5.0,
) -> pd.DataFrame:
    r"""The statistics of :func:`layer_pair_mean_angles` on the non-redundant rows only.

    Section 3.3 of [1] used all hyperplanes, "since it is time-consuming to eliminate the
    redundant hyperplanes" (Appendix C); this is the comparison the paper skipped.

    Parameters
    ----------
    region : Region
        The region (rows ordered by layer).
    redundant_mask : array-like of bool, shape (m,), or callable
        ``True`` for each hidden-unit row that is redundant (its halfspace is implied by the
        others and the box, eq. 18), e.g. from the redundancy module; or a function
        ``Polytope -> mask`` that is called on ``region.polytope``.
    block, unit, ortho_tol
        As in :func:`layer_pair_mean_angles`.

    Returns
    -------
    pandas.DataFrame
        The columns of :func:`layer_pair_mean_angles` plus ``redundant_i`` and
        ``redundant_j`` (rows removed per layer); ``attrs["n_redundant"]`` is the total.

    Notes
    -----
    Row :math:`k` is redundant iff (eq. 18)

    .. math::

        \min_x\ w_k^T x + b_k \ \text{ s.t. }\ w_i^T x + b_i \ge 0\ (i \ne k),\
        w_k^T x + b_k + 1 \ge 0,\ \mathrm{MIN}_x \le x \le \mathrm{MAX}_x \quad \ge 0.
    """
    if not isinstance(region, Region):
        raise TypeError(
            f"region must be a Region (from lrtools.regions.linear_region); got "
            f"{type(region).__name__}."
        )
    m = region.polytope.n_rows
    mask = redundant_mask(region.polytope) if callable(redundant_mask) else redundant_mask
    mask = np.asarray(mask)
    if mask.dtype != bool or mask.shape != (m,):
        raise ValueError(
            f"redundant_mask must be a boolean array of shape ({m},) (one entry per hidden-unit "
            f"row, box rows excluded); got dtype {mask.dtype} and shape {mask.shape}."
        )
    table = layer_pair_mean_angles(region, rows=~mask, block=block, unit=unit, ortho_tol=ortho_tol)
    layers = np.unique(region.layer)
    removed = {int(la): int(np.count_nonzero(mask & (region.layer == la))) for la in layers}
    table["redundant_i"] = [removed[la] for la in table["layer_i"]]
    table["redundant_j"] = [removed[la] for la in table["layer_j"]]
    table.attrs["n_redundant"] = int(mask.sum())
    return table


def region_angles(model, x, *, image_size: int | None = 512) -> tuple[pd.DataFrame, AngleImage]:
    """Fig. 4 / Fig. 10 for the region of one point: per-layer-pair statistics and the image.

    Builds the region of ``x`` (:func:`lrtools.regions.linear_region`) and returns
    :func:`layer_pair_mean_angles` and :func:`downsampled_angle_image` (``size=image_size``);
    memory stays bounded by a few tiles, whatever the number of hyperplanes.
    """
    from ..regions import linear_region

    region = linear_region(model, np.asarray(x, dtype=np.float64))
    return layer_pair_mean_angles(region), downsampled_angle_image(region, size=image_size)


def region_angle_stats(model, x) -> pd.DataFrame:
    """:func:`layer_pair_mean_angles` of the region of ``x`` (the per-point task of Fig. 4)."""
    from ..regions import linear_region

    return layer_pair_mean_angles(linear_region(model, np.asarray(x, dtype=np.float64)))


def region_angle_image(model, x, *, size: int | None = 512) -> AngleImage:
    """:func:`downsampled_angle_image` of the region of ``x`` (Fig. 4's image, one point)."""
    from ..regions import linear_region

    return downsampled_angle_image(linear_region(model, np.asarray(x, dtype=np.float64)),
                                   size=size)  # fmt: skip
