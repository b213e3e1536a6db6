r"""Insphere (Chebyshev centre) of a polytope: eq. (5) of [1].

.. math::

    \max_{\bar x, r}\; r \quad\text{s.t.}\quad
    w_i^T \bar x - r\|w_i\| + b_i \ge 0 \;\;\forall i,\qquad
    \ell + r \le \bar x \le u - r.

The reference formulation is written in cvxpy and solved with Clarabel; ``method="highs"``
solves the same LP with HiGHS's interior point (an independent solver, used to cross-check);
``method="ipm"`` solves it with the numpy interior-point method :func:`lrtools.solvers.ipm.lp_ipm`
(10-30x faster than the reference on MNIST-size regions) and certifies the radius with the
dual bound :func:`insphere_dual_bound`; ``method="auto"`` (the default) runs ``"ipm"`` and falls
back to the reference when any check fails. Every answer is verified by :func:`verify_insphere`
before it is returned.

References
----------
.. [1] X. Zhang and D. Wu, ICLR 2020, Section 3.2.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse

from .._validation import check_choice, check_scalar
from ..exceptions import SolverError
from ..polytope import Polytope
from ._kernel import region_memo, zero_columns
from ._lp import FALLBACKS, solve_lp
from .ipm import LPResult, lp_ipm

__all__ = [
    "InsphereResult",
    "fallback_counts",
    "insphere",
    "insphere_cvxpy",
    "insphere_dual_bound",
    "insphere_highs",
    "insphere_ipm",
    "reset_fallback_counts",
    "verify_insphere",
]


@dataclass(frozen=True)
class InsphereResult:
    """Centre, radius and provenance of an insphere.

    Attributes
    ----------
    center : ndarray of shape (d,)
    radius : float
    method : str
        Solver that produced the answer (``"clarabel"``, ``"highs"``, ...).
    status : str
        The solver's own status string.
    seconds : float
        Wall-clock time of the solve.
    max_violation : float
        Largest violation of ``slack_i >= r ||w_i||`` (box rows included) at the answer,
        measured in float64 after the solve.
    info : dict
        Solver-specific extras (iterations, fallbacks, ...).
    """

    center: np.ndarray
    radius: float
    method: str
    status: str
    seconds: float
    max_violation: float
    info: dict = field(default_factory=dict)


def verify_insphere(
    poly: Polytope, center: np.ndarray, radius: float, *, tol: float = 1e-7
) -> float:
    """Check that the ball ``B(center, radius)`` lies in ``poly``; return the largest violation.

    The ball lies inside iff every hyperplane slack is at least ``radius * ||w_i||`` and the
    centre is at least ``radius`` from each box face (the constraints of eq. 5).

    Raises
    ------
    SolverError
        If a constraint is violated by more than ``tol`` (relative to ``1 + |b_i|``), or the
        radius is negative.
    """
    if not np.isfinite(radius) or radius < -tol:
        raise SolverError(f"insphere radius {radius!r} is not a finite non-negative number.")
    slack = poly.slack(center) - radius * poly.row_norms
    box = np.minimum(center - poly.lo, poly.hi - center) - radius
    scale = 1.0 + np.abs(poly.b)
    viol = max(float(np.max(-slack / scale, initial=0.0)), float(np.max(-box, initial=0.0)))
    if viol > tol:
        raise SolverError(
            f"insphere answer violates eq. 5 by {viol:.3g} (tolerance {tol:g}) on a polytope with "
            f"{poly.n_rows} rows in {poly.dim} dimensions."
        )
    return viol


def insphere_cvxpy(poly: Polytope, *, solver: str = "CLARABEL", **solver_opts) -> InsphereResult:
    """Reference: eq. (5) written in cvxpy, solved with Clarabel (or another conic solver).

    Parameters
    ----------
    poly : Polytope
    solver : str, default="CLARABEL"
        A cvxpy solver name.
    **solver_opts
        Passed to ``Problem.solve``.
    """
    import cvxpy as cp

    d = poly.dim
    x = cp.Variable(d)
    r = cp.Variable()
    norms = poly.row_norms
    cons = [poly.A @ x - r * norms + poly.b >= 0, poly.lo + r <= x, x <= poly.hi - r]
    prob = cp.Problem(cp.Maximize(r), cons)
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():  # cvxpy's inaccuracy warning: the status is checked
            warnings.simplefilter("ignore", UserWarning)
            prob.solve(solver=solver, **solver_opts)
    except cp.error.SolverError as exc:
        raise SolverError(
            f"insphere (eq. 5) failed in cvxpy+{solver} on {poly.n_rows} rows x {d} dims: {exc}"
        ) from exc
    seconds = time.perf_counter() - t0
    if prob.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) or x.value is None:
        raise SolverError(
            f"insphere (eq. 5) in cvxpy+{solver}: status {prob.status} on {poly.n_rows} rows x "
            f"{d} dims."
        )
    center, radius = np.asarray(x.value, dtype=np.float64), float(r.value)
    viol = verify_insphere(poly, center, radius, tol=1e-6)
    lam = [np.asarray(con.dual_value, dtype=np.float64) for con in cons]
    info = {"dual_bound": insphere_dual_bound(poly, *lam)}
    return InsphereResult(center, radius, solver.lower(), prob.status, seconds, viol, info)


def insphere_highs(poly: Polytope, *, method: str = "highs-ipm") -> InsphereResult:
    """Independent reference: the LP of eq. (5) with HiGHS (``scipy.optimize.linprog``).

    Variables are ``(x, r)``; we minimise ``-r`` subject to
    ``-A x + ||w|| r <= b``, ``-x + r <= -lo``, ``x + r <= hi``, ``r >= 0``.

    Parameters
    ----------
    poly : Polytope
    method : {"highs-ipm", "highs-ds", "highs"}, default="highs-ipm"
        HiGHS's interior point (IPX) by default: its dual simplex (which ``"highs"`` may
        choose) did not finish in 420 s on a paper-size MNIST region.
    """
    check_choice(method, "method", ("highs-ipm", "highs-ds", "highs"))
    d = poly.dim
    A = sparse.csr_matrix(poly.A)
    eye = sparse.identity(d, format="csr")
    ones = np.ones((d, 1))
    G = sparse.vstack(
        [
            sparse.hstack([-A, poly.row_norms[:, None]]),
            sparse.hstack([-eye, ones]),
            sparse.hstack([eye, ones]),
        ],
        format="csr",
    )
    h = np.concatenate([poly.b, -poly.lo, poly.hi])
    c = np.zeros(d + 1)
    c[-1] = -1.0
    bounds = np.column_stack([np.full(d + 1, -np.inf), np.full(d + 1, np.inf)])
    bounds[d, 0] = 0.0
    res = solve_lp(c, G, h, bounds, method=method, feas_tol=1e-6)
    if not res.success:
        raise SolverError(
            f"insphere (eq. 5) with scipy {method}: status {res.status} ({res.raw_status}) "
            f"on {poly.n_rows} rows x {d} dims."
        )
    center, radius = res.x[:d], float(res.x[d])
    viol = verify_insphere(poly, center, radius, tol=1e-6)
    m, lam = poly.n_rows, res.lam
    info = {"dual_bound": insphere_dual_bound(poly, lam[:m], lam[m : m + d], lam[m + d :]),
            "iterations": res.iterations}
    return InsphereResult(center, radius, method, res.raw_status, res.seconds, viol, info)


def insphere_dual_bound(
    poly: Polytope, lam_rows: np.ndarray, lam_lo: np.ndarray, lam_hi: np.ndarray
) -> float:
    r"""Certified upper bound on the inradius of eq. (5) from any dual multipliers.

    For multipliers :math:`\lambda \ge 0` of the hyperplane rows and of the two box faces
    (negative entries are clipped to zero, which keeps the bound valid), weak duality gives

    .. math::

        r^* \le b^T\lambda_A - \ell^T\lambda_\ell + u^T\lambda_u
        + \sum_j \max(g_j \ell_j,\, g_j u_j) + \max(g_r, 0)\,\tfrac{1}{2}\min_j (u_j - \ell_j),

    with :math:`g = A^T\lambda_A + \lambda_\ell - \lambda_u` and
    :math:`g_r = 1 - \sum_i \lambda_{A,i}\|w_i\| - \mathbf{1}^T(\lambda_\ell + \lambda_u)`,
    the coefficients of :math:`\bar x` and :math:`r` in the Lagrangian; they vanish for exactly
    dual-feasible multipliers, when the bound is the dual objective. At the optimum the bound
    equals the radius, so ``bound - radius`` certifies how far a radius is from optimal. The
    bound holds whenever the region is non-empty (:math:`r^* \ge 0`).

    Parameters
    ----------
    poly : Polytope
    lam_rows : ndarray of shape (m,)
        Multipliers of :math:`w_i^T\bar x - r\|w_i\| + b_i \ge 0`.
    lam_lo, lam_hi : ndarray of shape (d,)
        Multipliers of :math:`\bar x - r \ge \ell` and :math:`u - \bar x - r \ge 0`.

    Returns
    -------
    float
        An upper bound on the inradius.
    """
    lam_a, lam_lo, lam_hi = (np.maximum(np.ravel(v), 0.0) for v in (lam_rows, lam_lo, lam_hi))
    g = poly.A.T @ lam_a + lam_lo - lam_hi
    g_r = 1.0 - poly.row_norms @ lam_a - lam_lo.sum() - lam_hi.sum()
    r_max = 0.5 * float(np.min(poly.hi - poly.lo))
    value = poly.b @ lam_a - poly.lo @ lam_lo + poly.hi @ lam_hi
    slack = np.maximum(g * poly.lo, g * poly.hi).sum() + max(g_r, 0.0) * r_max
    return float(value + slack)


def _insphere_lp(poly: Polytope, sparse_below: float):
    r"""Eq. (5) as ``min -r s.t. G (x, r) <= h`` with unit-norm hyperplane rows.

    Rows with :math:`w_i = 0` are dropped (they read :math:`b_i \ge 0`); a row of ``G`` is
    :math:`(-w_i^T/\|w_i\|,\ 1)`, then :math:`(-e_j^T, 1)` and :math:`(e_j^T, 1)` for the box.
    A coordinate that no hyperplane row uses (an all-zero column: a pixel that no unit of a
    CNN sees, such as the last row and column of the Table 3 CNN's 32 x 32 inputs) meets
    only its box, :math:`r \le (u_j - \ell_j)/2` at :math:`x_j = (\ell_j + u_j)/2`: it is
    left out of the LP, except the one of narrowest box when that bound is the tightest.
    Returns ``(c, G, h, keep, cols)`` with ``keep`` the hyperplane rows used and ``cols`` the
    coordinates of the LP's ``x``.
    """
    norms = poly.row_norms
    zero = norms == 0.0
    if np.any(poly.b[zero] < 0):
        i = int(np.flatnonzero(zero & (poly.b < 0))[0])
        raise SolverError(
            f"insphere (eq. 5): the polytope is empty: row {i} has w_i = 0 and b_i = "
            f"{poly.b[i]:.3g} < 0 ({poly.n_rows} rows x {poly.dim} dims)."
        )
    keep = np.flatnonzero(~zero)
    A = poly.A[keep] if keep.size < poly.n_rows else poly.A
    # zero rows add no column: the region's own A, whose zero columns are memoised per region
    cols = _lp_columns(region_memo(poly.A, ("zero_columns",), zero_columns), poly.lo, poly.hi)
    d = cols.size
    lo, hi = poly.lo[cols], poly.hi[cols]
    inv = 1.0 / norms[keep]
    ones = np.ones((keep.size, 1))
    box_ones = np.ones((d, 1))
    use_sparse = sparse.issparse(A) or np.count_nonzero(A) < sparse_below * A.size
    if use_sparse:
        rows = sparse.diags(-inv) @ sparse.csr_matrix(A)
        if d < poly.dim:
            rows = rows[:, cols]
        eye = sparse.identity(d, format="csr")
        G = sparse.bmat([[rows, ones], [-eye, box_ones], [eye, box_ones]], format="csr")
    else:
        eye = np.eye(d)
        Ac = A if d == poly.dim else A[:, cols]
        G = np.block([[Ac * -inv[:, None], ones], [-eye, box_ones], [eye, box_ones]])
    h = np.concatenate([poly.b[keep] * inv, -lo, hi])
    c = np.zeros(d + 1)
    c[-1] = -1.0
    return c, G, h, keep, cols


def _lp_columns(zero: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Coordinates the insphere LP keeps (:func:`_insphere_lp`): all but the ``zero`` columns
    of A, plus the zero one of narrowest box when its half-width is below every used one's."""
    d = lo.size
    used = np.ones(d, dtype=bool)
    used[zero] = False
    if used.all():
        return np.arange(d)
    half = 0.5 * (hi - lo)
    free = np.flatnonzero(~used)
    j = free[np.argmin(half[free])]
    if not used.any() or half[j] < half[used].min():
        used[j] = True
    return np.flatnonzero(used)


def _auto_keep(poly: Polytope, G, keep: np.ndarray) -> int | None:
    """``n_keep="auto"`` of :func:`insphere_ipm`.

    MLP regions (a dense LP): ``max(1.25 (d + 1), 256)`` rows when there are more than 1.5
    times as many (983 of 3,072 on MNIST). Convolutional regions (a sparse LP): the
    convolution rows form support groups of the normal matrix and give it full rank, so, as in
    eq. 6 (:func:`lrtools.solvers.maxprob.max_log_prob_ipm`), a quarter of the wide dense rows
    and at least 256 (the Table 3 CNN: 256 of its 1,024 dense-layer rows; 10.2-10.3 CPU-s
    instead of 13.1-13.9 s exact on two regions, 20-21 iterations either way, radii within
    1e-11).
    """
    if sparse.issparse(G):
        A = poly.A[keep] if keep.size < poly.n_rows else poly.A
        nnz = np.diff(A.indptr) if sparse.issparse(A) else np.count_nonzero(A, axis=1)
        return max(int(np.sum(nnz > 0.5 * poly.dim)) // 4, 256)
    n_keep = max(int(1.25 * (poly.dim + 1)), 256)
    return n_keep if keep.size > 1.5 * n_keep else None


def _ipm_failure(poly: Polytope, res: LPResult, what: str) -> SolverError:
    return SolverError(
        f"insphere (eq. 5) with the numpy IPM: {what}; status {res.status} after "
        f"{res.iterations} iterations (primal residual {res.primal_residual:.2e}, dual residual "
        f"{res.dual_residual:.2e}, relative gap {res.rel_gap:.2e}) on {poly.n_rows} rows x "
        f"{poly.dim} dims."
    )


def insphere_ipm(
    poly: Polytope,
    *,
    tol: float = 1e-9,
    max_iter: int = 100,
    certify_rtol: float = 1e-8,
    certify_atol: float = 1e-12,
    sparse_below: float = 0.5,
    threads: int | None = None,
    n_keep: int | str | None = "auto",
    device: str | None = None,
) -> InsphereResult:
    r"""Eq. (5) with the numpy interior-point method, certified by primal and dual checks.

    The LP of eq. (5) with hyperplane rows scaled to unit norm is solved by
    :func:`lrtools.solvers.ipm.lp_ipm`. The answer is returned only if (i) the ball lies in
    the polytope (:func:`verify_insphere`) and (ii) the dual multipliers, mapped back to the
    unscaled rows, give an upper bound (:func:`insphere_dual_bound`) with

    .. math::

        |\text{bound} - r| \le \text{certify\_rtol}\cdot r + \text{certify\_atol},

    so the radius is certified optimal. The certificate decides, not the LP's own stopping
    test: when :func:`lp_ipm` stalls (or reaches ``max_iter``) its best iterate is returned
    if it is primal feasible to ``max(tol, 1e-9)`` and passes both checks
    (``info["lp_status"]`` keeps the LP's status). When the LP converged but the dual bound
    misses, because the dual residual summed over the ``d`` box columns exceeds the
    certificate's tolerance (seen on a trained MNIST region: residual 1e-10 per column, bound
    8e-9 above the radius), the LP is solved once more with ``tol / 100`` (``info["lp_tol"]``).

    Parameters
    ----------
    poly : Polytope
    tol : float, default=1e-9
        Tolerance of :func:`lp_ipm` (residuals and relative gap).
    max_iter : int, default=100
        Iteration limit of :func:`lp_ipm`.
    certify_rtol, certify_atol : float, default=1e-8, 1e-12
        Allowed distance between the radius and its dual bound.
    sparse_below : float, default=0.5
        Hyperplane matrices with a smaller fraction of non-zeros (CNN regions) are passed to the
        IPM in sparse form, where its dense rows become a BLAS block.
    threads : int or None, default=None
        BLAS threads of :func:`lp_ipm` (``None``: unchanged; use 1 on shared cores).
    n_keep : int, "auto" or None, default="auto"
        Constraint reduction of :func:`lp_ipm` (the heaviest dense rows build the normal
        matrix); ``"auto"`` keeps ``max(1.25 (d + 1), 256)`` rows when the region has more
        than 1.5 times as many (MLP regions: 983 of 3,072 on MNIST) and a quarter of the
        dense rows, at least 256, on convolutional regions; ``None`` always uses the
        exact matrix. Speed only: the answer is certified either way.
    device : {None, "numpy", "cpu", "cuda"}, default=None
        Linear-algebra device of :func:`lp_ipm`.

    Returns
    -------
    InsphereResult
        ``method="ipm"``, ``status="optimal"``; ``info`` holds ``iterations``, the residuals,
        ``dual_bound``, ``certified_gap`` (``dual_bound - radius``) and ``lp_status``.

    Raises
    ------
    SolverError
        If the IPM does not converge, the polytope is empty, or either check fails.
    """
    check_scalar(certify_rtol, "certify_rtol", float, min_val=0.0)
    check_scalar(certify_atol, "certify_atol", float, min_val=0.0)
    t0 = time.perf_counter()
    c, G, h, keep, cols = _insphere_lp(poly, sparse_below)
    if n_keep == "auto":
        n_keep = _auto_keep(poly, G, keep)
    d, k = cols.size, keep.size
    lp_tol, retried = tol, False
    while True:
        res = lp_ipm(c, G, h, tol=lp_tol, max_iter=max_iter, gap_atol=0.1 * certify_atol,
                     threads=threads, n_keep=n_keep, device=device)
        if not (res.success or _certifiable_stall(res, lp_tol)):
            raise _ipm_failure(poly, res, "no certified optimum")
        center = 0.5 * (poly.lo + poly.hi)  # coordinates left out of the LP: their centre
        center[cols] = res.y[:d]
        radius = float(res.y[d])
        if radius < -certify_atol:
            raise _ipm_failure(poly, res,
                               f"the polytope is empty (largest r in eq. 5 is {radius:.3g})")
        radius = max(radius, 0.0)  # in [-certify_atol, 0): a degenerate region, r = 0
        viol = verify_insphere(poly, center, radius, tol=1e-7)
        lam_rows = np.zeros(poly.n_rows)
        lam_rows[keep] = res.lam[:k] / poly.row_norms[keep]
        lam_lo, lam_hi = np.zeros(poly.dim), np.zeros(poly.dim)  # 0 on the left-out ones
        lam_lo[cols], lam_hi[cols] = res.lam[k : k + d], res.lam[k + d :]
        bound = insphere_dual_bound(poly, lam_rows, lam_lo, lam_hi)
        gap = bound - radius
        if abs(gap) <= certify_rtol * abs(radius) + certify_atol:
            break
        if retried or lp_tol <= _RETRY_TOL_FLOOR:
            raise _ipm_failure(poly, res, f"dual certificate failed (bound {bound!r} vs r "
                                          f"{radius!r}){' after a retry' if retried else ''}")
        # the LP met its tolerance, but its dual residual, summed over the d box columns of
        # the bound, is above the certificate's: once more with a 100x tighter tolerance
        lp_tol, retried = max(lp_tol * 1e-2, _RETRY_TOL_FLOOR), True
    info = {
        "iterations": res.iterations,
        "primal_residual": res.primal_residual,
        "dual_residual": res.dual_residual,
        "rel_gap": res.rel_gap,
        "dual_bound": bound,
        "certified_gap": gap,
        "n_dense_rows": res.info["n_dense_rows"],
        "n_keep": n_keep,
        "n_exact_newton": res.info.get("n_exact_newton", 0),
        "fallback": False,
        "lp_status": res.status,
        "lp_tol": lp_tol,
    }
    seconds = time.perf_counter() - t0
    return InsphereResult(center, radius, "ipm", "optimal", seconds, viol, info)


def _certifiable_stall(res: LPResult, tol: float) -> bool:
    """Whether a stalled (or iteration-limited) LP answer may still be certified: its best
    iterate is primal feasible to ``max(tol, 1e-9)`` (a converged answer's standard at the
    default ``tol``), so the ball check and the dual bound decide.

    Seen on a BN MNIST region: both runs reached a relative gap of 2e-9 (``tol`` 1e-9), then
    drifted as the Cholesky shifts grew, and the region fell back to Clarabel (27 s).
    """
    return res.status in ("stalled", "max_iter") and res.primal_residual <= max(tol, 1e-9)


_RETRY_TOL_FLOOR = 1e-13  # the LP tolerance of insphere_ipm's retry is never below this
_METHODS = {"auto": None, "ipm": insphere_ipm, "clarabel": insphere_cvxpy, "highs": insphere_highs}
_COUNT_KEYS = ("auto_calls", "fallbacks", "failures")  # kept in the solvers' one counter


def fallback_counts() -> dict[str, int]:
    """How often ``insphere(method="auto")`` ran, fell back to Clarabel, and failed outright."""
    return {key: FALLBACKS[f"insphere_{key}"] for key in _COUNT_KEYS}


def reset_fallback_counts() -> None:
    """Set every counter of :func:`fallback_counts` to zero."""
    for key in _COUNT_KEYS:
        FALLBACKS[f"insphere_{key}"] = 0


def _insphere_auto(poly: Polytope, **options) -> InsphereResult:
    """The IPM, verified; on any failure the cvxpy + Clarabel reference (counted).

    With fewer hyperplanes than dimensions (a narrow CNN on large images) the order is
    reversed: the IPM's dense ``d x d`` normal matrix then costs more than Clarabel's sparse
    factorisation (1,380 rows x 3,072 dims: 13 s against 4.3 s on 2 cores).
    """
    FALLBACKS["insphere_auto_calls"] += 1
    solvers = [
        ("IPM", lambda: insphere_ipm(poly, **options)),
        ("Clarabel", lambda: insphere_cvxpy(poly)),
    ]
    if poly.n_rows < poly.dim:
        solvers.reverse()
    (name1, first), (name2, second) = solvers
    try:
        res = first()
        res.info.setdefault("fallback", False)
        return res
    except SolverError as exc:
        reason = str(exc)
    FALLBACKS["insphere_fallbacks"] += 1
    try:
        ref = second()
    except SolverError as exc:
        FALLBACKS["insphere_failures"] += 1
        raise SolverError(
            f"insphere (eq. 5) failed with both solvers. {name1}: {reason} {name2}: {exc}"
        ) from exc
    ref.info.update(fallback=True, fallback_reason=reason)
    return ref


def insphere(poly: Polytope, *, method: str = "auto", **options) -> InsphereResult:
    """Insphere of ``poly`` (eq. 5), verified.

    Parameters
    ----------
    poly : Polytope
        The region, e.g. ``linear_region(model, x).polytope``.
    method : {"auto", "ipm", "clarabel", "highs"}, default="auto"
        ``"auto"``: :func:`insphere_ipm`, falling back to the cvxpy + Clarabel reference when
        the IPM fails or its answer fails the primal or dual check (the other way round when
        the region has fewer hyperplanes than dimensions) (``info["fallback"]`` and
        ``info["fallback_reason"]`` record it; :func:`fallback_counts` counts it).
        ``"ipm"``: :func:`insphere_ipm` only. ``"clarabel"``: the cvxpy reference.
        ``"highs"``: HiGHS's interior point (:func:`insphere_highs`).
    **options
        Keyword arguments of the chosen solver function (of :func:`insphere_ipm` for
        ``"auto"``), e.g. ``max_iter``.

    Returns
    -------
    InsphereResult

    Raises
    ------
    SolverError
        When the solver fails or its answer fails verification (for ``"auto"``: when both the
        IPM and the reference fail; the message gives both reasons).

    Examples
    --------
    >>> import numpy as np
    >>> from lrtools.polytope import Polytope
    >>> square = Polytope(np.zeros((0, 2)), np.zeros(0), np.zeros(2), np.full(2, 2.0))
    >>> round(insphere(square).radius, 9)
    1.0
    """
    check_choice(method, "method", _METHODS)
    if not isinstance(poly, Polytope):
        raise TypeError(f"poly must be a Polytope; got {type(poly).__name__}.")
    if method == "auto":
        return _insphere_auto(poly, **options)
    return _METHODS[method](poly, **options)
