r"""Redundant inequalities of a linear region: eq. (18), Appendix C of [1].

Row :math:`k` of :math:`S = \{x : A x + b \ge 0,\ \ell \le x \le u\}` (the inequality
:math:`w_k^T x + b_k \ge 0`) is tested with the linear program

.. math::

    y_k = \min_x\; w_k^T x + b_k \quad\text{s.t.}\quad
    w_i^T x + b_i \ge 0 \;\; (i \ne k,\ i \in \mathcal{C}^*),\qquad
    w_k^T x + b_k + 1 \ge 0,\qquad \ell \le x \le u,

and is redundant iff :math:`y_k \ge 0`. Rows are tested in their natural order and every
redundant row is removed from :math:`\mathcal{C}^*` before the next row is tested
(*sequential removal*). Box rows are constraints but never candidates.

Definition used by this module
------------------------------
Each hyperplane row is scaled to unit norm (this changes neither the region nor the sign of
:math:`y_k`), so :math:`y_k` is a signed distance, and with a tolerance ``tol``

.. math::

    \text{row } k \text{ is redundant} \iff y_k \ge -\text{tol}.

A row with :math:`w_k = 0` and :math:`b_k \ge 0` is redundant (:math:`y_k = b_k`); a zero row with
:math:`b_k < 0` makes the region empty and is rejected. For a full-dimensional region the
answer is unique up to the choice among rows that define the same facet: in exact arithmetic
(``tol`` :math:`\to 0`) the kept rows are exactly one row per facet of :math:`S` that is not a box
facet, and among rows defining the same facet (duplicates, positive multiples) the **last** one
in row order is kept, because every earlier copy is tested while a later copy is still present.
Rows that are not facet-defining (outside the region, or touching it only in a lower-dimensional
face, e.g. a hyperplane tangent at a vertex) are removed whatever the order.

Certificates
------------
Every decision carries a certificate that is checked in float64 after the solve
(:func:`verify_redundancy` checks them again, independently). With
:math:`\mathcal{C}^*_k` the rows present when row :math:`k` is tested (all rows except
:math:`k` and the rows found redundant before :math:`k`):

* non-redundant: a *witness* :math:`\hat x` with :math:`\ell \le \hat x \le u`,
  :math:`w_i^T \hat x + b_i \ge 0` for :math:`i \in \mathcal{C}^*_k` and
  :math:`w_k^T \hat x + b_k < -\text{tol}`, so :math:`y_k < -\text{tol}`;
* redundant: multipliers :math:`\lambda \ge 0` on rows of :math:`\mathcal{C}^*_k` with

  .. math::

      y_k \;\ge\; b_k - \lambda^T b_{\mathcal{C}} + \sum_j \min(r_j \ell_j,\, r_j u_j)
      \;\ge\; -\text{tol}, \qquad r = w_k - A_{\mathcal{C}}^T \lambda,

  a weak-duality bound valid for any :math:`\lambda \ge 0` (the box absorbs the residual).

:func:`redundant_rows_naive` is the paper's method: one cold LP per row. :func:`redundant_rows`
is output-sensitive: it removes zero, box-implied and duplicate rows by closed-form
certificates, certifies most rows non-redundant by shooting rays from the Chebyshev centre
(eq. 5) along the facet normals :math:`-w_k` and the barrier (Dikin) directions
:math:`-H^{-1} w_k`, continues the unfinished rays as walks that slide along the facets they hit,
and solves LPs only for the rows left (an early-stopped affine-scaling probe, then a dense
interior-point LP). Both return a :class:`RedundancyResult`; on every test region they agree
row for row.

References
----------
.. [1] X. Zhang and D. Wu, "Empirical Studies on the Properties of Linear Regions in Deep
   Neural Networks", ICLR 2020, Appendix C.
.. [2] K. L. Clarkson, "More output-sensitive geometric algorithms", FOCS 1994 (redundancy
   removal with ray shooting from an interior point).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike
from scipy import sparse
from scipy.linalg import blas, lapack

from .._validation import check_choice, check_scalar
from ..exceptions import SolverError
from ..polytope import Polytope
from ._kernel import cholesky, solve_factored, weighted_gram
from ._lp import record_fallback, solve_lp

__all__ = [
    "KINDS",
    "RedundancyResult",
    "redundant_rows",
    "redundant_rows_naive",
    "verify_redundancy",
]

#: Certificate kinds. Redundant rows: ``zero`` (:math:`w_k = 0, b_k \ge 0`), ``box`` (implied by
#: the box alone), ``duplicate`` (implied by one parallel row), ``dual`` (LP multipliers).
#: Non-redundant rows: ``ray`` (witness from ray shooting or a walk), ``witness`` (witness from an
#: LP or affine-scaling iterate), ``lp`` (a verified LP optimum clearly below ``-tol`` whose
#: minimiser is not exactly feasible, e.g. a simplex vertex with rounding-level violations).
#: ``unverified``: no check passed (only with ``on_unverified="record"``). ``""``: not tested.
KINDS = ("zero", "box", "duplicate", "dual", "ray", "witness", "lp", "unverified", "")
_NAIVE_METHODS = ("highs", "highs-ipm", "highs-ds", "clarabel", "ipm")
_WITNESS_MARGIN = 1e-12  # slack (distance units) a repaired witness keeps on every constraint
_DUP_DECIMALS = 9  # rounding used to group parallel rows before verifying them exactly


@dataclass(frozen=True, eq=False)
class RedundancyResult:
    """Which hyperplane rows are redundant (eq. 18, sequential removal) and why.

    Attributes
    ----------
    redundant : ndarray of bool, shape (m,)
        True for rows removed by sequential removal; always False for untested rows.
    tested : ndarray of bool, shape (m,)
        The candidate rows (``rows=`` argument).
    kind : ndarray of str, shape (m,)
        Certificate kind of each row, one of :data:`KINDS`.
    bound : ndarray of shape (m,)
        Certified bound on :math:`y_k` in distance units (rows scaled to unit norm): a lower
        bound :math:`\\ge -\\text{tol}` for redundant rows, the witness value
        :math:`< -\\text{tol}` (an upper bound) for non-redundant rows, the LP value for kinds
        ``lp``/``unverified``, NaN for untested rows.
    witness : ndarray of shape (m, d)
        Witness points of non-redundant rows; NaN rows elsewhere.
    multipliers : dict of int to (ndarray of int, ndarray of float)
        For redundant rows: row indices and multipliers :math:`\\lambda \\ge 0` of the dual
        certificate, in the units of the polytope's own rows (empty arrays for kinds ``zero`` and
        ``box``, whose certificate uses the box only).
    tol : float
        The tolerance of the definition.
    method : str
        ``"fast"`` or ``"naive-<solver>"``.
    n_lp : int
        Number of linear programs solved (affine-scaling probes not included).
    seconds : dict of str to float
        Wall-clock time per phase and ``"total"``.
    info : dict
        Extras: per-phase counts, the interior point and its radius, fallbacks.
    """

    redundant: np.ndarray
    tested: np.ndarray
    kind: np.ndarray
    bound: np.ndarray
    witness: np.ndarray
    multipliers: dict
    tol: float
    method: str
    n_lp: int
    seconds: dict
    info: dict = field(default_factory=dict)

    @property
    def kept(self) -> np.ndarray:
        """Rows of the irredundant representation: not redundant (untested rows included)."""
        return ~self.redundant

    @property
    def counts(self) -> dict[str, int]:
        """Number of tested rows per certificate kind."""
        kinds, n = np.unique(self.kind[self.tested], return_counts=True)
        return {str(k): int(c) for k, c in zip(kinds, n, strict=True)}

    @property
    def n_redundant(self) -> int:
        """Number of redundant rows."""
        return int(self.redundant.sum())


# --------------------------------------------------------------------------- normalised rows


@dataclass(frozen=True, eq=False)
class _Rows:
    """Hyperplane rows scaled to unit norm (zero rows kept as zeros) and the box."""

    A: np.ndarray
    b: np.ndarray
    norms: np.ndarray
    lo: np.ndarray
    hi: np.ndarray

    @property
    def m(self) -> int:
        return self.A.shape[0]

    @property
    def zero(self) -> np.ndarray:
        return self.norms == 0

    def slack(self, idx: np.ndarray, x: np.ndarray) -> np.ndarray:
        return self.A[idx] @ x + self.b[idx]


def _normalise(poly: Polytope) -> _Rows:
    A = poly.A.toarray() if sparse.issparse(poly.A) else np.asarray(poly.A)
    norms = np.linalg.norm(A, axis=1)
    scale = np.where(norms > 0, norms, 1.0)
    return _Rows(A / scale[:, None], poly.b / scale, norms, poly.lo, poly.hi)


def _box_min(r: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float:
    """``min_{lo <= x <= hi} r^T x`` (r of shape (d,))."""
    return float(np.minimum(r * lo, r * hi).sum())


def _dual_bound(rows: _Rows, k: int, idx: np.ndarray, lam: np.ndarray, mu: float = 0.0) -> float:
    r"""Weak-duality lower bound on ``y_k``: ``lam >= 0`` on rows ``idx``, ``mu >= 0`` on the cap.

    For feasible ``x``: :math:`w_k^T x + b_k \ge r^T x + (1-\mu) b_k - \lambda^T b - \mu` with
    :math:`r = (1-\mu) w_k - A^T\lambda`, minimised over the box.
    """
    if 2 * idx.size > rows.m:  # scatter lam rather than gather the rows (a copy of A)
        lam_all = np.zeros(rows.m)
        lam_all[idx] = lam
        r = (1.0 - mu) * rows.A[k] - rows.A.T @ lam_all
    else:
        r = (1.0 - mu) * rows.A[k] - rows.A[idx].T @ lam
    const = (1.0 - mu) * rows.b[k] - lam @ rows.b[idx] - mu
    return float(const) + _box_min(r, rows.lo, rows.hi)


# --------------------------------------------------------------------------- bookkeeping


class _Record:
    """Mutable per-row decisions, turned into a :class:`RedundancyResult` at the end."""

    def __init__(self, rows: _Rows, tested: np.ndarray, tol: float) -> None:
        m, d = rows.A.shape
        self.rows = rows
        self.tol = tol
        self.tested = tested
        self.decided = ~tested
        self.redundant = np.zeros(m, dtype=bool)
        self.kind = np.full(m, "", dtype="<U10")
        self.bound = np.full(m, np.nan)
        self.witness = np.full((m, d), np.nan)
        self.multipliers: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def drop(self, k: int, kind: str, bound: float, idx=None, lam=None) -> None:
        """Record row ``k`` as redundant; ``lam`` in normalised units."""
        self.decided[k], self.redundant[k] = True, True
        self.kind[k], self.bound[k] = kind, bound
        idx = np.zeros(0, dtype=np.intp) if idx is None else np.asarray(idx, dtype=np.intp)
        lam = np.zeros(0) if lam is None else np.asarray(lam, dtype=np.float64)
        keep = lam > 0
        idx, lam = idx[keep], lam[keep]
        raw = lam * self.rows.norms[k] / self.rows.norms[idx] if idx.size else lam
        self.multipliers[int(k)] = (idx, raw)

    def keep(self, k: int, kind: str, bound: float, witness=None) -> None:
        """Record row ``k`` as non-redundant."""
        self.decided[k] = True
        self.kind[k], self.bound[k] = kind, bound
        if witness is not None:
            self.witness[k] = witness

    def present(self, k: int, removed: np.ndarray | None = None) -> np.ndarray:
        """Indices of the rows of :math:`\\mathcal{C}^*_k`; zero rows (always true) left out."""
        idx = np.arange(self.rows.m)
        mask = ~(self.redundant & (idx < k)) & (idx != k) & ~self.rows.zero
        if removed is not None:
            mask &= ~removed
        return np.flatnonzero(mask)

    def result(self, method: str, n_lp: int, seconds: dict, info: dict) -> RedundancyResult:
        return RedundancyResult(
            self.redundant, self.tested, self.kind, self.bound, self.witness,
            self.multipliers, self.tol, method, n_lp, seconds, info,
        )


# --------------------------------------------------------------------------- witnesses


def _box_ok(rows: _Rows, x: np.ndarray) -> bool:
    return bool(np.all(x >= rows.lo) and np.all(x <= rows.hi))


def _is_witness(rows: _Rows, k: int, x: np.ndarray, present: np.ndarray, tol: float) -> bool:
    """Exact float64 check: ``x`` in the box, every present row satisfied, row ``k`` violated."""
    if not _box_ok(rows, x) or rows.slack(np.array([k]), x)[0] >= -tol:
        return False
    return bool(np.all(rows.slack(present, x) >= 0.0))


def _repair(rows, x, present, interior):
    """Move ``x`` towards a strictly interior point until every present constraint holds.

    Slacks are affine, so ``x + t (c - x)`` has slack ``(1 - t) s(x) + t s(c)``; the smallest
    ``t`` giving slack >= margin on every violated constraint is computed in closed form.
    """
    s = np.concatenate([rows.slack(present, x), x - rows.lo, rows.hi - x])
    sc = np.concatenate([rows.slack(present, interior), interior - rows.lo, rows.hi - interior])
    bad = s < _WITNESS_MARGIN
    if not np.any(bad):
        return x
    if np.any(sc[bad] <= 2 * _WITNESS_MARGIN):
        return None
    t = float(np.max((_WITNESS_MARGIN - s[bad]) / (sc[bad] - s[bad])))
    return x + t * (interior - x) if t < 1.0 else None


def _witness_from(rows, k, x, present, tol, interiors=()):
    """A verified witness for row ``k`` from a (nearly feasible) point, or None: ``x`` itself,
    else ``x`` pulled towards each strictly interior point of ``interiors`` in turn."""
    if x is None or not np.all(np.isfinite(x)):
        return None
    if _is_witness(rows, k, x, present, tol):
        return x
    for interior in interiors:
        y = _repair(rows, x, present, interior)
        if y is not None and _is_witness(rows, k, y, present, tol):
            return y
    return None


# --------------------------------------------------------------------------- LP back-ends


@dataclass
class _LPAnswer:
    """Primal point, multipliers on the listed rows, LP value of ``y_k`` and solver status."""

    x: np.ndarray | None
    lam: np.ndarray
    value: float
    status: str
    ok: bool
    mu: float = 0.0


_LP_OPTIONS = {
    "ipm": {"tol": 1e-10, "gap_atol": 1e-10},
    "highs-ipm": {"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10,
                  "ipm_optimality_tolerance": 1e-10},
    "highs": {"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10},
    "highs-ds": {"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10},
    "clarabel": {},
}


def _solve_lp(rows: _Rows, k: int, idx: np.ndarray, method: str) -> _LPAnswer:
    """The LP of eq. (18) for row ``k`` with constraint rows ``idx`` (normalised), by the LP
    front: ``min w_k^T x`` s.t. ``-A_idx x <= b_idx``, ``-w_k^T x <= b_k + 1``, the box."""
    a, beta = rows.A[k], rows.b[k]
    G = np.vstack([-rows.A[idx], -a[None, :]])
    h = np.concatenate([rows.b[idx], [beta + 1.0]])
    sol = solve_lp(a, G, h, np.column_stack([rows.lo, rows.hi]), method=method,
                   options=_LP_OPTIONS[method])
    if sol.x is None:
        return _LPAnswer(None, np.zeros(idx.size), np.nan, f"{method}: {sol.status}", False)
    return _LPAnswer(sol.x, sol.lam[: idx.size], float(sol.value + beta), sol.status,
                     sol.success, max(float(sol.lam[idx.size]), 0.0))


def _primal_violation(rows: _Rows, idx: np.ndarray, x: np.ndarray) -> float:
    s = rows.slack(idx, x)
    box = np.concatenate([x - rows.lo, rows.hi - x])
    return float(max(-s.min(initial=0.0), -box.min(initial=0.0), 0.0))


def _decide(rec, k, idx, ans, tol, interior, gap_tol, feas_tol=1e-8):
    """Turn an LP answer into a certified decision; return False when nothing verifies.

    In order: a dual bound >= -tol (redundant, kind ``dual``); a witness, possibly after pulling
    the minimiser towards ``interior`` (kind ``witness``); a verified optimum (primal violation
    <= ``feas_tol``, |value - dual bound with the cap multiplier| <= ``gap_tol``) with value
    < -tol - gap_tol (non-redundant, kind ``lp``).
    """
    rows = rec.rows
    if ans.x is None:
        return False
    lam = np.maximum(np.nan_to_num(ans.lam), 0.0)
    bound = _dual_bound(rows, k, idx, lam)
    if bound >= -tol:
        rec.drop(k, "dual", bound, idx, lam)
        return True
    w = _witness_from(rows, k, ans.x, idx, tol, () if interior is None else (interior,))
    if w is not None:
        rec.keep(k, "witness", float(rows.slack(np.array([k]), w)[0]), w)
        return True
    # No exact certificate: accept a verified optimum (primal feasible, small duality gap) only
    # when it is clearly below the threshold; a redundant row always has a dual certificate
    # unless it is borderline (|y_k + tol| within the gap), which is left unverified.
    full_bound = _dual_bound(rows, k, idx, lam, ans.mu)
    optimal = (ans.ok and _primal_violation(rows, idx, ans.x) <= feas_tol
               and abs(ans.value - full_bound) <= gap_tol)
    if optimal and ans.value < -tol - gap_tol:
        rec.keep(k, "lp", ans.value)
        return True
    return False


def _unverified(rec, k, idx, ans, on_unverified, method):
    rows = rec.rows
    msg = (f"redundancy LP (eq. 18) for row {k} with {method}: status {ans.status!r}, value "
           f"{ans.value:.3g}; no certificate verified ({idx.size} rows x {rows.A.shape[1]} dims).")
    if on_unverified == "raise":
        raise SolverError(msg)
    if np.isfinite(ans.value) and ans.value >= -rec.tol:
        rec.drop(k, "unverified", ans.value)
    else:
        rec.keep(k, "unverified", ans.value)


# --------------------------------------------------------------------------- validation


def _check_common(poly, rows, tol, on_unverified) -> np.ndarray:
    if not isinstance(poly, Polytope):
        raise TypeError(f"poly must be a lrtools.polytope.Polytope; got {type(poly).__name__}.")
    check_scalar(tol, "tol", min_val=0.0)
    check_choice(on_unverified, "on_unverified", ("raise", "record"))
    m = poly.n_rows
    if rows is None:
        tested = np.ones(m, dtype=bool)
    else:
        rows = np.asarray(rows)
        if rows.size == 0:
            return np.zeros(m, dtype=bool)
        if rows.dtype == bool:
            if rows.shape != (m,):
                raise ValueError(f"rows as a mask must have shape ({m},); got {rows.shape}.")
            tested = rows.copy()
        else:
            if rows.ndim != 1 or not np.issubdtype(rows.dtype, np.integer):
                raise TypeError("rows must be a 1-D array of row indices or a boolean mask.")
            bad = rows[(rows < -m) | (rows >= m)]
            if bad.size:
                raise ValueError(f"rows must index the {m} hyperplane rows; got out-of-range "
                                 f"indices {bad[:5].tolist()}.")
            tested = np.zeros(m, dtype=bool)
            tested[rows] = True
    return tested


def _check_nonempty(rows: _Rows) -> None:
    bad = np.flatnonzero(rows.zero & (rows.b < 0))
    if bad.size:
        raise ValueError(
            f"rows {bad[:5].tolist()} have w = 0 and b < 0, so the region is empty; "
            "redundancy is only defined for a non-empty region."
        )


# --------------------------------------------------------------------------- naive method


def redundant_rows_naive(
    poly: Polytope,
    *,
    rows: ArrayLike | None = None,
    removed: ArrayLike | None = None,
    tol: float = 1e-7,
    method: str = "highs",
    on_unverified: str = "raise",
) -> RedundancyResult:
    r"""Redundant rows by the paper's method: one LP (eq. 18) per row, sequential removal.

    Parameters
    ----------
    poly : Polytope
        The region ``{x : A x + b >= 0, lo <= x <= hi}``.
    rows : array-like of int or bool mask, optional
        Candidate rows, tested in increasing order (default: all hyperplane rows). Other rows stay
        constraints and are never removed, so a sample's timing can be extrapolated.
    removed : array-like of bool, shape (m,), optional
        Rows treated as already removed from :math:`\mathcal{C}^*` (not constraints). With
        ``rows=[k]`` and ``removed = r.redundant & (arange(m) < k)`` for a full result ``r``, this
        reproduces exactly the LP that sequential removal solves for row ``k``.
    tol : float, default=1e-7
        Row ``k`` is redundant iff :math:`y_k \ge -\text{tol}` (unit-norm rows, distance units).
    method : {"highs", "highs-ipm", "highs-ds", "clarabel", "ipm"}, default="highs"
        LP solver: scipy's HiGHS (automatic choice, interior point, dual simplex), cvxpy with
        Clarabel, or :func:`lrtools.solvers.ipm.lp_ipm`.
    on_unverified : {"raise", "record"}, default="raise"
        What to do when an LP answer carries no certificate that verifies (neither a dual bound
        >= -tol, nor an exact witness, nor a verified optimum -- primal violation <= 1e-8, gap
        <= 1e-6 -- clearly below -tol): raise :class:`SolverError`, or record the row with kind
        ``"unverified"``. Only rows with :math:`|y_k + \text{tol}|` near the LP accuracy end
        up there.

    Returns
    -------
    RedundancyResult
        Kinds ``zero``, ``dual`` (redundant, verified multipliers), ``witness`` (non-redundant,
        the LP's minimiser satisfies the other rows exactly) or ``lp`` (non-redundant, verified
        optimum; simplex vertices often violate tight rows by rounding errors).

    Raises
    ------
    ValueError, TypeError
        On malformed arguments, or a zero row with ``b < 0`` (empty region).
    SolverError
        When an LP fails and ``on_unverified="raise"``.

    Notes
    -----
    Implements eq. (18) of [1] literally, with unit-norm rows; each LP is solved from scratch:

    .. math::

        y_k = \min_x\; w_k^T x + b_k \quad\text{s.t.}\quad
        w_i^T x + b_i \ge 0 \;(i \in \mathcal{C}^*_k),\quad
        w_k^T x + b_k \ge -1,\quad \ell \le x \le u;
        \qquad \text{redundant} \iff y_k \ge -\text{tol}.

    The cost is :math:`m` LPs with up to :math:`m` rows each: hours at paper size
    (``benchmarks/bench_redundancy.py``).
    """
    tested = _check_common(poly, rows, tol, on_unverified)
    check_choice(method, "method", _NAIVE_METHODS)
    removed_mask = np.zeros(poly.n_rows, dtype=bool) if removed is None else np.asarray(removed)
    if removed_mask.shape != (poly.n_rows,) or removed_mask.dtype != bool:
        raise ValueError(f"removed must be a boolean mask of shape ({poly.n_rows},).")
    if np.any(removed_mask & tested):
        raise ValueError("removed and rows overlap; a removed row cannot be tested.")
    t0 = time.perf_counter()
    nrows = _normalise(poly)
    _check_nonempty(nrows)
    rec = _Record(nrows, tested, tol)
    n_lp = 0
    for k in np.flatnonzero(tested):
        if nrows.zero[k]:
            rec.drop(k, "zero", float(nrows.b[k]))
            continue
        idx = rec.present(k, removed_mask)
        ans = _solve_lp(nrows, k, idx, method)
        n_lp += 1
        if not _decide(rec, k, idx, ans, tol, None, gap_tol=1e-6):
            _unverified(rec, k, idx, ans, on_unverified, method)
    seconds = {"lp": time.perf_counter() - t0, "total": time.perf_counter() - t0}
    return rec.result(f"naive-{method}", n_lp, seconds, {"removed": removed_mask})


# --------------------------------------------------------------------------- fast: closed forms


def _closed_form(rec: _Record, tol: float) -> dict:
    """Zero rows, rows implied by the box alone, and earlier parallel copies (one multiplier)."""
    rows = rec.rows
    cand = rec.tested & ~rec.decided
    for k in np.flatnonzero(cand & rows.zero):
        rec.drop(k, "zero", float(rows.b[k]))
    box_lb = rows.b + np.minimum(rows.A * rows.lo, rows.A * rows.hi).sum(axis=1)
    for k in np.flatnonzero(cand & ~rows.zero & (box_lb >= -tol)):
        rec.drop(k, "box", float(box_lb[k]))
    return {"n_zero": int((cand & rows.zero).sum()),
            "n_box": int((cand & ~rows.zero & (box_lb >= -tol)).sum()),
            "n_duplicate": _duplicates(rec, tol)}


def _duplicates(rec: _Record, tol: float) -> int:
    """Drop row j when a parallel row l, present when j is tested, is at least as tight.

    Present at j's turn: l > j (not yet tested) or l not a candidate (never removed).
    """
    rows = rec.rows
    live = np.flatnonzero(~rows.zero & ~(rec.redundant & rec.tested))
    if live.size < 2:
        return 0
    key = np.round(rows.A[live], _DUP_DECIMALS) + 0.0  # + 0.0 maps -0.0 to 0.0
    _, group = np.unique(key, axis=0, return_inverse=True)
    group = group.reshape(-1)
    n = 0
    for g in np.flatnonzero(np.bincount(group) > 1):
        members = live[group == g]
        for j in members:
            if not (rec.tested[j] and not rec.decided[j]):
                continue
            others = members[(members > j) | ~rec.tested[members]]
            others = others[others != j]
            if not others.size:
                continue
            ell = others[np.argmin(rows.b[others])]
            bound = _dual_bound(rows, j, np.array([ell]), np.array([1.0]))
            if bound >= -tol:
                rec.drop(j, "duplicate", bound, [ell], [1.0])
                n += 1
    return n


# --------------------------------------------------------------------------- fast: interior


def _interior_point(poly: Polytope):
    """Chebyshev centre (eq. 5), verified, by the fastest method :mod:`.insphere` offers."""
    from .insphere import insphere

    try:
        return insphere(poly, method="auto")
    except ValueError:  # an insphere module without "auto"
        return insphere(poly, method="highs")


# --------------------------------------------------------------------------- fast: rays


@dataclass
class _RayScene:
    """Rows a ray can hit first (``hit``, unit-norm), the box, and the excluded sets E_k."""

    rows: _Rows
    hit: np.ndarray
    pre_red: np.ndarray
    A_hit: np.ndarray | None = None  # rows.A[hit], gathered once (every ray step reads it)
    A_hit32: np.ndarray = field(init=False, repr=False)  # ... in float32: chooses the hits

    def __post_init__(self) -> None:
        if self.A_hit is None:
            self.A_hit = np.ascontiguousarray(self.rows.A[self.hit])
        self.A_hit32 = self.A_hit.astype(np.float32)


def _hits(scene: _RayScene, X: np.ndarray, D: np.ndarray, S: np.ndarray):
    """First and second constraint hit by rays ``X[j] + t D[j]`` (t > 0), vectorised.

    ``S`` holds float32 slacks of the hit rows at the ray origins, shape (n_hit, n) or
    (n_hit, 1). Returns the first hit (row index, or ``-1 - j`` for box coordinate ``j``), t1,
    t2 and the float32 rates ``A_hit D^T``.

    float32 only chooses candidates: the rates come from ``sgemm`` (2.3x ``dgemm`` at 3,000 x
    784 x 64, the walks' shape, measured) and the two rows of largest approach rate
    ``-r_i / s_i`` are kept. Their slacks and rates are then recomputed in float64 from ``X``
    and ``D``, and the two rows and the two nearest box faces are ranked by these exact times.
    Every witness built from them is checked exactly twice (:func:`_record_rays` at the
    witness, :func:`_verify_ray_witnesses` against every row), so float32 can cost a
    certificate, never a decision.
    """
    rows = scene.rows
    n = X.shape[0]
    cols = np.arange(n)
    R = scene.A_hit32 @ D.T.astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        V = R / S  # < 0: approaching, hit at -1 / V
        Tb = np.where(D > 0, (rows.hi - X) / D, np.where(D < 0, (rows.lo - X) / D, np.inf)).T
    np.fmin(V, 0.0, out=V)  # receding rows and 0/0 never win
    cand_lab, cand_t = [], []
    prev = None
    for _ in range(min(2, V.shape[0])):  # the two fastest-approaching rows, timed exactly
        i = np.argmin(V, axis=0)
        V[i, cols] = 0.0
        Ai = scene.A_hit[i]
        r = np.einsum("nd,nd->n", Ai, D)
        s = np.einsum("nd,nd->n", Ai, X) + rows.b[scene.hit[i]]
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(r < 0, np.maximum(s, 0.0) / -r, np.inf)
        if prev is not None:
            t[i == prev] = np.inf  # all rates were >= 0 in float32: argmin repeated a row
        prev = i
        cand_t.append(t)
        cand_lab.append(scene.hit[i])
    for _ in range(2):  # the two nearest box faces (exact already)
        j = np.argmin(Tb, axis=0)
        cand_t.append(Tb[j, cols].copy())
        Tb[j, cols] = np.inf
        cand_lab.append(-1 - j)
    T, L = np.vstack(cand_t), np.vstack(cand_lab)
    order = np.argsort(T, axis=0, kind="stable")[:2]
    first = L[order[0], cols]
    t1, t2 = T[order[0], cols], T[order[1], cols]
    return first, t1, t2, R


def _record_rays(rec, scene, X, D, first, t1, t2, tol) -> np.ndarray:
    """Store (unverified) witnesses of rows hit first; return the indices newly certified."""
    ok = (first >= 0) & np.isfinite(t2) & (t2 > t1 * (1 + 1e-9))
    new = []
    for j in np.flatnonzero(ok):
        k = first[j]
        if rec.decided[k] or not rec.tested[k]:
            continue
        w = X[j] + 0.5 * (t1[j] + t2[j]) * D[j]
        s_k = float(rec.rows.slack(np.array([k]), w)[0])
        if s_k < -tol:
            rec.keep(k, "ray", s_k, w)
            new.append(k)
    return np.asarray(new, dtype=np.intp)


def _shoot(rec, scene, x, D_of, targets, tol, chunk):
    """Rays from ``x`` along ``D_of(targets chunk)`` for every undecided target."""
    n = 0
    s0 = scene.rows.slack(scene.hit, x)[:, None].astype(np.float32)
    for s in range(0, targets.size, chunk):
        tg = targets[s : s + chunk]
        tg = tg[~rec.decided[tg]]
        if not tg.size:
            continue
        D = D_of(tg)
        X = np.broadcast_to(x, D.shape)
        first, t1, t2, _ = _hits(scene, X, D, s0)
        n += _record_rays(rec, scene, X, D, first, t1, t2, tol).size
    return n


def _dikin_factor(scene: _RayScene, x: np.ndarray):
    """Cholesky factor of the log-barrier Hessian at ``x`` (hit rows and box)."""
    rows = scene.rows
    w = np.zeros(rows.m)
    w[scene.hit] = rows.slack(scene.hit, x) ** -2.0
    H = weighted_gram(rows.A, w, keep=scene.hit)
    H[np.diag_indices_from(H)] += 1.0 / (x - rows.lo) ** 2 + 1.0 / (rows.hi - x) ** 2
    F = cholesky(H)
    if F is None:
        raise SolverError(f"the barrier Hessian at the centre is singular ({rows.m} rows x "
                          f"{rows.A.shape[1]} dims); pass another center.")
    return F


def _walk_chunk(rec, scene, x, F, tg, steps, tol, theta=0.95):
    """Slide rays along the facets they hit (gradient projection, strictly interior).

    Each walker ``j`` starts at ``x`` along the Dikin direction of its target row ``tg[j]``. When
    it hits a constraint first (not its target) it stops short (factor ``theta``), adds that
    constraint's normal to its active set and projects its direction onto the active set's null
    space. Any row hit first, by any walker, is certified by the ray's witness.
    """
    rows = scene.rows
    n, d = tg.size, x.size
    D = -F.solve(rows.A[tg].T).T
    X = np.repeat(x[None, :], n, axis=0)
    S = np.repeat(rows.slack(scene.hit, x)[:, None].astype(np.float32), n, axis=1)
    Q = np.empty((n, steps, d))  # each walker's active set: orthonormal normals
    alive = np.ones(n, dtype=bool)
    for step in range(steps):
        alive &= ~rec.decided[tg]
        if not alive.all():  # keep the walkers still going contiguous (no per-step gathers)
            if not alive.any():
                break
            tg, X, D, S = tg[alive], X[alive], D[alive], S[:, alive]
            Qn = np.empty((tg.size, steps, d))  # untouched pages cost nothing
            Qn[:, :step] = Q[alive, :step]
            Q = Qn
        first, t1, t2, R = _hits(scene, X, D, S)
        _record_rays(rec, scene, X, D, first, t1, t2, tol)
        finite = np.isfinite(t1)
        step_len = np.where(finite, theta * t1, 0.0)
        X += step_len[:, None] * D
        S += R * step_len.astype(np.float32)  # float32 slacks: they only choose candidates
        g = _normals(rows, first, d)
        Qa = Q[:, :step]
        q = g - np.einsum("nsd,ns->nd", Qa, np.einsum("nsd,nd->ns", Qa, g))
        qn = np.linalg.norm(q, axis=1)
        good = finite & (qn > 1e-10)
        q[good] /= qn[good, None]
        q[~good] = 0.0
        Q[:, step] = q
        D -= q * np.einsum("nd,nd->n", q, D)[:, None]
        descent = np.einsum("nd,nd->n", rows.A[tg], D) < -1e-12
        alive = good & descent


def _normals(rows: _Rows, first: np.ndarray, d: int) -> np.ndarray:
    """Normals of the first-hit constraints (unit rows, or coordinate vectors for box faces)."""
    g = np.zeros((first.size, d))
    is_row = first >= 0
    g[is_row] = rows.A[first[is_row]]
    box = np.flatnonzero(~is_row)
    g[box, -1 - first[box]] = 1.0
    return g


def _verify_ray_witnesses(rec: _Record, scene: _RayScene, tol: float) -> int:
    """Re-check every ray witness exactly; undo the rows whose witness fails. Return #failed."""
    rows = rec.rows
    ks = np.flatnonzero(rec.kind == "ray")
    nz = np.flatnonzero(~rows.zero)
    failed = 0
    for s in range(0, ks.size, 512):
        kk = ks[s : s + 512]
        W = rec.witness[kk]
        S = rows.A[nz] @ W.T + rows.b[nz][:, None]
        for j, k in enumerate(kk):
            viol = nz[S[:, j] < 0]
            allowed = (viol == k) | (scene.pre_red[viol] & (viol < k))
            s_k = rows.slack(np.array([k]), W[j])[0]
            ok = bool(np.all(allowed)) and _box_ok(rows, W[j]) and s_k < -tol
            if not ok:
                rec.decided[k], rec.kind[k], rec.bound[k] = False, "", np.nan
                rec.witness[k] = np.nan
                failed += 1
    return failed


def _ray_phase(rec, scene, center, tol, walk_steps, chunk) -> dict:
    """Normal rays, Dikin rays and walks from the centre; returns counts per sub-phase."""
    rows = rec.rows
    out = {}

    def undecided():
        return np.flatnonzero(rec.tested & ~rec.decided)

    out["n_ray_normal"] = _shoot(rec, scene, center, lambda tg: -rows.A[tg], undecided(), tol,
                                 4 * chunk)
    F = _dikin_factor(scene, center)
    out["n_ray_dikin"] = _shoot(rec, scene, center, lambda tg: -F.solve(rows.A[tg].T).T,
                                undecided(), tol, 4 * chunk)
    before = int(rec.decided.sum())
    if walk_steps > 0:
        todo = undecided()
        for s in range(0, todo.size, chunk):
            tg = todo[s : s + chunk]
            tg = tg[~rec.decided[tg]]
            if tg.size:
                _walk_chunk(rec, scene, center, F, tg, walk_steps, tol)
    out["n_walk"] = int(rec.decided.sum()) - before
    out["n_ray_rejected"] = _verify_ray_witnesses(rec, scene, tol)
    return out


# --------------------------------------------------------------------------- fast: LP phase


class _ProbeScaling:
    r"""The affine probe's scaling :math:`u = H^{-1} w_k` in float32 (``ssyrk``, ``spotrf``).

    Exactness does not depend on it: any positive definite scaling gives a descent direction,
    the step to the boundary is measured in float64 with every row for the ``u`` used, and the
    dual estimate is clipped at 0 and bounded exactly by :func:`_dual_bound`. float32 halves
    the two costs of a probe step (the Gram matrix of the nearest rows and its Cholesky).
    """

    def __init__(self, Ai: np.ndarray, a: np.ndarray, n_near: int) -> None:
        d = Ai.shape[1]
        self.Ai = Ai.astype(np.float32)
        self.a = a.astype(np.float32)
        self.B = np.empty((n_near, d), dtype=np.float32)
        self.H = np.empty((d, d), dtype=np.float32, order="F")

    def solve(self, s, keep, sc, sl, su) -> np.ndarray | None:
        with np.errstate(over="ignore", invalid="ignore"):
            root = (1.0 / (s if keep is None else s[keep])).astype(np.float32)
            B = self.B[: root.size]
            if keep is None:
                np.multiply(self.Ai, root[:, None], out=B)
            else:
                np.take(self.Ai, keep, axis=0, out=B, mode="clip")
                B *= root[:, None]
            H = blas.ssyrk(1.0, B.T, beta=0.0, c=self.H, trans=0, lower=0, overwrite_c=1)
            H = blas.ssyr(np.float32(sc**-2.0), self.a, a=H, lower=0, overwrite_a=1)
            diag = np.diag_indices_from(H)
            H[diag] += (1.0 / sl**2 + 1.0 / su**2).astype(np.float32)
            if not np.isfinite(H[diag]).all():
                return None
            U, info = lapack.spotrf(H, lower=0, clean=0, overwrite_a=1)
            if info != 0:
                return None
            u = solve_factored(U, self.a).astype(np.float64)
        return u if np.isfinite(u).all() else None


def _affine_probe(rec, k, idx, x, iters, tol, n_near, theta=0.95):
    """Early-stopped affine scaling on eq. (18) for row ``k`` from a strictly feasible ``x``.

    Row ``k`` leaves the barrier (the cap row stays), so the iterates may cross hyperplane ``k``:
    an iterate with slack < -tol is a witness. The barrier Hessian is built from the ``n_near``
    rows of smallest slack only (constraint reduction: any positive definite scaling gives a
    descent direction, and the step to the boundary uses every row, so the iterates stay
    strictly feasible). The affine-scaling dual estimate
    :math:`\\lambda = S^{-2} A H^{-1} w_k` gives a dual bound at every step. Returns whether
    the row was decided and the last (strictly feasible) iterate.
    """
    rows = rec.rows
    a, beta = rows.A[k], rows.b[k]
    Ai, bi = rows.A[idx], rows.b[idx]
    d = rows.A.shape[1]
    H_buf, F_buf = np.empty((d, d), order="F"), np.empty((d, d), order="F")
    B_buf = np.empty((min(n_near, idx.size), d))
    single = _ProbeScaling(Ai, a, min(n_near, idx.size))
    s = Ai @ x + bi
    for _ in range(iters):
        sl, su, sc = x - rows.lo, rows.hi - x, a @ x + beta + 1.0
        near = np.argpartition(s, n_near)[:n_near] if n_near < s.size else slice(None)
        keep = None if isinstance(near, slice) else near
        u = single.solve(s, keep, sc, sl, su)
        if u is None:  # float64 (the float32 factor failed: slacks below ~1e-19)
            H = weighted_gram(Ai, s**-2.0, keep=keep, out=H_buf, buf=B_buf)
            H = blas.dsyr(sc**-2.0, a, a=H, lower=0, overwrite_a=1)  # the cap row
            H[np.diag_indices_from(H)] += 1.0 / sl**2 + 1.0 / su**2
            F = cholesky(H, work=F_buf, max_tries=1)
            if F is None:
                return False, x
            u = F.solve(a)
        Au = Ai @ u  # one pass over the rows: the dual estimate, the step and the new slacks
        lam = np.zeros(s.size)
        lam[near] = np.maximum(Au[near] / s[near] ** 2, 0.0)
        bound = _dual_bound(rows, k, idx, lam)
        if bound >= -tol:
            rec.drop(k, "dual", bound, idx, lam)
            return True, x
        with np.errstate(divide="ignore", invalid="ignore"):
            t = min(np.min(np.where(Au > 0, s / Au, np.inf), initial=np.inf),
                    np.min(np.where(u > 0, sl / u, np.inf)),
                    np.min(np.where(u < 0, su / -u, np.inf)),
                    sc / (a @ u) if a @ u > 0 else np.inf)
        if not np.isfinite(t):
            return False, x
        x = x - theta * t * u
        s = s - (theta * t) * Au  # affine slacks (the witness test below recomputes them)
        s_k = float(a @ x + beta)
        if s_k < -tol and _is_witness(rows, k, x, idx, tol):
            rec.keep(k, "witness", s_k, x)
            return True, x
    return False, x


def _reduced_lp(rec, k, idx, x, center, tol, n_rows, rounds) -> tuple[bool, int]:
    """Eq. (18) on the ``n_rows`` rows of smallest slack at ``x``, adding violated rows.

    A dual certificate on a subset of :math:`\\mathcal{C}^*_k` is a certificate for the whole
    set (fewer constraints only lower the minimum); a minimiser that, once pulled towards the
    probe's iterate ``x`` (strictly feasible and already nearer hyperplane ``k`` than the centre:
    on a trained MNIST region this finds the witness of every row that needed the full LP when
    pulled towards the centre, 11 of 23 rows) or else the centre, satisfies every present row is
    a witness. Otherwise the most violated rows join the subset (constraint generation).
    Returns whether the row was decided and the LP count.
    """
    rows = rec.rows
    if n_rows <= 0 or idx.size <= n_rows:
        return False, 0
    sub = idx[np.argsort(rows.slack(idx, x))[:n_rows]]
    for r in range(rounds):
        ans = _solve_lp(rows, k, sub, "ipm")
        if ans.x is None or not np.all(np.isfinite(ans.x)):
            return False, r + 1
        lam = np.maximum(np.nan_to_num(ans.lam), 0.0)
        bound = _dual_bound(rows, k, sub, lam)
        if bound >= -tol:
            rec.drop(k, "dual", bound, sub, lam)
            return True, r + 1
        w = _witness_from(rows, k, ans.x, idx, tol, (x, center))
        if w is not None:
            rec.keep(k, "witness", float(rows.slack(np.array([k]), w)[0]), w)
            return True, r + 1
        s = rows.slack(idx, ans.x)
        viol = np.flatnonzero(s < 0)
        if not viol.size:
            return False, r + 1
        sub = np.union1d(sub, idx[viol[np.argsort(s[viol])[: max(n_rows // 2, 1)]]])
    return False, rounds


def _lp_phase(rec, center, tol, affine_iters, reduced_rows, on_unverified) -> dict:
    probe_rows = 2 * reduced_rows if reduced_rows else rec.rows.m
    """Sequential eq. (18) for the rows still undecided, in natural order."""
    n_lp = n_probe = n_fallback = n_full = 0
    for k in np.flatnonzero(rec.tested & ~rec.decided):
        idx = rec.present(k)
        n_probe += 1
        done, x = _affine_probe(rec, k, idx, center.copy(), affine_iters, tol, probe_rows)
        if done:
            continue
        done, n = _reduced_lp(rec, k, idx, x, center, tol, reduced_rows, rounds=3)
        n_lp += n
        if done:
            continue
        n_full += 1
        ans = _solve_lp(rec.rows, k, idx, "ipm")
        n_lp += 1
        if _decide(rec, k, idx, ans, tol, center, gap_tol=1e-6):
            continue
        n_fallback += 1
        record_fallback("redundancy_lp")
        ans = _solve_lp(rec.rows, k, idx, "highs-ipm")
        n_lp += 1
        if not _decide(rec, k, idx, ans, tol, center, gap_tol=1e-6):
            _unverified(rec, k, idx, ans, on_unverified, "lp_ipm and highs-ipm")
    return {"n_lp": n_lp, "n_probe": n_probe, "n_lp_full": n_full, "n_lp_fallback": n_fallback}


def redundant_rows(
    poly: Polytope,
    *,
    rows: ArrayLike | None = None,
    tol: float = 1e-7,
    center: ArrayLike | None = None,
    walk_steps: int = 200,
    affine_iters: int = 8,
    reduced_rows: int = 512,
    chunk: int = 64,
    on_unverified: str = "raise",
) -> RedundancyResult:
    r"""Redundant rows (eq. 18, sequential removal), output-sensitive and certified.

    Same definition and answer as :func:`redundant_rows_naive`, computed in phases:

    1. closed forms: zero rows (:math:`w_k = 0,\ b_k \ge 0`), rows implied by the box alone,
       and rows with a later (or never-removed) parallel row at least as tight (one
       multiplier);
    2. ray shooting from the Chebyshev centre :math:`c` (eq. 5): along :math:`-w_k` and along
       the Dikin direction :math:`-H^{-1} w_k`, :math:`H = \sum_i w_i w_i^T / s_i(c)^2` plus the
       box terms; the first hyperplane a ray hits (strictly before any other constraint) is
       non-redundant, witnessed by a point just past it;
    3. walks: unfinished Dikin rays slide along the constraints they hit, certifying every row
       any of them hits first;
    4. for the rows left, in natural order with the sequential :math:`\mathcal{C}^*_k`: an
       early-stopped affine-scaling probe (witness or dual bound), then eq. (18) restricted to
       the rows nearest the probe's iterate with constraint generation, then the full LP of
       eq. (18); LPs are solved with :func:`lrtools.solvers.ipm.lp_ipm` (scipy's HiGHS
       interior point as a fallback).

    Every witness and multiplier vector is verified in float64 (see the module docstring).

    Parameters
    ----------
    poly : Polytope
        The region; must be non-empty and full-dimensional (otherwise the naive method is used
        and ``info["fallback"]`` says so). A sparse ``A`` is densified.
    rows : array-like of int or bool mask, optional
        Candidate rows (default: all hyperplane rows); the others are never removed.
    tol : float, default=1e-7
        Row ``k`` is redundant iff :math:`y_k \ge -\text{tol}` (unit-norm rows).
    center : array-like of shape (d,), optional
        A strictly interior point to shoot from; default: the Chebyshev centre.
    walk_steps : int, default=200
        Maximum number of facets a walker slides along (0 disables phase 3).
    affine_iters : int, default=8
        Iterations of the affine-scaling probe per remaining row (0 disables it).
    reduced_rows : int, default=512
        Size of the row subset (smallest slacks at the probe's last iterate) of the reduced LPs
        tried before the full LP (0 disables them).
    chunk : int, default=64
        Walkers advanced together (memory ``chunk * walk_steps * d`` floats).
    on_unverified : {"raise", "record"}, default="raise"
        As in :func:`redundant_rows_naive`.

    Returns
    -------
    RedundancyResult
        ``info`` holds the counts of each phase, the centre and its radius.

    Raises
    ------
    ValueError, TypeError
        On malformed arguments or an empty region.
    SolverError
        When the centre cannot be computed, or an LP answer fails verification and
        ``on_unverified="raise"``.

    Notes
    -----
    A ray :math:`c + t\,v` from the interior point :math:`c` first meets constraint
    :math:`i` at :math:`t_i = s_i(c) / (-w_i^T v)` (over the rows with :math:`w_i^T v < 0` and the
    box faces). If the smallest time :math:`t_k` is strictly below the second smallest
    :math:`t_{(2)}`, the point :math:`c + \tfrac12 (t_k + t_{(2)})\, v` violates row :math:`k`
    and satisfies every other constraint, so row :math:`k` is non-redundant. Directions:

    .. math::

        v = -w_k \quad\text{and}\quad v = -H^{-1} w_k,\qquad
        H = \sum_i \frac{w_i w_i^T}{s_i(c)^2}
            + \operatorname{diag}\Big(\frac{1}{(c-\ell)^2} + \frac{1}{(u-c)^2}\Big),

    :math:`-H^{-1} w_k` being the direction that minimises :math:`w_k^T x` over the Dikin
    ellipsoid :math:`\{x : (x-c)^T H (x-c) \le 1\} \subset S`. A redundant row is never hit
    first: the rows left for LPs are the redundant ones plus the facets the rays missed, so the
    work follows the output, as in Clarkson's ray-shooting algorithm [2], not one LP per row.

    Examples
    --------
    >>> import numpy as np
    >>> from lrtools.polytope import Polytope
    >>> sq = Polytope.from_box(np.array([[1.0, 0], [-1, 0], [1, 1]]), np.array([0.5, 0.5, 3.0]))
    >>> r = redundant_rows(sq)
    >>> r.redundant.tolist(), r.kind.tolist()
    ([False, False, True], ['ray', 'ray', 'box'])
    """
    tested = _check_common(poly, rows, tol, on_unverified)
    check_scalar(walk_steps, "walk_steps", int, min_val=0)
    check_scalar(affine_iters, "affine_iters", int, min_val=0)
    check_scalar(reduced_rows, "reduced_rows", int, min_val=0)
    check_scalar(chunk, "chunk", int, min_val=1)
    t0 = time.perf_counter()
    nrows = _normalise(poly)
    _check_nonempty(nrows)
    rec = _Record(nrows, tested, tol)
    info = _closed_form(rec, tol)
    pre_red = rec.redundant.copy()
    seconds = {"closed_form": time.perf_counter() - t0}
    t1 = time.perf_counter()
    center, radius = _center(poly, nrows, center)
    seconds["center"] = time.perf_counter() - t1
    info.update(center=center, radius=radius)
    if radius <= 0.0:
        naive = redundant_rows_naive(poly, rows=tested, tol=tol, on_unverified=on_unverified)
        naive.info.update(info, fallback="naive (region not full-dimensional)")
        return naive
    hit = np.flatnonzero(~nrows.zero & ~pre_red & (nrows.norms > 0))
    scene = _RayScene(nrows, hit, pre_red)
    t1 = time.perf_counter()
    info.update(_ray_phase(rec, scene, center, tol, walk_steps, chunk))
    seconds["rays"] = time.perf_counter() - t1
    t1 = time.perf_counter()
    info.update(_lp_phase(rec, center, tol, affine_iters, reduced_rows, on_unverified))
    seconds["lp"] = time.perf_counter() - t1
    seconds["total"] = time.perf_counter() - t0
    return rec.result("fast", info["n_lp"], seconds, info)


def _center(poly: Polytope, rows: _Rows, center) -> tuple[np.ndarray, float]:
    """The interior point (given or Chebyshev) and its distance to the nearest constraint."""
    if center is None:
        res = _interior_point(poly)
        x = np.asarray(res.center, dtype=np.float64)
    else:
        x = np.asarray(center, dtype=np.float64)
        if x.shape != (poly.dim,):
            raise ValueError(f"center must have shape ({poly.dim},); got {x.shape}.")
    nz = np.flatnonzero(~rows.zero)
    slack = np.concatenate([rows.slack(nz, x), x - rows.lo, rows.hi - x])
    radius = float(slack.min(initial=np.inf))
    if center is not None and radius <= 0.0:
        raise ValueError(f"center is not strictly inside the region (smallest slack {radius:.3g}).")
    return x, radius


# --------------------------------------------------------------------------- verification


def verify_redundancy(poly: Polytope, result: RedundancyResult) -> dict[str, int]:
    r"""Check every certificate of ``result`` against ``poly``, independently of the solvers.

    For each tested row ``k`` the present set :math:`\mathcal{C}^*_k` is rebuilt from
    ``result.redundant`` (rows redundant before ``k`` are absent; for naive results, also
    ``info["removed"]``). Witnesses must lie in the box, satisfy every present row (unit-norm
    slack >= 0 in float64) and violate row ``k`` by more than ``tol``; multipliers must be
    non-negative, on present rows, and give a weak-duality bound >= -tol; zero rows need
    ``b >= 0``.

    Returns
    -------
    dict
        Number of rows checked per kind; kinds ``lp``/``unverified`` are counted, not checked.

    Raises
    ------
    SolverError
        On the first certificate that fails.
    """
    rows = _normalise(poly)
    removed = result.info.get("removed")
    checked: dict[str, int] = {}
    for k in np.flatnonzero(result.tested):
        kind = str(result.kind[k])
        rec_mask = ~(result.redundant & (np.arange(rows.m) < k)) & (np.arange(rows.m) != k)
        if removed is not None:
            rec_mask &= ~removed
        present = np.flatnonzero(rec_mask & ~rows.zero)
        ok = _check_row(rows, k, kind, result, present, rec_mask)
        if not ok:
            raise SolverError(f"redundancy certificate of row {k} (kind {kind!r}) failed "
                              f"verification on {rows.m} rows x {rows.A.shape[1]} dims.")
        checked[kind] = checked.get(kind, 0) + 1
    return checked


def _check_row(rows, k, kind, result, present, present_mask) -> bool:
    tol = result.tol
    if kind == "zero":
        return bool(rows.zero[k] and rows.b[k] >= 0 and result.redundant[k])
    if kind in ("box", "duplicate", "dual"):
        idx, lam_raw = result.multipliers[int(k)]
        if np.any(lam_raw < 0) or not np.all(present_mask[idx]):
            return False
        lam = lam_raw * rows.norms[idx] / rows.norms[k]
        return bool(result.redundant[k] and _dual_bound(rows, k, idx, lam) >= -tol)
    if kind in ("ray", "witness"):
        w = result.witness[k]
        return bool(not result.redundant[k] and _is_witness(rows, k, w, present, tol))
    return kind in ("lp", "unverified")
