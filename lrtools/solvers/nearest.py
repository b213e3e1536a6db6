r"""The optimal point of eq. (6) nearest the test point: a well-defined :math:`x^t`.

Eq. (6) of [1] has a unique optimal *value* but, in general, no unique optimal *point*:
:math:`\varphi_t(x) = -\log p_t(x)` depends on :math:`x` only through the logit differences
:math:`z_j(x) - z_t(x)`, so it is constant along the null space of :math:`W` (dimension
``d - M`` or more), and the optimal set can be a whole face of the region. The distortion of
eq. (8), :math:`\max_t \|x^t - x^*\|`, then depends on which optimal point a solver returns.
This module computes the optimal point nearest :math:`x^*`:

.. math::

    \hat x^t = \arg\min_x\; \tfrac12 \|x - x^*\|^2 \quad\text{s.t.}\quad
        A x + b \ge 0,\; \ell \le x \le u,\;
        \varphi_t(x) \le \varphi_{\max} = -\mathrm{OPT}_t + \mathrm{tol},

a convex program (:math:`\varphi_t` is convex, log-softmax concave; eq. 7 makes the logits
affine on the region) with a unique solution. ``OPT_t`` is the solver's certified value
:math:`\log p_t(x^t)`; as the true optimum lies in ``[OPT_t, OPT_t + gap]``, the feasible set
contains every exact optimum and only points whose :math:`\log p_t` is within ``tol + gap`` of
the optimum.

Method: a primal-dual interior-point method (Mehrotra predictor-corrector) in float64 from a
strictly feasible point on the segment between :math:`x^t` and an interior point. The level
constraint is taken in its log-odds form :math:`\psi_t(x) = \log\sum_{j \ne t} e^{z_j - z_t}
\le \log(e^{\varphi_{\max}} - 1)`, the same convex set, whose gradient does not vanish as
:math:`p_t \to 1` (on 50 classes of 5 paper-size MNIST regions, t10k 8000-8004, from the
same eq. 6 optima, the :math:`\varphi` form stalled on 10 and this one on 6; retrying a stall
in the :math:`\varphi` form from its own start, as :func:`nearest_optimum` does, leaves 5,
for 58.9 CPU-s in all against 52.8 s). In the formulas below
:math:`\varphi_t` stands for whichever form is used. Its Newton matrix is

.. math::

    K = I + \mu\, W^T(\operatorname{diag} p - p p^T) W + \tfrac{\mu}{s_\varphi} g g^T
        + A^T \operatorname{diag}(\lambda / s) A + \operatorname{diag}(\lambda_\ell/s_\ell
        + \lambda_u/s_u),

where the softmax and constraint-gradient terms have rank at most ``M + 1`` and cost
``O(M d^2)``; ``A^T D A`` is one BLAS ``syrk`` over the dense rows plus a sparse product over
the sparse (convolution) rows.

Certificate (two-sided). For multipliers :math:`\mu \ge 0` of the log-probability constraint
and :math:`\nu \ge 0` of the rows, and any point :math:`\bar x` (convexity:
:math:`\varphi_t(x) \ge \varphi_t(\bar x) + g^T (x - \bar x)`, :math:`g = \nabla\varphi_t(\bar x)`),
every feasible :math:`x` satisfies

.. math::

    \tfrac12\|x - x^*\|^2 \ge \min_{\ell \le y \le u}\; \tfrac12\|y - x^*\|^2 + v^T y
        + \mu\,(\varphi_t(\bar x) - g^T \bar x - \varphi_{\max}) - \nu^T b,
    \qquad v = \mu g - A^T \nu,

whose minimiser is ``clip(x* - v, lo, hi)``. So ``lower_bound`` is a proven lower bound on the
distance from :math:`x^*` to the feasible set, and the returned point (checked to satisfy every
row, the box and the log-probability constraint in float64) gives the upper bound
``distance``.

References
----------
.. [1] X. Zhang and D. Wu, "Empirical Studies on the Properties of Linear Regions in Deep
   Neural Networks", ICLR 2020, Section 3.4, eq. (6)-(8).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field, replace

import numpy as np
from scipy.special import logsumexp, softmax

from .._validation import check_array, check_scalar
from ..exceptions import SolverError
from ..polytope import Polytope
from ._kernel import LowRank, centrality_correctors, cholesky, region_normal_matrix

__all__ = ["RESCUE_MAX_SIZE", "NearestResult", "certify_nearest", "nearest_optimum",
           "nearest_optimum_cvxpy"]

_DENSE_ROW_FRACTION = 0.05  # rows with more non-zeros (share of d) go to the dense block
_SHORT_STEP = 0.1  # a reduced Newton step shorter than this is recomputed with all rows
_STALL = 15  # iterations without halving the certified gap before giving up
_PSI_MARGIN = 1e-13  # relative move of the log-odds level (see _psi_level)
_LAM0_SLACK_FLOOR = 0.1  # initial multipliers mu0 / max(s, this x median slack)
_CONSISTENCY = 1e-8  # accepted |log_prob - log p_t(x_opt)| relative to 1 + |log_prob|
#: Largest ``n_rows * dim`` for which ``clarabel_duals=None`` tries Clarabel's multipliers after
#: a stall. On paper-size MNIST regions (3,072 rows x 784 dims, 2.4e6) one cvxpy + Clarabel
#: solve took 55-133 s and closed the gap in none of the 6 stalls tried (README, engine section),
#: while it is what rescues stalls on small regions (tests/test_nearest.py).
RESCUE_MAX_SIZE = 1_000_000


@dataclass(frozen=True)
class NearestResult:
    r"""The optimal point of eq. (6) nearest :math:`x^*`, certified.

    Attributes
    ----------
    x : ndarray of shape (d,)
        The point; it satisfies every row, the box and
        :math:`\log p_t(x) \ge` ``level`` in float64.
    target : int
        The class :math:`t`.
    distance : float
        :math:`\|x - x^*\|` (upper bound on the nearest distance).
    lower_bound : float
        Certified lower bound on :math:`\min \|x - x^*\|` over the feasible set.
    gap : float
        ``distance - lower_bound``.
    x_radius : float
        Certified radius around ``x`` holding the exact minimiser :math:`\hat x`:
        :math:`\|x - \hat x\|^2 \le \|x - x^*\|^2 - \|\hat x - x^*\|^2 \le`
        ``distance**2 - lower_bound**2`` (strong convexity of :math:`\tfrac12\|x - x^*\|^2`).
        The point is resolved to about the square root of the distance gap.
    log_prob : float
        :math:`\log p_t(x)`.
    level : float
        ``OPT_t - tol``, the constraint's right-hand side.
    min_slack : float
        Smallest slack of the rows and the box at ``x`` (never negative).
    log_prob_slack : float
        ``log_prob - level`` (never negative).
    n_active_rows, n_active_box : int
        Rows and box faces within distance ``active_tol`` of ``x``.
    predicted : int
        :math:`\arg\max_j z_j(x)`.
    status : str
        ``"optimal"`` (certified gap within tolerance), ``"optimal_clarabel_duals"`` (the same,
        certified with Clarabel's multipliers after the interior-point method stalled),
        ``"at_x_star"`` (``x*`` itself is optimal for eq. 6 up to ``tol``: distance 0) or
        ``"bounded"`` (stopped by ``stop_below``: ``distance`` is only an upper bound).
    iterations : int
    seconds : float
    info : dict
        ``tol``, ``gap_history``, ``multiplier`` (of the level constraint in the form
        ``level_form``: ``"log_odds"``, or ``"log_prob"`` after a retried stall), ...
    """

    x: np.ndarray
    target: int
    distance: float
    lower_bound: float
    gap: float
    x_radius: float
    log_prob: float
    level: float
    min_slack: float
    log_prob_slack: float
    n_active_rows: int
    n_active_box: int
    predicted: int
    status: str
    iterations: int
    seconds: float
    info: dict = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# certificate
# --------------------------------------------------------------------------------------------


def _phi_grad(W, c, t, x):
    z = W @ x + c
    p = softmax(z)
    y = p.copy()
    y[t] -= 1.0
    return float(logsumexp(z) - z[t]), W.T @ y, p


def _psi_grad(W, c, t, x):
    r"""The level function in log-odds form: :math:`\psi_t(x) = \log \sum_{j \ne t}
    \exp(z_j - z_t)`, its gradient :math:`W^T (q - e_t)` and ``q`` (the softmax over
    :math:`j \ne t`, :math:`q_t = 0`; the Hessian is :math:`W^T(\operatorname{diag} q - q
    q^T) W`).

    :math:`\varphi_t = \log(1 + e^{\psi_t})` is increasing in :math:`\psi_t`, so
    :math:`\varphi_t \le \varphi_{\max} \iff \psi_t \le \log(e^{\varphi_{\max}} - 1)`:
    the same convex set. Its gradient is a convex combination of the :math:`w_j - w_t` whatever
    :math:`p_t`, where :math:`\nabla\varphi_t = (1 - p_t) \nabla\psi_t` vanishes as
    :math:`p_t \to 1` (a multiplier of order :math:`1/(1 - p_t)` and a level slack of order
    ``tol``: the stalls of the :math:`\varphi` form on paper-size regions).
    """
    z = W @ x + c
    zo = z.copy()
    zo[t] = -np.inf
    lse = float(logsumexp(zo))
    q = np.exp(zo - lse)
    y = q.copy()
    y[t] -= 1.0
    return lse - float(z[t]), W.T @ y, q


def _psi_level(phi_max: float, margin: float) -> float:
    r""":math:`\log(e^{\varphi_{\max}} - 1)`, moved by ``margin`` (relative to ``1 + |.|``):
    a positive margin enlarges the set (certificates stay lower bounds), a negative one shrinks
    it (iterates stay inside the ``phi`` level after rounding)."""
    level = float(np.log(np.expm1(phi_max)))
    return level + margin * (1.0 + abs(level))


def _lower_bound(poly, level_grad, t, W, c, x_star, level_max, x, mult, nu,
                 rmatvec=None) -> float:
    """The certificate of :func:`certify_nearest` for the level ``level_grad(x) <= level_max``
    (any convex function: its tangent at ``x`` bounds it from below). ``rmatvec``: ``A^T v``
    from the kernel's row blocks inside the iterations (default ``poly.A.T @ v``, the
    answer's final certificate)."""
    mult = max(float(mult), 0.0)
    nu = np.maximum(nu, 0.0)
    val, g, _ = level_grad(W, c, t, x)
    v = mult * g - (poly.A.T @ nu if rmatvec is None else rmatvec(nu))
    y = np.clip(x_star - v, poly.lo, poly.hi)
    q = 0.5 * float(np.sum((y - x_star) ** 2)) + float(v @ y)
    q += mult * (val - float(g @ x) - level_max) - float(nu @ poly.b)
    return float(np.sqrt(2.0 * q)) if q > 0 else 0.0


def certify_nearest(
    poly: Polytope,
    W: np.ndarray,
    c: np.ndarray,
    t: int,
    x_star: np.ndarray,
    phi_max: float,
    x: np.ndarray,
    mult: float,
    nu: np.ndarray,
) -> float:
    r"""Certified lower bound on :math:`\min \|x' - x^*\|` over the feasible set.

    The feasible set is :math:`\{x' : A x' + b \ge 0,\ \ell \le x' \le u,\
    \varphi_t(x') \le \varphi_{\max}\}` (see the module docstring for the bound).

    Parameters
    ----------
    poly, W, c, t, x_star
        The region, the logit map, the class and the test point.
    phi_max : float
        Right-hand side of :math:`-\log p_t(x') \le \varphi_{\max}`.
    x : ndarray of shape (d,)
        Any point (the linearisation point; need not be feasible).
    mult : float
        Multiplier of the log-probability constraint (clipped at 0).
    nu : ndarray of shape (m,)
        Multipliers of the rows (clipped at 0).

    Returns
    -------
    float
        A lower bound on the distance (0 when the bound is not positive).
    """
    return _lower_bound(poly, _phi_grad, t, W, c, x_star, phi_max, x, mult, nu)


# --------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------


def _check(poly, W, c, t, x_star, x_opt, log_prob, gap, tol):
    if not isinstance(poly, Polytope):
        raise TypeError(f"poly must be an lrtools Polytope; got {type(poly).__name__}.")
    d = poly.dim
    W = check_array(W, "W", ndim=2, hint="Pass Region.logit_W of shape (M, d).")
    if W.shape[1] != d or W.shape[0] < 2:
        raise ValueError(
            f"W must have shape (M, {d}) with M >= 2 to match the region; got {W.shape}. "
            "Pass Region.logit_W."
        )
    M = W.shape[0]
    c = check_array(c, "c", shape=(M,), hint="Pass Region.logit_b.")
    check_scalar(t, "t", (int, np.integer), min_val=0, max_val=M - 1)
    hint = "Pass a flattened input, e.g. x.ravel()."
    x_star = check_array(x_star, "x_star", shape=(d,), hint=hint)
    x_opt = check_array(x_opt, "x_opt", shape=(d,), hint=hint)
    check_scalar(log_prob, "log_prob", (float, int, np.floating), max_val=0.0)
    check_scalar(gap, "gap", (float, int, np.floating), min_val=0.0)
    check_scalar(tol, "tol", (float, int, np.floating), min_val=0.0, include_min=False)
    if not (np.isfinite(log_prob) and np.isfinite(gap) and np.isfinite(tol)):
        raise ValueError(
            f"log_prob, gap and tol must be finite; got {log_prob}, {gap}, {tol}. A failed "
            "eq. (6) solve (status 'failed', NaN values) has no nearest optimum."
        )
    s_opt = np.concatenate([poly.slack(x_opt), x_opt - poly.lo, poly.hi - x_opt])
    if s_opt.size and s_opt.min() < 0:
        raise ValueError(
            f"x_opt must lie in the region (every row and box slack >= 0); its smallest slack "
            f"is {s_opt.min():.3g}. Pass MaxProbResult.x of this region."
        )
    if not poly.contains(x_star, tol=1e-9):
        raise ValueError("x_star must lie in the region; pass Region.x_star of this region.")
    phi_opt = _phi_grad(W, c, int(t), x_opt)[0]
    if abs(-phi_opt - log_prob) > _CONSISTENCY * (1.0 + abs(log_prob)):
        raise ValueError(
            f"log_prob == {log_prob!r} does not match log p_t(x_opt) == {-phi_opt!r} for class "
            f"{int(t)}; pass the MaxProbResult's log_prob together with its x."
        )
    return W, c, int(t), x_star, x_opt


def _interior_start(poly: Polytope, x_star: np.ndarray) -> np.ndarray:
    """A strictly interior point of the region (the eq. 6 module's public helper)."""
    from .maxprob import interior_point

    return interior_point(poly, x_star)


# --------------------------------------------------------------------------------------------
# the interior-point method
# --------------------------------------------------------------------------------------------


def nearest_optimum(
    poly: Polytope,
    W: np.ndarray,
    c: np.ndarray,
    t: int,
    x_star: np.ndarray,
    x_opt: np.ndarray,
    log_prob: float,
    gap: float,
    *,
    tol: float = 1e-6,
    gap_tol: float = 1e-5,
    x_in: np.ndarray | None = None,
    max_iter: int = 150,
    active_tol: float = 1e-6,
    clarabel_duals: bool | None = None,
    n_keep: int | None = None,
    stop_below: float | None = None,
) -> NearestResult:
    r"""The point of the region nearest :math:`x^*` whose :math:`\log p_t` is optimal up to ``tol``.

    Solves (module docstring)

    .. math::

        \min_x \|x - x^*\| \quad\text{s.t.}\quad x \in S_L,\;
        \log p_t(x) \ge \mathrm{OPT}_t - \mathrm{tol},

    a well-defined replacement for :math:`x^t` of eq. (6) in the distortion of eq. (8).

    Parameters
    ----------
    poly : Polytope
        The region, ``Region.polytope``.
    W : ndarray of shape (M, d)
        ``Region.logit_W``.
    c : ndarray of shape (M,)
        ``Region.logit_b``.
    t : int
        The class.
    x_star : ndarray of shape (d,)
        ``Region.x_star``.
    x_opt : ndarray of shape (d,)
        The eq. (6) solver's optimum ``MaxProbResult.x`` (inside the region).
    log_prob : float
        ``MaxProbResult.log_prob`` (checked to equal :math:`\log p_t(x_{opt})`).
    gap : float
        ``MaxProbResult.gap``, its certified gap (reported in ``info``; the feasible set
        contains every exact optimum whatever its value).
    tol : float, default=1e-6
        Tolerance on :math:`\log p_t` (a relative tolerance of ``tol`` on :math:`p_t`).
    gap_tol : float, default=1e-5
        Accepted ``distance - lower_bound``, relative to ``1 + distance``. When the optimum of
        eq. (6) is nearly stationary along the region (``p_t`` close to 1 in the free
        directions) the level constraint in its log-probability form is nearly degenerate,
        its multiplier grows like ``tol**-0.5`` and the certificate stalls around 1e-6
        relative; 1e-5 is met there, and the log-odds form used first does not have this
        scale.
    x_in : ndarray of shape (d,), optional
        A strictly interior point of the region (default:
        :func:`lrtools.solvers.maxprob.interior_point`).
    max_iter : int, default=150
    active_tol : float, default=1e-6
        Distance below which a row or box face counts as active.
    n_keep : int, optional
        Dense rows entering the Newton matrix's :math:`A^T \operatorname{diag}(\lambda/s) A`
        exactly (the heaviest; the others by their diagonal), as in
        :func:`lrtools.solvers.maxprob.max_log_prob_ipm`. Default ``max(d, 256)`` on MLP
        regions (every row dense) and every dense row on CNN regions: there, on the paper
        CNN, 45% of the reduced steps were short and redone, and the exact matrix took the
        same iterations in 70-90% of the time (21.0 -> 19.0 CPU-s for a full class, 7.9 ->
        5.9 s for one stopped by ``stop_below``). Speed only: a reduced step shorter than 0.1 is
        recomputed with every row, the exact matrix is used after 3 iterations without a new
        best certified gap, a solve that still stalls is redone with every dense row (before
        Clarabel's multipliers; the stalled attempt is in ``info["reduced_stall"]``), and the
        answer is certified the same way.
    clarabel_duals : bool or None, default=None
        When the interior-point method stalls above ``gap_tol`` (a nearly degenerate level
        constraint), solve the same program with cvxpy + Clarabel and try its multipliers in
        the certificate (status ``"optimal_clarabel_duals"`` if they close the gap). The
        answer is still certified by :func:`certify_nearest`; Clarabel's point is used only if
        it is feasible in float64 (after a tiny move toward the interior) and nearer.
        ``None``: only on regions with ``n_rows * dim <=`` :data:`RESCUE_MAX_SIZE` (on larger
        ones the stall is raised at once, saying so; the rescue costs about a minute there).
    stop_below : float, optional
        Stop as soon as an iterate's feasible point (verified in float64) lies within
        ``stop_below`` of :math:`x^*`, with status ``"bounded"``: the nearest distance of the
        class is then at most ``stop_below``, which is all a maximum over classes needs
        (:func:`lrtools.analyses.class_regions.class_regions_point`, ``nearest="max"``).
        ``distance`` is that upper bound and ``lower_bound`` the certificate of that iterate.

    Returns
    -------
    NearestResult

    Raises
    ------
    ValueError, TypeError
        On inconsistent input (shapes, ``x_opt`` outside the region, ``log_prob`` not that of
        ``x_opt``, non-positive ``tol``, ...).
    SolverError
        When the certified gap does not reach ``gap_tol`` or the answer fails verification.

    Examples
    --------
    >>> from lrtools.models import build_mlp
    >>> from lrtools.regions import linear_region
    >>> from lrtools.solvers.maxprob import max_log_prob
    >>> net = build_mlp(6, [8, 8], 3, seed=0)
    >>> r = linear_region(net, [0.2, -0.4, 0.1, 0.0, 0.3, -0.2])
    >>> opt = max_log_prob(r.polytope, r.logit_W, r.logit_b, 1, x_star=r.x_star)
    >>> near = nearest_optimum(r.polytope, r.logit_W, r.logit_b, 1, r.x_star, opt.x,
    ...                        opt.log_prob, opt.gap)
    >>> bool(near.distance <= opt.distortion + 1e-9 and near.gap <= 1e-5 * (1 + near.distance))
    True
    """
    t0 = time.perf_counter()
    W, c, t, x_star, x_opt = _check(poly, W, c, t, x_star, x_opt, log_prob, gap, tol)
    check_scalar(gap_tol, "gap_tol", (float, np.floating), min_val=0.0, include_min=False)
    check_scalar(max_iter, "max_iter", int, min_val=1)
    if n_keep is not None:
        check_scalar(n_keep, "n_keep", int, min_val=1)
    if stop_below is not None:
        check_scalar(stop_below, "stop_below", (float, np.floating), min_val=0.0)
    phi_max = -float(log_prob) + float(tol)
    info = {"tol": float(tol), "opt_gap": float(gap), "x_opt_distance":
            float(np.linalg.norm(x_opt - x_star))}
    size = f"{poly.n_rows} rows x {poly.dim} dims, class {t}"
    phi_star = _phi_grad(W, c, t, x_star)[0]
    if phi_star <= phi_max:  # x* itself is (tol-)optimal: the nearest optimum is x*
        return _package(poly, W, c, t, x_star, x_star.copy(), phi_max, 0.0, "at_x_star", 0,
                        t0, info, active_tol)
    if x_in is None:
        x_in = _interior_start(poly, x_star)
    else:
        x_in = check_array(x_in, "x_in", shape=(poly.dim,), hint="Pass a flattened input.")
    x0 = _start(poly, W, c, t, x_opt, x_in, phi_max)
    if x0 is None:
        raise SolverError(f"nearest optimum: no strictly feasible start found on {size}.")
    x, mult, nu, it, history, why = _ipm(poly, W, c, t, x_star, x0, phi_max, gap_tol, max_iter,
                                         n_keep, stop_below=stop_below, info=info)
    info.update(gap_history=history, multiplier=mult, level_form="log_odds")
    psi_cert = _psi_level(phi_max, _PSI_MARGIN)
    lower = _lower_bound(poly, _psi_grad, t, W, c, x_star, psi_cert, x, mult, nu)
    if why == "bounded":  # an upper bound below stop_below: all the caller asked for
        return _package(poly, W, c, t, x_star, x, phi_max, lower, "bounded", it, t0, info,
                        active_tol)
    if float(np.linalg.norm(x - x_star)) - lower > gap_tol * (1.0 + np.linalg.norm(x - x_star)):
        # a stall in the log-odds form: the log-probability form (a different path) once more
        x0_phi = _start(poly, W, c, t, x_opt, x_in, phi_max, form="log_prob")
        x2, mult2, nu2, it2, history2, why2 = _ipm(
            poly, W, c, t, x_star, x0 if x0_phi is None else x0_phi, phi_max, gap_tol,
            max_iter, n_keep, form="log_prob")
        lower2 = certify_nearest(poly, W, c, t, x_star, phi_max, x2, mult2, nu2)
        info["log_odds_gap_history"] = history
        if np.linalg.norm(x2 - x_star) - lower2 < np.linalg.norm(x - x_star) - lower:
            x, mult, nu, lower, why = x2, mult2, nu2, lower2, why2
            info.update(gap_history=history2, multiplier=mult2, level_form="log_prob")
        it += it2
    status = "optimal"
    dist = float(np.linalg.norm(x - x_star))
    if dist - lower > gap_tol * (1.0 + dist) and info["n_keep"] < info["n_dense"]:
        # a stall with the reduced Newton matrix: the whole solve once more with every dense
        # row (a different path; the certificate is the same), before Clarabel's multipliers
        reduced = {"n_keep": info["n_keep"], "iterations": it, "gap": dist - lower,
                   "seconds": time.perf_counter() - t0}
        try:
            res = nearest_optimum(
                poly, W, c, t, x_star, x_opt, log_prob, gap, tol=tol, gap_tol=gap_tol,
                x_in=x_in, max_iter=max_iter, active_tol=active_tol,
                clarabel_duals=clarabel_duals, n_keep=info["n_dense"], stop_below=stop_below)
        except SolverError as exc:
            raise SolverError(f"{exc} (after the reduced Newton matrix, n_keep = "
                              f"{reduced['n_keep']}, stalled at gap {reduced['gap']:.3g})"
                              ) from exc
        res.info["reduced_stall"] = reduced
        return replace(res, iterations=res.iterations + it,
                       seconds=time.perf_counter() - t0)
    too_large = clarabel_duals is None and poly.n_rows * poly.dim > RESCUE_MAX_SIZE
    if clarabel_duals is None:
        clarabel_duals = not too_large
    if dist - lower > gap_tol * (1.0 + dist) and clarabel_duals:
        x, lower, status = _with_clarabel_duals(poly, W, c, t, x_star, phi_max, x, x0, lower,
                                                info)
    res = _package(poly, W, c, t, x_star, x, phi_max, lower, status, it, t0, info, active_tol)
    if not res.gap <= gap_tol * (1.0 + res.distance):
        raise SolverError(
            f"nearest optimum: interior-point method {why} after {it} iterations with certified "
            f"gap {res.gap:.3g} > {gap_tol:g} (1 + distance {res.distance:.4g}) on {size}"
            + (" (also with Clarabel's multipliers)." if clarabel_duals else
               f"; Clarabel's multipliers were not tried (n_rows x dim above RESCUE_MAX_SIZE = "
               f"{RESCUE_MAX_SIZE:,}; pass clarabel_duals=True to try them)." if too_large
               else ".")
        )
    return res


def _with_clarabel_duals(poly, W, c, t, x_star, phi_max, x, x0, lower, info):
    """A better certificate from cvxpy + Clarabel's multipliers of the same program.

    The bound of :func:`certify_nearest` holds for any multipliers and linearisation point, so
    Clarabel's (uncertified) duals are evaluated at our feasible point and at Clarabel's point
    pulled feasible toward ``x0``; the nearer feasible point and the best bound are kept.
    """
    import cvxpy as cp

    t0 = time.perf_counter()
    A = poly.A.toarray() if hasattr(poly.A, "toarray") else poly.A
    xv = cp.Variable(poly.dim)
    z = W @ xv + c
    cons = [A @ xv + poly.b >= 0, xv >= poly.lo, xv <= poly.hi,
            cp.log_sum_exp(z) - z[t] <= phi_max]
    prob = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(xv - x_star)), cons)
    try:
        with warnings.catch_warnings():  # an inaccurate status is read below, not printed
            warnings.simplefilter("ignore", UserWarning)
            prob.solve(solver=cp.CLARABEL)
    except cp.error.SolverError as exc:
        info["clarabel"] = f"failed: {exc}"
        return x, lower, "optimal"
    info["clarabel"] = f"{prob.status} in {time.perf_counter() - t0:.2f}s"
    if xv.value is None or cons[3].dual_value is None:
        return x, lower, "optimal"
    mult, nu = float(cons[3].dual_value), np.ravel(cons[0].dual_value)
    candidates = [x]
    xc = np.asarray(xv.value, dtype=np.float64)
    for theta in (0.0, 1e-12, 1e-10, 1e-8, 1e-6, 1e-4):
        xp = xc + theta * (x0 - xc)
        sl = np.concatenate([poly.slack(xp), xp - poly.lo, poly.hi - xp])
        if sl.min() >= 0 and _phi_grad(W, c, t, xp)[0] <= phi_max:
            candidates.append(xp)
            break
    best = min(candidates, key=lambda v: float(np.linalg.norm(v - x_star)))
    bounds = [certify_nearest(poly, W, c, t, x_star, phi_max, v, mult, nu) for v in candidates]
    new_lower = max(lower, *bounds)
    return best, new_lower, "optimal" if new_lower == lower else "optimal_clarabel_duals"


def _package(poly, W, c, t, x_star, x, phi_max, lower, status, it, t0, info, active_tol):
    """Verify feasibility of ``x`` exactly, then build the result."""
    s_rows = poly.slack(x)
    s_box = np.concatenate([x - poly.lo, poly.hi - x])
    min_slack = float(min(s_rows.min(initial=np.inf), s_box.min()))
    phi = _phi_grad(W, c, t, x)[0]
    if min_slack < 0 or phi > phi_max:
        raise SolverError(
            f"nearest optimum is infeasible: min slack {min_slack:.3g}, log p_t {-phi:.6g} < "
            f"level {-phi_max:.6g} on {poly.n_rows} rows x {poly.dim} dims, class {t}."
        )
    norms = poly.row_norms
    n_rows = int(np.sum(s_rows <= active_tol * np.where(norms > 0, norms, 1.0)))
    dist = float(np.linalg.norm(x - x_star))
    return NearestResult(
        x=x, target=t, distance=dist, lower_bound=float(lower), gap=max(dist - lower, 0.0),
        x_radius=float(np.sqrt(max(dist**2 - float(lower) ** 2, 0.0))),
        log_prob=-phi, level=-phi_max, min_slack=min_slack, log_prob_slack=phi_max - phi,
        n_active_rows=n_rows, n_active_box=int(np.sum(s_box <= active_tol)),
        predicted=int(np.argmax(W @ x + c)), status=status, iterations=it,
        seconds=time.perf_counter() - t0, info=info,
    )


def _start(poly, W, c, t, x_opt, x_in, phi_max, form="log_odds"):
    """A point of the segment ``[x_opt, x_in]`` with every slack and the level slack > 0
    (the step from ``x_opt`` bounded by convexity of the level function of ``form``)."""
    psi_max = _psi_level(phi_max, -_PSI_MARGIN)
    level_grad, level = (_psi_grad, psi_max) if form == "log_odds" else (_phi_grad, phi_max)
    psi_opt = level_grad(W, c, t, x_opt)[0]
    room = level - psi_opt  # > 0 (tol > 0)
    rise = max(level_grad(W, c, t, x_in)[0] - psi_opt, 0.0)
    theta = 0.5 if rise <= 0 else min(0.5, 0.5 * room / rise)  # convexity: psi <= opt + room/2
    for _ in range(60):
        x0 = x_opt + theta * (x_in - x_opt)
        s = np.concatenate([poly.slack(x0), x0 - poly.lo, poly.hi - x0])
        if s.min() > 0 and _within(W, c, t, x0, psi_max, phi_max, strict=True):
            return x0
        theta *= 0.5
    return None


def _within(W, c, t, x, psi_max, phi_max, strict=False) -> bool:
    """``x`` meets the level in both forms (the log-odds one the method works with, and the
    log-probability one that the result is checked against, whose rounding differs)."""
    psi = _psi_grad(W, c, t, x)[0]
    phi = _phi_grad(W, c, t, x)[0]
    return (psi < psi_max and phi < phi_max) if strict else (psi <= psi_max and phi <= phi_max)


def _ipm(poly, W, c, t, x_star, x0, phi_max, gap_tol, max_iter, n_keep=None, form="log_odds",
         stop_below=None, info=None):
    """Primal-dual IPM; returns ``(x, mult, nu_rows, iterations, history, why)`` with ``x``
    feasible: the converged iterate, the best certified one when it stalls, or (``why =
    "bounded"``) the first feasible point within ``stop_below`` of ``x_star``.

    The level constraint is taken in its log-odds form :math:`\\psi_t(x) \\le \\psi_{\\max}`
    (:func:`_psi_grad`; iterates stay below it shrunk by a relative ``_PSI_MARGIN`` and below
    ``phi_max``, certificates use it enlarged by as much); ``mult`` is its multiplier.
    ``form="log_prob"`` works with :math:`\\varphi_t \\le \\varphi_{\\max}` itself (the fallback
    of :func:`nearest_optimum`).
    Rows and box stay strictly feasible (ratio test on linear slacks). The level constraint
    :math:`\\psi_t(x) + s_\\psi = \\psi_{\\max}` carries its own slack variable, so
    iterates may cross the curved level set; each candidate is made feasible by the shortest
    move toward the strictly feasible start ``x0`` before it is certified.
    """
    psi_it, psi_cert = _psi_level(phi_max, -_PSI_MARGIN), _psi_level(phi_max, _PSI_MARGIN)
    level_grad, lev_it, lev_cert = ((_psi_grad, psi_it, psi_cert) if form == "log_odds"
                                    else (_phi_grad, phi_max, phi_max))
    rows = region_normal_matrix(poly.A, dense_row_fraction=_DENSE_ROW_FRACTION,
                                objective=W)  # eq. 6's
    m, d = poly.n_rows, poly.dim
    lo, hi = poly.lo, poly.hi
    n_dense = int(rows.dense_idx.size)
    if n_keep is None:  # reduced on MLP regions only (see nearest_optimum's n_keep)
        n_keep = max(d, 256) if n_dense == m else n_dense
    if n_keep < n_dense:
        rows.prepare_reduction()
    if info is not None:
        info.update(n_keep=min(n_keep, n_dense), n_dense=n_dense)

    def slacks(x):
        return np.concatenate([rows.matvec(x) + poly.b, x - lo, hi - x])

    def GT(v):
        return rows.rmatvec(v[:m]) + v[m : m + d] - v[m + d :]

    def G(v):
        return np.concatenate([rows.matvec(v), v, -v])

    def factor(exact: bool):
        """Cholesky of the Newton matrix, from the ``n_keep`` heaviest dense rows unless
        ``exact`` (the others by their diagonal: an inexact Newton step)."""
        w = lam[:m] / s[:m]
        keep = None if exact else rows.heaviest(w, n_keep)
        # mult W^T (diag p - p p^T) W + (mult / sf) g g^T as a low-rank term (p >= 0: the
        # softmax, or the softmax over j != t): syrk/syr on the normal matrix in place, no
        # d x d matrix formed
        U = np.hstack([W.T * np.sqrt(mult * p), np.sqrt(mult / sf) * g[:, None]])
        extra = LowRank(U, (np.sqrt(mult) * (W.T @ p),))
        diag = 1.0 + lam[m : m + d] / s[m : m + d] + lam[m + d :] / s[m + d :]
        # float64 only: x0 lies within about tol of x^t, where hundreds of rows have slacks
        # of 1e-10, so a float32 factor fails its first refinement (10 of 10 classes of the
        # paper_cost CNN point: a wasted spotrf and refinement per solve)
        cf = cholesky(rows.update(w, diag=diag, extra=extra, keep=keep), work=rows.work,
                      max_tries=13)
        if cf is None:
            raise SolverError("nearest optimum: the Newton matrix stays singular after "
                              "regularisation.")
        return cf

    def ratio(v, dv):
        neg = dv < 0
        return float(np.min(-v[neg] / dv[neg])) if np.any(neg) else np.inf

    s0 = slacks(x0)
    phi0 = level_grad(W, c, t, x0)[0]

    def feasible(x, s, phi):
        """``x`` itself if it meets the level, else the nearest feasible point on [x, x0]."""
        if _within(W, c, t, x, psi_it, phi_max):
            return x
        theta = (phi - lev_it) / max(phi - phi0, 1e-300)
        for _ in range(60):
            theta = min(1.0, theta)
            xf = x + theta * (x0 - x)
            sf_ = (1.0 - theta) * s + theta * s0
            if sf_.min() > 0 and _within(W, c, t, xf, psi_it, phi_max):
                return xf
            theta = 2.0 * theta + 1e-16
        return x0

    x = x0
    s = s0
    phi, g, p = level_grad(W, c, t, x)
    sf = lev_it - phi
    mu0 = max(float(np.linalg.norm(x - x_star)) ** 2, 1e-12) / (s.size + 1)
    # centred start (every complementarity product mu0), except on the rows nearly tight at
    # x0: x0 lies within about tol of x^t, where hundreds of rows have slacks of 1e-10, and
    # mu0 / s there gave multipliers of 1e8 and a dual residual the method never recovered
    # from (its iterates stayed at x0: 8 of 10 classes of a CNN point, 5 of 50 MNIST classes)
    lam = mu0 / np.maximum(s, _LAM0_SLACK_FLOOR * float(np.median(s)))
    mult = mu0 / sf
    best = (np.inf, x, mult, lam[:m])
    history = []
    for it in range(1, max_iter + 1):
        xf = feasible(x, s, phi)
        lb = _lower_bound(poly, level_grad, t, W, c, x_star, lev_cert, xf, mult, lam[:m],
                          rows.rmatvec)
        dist = float(np.linalg.norm(xf - x_star))
        gap = dist - lb
        history.append(gap)
        if gap < best[0]:
            best = (gap, xf, mult, lam[:m].copy())
        if gap <= gap_tol * (1.0 + dist):
            return xf, mult, lam[:m], it, history, "converged"
        if stop_below is not None and dist <= stop_below:
            return xf, mult, lam[:m], it, history, "bounded"
        if len(history) > 2 * _STALL and min(history[-_STALL:]) > 0.5 * min(history[:-_STALL]):
            break  # no halving of the certified gap in _STALL iterations
        n = s.size + 1
        mu = (s @ lam + sf * mult) / n
        rd = (x - x_star) - GT(lam) + mult * g
        rf = phi + sf - lev_it  # primal residual of the level constraint
        # Newton matrix: I + mult H_phi + (mult/sf) g g^T + G^T diag(lam/s) G; reduced while
        # the certified gap keeps falling, exact after 3 iterations without a new best
        exact = n_keep >= n_dense or len(history) - 1 - int(np.argmin(history)) >= 3
        for _ in range(2):
            solve = _newton(factor(exact), rd, rf, s, sf, lam, mult, g, G, GT)
            dx, ds, dsf, dl, dm = solve(s * lam, sf * mult)  # affine-scaling predictor
            ap = min(1.0, ratio(s, ds), ratio(np.array([sf]), np.array([dsf])))
            ad = min(1.0, ratio(lam, dl), ratio(np.array([mult]), np.array([dm])))
            mu_aff = ((s + ap * ds) @ (lam + ad * dl) + (sf + ap * dsf) * (mult + ad * dm)) / n
            sigma = min(1.0, (mu_aff / mu) ** 3)
            # Mehrotra's corrector and Gondzio's, on the pairs (s, lam) and (sf, mult) stacked
            s_all, lam_all = np.append(s, sf), np.append(lam, mult)

            def solve_all(r, solve=solve):
                dx, ds, dsf, dl, dm = solve(r[:-1], r[-1])
                return dx, np.append(ds, dsf), np.append(dl, dm)

            r = np.append(s * lam + ds * dl, sf * mult + dsf * dm) - sigma * mu
            (dx, ds_all, dl_all), ap, ad = centrality_correctors(
                s_all, lam_all, solve_all(r), r, sigma, mu, solve_all)
            ds, dsf, dl, dm = ds_all[:-1], ds_all[-1], dl_all[:-1], dl_all[-1]
            if exact or min(ap, ad) >= _SHORT_STEP:
                break
            exact = True  # a short reduced step: recompute it with every row
        for _ in range(60):  # recomputed slacks must stay positive (rounding)
            x_new = x + ap * dx
            s_new = slacks(x_new)
            if s_new.min() > 0:
                break
            ap *= 0.5
        else:
            break
        x, s = x_new, s_new
        phi, g, p = level_grad(W, c, t, x)
        sf = sf + ap * dsf
        lam = lam + ad * dl
        mult = mult + ad * dm
    gap, x, mult, nu = best
    why = "stalled" if len(history) < max_iter else "reached max_iter"
    return x, mult, nu, len(history), history, why


def _newton(cf, rd, rf, s, sf, lam, mult, g, G, GT):
    """``solve(r, rc)``: the Newton direction for complementarity residuals ``r`` (rows and
    box) and ``rc`` (level constraint), reusing the kernel's Cholesky factor ``cf``.

    Eliminating ``dlam = -(r + lam ds) / s`` and ``dmult = -(rc + mult dsf) / sf`` with
    ``ds = G dx`` and ``dsf = -rf - g^T dx`` leaves
    ``K dx = -rd - G^T (r / s) + g (rc - mult rf) / sf``.
    """

    def solve(r, rc):
        rhs = -rd - GT(r / s) + g * ((rc - mult * rf) / sf)
        dx = cf.solve(rhs)
        ds = G(dx)
        dsf = -rf - float(g @ dx)
        return dx, ds, dsf, (-r - lam * ds) / s, (-rc - mult * dsf) / sf

    return solve


# --------------------------------------------------------------------------------------------
# reference: cvxpy + Clarabel
# --------------------------------------------------------------------------------------------


def nearest_optimum_cvxpy(
    poly: Polytope,
    W: np.ndarray,
    c: np.ndarray,
    t: int,
    x_star: np.ndarray,
    x_opt: np.ndarray,
    log_prob: float,
    gap: float,
    *,
    tol: float = 1e-6,
) -> tuple[np.ndarray, float]:
    r"""Reference: the same program in cvxpy (``log_sum_exp``, exponential cone) with Clarabel.

    For small regions in tests; the point is not certified and may violate the constraints by
    the solver's tolerance. Clarabel's defaults are tried first, then the settings of
    :data:`lrtools.solvers.maxprob.CLARABEL_ATTEMPTS` (the thin feasible set makes the defaults
    stop with ``optimal_inaccurate`` on trained regions).

    Returns
    -------
    x : ndarray of shape (d,)
    distance : float
        :math:`\|x - x^*\|` at Clarabel's point.

    Raises
    ------
    SolverError
        When Clarabel does not report an optimal status.
    """
    import cvxpy as cp

    from .maxprob import CLARABEL_ATTEMPTS

    W, c, t, x_star, x_opt = _check(poly, W, c, t, x_star, x_opt, log_prob, gap, tol)
    A = poly.A.toarray() if hasattr(poly.A, "toarray") else poly.A
    x = cp.Variable(poly.dim)
    z = W @ x + c
    cons = [A @ x + poly.b >= 0, x >= poly.lo, x <= poly.hi,
            cp.log_sum_exp(z) - z[t] <= -float(log_prob) + float(tol)]
    prob = cp.Problem(cp.Minimize(cp.sum_squares(x - x_star)), cons)
    statuses = []
    for opts in ({}, *CLARABEL_ATTEMPTS):
        try:
            with warnings.catch_warnings():  # the status is checked below, not printed
                warnings.simplefilter("ignore", UserWarning)
                prob.solve(solver=cp.CLARABEL, **opts)
        except cp.error.SolverError as exc:
            statuses.append(f"{opts}: {exc}")
            continue
        statuses.append(f"{opts}: {prob.status}")
        if prob.status == cp.OPTIMAL and x.value is not None:
            break
    else:
        raise SolverError(
            f"nearest optimum in cvxpy+CLARABEL failed on {poly.n_rows} rows x {poly.dim} dims, "
            f"class {t}: " + "; ".join(statuses)
        )
    xv = np.asarray(x.value, dtype=np.float64)
    return xv, float(np.linalg.norm(xv - x_star))
