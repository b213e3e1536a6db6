r"""One front for the linear programs of :mod:`lrtools.solvers` (eq. 5, the margin LP, eq. 18).

.. math::

    \min_v\; c^T v \quad\text{s.t.}\quad G v \le h,\qquad \ell \le v \le u,

solved by one of the back-ends ``"ipm"`` (:func:`lrtools.solvers.ipm.lp_ipm`, the bounds as
rows), ``"highs-ipm"``, ``"highs-ds"``, ``"highs"`` (``scipy.optimize.linprog``) or
``"clarabel"`` (cvxpy). Every back-end's answer comes back as one :class:`LPSolution` with
multipliers :math:`\lambda \ge 0` of the rows of ``G`` and one status vocabulary
(:data:`STATUS_MAP`, in the manner of cvxpy's ``clarabel_conif.STATUS_MAP``), and passes one
post-solve check, :func:`check_result` (in the manner of scipy's ``_linprog_util._check_result``):
a solution that claims success but violates the constraints in float64 is re-labelled
``"check_failed"``. :data:`FALLBACKS` counts every fallback from a fast path to a reference.
"""

from __future__ import annotations

import time
import warnings
from collections import Counter
from dataclasses import dataclass, field, replace

import numpy as np
from scipy import sparse

__all__ = [
    "FALLBACKS",
    "LP_METHODS",
    "STATUS_MAP",
    "LPSolution",
    "check_result",
    "lp_lower_bound",
    "record_fallback",
    "solve_lp",
]

#: Back-ends of :func:`solve_lp`.
LP_METHODS = ("ipm", "highs-ipm", "highs-ds", "highs", "clarabel")

#: Every back-end status, mapped onto one vocabulary: ``optimal``, ``inaccurate``,
#: ``infeasible``, ``unbounded``, ``iteration_limit``, ``stalled``, ``numerical_error``,
#: ``stopped`` (by the caller's early stop), plus ``check_failed`` (set by
#: :func:`check_result`) and ``solver_error`` (the back-end raised).
STATUS_MAP = {
    # lrtools.solvers.ipm.lp_ipm
    "ipm:optimal": "optimal",
    "ipm:max_iter": "iteration_limit",
    "ipm:stalled": "stalled",
    "ipm:numerical_error": "numerical_error",
    "ipm:stopped": "stopped",
    "ipm:primal_infeasible": "infeasible",
    "ipm:dual_infeasible": "unbounded",
    # scipy.optimize.linprog status codes (HiGHS)
    "linprog:0": "optimal",
    "linprog:1": "iteration_limit",
    "linprog:2": "infeasible",
    "linprog:3": "unbounded",
    "linprog:4": "numerical_error",
    # cvxpy problem statuses
    "cvxpy:optimal": "optimal",
    "cvxpy:optimal_inaccurate": "inaccurate",
    "cvxpy:infeasible": "infeasible",
    "cvxpy:infeasible_inaccurate": "infeasible",
    "cvxpy:unbounded": "unbounded",
    "cvxpy:unbounded_inaccurate": "unbounded",
    "cvxpy:user_limit": "iteration_limit",
    "cvxpy:solver_error": "solver_error",
}

#: Fallbacks from a fast path to a reference solver, by name (``"max_log_prob"``,
#: ``"margin_lp"``, ``"insphere_fallbacks"``, ``"redundancy_lp"``, ...).
FALLBACKS: Counter = Counter()


def record_fallback(name: str) -> None:
    """Count one fallback under ``name`` in :data:`FALLBACKS`."""
    FALLBACKS[name] += 1


@dataclass(frozen=True)
class LPSolution:
    """An LP answer of any back-end, in one form.

    Attributes
    ----------
    x : ndarray of shape (n,) or None
        Primal point (None when the back-end returned none).
    lam : ndarray of shape (m,)
        Multipliers :math:`\\lambda \\ge 0` of ``G v <= h`` (zeros when none were returned).
    value : float
        :math:`c^T x` (NaN without ``x``).
    status : str
        One of the values of :data:`STATUS_MAP`, ``"check_failed"`` or ``"solver_error"``.
    success : bool
        ``status == "optimal"`` and the check of :func:`check_result` passed.
    backend : str
        The method used.
    raw_status : str
        The back-end's own status.
    iterations : int
    seconds : float
    primal_violation : float
        :math:`\\max(0, \\max(Gx - h)/(1 + \\|h\\|_\\infty), \\text{bound violation})`.
    info : dict
    """

    x: np.ndarray | None
    lam: np.ndarray
    value: float
    status: str
    success: bool
    backend: str
    raw_status: str
    iterations: int = 0
    seconds: float = 0.0
    primal_violation: float = np.nan
    info: dict = field(default_factory=dict)


def _bounds_array(bounds, n: int) -> np.ndarray:
    if bounds is None:
        return np.column_stack([np.full(n, -np.inf), np.full(n, np.inf)])
    b = np.asarray(bounds, dtype=np.float64)
    if b.shape != (n, 2):
        raise ValueError(f"bounds must have shape ({n}, 2); got {b.shape}.")
    return b


def lp_lower_bound(c, G, h, bounds, lam) -> float:
    r"""Weak-duality bound :math:`-\lambda^T h + \sum_k \min(r_k \ell_k, r_k u_k)`,
    :math:`r = c + G^T\lambda`, on :math:`\min c^T v` s.t. :math:`Gv \le h, \ell \le v \le u`.

    Valid for any :math:`\lambda` (negative entries are clipped to 0); ``-inf`` when an
    unbounded variable has a non-zero reduced cost.
    """
    lam = np.maximum(np.asarray(lam, dtype=np.float64), 0.0)
    r = np.asarray(c, dtype=np.float64) + G.T @ lam
    b = _bounds_array(bounds, r.size)
    with np.errstate(invalid="ignore"):
        box = np.minimum(r * b[:, 0], r * b[:, 1])
    box = np.where(r == 0, 0.0, box)
    return float(-lam @ h + np.sum(box))


def check_result(sol: LPSolution, c, G, h, bounds, *, feas_tol: float = 1e-7) -> LPSolution:
    """Measure the primal violation of ``sol`` in float64; a failing success becomes
    ``"check_failed"`` (one post-solve check for every back-end)."""
    if sol.x is None:
        return replace(sol, success=False)
    x = sol.x
    b = _bounds_array(bounds, x.size)
    viol_rows = float(np.max(G @ x - h, initial=0.0)) / (1.0 + float(np.max(np.abs(h),
                                                                           initial=0.0)))
    viol_box = float(max(np.max(b[:, 0] - x, initial=0.0), np.max(x - b[:, 1], initial=0.0)))
    viol = max(viol_rows, viol_box, 0.0)
    finite = bool(np.all(np.isfinite(x)))
    ok = sol.status == "optimal" and finite and viol <= feas_tol
    status = sol.status if ok or sol.status != "optimal" else "check_failed"
    info = dict(sol.info)
    if status == "check_failed":
        info["check"] = f"primal violation {viol:.3g} > {feas_tol:g}" if finite else "non-finite"
    return replace(sol, success=ok, status=status, primal_violation=viol, info=info)


def solve_lp(c, G, h, bounds=None, *, method: str = "ipm", stop=None, feas_tol: float = 1e-7,
             options: dict | None = None) -> LPSolution:
    """Solve ``min c^T v s.t. G v <= h, bounds`` with one back-end, then :func:`check_result`.

    Parameters
    ----------
    c : ndarray of shape (n,)
    G : ndarray or sparse matrix of shape (m, n)
    h : ndarray of shape (m,)
    bounds : ndarray of shape (n, 2), optional
        ``[lo, hi]`` per variable (``inf`` allowed); default free.
    method : {"ipm", "highs-ipm", "highs-ds", "highs", "clarabel"}, default="ipm"
    stop : callable, optional
        ``stop(v, lam)`` for ``"ipm"`` (see :func:`lrtools.solvers.ipm.lp_ipm`).
    feas_tol : float, default=1e-7
        Primal violation accepted by :func:`check_result`.
    options : dict, optional
        Back-end options: keywords of ``lp_ipm``, the ``options`` of ``linprog``, or of
        cvxpy's ``solve``.

    Returns
    -------
    LPSolution
        Never raises for a solver failure: the status says what happened.
    """
    if method not in LP_METHODS:
        raise ValueError(f"Unknown LP method {method!r}; use one of {LP_METHODS}.")
    c = np.asarray(c, dtype=np.float64)
    h = np.asarray(h, dtype=np.float64)
    b = _bounds_array(bounds, c.size)
    t0 = time.perf_counter()
    if method == "ipm":
        sol = _solve_ipm(c, G, h, b, stop, options or {})
    elif method == "clarabel":
        sol = _solve_clarabel(c, G, h, b, options or {})
    else:
        sol = _solve_linprog(c, G, h, b, method, options or {})
    sol = replace(sol, seconds=time.perf_counter() - t0)
    return check_result(sol, c, G, h, b, feas_tol=feas_tol)


def _solve_ipm(c, G, h, b, stop, options) -> LPSolution:
    from .ipm import lp_ipm

    n, m = c.size, G.shape[0]
    lo_rows = np.flatnonzero(np.isfinite(b[:, 0]))
    hi_rows = np.flatnonzero(np.isfinite(b[:, 1]))
    if sparse.issparse(G):
        eye = sparse.identity(n, format="csr")
        G_full = sparse.vstack([sparse.csr_matrix(G), eye[hi_rows], -eye[lo_rows]], format="csr")
    else:  # dense rows stay dense: a CSR copy of a dense region costs more than the solve's
        eye = np.eye(n)  # products with it (0.36 s of a 1 s margin LP on a paper-size MNIST
        G_full = np.vstack([G, eye[hi_rows], -eye[lo_rows]])  # region); the box rows split off
    h_full = np.concatenate([h, b[hi_rows, 1], -b[lo_rows, 0]])
    res = lp_ipm(c, G_full, h_full, stop=stop, **options)
    status = STATUS_MAP[f"ipm:{res.status}"]
    return LPSolution(res.y, res.lam[:m], res.primal_objective, status, status == "optimal",
                      "ipm", res.status, res.iterations,
                      info={"rel_gap": res.rel_gap, "dual_residual": res.dual_residual,
                            "lam_bounds": res.lam[m:], **res.info})


def _solve_linprog(c, G, h, b, method, options) -> LPSolution:
    from scipy.optimize import linprog

    bounds = [(None if np.isinf(lo) else lo, None if np.isinf(hi) else hi) for lo, hi in b]
    res = linprog(c, A_ub=G, b_ub=h, bounds=bounds, method=method, options=options or None)
    status = STATUS_MAP.get(f"linprog:{res.status}", "solver_error")
    x = None if res.x is None else np.asarray(res.x, dtype=np.float64)
    lam = np.zeros(G.shape[0])
    if x is not None and getattr(res, "ineqlin", None) is not None:
        lam = -np.asarray(res.ineqlin.marginals, dtype=np.float64)  # HiGHS: d obj / d h <= 0
    value = float(c @ x) if x is not None else np.nan
    return LPSolution(x, lam, value, status, status == "optimal", method,
                      f"{res.status}: {res.message}", int(getattr(res, "nit", 0) or 0))


def _solve_clarabel(c, G, h, b, options) -> LPSolution:
    import cvxpy as cp

    v = cp.Variable(c.size)
    rows = G @ v <= h
    cons = [rows]
    lo, hi = np.isfinite(b[:, 0]), np.isfinite(b[:, 1])
    if lo.any():
        cons.append(v[np.flatnonzero(lo)] >= b[lo, 0])
    if hi.any():
        cons.append(v[np.flatnonzero(hi)] <= b[hi, 1])
    prob = cp.Problem(cp.Minimize(c @ v), cons)
    try:
        with warnings.catch_warnings():  # cvxpy's inaccuracy warning: the status is checked
            warnings.simplefilter("ignore", UserWarning)
            prob.solve(solver=cp.CLARABEL, **options)
    except cp.error.SolverError as exc:
        return LPSolution(None, np.zeros(G.shape[0]), np.nan, "solver_error", False, "clarabel",
                          str(exc))
    status = STATUS_MAP.get(f"cvxpy:{prob.status}", "solver_error")
    x = None if v.value is None else np.asarray(v.value, dtype=np.float64)
    lam = np.zeros(G.shape[0]) if rows.dual_value is None else \
        np.ravel(np.asarray(rows.dual_value, dtype=np.float64))
    value = float(c @ x) if x is not None else np.nan
    iters = int(getattr(prob.solver_stats, "num_iters", 0) or 0)
    return LPSolution(x, lam, value, status, status == "optimal", "clarabel", str(prob.status),
                      iters)
