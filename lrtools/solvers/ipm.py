r"""A primal-dual interior-point method for linear programs in inequality form.

Solves

.. math::

    \min_y\; c^T y \quad\text{s.t.}\quad G y \le h
    \qquad\text{and its dual}\qquad
    \max_{\lambda \ge 0}\; -h^T \lambda \quad\text{s.t.}\quad G^T \lambda + c = 0,

with Mehrotra's predictor-corrector method from an infeasible start. Each iteration solves
the normal equations :math:`G^T D G\,\Delta y = \text{rhs}`, :math:`D = \Lambda S^{-1}`, with a
dense Cholesky factorisation (LAPACK), both from the shared kernels of
:mod:`lrtools.solvers._kernel`: the rows of ``G`` are split once into dense rows (a BLAS
``syrk``), sparse rows (CSR; their part of :math:`G^T D G` is added in place) and box rows (a
diagonal and border), so constraint matrices that mix sparse convolution rows with dense
fully-connected rows (CNN regions, Appendix E of [1]) and polytopes with many box rows stay
fast. ``n_keep`` builds the matrix from the heaviest dense rows only (constraint reduction).

The method never claims success unless, at the returned pair :math:`(y, \lambda)`,

.. math::

    \frac{\max(0, \max_i (G y - h)_i)}{1 + \|h\|_\infty} \le \text{feas\_tol},\qquad
    \frac{\|c + G^T\lambda\|_\infty}{1 + \|c\|_\infty} \le \text{feas\_tol},\qquad
    |c^T y + h^T \lambda| \le \text{tol}\cdot\max(|c^T y|, |h^T\lambda|) + \text{gap\_atol},

with :math:`\lambda > 0` by construction. Used for the insphere (eq. 5 of [1]) and reusable for
any LP (margins, redundancy, eq. 18).

References
----------
.. [1] X. Zhang and D. Wu, "Empirical Studies on the Properties of Linear Regions in Deep
   Neural Networks", ICLR 2020.
.. [2] S. Mehrotra, "On the implementation of a primal-dual interior point method", SIAM J.
   Optim. 2(4), 1992.
.. [3] J. Nocedal and S. J. Wright, *Numerical Optimization*, 2nd ed., Sec. 14.2, 2006.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse

from .._validation import check_array, check_scalar
from ._kernel import (
    NormalMatrix,
    blas_threads,
    centrality_correctors,
    cholesky,
    max_step,
    resolve_device,
)

__all__ = ["LPResult", "lp_ipm"]

_SHORT_STEP = 0.1  # a reduced step shorter than this is recomputed with the exact matrix


@dataclass(frozen=True)
class LPResult:
    """Solution of ``min c^T y s.t. G y <= h`` and its certificate.

    Attributes
    ----------
    y : ndarray of shape (n,)
        Primal solution; when ``success`` is False, the iterate of the lowest merit
        (largest of the relative residuals and gap) for ``"stalled"`` and ``"max_iter"``
        (``info["best_iteration"]`` gives its index when it is not the last), else the last.
    lam : ndarray of shape (m,)
        Dual multipliers :math:`\\lambda > 0`, one per row of ``G``.
    status : str
        ``"optimal"``, ``"max_iter"``, ``"stalled"``, ``"numerical_error"``, ``"stopped"`` (by
        the caller's ``stop``),
        ``"primal_infeasible"`` (a :math:`\\lambda \\ge 0` with :math:`G^T\\lambda \\approx 0`,
        :math:`h^T\\lambda < 0` was found) or ``"dual_infeasible"`` (a ray ``G u <= 0`` with
        ``c^T u < 0``: the LP is unbounded).
    success : bool
        True iff ``status == "optimal"``: every tolerance below was met.
    iterations : int
        Interior-point iterations performed.
    primal_objective, dual_objective : float
        :math:`c^T y` and :math:`-h^T\\lambda`.
    primal_residual : float
        :math:`\\max(0, \\max_i (Gy - h)_i) / (1 + \\|h\\|_\\infty)`.
    dual_residual : float
        :math:`\\|c + G^T\\lambda\\|_\\infty / (1 + \\|c\\|_\\infty)`.
    gap : float
        :math:`|c^T y + h^T \\lambda|`, the duality gap.
    rel_gap : float
        ``gap / max(|c^T y|, |h^T lambda|)`` (``inf`` when both are zero and the gap is not).
    seconds : float
        Wall-clock time.
    info : dict
        Extras: ``n_dense_rows``, ``n_sparse_rows``, ``regularizations`` (diagonal shifts used
        to factor a nearly singular normal matrix), ``seconds_factor``.
    """

    y: np.ndarray
    lam: np.ndarray
    status: str
    success: bool
    iterations: int
    primal_objective: float
    dual_objective: float
    primal_residual: float
    dual_residual: float
    gap: float
    rel_gap: float
    seconds: float
    info: dict = field(default_factory=dict)


class _Newton:
    """The normal matrix of one region and the solves of one iteration (shared kernels).

    With ``n_keep`` below the number of dense rows, the matrix is built from the ``n_keep``
    heaviest dense rows (the others by their diagonal): constraint reduction, an inexact
    Newton step. The caller measures every residual exactly, so a reduced solve changes the
    path, not the answer; a short step is recomputed with the exact matrix. (Refining the
    reduced solves by preconditioned CG on the exact matrix was measured slower on a trained
    MNIST region: each CG step reads ``G`` twice, and it took 4-5 steps per solve.)
    """

    def __init__(self, rows: NormalMatrix, n_keep: int | None, info: dict) -> None:
        self.rows, self.n_keep, self.info = rows, n_keep, info
        if n_keep is not None and n_keep < rows.dense_idx.size:
            rows.prepare_reduction()
        self.F = None
        self.d = None
        self.reduced = False

    def factor(self, d: np.ndarray, *, exact: bool = False) -> bool:
        """Factor the (reduced unless ``exact``) normal matrix for weights ``d``."""
        self.d = d
        keep = None
        if self.n_keep is not None and not exact:
            keep = self.rows.heaviest(d, self.n_keep)
        self.reduced = keep is not None
        self.F = cholesky(self.rows.update(d, keep=keep), work=self.rows.work, info=self.info,
                          single=self.rows.single)
        if self.F is not None and self.F.regularization:
            self.info["max_shift"] = max(self.info.get("max_shift", 0.0), self.F.regularization)
        return self.F is not None

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        """``K^{-1} rhs`` with the last factor (the reduced matrix: an inexact Newton step)."""
        return self.F.solve(rhs)


def _starting_point(rows: NormalMatrix, c, h) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Least-squares start shifted into the interior (Nocedal & Wright, Sec. 14.2)."""
    F = cholesky(rows.update(np.ones(rows.shape[0])), work=rows.work, single=rows.single)
    if F is None:
        return None
    y = F.solve(rows.rmatvec(h))
    s = h - rows.matvec(y)
    lam = -rows.matvec(F.solve(c))
    s = s + max(-1.5 * s.min(), 0.0)
    lam = lam + max(-1.5 * lam.min(), 0.0)
    sl = float(s @ lam)
    if sl <= 0.0:
        s, lam = s + 1.0, lam + 1.0
        sl = float(s @ lam)
    s = s + 0.5 * sl / lam.sum()
    lam = lam + 0.5 * sl / s.sum()
    return y, s, lam


def _infeasibility(rows: NormalMatrix, c, h, y, lam, tol: float, Gy=None, GTl=None) -> str | None:
    r"""Certificates of primal or dual infeasibility from diverging iterates, if any.

    Primal: :math:`\hat\lambda = \lambda / \mathbf 1^T\lambda` with
    :math:`\|G^T\hat\lambda\|_\infty \le -\text{tol}\, h^T\hat\lambda` (Farkas). Dual: the
    direction :math:`u = y / \|y\|_\infty` with :math:`\max_i (Gu)_i \le -\text{tol}\, c^T u`.
    For a feasible, bounded LP neither test can pass unless ``tol`` times the size of its
    feasible points is of order one.
    """
    total = lam.sum()
    h_lam = float(h @ lam) / total
    GTl = rows.rmatvec(lam) if GTl is None else GTl
    if h_lam < 0 and np.abs(GTl).max() / total <= tol * -h_lam:
        return "primal_infeasible"
    y_norm = np.abs(y).max()
    if y_norm > 0:
        cu = float(c @ y) / y_norm
        Gy = rows.matvec(y) if Gy is None else Gy
        if cu < 0 and Gy.max() / y_norm <= tol * -cu:
            return "dual_infeasible"
    return None


def _measures(rows: NormalMatrix, c, h, y, lam, Gy=None, GTl=None) -> dict:
    """Residuals and gap of the pair ``(y, lam)`` as defined in :class:`LPResult`."""
    Gy = rows.matvec(y) if Gy is None else Gy
    GTl = rows.rmatvec(lam) if GTl is None else GTl
    pobj, dobj = float(c @ y), float(-h @ lam)
    gap = abs(pobj - dobj)
    scale = max(abs(pobj), abs(dobj))
    return {
        "primal_objective": pobj,
        "dual_objective": dobj,
        "primal_residual": float(max(0.0, (Gy - h).max(initial=0.0)))
        / (1.0 + float(np.abs(h).max(initial=0.0))),
        "dual_residual": float(np.abs(c + GTl).max(initial=0.0))
        / (1.0 + float(np.abs(c).max(initial=0.0))),
        "gap": gap,
        "rel_gap": gap / scale if scale > 0 else (0.0 if gap == 0 else np.inf),
    }


@dataclass(frozen=True)
class _Settings:
    tol: float
    feas_tol: float
    gap_atol: float
    max_iter: int
    dense_row_fraction: float


def _converged(meas: dict, opts: _Settings) -> bool:
    scale = max(abs(meas["primal_objective"]), abs(meas["dual_objective"]))
    return (
        meas["primal_residual"] <= opts.feas_tol
        and meas["dual_residual"] <= opts.feas_tol
        and meas["gap"] <= opts.tol * scale + opts.gap_atol
    )


def _direction(rows, F, r_p, r_d, s, lam, r_c):
    """Newton direction for residuals ``(r_p, r_d)`` and complementarity target ``r_c``."""
    d = lam / s
    dy = F.solve(-r_d - rows.rmatvec(d * r_p - r_c / s))
    ds = -r_p - rows.matvec(dy)
    dl = -(r_c + lam * ds) / s
    return dy, ds, dl


def _validate(c, G, h, opts: _Settings):
    c = check_array(c, "c", ndim=1)
    if not sparse.issparse(G):
        G = check_array(G, "G", ndim=2)
    elif not np.all(np.isfinite(G.data)):
        raise ValueError("G contains NaN or infinite values; remove or impute them.")
    m, n = G.shape
    if n != c.shape[0]:
        raise ValueError(f"G must have shape (m, {c.shape[0]}) to match c; got {G.shape}.")
    h = check_array(h, "h", shape=(m,))
    if m == 0:
        raise ValueError("G has no rows; an LP without constraints is unbounded or trivial.")
    for name in ("tol", "feas_tol"):
        check_scalar(getattr(opts, name), name, float, min_val=0.0, max_val=1.0,
                     include_min=False)
    check_scalar(opts.max_iter, "max_iter", int, min_val=1)
    check_scalar(opts.gap_atol, "gap_atol", float, min_val=0.0)
    check_scalar(opts.dense_row_fraction, "dense_row_fraction", float, min_val=0.0, max_val=1.0)
    return c, G, h


#: Statuses that answer the problem (or the caller's stop rule): not retried with the exact
#: Newton matrix after a reduced run.
_FINAL = ("stopped", "primal_infeasible", "dual_infeasible")
#: Statuses whose answer is the iterate of the lowest merit (:func:`_merit`), not the last one.
_BEST_ITERATE = ("stalled", "max_iter")


def lp_ipm(
    c,
    G,
    h,
    *,
    tol: float = 1e-9,
    feas_tol: float | None = None,
    max_iter: int = 100,
    gap_atol: float = 0.0,
    dense_row_fraction: float = 0.05,
    threads: int | None = None,
    stop: Callable[[np.ndarray, np.ndarray], bool] | None = None,
    n_keep: int | None = None,
    device: str | None = None,
) -> LPResult:
    r"""Solve ``min c^T y s.t. G y <= h`` with Mehrotra's predictor-corrector method.

    Parameters
    ----------
    c : array-like of shape (n,)
        Objective.
    G : ndarray or scipy.sparse matrix of shape (m, n)
        Constraint matrix; must have full column rank (add bound rows otherwise). Rows with more
        than ``dense_row_fraction * n`` non-zeros form a dense BLAS block, the others stay CSR.
    h : array-like of shape (m,)
        Right-hand side.
    tol : float, default=1e-9
        Relative tolerance on the duality gap.
    feas_tol : float or None, default=None
        Tolerance on the (relative) primal and dual residuals; ``None`` means ``tol``. A
        smaller value buys a dual certificate that holds with the residual included (see
        :func:`lrtools.solvers.insphere.insphere_dual_bound`), usually for 1-2 more iterations.
    max_iter : int, default=100
        Maximum number of iterations.
    gap_atol : float, default=0.0
        Absolute slack added to the gap test, for LPs whose optimal value is (near) zero.
    dense_row_fraction : float, default=0.05
        Density above which a row joins the dense block.
    threads : int or None, default=None
        BLAS threads during the solve (set with ``threadpoolctl``); ``None`` keeps the current
        setting. On cores shared with other jobs, ``threads=1`` avoids OpenBLAS
        oversubscription, which can make the Cholesky factorisation 10-60x slower.
    stop : callable, optional
        ``stop(y, lam) -> bool``, called on every iterate before the convergence test; when it
        returns True the method stops with status ``"stopped"`` (``success`` False) and returns
        that iterate. For callers that only need a certified property of the optimum (e.g. its
        sign, from a weak-duality bound) and check it themselves.
    n_keep : int or None, default=None
        Constraint reduction: build each normal matrix from only the ``n_keep`` dense rows of
        largest weight :math:`\lambda_i \|g_i\|^2 / s_i` (the others by their diagonal), an
        inexact Newton step; a step shorter than 0.1 is recomputed with the exact matrix, and
        the exact matrix is used while the residuals and gap stop improving.
        ``None``: always exact. Speed only: every residual and the gap are measured exactly.
        A reduced run that ends without an answer (stalled, iteration limit, numerical error)
        is rerun from the start with the exact matrix; ``info`` then holds
        ``reduced_status``, ``reduced_iterations`` and ``reduced_seconds``.
    device : {None, "numpy", "cpu", "cuda"}, default=None
        Where the normal matrix and its Cholesky factor live: numpy/LAPACK (``None``, unless
        the ``LRTOOLS_DEVICE`` environment variable names a torch device) or torch float64
        tensors on that device. Certificates are always measured in numpy float64.

    Returns
    -------
    LPResult
        ``success`` is True only when every tolerance is met at the returned ``(y, lam)``.
        Failures are reported through ``status``; nothing is raised for them.

    Raises
    ------
    ValueError, TypeError
        On malformed inputs (shapes, non-finite values, tolerances).

    Notes
    -----
    With slacks :math:`s = h - Gy > 0` and :math:`D = \Lambda S^{-1}`, each step solves

    .. math::

        G^T D G\,\Delta y = -r_d - G^T\big(D r_p - S^{-1} r_c\big),\qquad
        \Delta s = -r_p - G\Delta y,\qquad
        \Delta\lambda = -S^{-1}(r_c + \Lambda \Delta s),

    with :math:`r_p = Gy + s - h`, :math:`r_d = c + G^T\lambda`, and :math:`r_c = S\lambda`
    (predictor) or :math:`S\lambda + \Delta s^{a}\Delta\lambda^{a} - \sigma\mu` (corrector,
    :math:`\sigma = (\mu_{a}/\mu)^3`). Primal and dual step lengths are separate.

    Examples
    --------
    >>> import numpy as np
    >>> res = lp_ipm([-1.0, -1.0], [[1, 0], [0, 1], [-1, 0], [0, -1]], [1, 2, 0, 0])
    >>> res.status, np.round(res.y, 8).tolist()
    ('optimal', [1.0, 2.0])
    """
    opts = _Settings(tol, tol if feas_tol is None else feas_tol, gap_atol, max_iter,
                     dense_row_fraction)
    c, G, h = _validate(c, G, h, opts)
    if threads is not None:
        check_scalar(threads, "threads", int, min_val=1)
    if stop is not None and not callable(stop):
        raise TypeError(f"stop must be callable or None; got {type(stop).__name__}.")
    if n_keep is not None:
        check_scalar(n_keep, "n_keep", int, min_val=1)
    device = resolve_device(device)
    with blas_threads(threads):
        res = _lp_ipm(c, G, h, opts, stop, n_keep=n_keep, device=device)
        if n_keep is None or res.success or res.status in _FINAL:
            return res
        # the reduced matrix can steer the iterates where exact steps no longer progress
        # (seen on BN regions of MNIST: stalled at relative gap 1 after 57 iterations, while
        # the exact method converges in 18): rerun from the start with the exact matrix
        exact = _lp_ipm(c, G, h, opts, stop, n_keep=None, device=device)
        exact.info.update(reduced_status=res.status, reduced_iterations=res.iterations,
                          reduced_seconds=res.seconds)
        return exact


def _mehrotra_step(rows, F, y, s, lam, c, h, Gy=None, GTl=None):
    """One predictor-corrector step from ``(y, s, lam)`` with the factor ``F`` of its matrix,
    with Gondzio's centrality correctors (:func:`~lrtools.solvers._kernel.centrality_correctors`:
    on the insphere LP of paper-size MNIST regions 13 iterations instead of 16-18)."""
    r_p = (rows.matvec(y) if Gy is None else Gy) + s - h
    r_d = c + (rows.rmatvec(lam) if GTl is None else GTl)
    mu = float(s @ lam) / s.size
    dy, ds, dl = _direction(rows, F, r_p, r_d, s, lam, s * lam)
    a_p, a_d = min(1.0, max_step(s, ds)), min(1.0, max_step(lam, dl))
    mu_aff = float((s + a_p * ds) @ (lam + a_d * dl)) / s.size
    sigma = (mu_aff / mu) ** 3
    r_c = s * lam + ds * dl - sigma * mu

    def solve(r):
        return _direction(rows, F, r_p, r_d, s, lam, r)

    (dy, ds, dl), a_p, a_d = centrality_correctors(s, lam, solve(r_c), r_c, sigma, mu, solve)
    return y + a_p * dy, s + a_p * ds, lam + a_d * dl, max(a_p, a_d)


def _polish_dual(rows, F, d, c, h, y, lam, meas, opts, rounds: int = 3):
    r"""Project ``lam`` onto :math:`G^T\lambda = -c` in the metric of the last ``D``.

    The correction :math:`\delta\lambda = -D G (G^T D G)^{-1} r_d` reuses the last Cholesky
    factor (built with ``d``), so it costs one solve. It falls almost entirely on the active
    rows and is kept only while it keeps :math:`\lambda > 0`, lowers the dual residual and
    keeps the convergence tests satisfied.
    """
    for _ in range(rounds):
        r_d = c + rows.rmatvec(lam)
        trial = lam - d * rows.matvec(F.solve(r_d))
        if not np.all(trial > 0):
            break
        new = _measures(rows, c, h, y, trial)
        if new["dual_residual"] >= meas["dual_residual"] or not _converged(new, opts):
            break
        lam, meas = trial, new
    return lam, meas


def _lp_ipm(c, G, h, opts: _Settings, stop=None, n_keep=None, device=None) -> LPResult:
    """The iterations of :func:`lp_ipm` on validated inputs."""
    t0 = time.perf_counter()
    rows = NormalMatrix(G, dense_row_fraction=opts.dense_row_fraction, device=device)
    info = {
        "n_dense_rows": int(rows.dense_idx.size),
        "n_sparse_rows": int(rows.sparse_idx.size),
        "regularizations": 0,
        "seconds_factor": 0.0,
    }
    start = _starting_point(rows, c, h)
    if start is None:
        y, lam = np.zeros(G.shape[1]), np.ones(G.shape[0])
        return _result(y, lam, "numerical_error", 0, _measures(rows, c, h, y, lam), t0, info)
    y, s, lam = start
    status, it, F, d = "max_iter", 0, None, None
    newton = _Newton(rows, n_keep, info)
    small_steps, best, since_best = 0, np.inf, 0
    best_state = None  # (y, lam, meas, it) of the lowest merit so far: the answer of a stall
    while True:
        Gy, GTl = rows.matvec(y), rows.rmatvec(lam)  # once per iteration, reused below
        meas = _measures(rows, c, h, y, lam, Gy, GTl)
        if stop is not None and it > 0 and stop(y, lam):
            status = "stopped"
            break
        if _converged(meas, opts):
            status = "optimal"
            if F is not None:
                lam, meas = _polish_dual(rows, F, d, c, h, y, lam, meas, opts)
            break
        merit = _merit(meas)
        if merit < best:
            best, since_best, best_state = merit, 0, (y, lam, meas, it)
        else:
            since_best += 1
        status = _stopping_status(it, opts, small_steps, since_best)
        status = status or _infeasibility(rows, c, h, y, lam, min(opts.tol, 1e-8), Gy, GTl)
        if status is not None:
            break
        t1 = time.perf_counter()
        d = lam / s
        ok = newton.factor(d, exact=since_best >= 2)  # no progress: exact Newton steps
        info["seconds_factor"] += time.perf_counter() - t1
        if not ok:
            status = "numerical_error"
            break
        F = newton
        trial = _mehrotra_step(rows, F, y, s, lam, c, h, Gy, GTl)
        if newton.reduced and trial[3] < _SHORT_STEP:  # redo with the exact matrix
            info["n_exact_newton"] = info.get("n_exact_newton", 0) + 1
            if not newton.factor(d, exact=True):
                status = "numerical_error"
                break
            trial = _mehrotra_step(rows, F, y, s, lam, c, h, Gy, GTl)
        y, s, lam, step = trial
        it += 1
        small_steps = small_steps + 1 if step < 1e-8 else 0
        if not (np.all(np.isfinite(y)) and np.all(np.isfinite(lam)) and np.all(s > 0)):
            status = "numerical_error"
            meas = _measures(rows, c, h, np.nan_to_num(y), np.nan_to_num(lam))
            break
    if status in _BEST_ITERATE and best_state is not None and best < _merit(meas):
        # the last iterates of a stall can drift away (Cholesky shifts growing on a nearly
        # singular matrix): answer with the best one, which a caller may still certify
        y, lam, meas, info["best_iteration"] = best_state
    return _result(y, lam, status, it, meas, t0, info)


def _merit(meas: dict) -> float:
    """Progress measure of the stall test: the residuals and the gap relative to ``1 + |obj|``.

    Not ``rel_gap``: when the optimal value is near zero the primal and dual objectives have
    opposite signs until the gap is below it, so ``rel_gap`` stays >= 1 while the gap shrinks
    by orders of magnitude (seen on margin LPs of MNIST regions with ``s* = -0.004``: declared
    stalled after 13 iterations at a gap of 0.03, falling from 513).
    """
    scale = max(abs(meas["primal_objective"]), abs(meas["dual_objective"]))
    return max(meas["primal_residual"], meas["dual_residual"], meas["gap"] / (1.0 + scale))


def _stopping_status(it: int, opts: _Settings, small_steps: int, since_best: int) -> str | None:
    """``"max_iter"`` or ``"stalled"`` (tiny steps, or no progress for 10 iterations)."""
    if it >= opts.max_iter:
        return "max_iter"
    if small_steps >= 3 or since_best >= 10:
        return "stalled"
    return None


def _result(y, lam, status, it, meas, t0, info) -> LPResult:
    return LPResult(
        y=y,
        lam=lam,
        status=status,
        success=status == "optimal",
        iterations=it,
        **meas,
        seconds=time.perf_counter() - t0,
        info=info,
    )
