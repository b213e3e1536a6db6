r"""The most probable point of each class inside a linear region: eq. (6)-(8) of [1].

On a linear region :math:`P = \{x : A x + b \ge 0,\ \ell \le x \le u\}` the logits are affine,
:math:`z(x) = W x + c` (eq. 7), so the most probable point of class :math:`t` (eq. 6)

.. math::

    x^t \in \arg\max_{x \in P}\; z_t(x) - \log \sum_{j=1}^{M} \exp z_j(x)
        = \arg\min_{x \in P}\; \varphi_t(x),\qquad
    \varphi_t(x) = \operatorname{lse}(W x + c) - (W x + c)_t = -\log p_t(x) \ge 0

is a smooth convex program. Its Hessian
:math:`\nabla^2 \varphi_t = W^T(\operatorname{diag} p - p p^T) W` has rank at most :math:`M - 1`,
so a Newton step of a primal-dual interior-point method costs one :math:`d \times d` Cholesky
factorisation (``d = 784`` on MNIST).

Only the logit *differences* :math:`z_j(x^t) - z_t(x^t)` (hence :math:`p(x^t)` and the optimal
value) are unique: :math:`\varphi_t` is constant along the null space of :math:`W` (dimension
``d - M`` or more), so the optimal set :math:`\{x \in P : z(x) - z_t(x) = z(x^t) - z_t(x^t)\}`
can be large. On an MNIST region we found two optimal points 35 apart (the box's diameter is
56), so ``x^t``, and with it the distortion of eq. (8), depends on the solver: interior-point
methods return a point near the relative interior of the optimal set.

Every answer is certified by a Lagrangian (Fenchel) lower bound. For multipliers
:math:`\lambda \ge 0` of the rows and :math:`p = \operatorname{softmax}(W x + c)`, Fenchel-Young
(:math:`\varphi_t(x') \ge (p - e_t)^T (W x' + c) - \sum_j p_j \log p_j`) and
:math:`\lambda^T(A x' + b) \ge 0` give, for every :math:`x' \in P`,

.. math::

    \varphi_t(x') \ge L(x, \lambda) = (p - e_t)^T c - \sum_j p_j \log p_j - \lambda^T b
        + \sum_k \min(v_k \ell_k, v_k u_k),\qquad v = W^T (p - e_t) - A^T \lambda,

and :math:`\varphi_t \ge 0`; so ``gap = phi_t(x) - max(L, 0)`` bounds the distance of
``log p_t(x)`` from the optimum (the box absorbs any dual residual). The returned point satisfies
every inequality (rows and box) in float64: the interior-point iterates stay strictly inside,
and an answer with a slack below its float64 margin (or slightly outside) is moved to a strictly
interior point by the shortest lift of its tight rows, or else along the segment to an interior
point (:func:`_pull_inside`).

:func:`class_region_exists` answers the existence question of Section 3.4 exactly with a
margin LP; see its docstring for how it differs from the paper's criterion "x^t is classified
as t".

References
----------
.. [1] X. Zhang and D. Wu, "Empirical Studies on the Properties of Linear Regions in Deep
   Neural Networks", ICLR 2020, Section 3.4 and Appendix D.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import scipy.linalg as sla
from scipy import sparse
from scipy.sparse.linalg import lsqr
from scipy.special import logsumexp, softmax

from .._validation import check_array, check_choice, check_scalar
from ..exceptions import SolverError
from ..polytope import Polytope
from ._kernel import (
    LowRank,
    blas_threads,
    centrality_correctors,
    cholesky,
    max_step,
    region_memo,
    region_normal_matrix,
    resolve_device,
)
from ._lp import FALLBACKS, LPSolution, lp_lower_bound, record_fallback, solve_lp

__all__ = [
    "CLARABEL_ATTEMPTS",
    "FALLBACKS",
    "ClassRegionResult",
    "MaxProbResult",
    "MaxProbTable",
    "certify_max_log_prob",
    "class_region_exists",
    "interior_point",
    "margin_bound_from_log_prob",
    "max_log_prob",
    "max_log_prob_all",
    "max_log_prob_cvxpy",
    "max_log_prob_ipm",
]

#: How often :func:`max_log_prob` with ``method="auto"`` fell back to the reference solver
#: (key ``"max_log_prob"``); the solvers' one fallback counter (also ``"margin_lp"``, ...).
FALLBACKS = FALLBACKS

#: Clarabel settings tried in turn by the reference (SOLVER-FACTS: the defaults stall with
#: InsufficientProgress on MNIST regions; these two settings make it succeed).
CLARABEL_ATTEMPTS = (
    {"min_terminate_step_length": 1e-9, "min_switch_step_length": 1e-3},
    {"equilibrate_enable": False},
)

_METHODS = ("auto", "ipm", "clarabel")
_POLISH_RATIOS = (1.0, 1e-4, 1e-8)  # active set {lam_i > ratio * s_i} tried when polishing
_GAP_FLOOR = 1e-13  # absolute floor of the accepted gap (float64 resolution of log p_t)
_MU_FLOOR = 0.01  # centring keeps n * mu >= _MU_FLOOR * gap (no premature collapse)
_SHORT_STEP = 0.1  # a reduced Newton step shorter than this is recomputed with all rows
_DENSE_ROW_FRACTION = 0.05  # rows with more non-zeros (share of d) go to the dense block
_LSQR_ITER = 100  # LSQR sweeps of a large polish (CNN: 50, 100 and 300 gave the same iterates)
_LSTSQ_DENSE_MAX = 3_000_000  # entries of A_S above which polishing uses LSQR (MNIST: dense QR
# of 1,000-1,500 active rows x 784 is 4-10x faster than 300 LSQR sweeps)
_STALL = 3  # iterations without halving the gap (once complementarity is negligible)
_MAX_REJECTED = 4  # eq. 6 iterates meeting the target whose pull inside loses it (then fail)


# --------------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MaxProbResult:
    r"""The most probable point :math:`x^t` of class ``target`` in a region (eq. 6), verified.

    Attributes
    ----------
    x : ndarray of shape (d,)
        A maximiser :math:`x^t`; it satisfies every inequality of the region
        (``min_slack >= 0``). Not unique in general (see the module docstring).
    target : int
        The class :math:`t`.
    log_prob : float
        :math:`\log p_t(x^t)`, the optimal value of eq. (6) up to ``gap``.
    gap : float
        Certified bound: the optimum of eq. (6) lies in ``[log_prob, log_prob + gap]``.
    predicted : int
        :math:`\arg\max_j z_j(x^t)`; the paper (Section 3.4) counts class ``t`` as present in
        the region when ``predicted == target``.
    distortion : float
        :math:`\|x^t - x^*\|` (maximised over ``t`` in eq. 8); NaN without ``x_star``.
    n_active_rows, n_active_box : int
        Hyperplane rows and box faces within distance ``active_tol`` of ``x`` (Appendix D:
        :math:`x^t` lies on the boundary, so their sum is positive in most cases).
    min_slack : float
        Smallest slack over all inequalities (box included) at ``x``; never negative.
    method : str
        ``"ipm"`` (the fast path) or ``"clarabel"`` (the cvxpy reference).
    status : str
        The solver's status.
    seconds : float
        Wall-clock time of the solve and its verification.
    info : dict
        Extras: ``iterations``, ``fallback``, ``n_active_multipliers`` (constraints whose
        multiplier exceeds their slack), ...
    """

    x: np.ndarray
    target: int
    log_prob: float
    gap: float
    predicted: int
    distortion: float
    n_active_rows: int
    n_active_box: int
    min_slack: float
    method: str
    status: str
    seconds: float
    info: dict = field(default_factory=dict)

    @property
    def reaches_class(self) -> bool:
        """Whether :math:`x^t` is classified as ``target`` (the paper's criterion)."""
        return self.predicted == self.target

    @property
    def n_active(self) -> int:
        """Active hyperplane rows plus active box faces."""
        return self.n_active_rows + self.n_active_box


@dataclass(frozen=True)
class MaxProbTable:
    r""":math:`x^t` for the classes of one region (eq. 6 for each ``t``, and eq. 8).

    Attributes
    ----------
    results : list of MaxProbResult
        One per class, in class order. A class whose solvers all failed (only with
        ``on_error="record"``) has ``status == "failed"``, NaN floats and -1 integers.
    """

    results: list

    @property
    def n_classes_reached(self) -> int:
        """Classes whose :math:`x^t` is classified as ``t`` (Table 2, "Number")."""
        return int(sum(r.reaches_class for r in self.results))

    @property
    def distortion(self) -> float:
        r"""Eq. (8): :math:`\max_t \|x^t - x^*\|` (NaN if a class failed or no ``x_star``)."""
        return float(max(r.distortion for r in self.results))

    def to_dict(self) -> dict:
        """Columns of the per-class table, e.g. for ``pandas.DataFrame(table.to_dict())``."""
        rs = self.results
        return {
            "class": [r.target for r in rs],
            "log_prob": [r.log_prob for r in rs],
            "gap": [r.gap for r in rs],
            "predicted": [r.predicted for r in rs],
            "distortion": [r.distortion for r in rs],
            "n_active_rows": [r.n_active_rows for r in rs],
            "n_active_box": [r.n_active_box for r in rs],
            "min_slack": [r.min_slack for r in rs],
            "method": [r.method for r in rs],
            "status": [r.status for r in rs],
            "fallback": [bool(r.info.get("fallback", False)) for r in rs],
            "seconds": [r.seconds for r in rs],
        }


@dataclass(frozen=True)
class ClassRegionResult:
    r"""Outcome of the margin LP of :func:`class_region_exists`.

    Attributes
    ----------
    target : int
    exists : bool
        ``margin > tol``: the witness is classified as ``target`` with a positive margin, so
        class ``target``'s classification region meets the region in a set with interior.
    margin : float
        Margin :math:`\min_{j \ne t} z_t(x) - z_j(x)` at the (feasible) witness ``x``; equals
        the LP optimum :math:`s^*` up to ``gap``.
    margin_upper : float
        Certified upper bound on :math:`s^*` from the LP duals.
    x : ndarray of shape (d,)
        The witness, inside the region.
    gap : float
        ``margin_upper - margin``.
    status : str
        ``"exists"`` (``margin > tol``), ``"absent"`` (``margin_upper <= -tol``) or ``"tie"``
        (the class region touches the region at most on a set without interior).
    seconds : float
    by : str, default="lp"
        ``"lp"`` (the margin LP was solved), ``"lp-sign"`` (stopped once its sign was
        certified), ``"witness"`` (a given point inside the region already has a positive
        margin: existence is proved without the LP, ``margin`` is then only a lower bound on
        :math:`s^*`, ``margin_upper`` is ``inf`` and ``gap`` NaN), ``"eq6-dual"`` (absence
        proved without the LP by a dual point of the margin LP built from eq. 6's solution
        and multipliers, see :func:`margin_bound_from_eq6`) or ``"eq6-bound"`` (absence
        proved by the certified optimum of eq. 6, see :func:`margin_bound_from_log_prob`);
        in the last two ``margin`` is the witness's, a lower bound.
    """

    target: int
    exists: bool
    margin: float
    margin_upper: float
    x: np.ndarray
    gap: float
    status: str
    seconds: float
    by: str = "lp"


# --------------------------------------------------------------------------------------------
# objective, certificate and feasibility helpers (shared by every method)
# --------------------------------------------------------------------------------------------


def _phi(W: np.ndarray, c: np.ndarray, t: int, x: np.ndarray) -> float:
    r""":math:`\varphi_t(x) = \operatorname{lse}(Wx + c) - (Wx + c)_t = -\log p_t(x)`."""
    z = W @ x + c
    return float(logsumexp(z) - z[t])


def _all_slacks(poly: Polytope, x: np.ndarray) -> np.ndarray:
    """Stacked slacks ``[A x + b, x - lo, hi - x]`` (same order as :class:`_Problem`)."""
    return np.concatenate([poly.slack(x), x - poly.lo, poly.hi - x])


def _zero_rows(A) -> np.ndarray:
    """Mask of the rows of ``A`` with no non-zero."""
    if hasattr(A, "getnnz"):
        return A.getnnz(axis=1) == 0
    return ~np.any(A != 0, axis=1)


def _nontrivial(poly: Polytope) -> Polytope:
    """``poly`` without its zero rows (dead units with :math:`w_i = 0`): ``0 \\cdot x + b_i \\ge 0``
    holds everywhere when :math:`b_i \\ge 0`, and a zero slack there must not be read as an
    empty interior. A zero row with :math:`b_i < 0` means the region is empty.

    The mask and the reduced polytope are built once per region (:func:`region_memo`), so
    that the classes of one region share one reduced ``A`` and so one kernel."""
    zero = region_memo(poly.A, ("zero_rows",), _zero_rows)
    if not zero.any():
        return poly
    if np.any(poly.b[zero] < 0):
        raise SolverError(f"the region is empty: a zero row has b < 0 ({poly.n_rows} rows).")
    key = ("nontrivial", poly.b.tobytes(), poly.lo.tobytes(), poly.hi.tobytes())
    return region_memo(poly.A, key, lambda _A: _read_only_rows(poly, ~zero))


def _read_only_rows(poly: Polytope, keep: np.ndarray) -> Polytope:
    """``poly.with_rows(keep)`` with the new arrays read-only, like the region they come from
    (so that :func:`region_memo` shares their kernel too)."""
    out = poly.with_rows(keep)
    for a in (out.A, out.b):
        if isinstance(a, np.ndarray):
            a.flags.writeable = False
    return out


def _min_slack(poly: Polytope, x: np.ndarray) -> float:
    return float(_all_slacks(poly, x).min())


def certify_max_log_prob(
    poly: Polytope, W: np.ndarray, c: np.ndarray, t: int, x: np.ndarray, lam: np.ndarray,
    *, rmatvec: Callable[[np.ndarray], np.ndarray] | None = None,
) -> tuple[float, float]:
    r"""Objective and certified lower bound of :math:`\min_{x \in P} \varphi_t(x)` (eq. 6).

    Parameters
    ----------
    poly : Polytope
        The region.
    W : ndarray of shape (M, d)
        ``Region.logit_W``.
    c : ndarray of shape (M,)
        ``Region.logit_b``.
    t : int
        The class.
    x : ndarray of shape (d,)
        A point of ``poly`` (its feasibility is checked separately).
    lam : ndarray of shape (m,)
        Multipliers of the hyperplane rows ``A x + b >= 0``; negative entries are clipped to 0.
    rmatvec : callable, optional
        ``v -> A^T v`` for ``poly.A`` held in another form (the interior-point kernel's dense
        and sparse row blocks, which skip the zeros of convolution rows); default
        ``poly.A.T @ v``.

    Returns
    -------
    phi : float
        :math:`\varphi_t(x) = -\log p_t(x)`.
    lower : float
        A lower bound on :math:`\min_P \varphi_t`, valid for any ``lam``.

    Notes
    -----
    With :math:`p = \operatorname{softmax}(Wx + c)` and :math:`v = W^T(p - e_t) - A^T\lambda`,

    .. math::

        \min_{x' \in P} \varphi_t(x') \ge \max\Big(0,\;
            (p - e_t)^T c - \sum_j p_j \log p_j - \lambda^T b
            + \sum_k \min(v_k \ell_k,\ v_k u_k)\Big).
    """
    lam = np.maximum(lam, 0.0)
    z = W @ x + c
    p = softmax(z)
    y = p.copy()
    y[t] -= 1.0
    pos = p > 0
    neg_entropy = float(np.sum(p[pos] * np.log(p[pos])))
    v = W.T @ y - (poly.A.T @ lam if rmatvec is None else rmatvec(lam))
    box = float(np.sum(np.minimum(v * poly.lo, v * poly.hi)))
    lower = float(y @ c) - neg_entropy - float(lam @ poly.b) + box
    return float(logsumexp(z) - z[t]), max(lower, 0.0)


def interior_point(poly: Polytope, x_star: np.ndarray | None = None) -> np.ndarray:
    """A point strictly inside ``poly`` (every slack, box included, positive).

    ``x_star`` (a point of the region such as ``Region.x_star``, often on the box boundary) is
    moved toward the box centre as far as the hyperplane rows allow. Without ``x_star``, or
    when that fails (a row with zero slack), the Chebyshev centre of eq. (5) is computed, which
    costs an LP of the region's size (seconds to minutes on MNIST regions).

    Raises
    ------
    SolverError
        When the region has an empty interior.
    """
    poly = _nontrivial(poly)
    if x_star is not None:
        x0 = _nudge_inside(poly, np.asarray(x_star, dtype=np.float64))
        if x0 is not None:
            return x0
    from .insphere import insphere, insphere_highs

    try:  # the fast method another module may provide; HiGHS's interior point otherwise
        res = insphere(poly, method="auto")
    except ValueError:
        res = insphere_highs(poly, method="highs-ipm")
    if res.radius <= 0 or _min_slack(poly, res.center) <= 0:
        raise SolverError(
            f"region has an empty interior (insphere radius {res.radius:.3g}) on "
            f"{poly.n_rows} rows x {poly.dim} dims; eq. (6) needs a strictly interior point."
        )
    return res.center


def _nudge_inside(poly: Polytope, x: np.ndarray) -> np.ndarray | None:
    """Move ``x`` toward the box centre so that every slack is positive, or return None."""
    s = poly.slack(x)
    if (s.size and s.min() <= 0) or np.any(x < poly.lo) or np.any(x > poly.hi):
        return None
    direction = 0.5 * (poly.lo + poly.hi) - x
    rate = poly.A @ direction
    shrinking = rate < 0
    eps = 0.5
    if np.any(shrinking):
        eps = min(eps, 0.5 * float(np.min(s[shrinking] / -rate[shrinking])))
    x0 = x + eps * direction
    return x0 if _min_slack(poly, x0) > 0 else None


def _row_margins(poly: Polytope, x: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    r"""Smallest hyperplane slack that fixes the activation pattern in float64 at ``x``.

    :math:`\text{margin}_i = 4 d\,u\,(|a_i|^T |x| + |b_i|)` with :math:`u = 2^{-53}`: four
    times the worst-case rounding error of a length-``d`` float64 dot product (Higham's
    :math:`\gamma_d`), far below the solvers' accuracy. A slack above it means the unit's
    sign at ``x`` is the region's however the pre-activation is rounded. ``rows``: only those.
    """
    eps = 4.0 * poly.dim * np.finfo(np.float64).eps / 2
    A, b = (poly.A, poly.b) if rows is None else (poly.A[rows], poly.b[rows])
    return eps * (abs(A) @ np.abs(x) + np.abs(b))


def _rows_below_margin(poly: Polytope, x: np.ndarray, s: np.ndarray,
                       factor: float = 1.0) -> np.ndarray:
    r"""Indices of the rows whose slack ``s`` (at ``x``) is below ``factor`` times
    :func:`_row_margins`, which is evaluated only on the rows that its Cauchy-Schwarz bound
    :math:`4 d u (\|a_i\| \|x\| + |b_i|)` cannot clear (no ``|A|`` of the full region)."""
    eps = factor * 4.0 * poly.dim * np.finfo(np.float64).eps / 2
    bound = eps * (poly.row_norms * float(np.linalg.norm(x)) + np.abs(poly.b))
    cand = np.flatnonzero(s < bound)
    if cand.size == 0:
        return cand
    return cand[s[cand] < factor * _row_margins(poly, x, cand)]


def _inside_enough(poly: Polytope, x: np.ndarray) -> bool:
    """Box satisfied and every hyperplane slack above its margin (strictly interior rows)."""
    if np.any(x < poly.lo) or np.any(x > poly.hi):
        return False
    return _rows_below_margin(poly, x, poly.slack(x)).size == 0


def _pull_inside(poly: Polytope, x: np.ndarray, x_in: np.ndarray) -> tuple[np.ndarray, float]:
    """Move ``x`` a very short way so that it is strictly interior: box satisfied, every
    hyperplane slack above :func:`_row_margins` (a pre-activation of ~1e-16 must not be left:
    its sign decides the activation pattern at the point).

    First the shortest move that lifts the rows near their margin to twice it, keeping the
    box faces it would cross fixed (:func:`_lift_rows`): 1e-10 to 1e-8 on the regions of the
    paper, where eq. (6)'s answers have hundreds of rows within a margin. If that fails, the
    smallest move along the segment toward the strictly interior ``x_in``
    (:func:`_pull_toward`); that one moves by the margin over ``x_in``'s own slack on the tight
    rows, which is ~1e-7 when ``x_in`` lies near them too. Returns the new point and the
    Euclidean length of the move (0 if ``x`` is already strictly inside).
    """
    if _inside_enough(poly, x):
        return x, 0.0
    x_new = _lift_rows(poly, x)
    if x_new is None:
        x_new = _pull_toward(poly, x, x_in)
    return x_new, float(np.linalg.norm(x_new - x))


def _lift_rows(poly: Polytope, x: np.ndarray, rounds: int = 12) -> np.ndarray | None:
    """Minimum-norm ``delta`` with ``a_i^T delta = max(2 margin_i - s_i, 0)`` on the rows
    near their margin and ``delta_k = 0`` on box faces near ``x``; ``x + delta`` if it is
    strictly interior, else None.

    It starts from the rows whose slack ``s_i`` is below four margins and the box faces within
    ``1e-9`` (or, if that fails, none), and adds the rows left below two margins and the faces
    crossed by a move, for up to ``rounds`` solves (an active-set method for the inequality
    version; 1-7 rounds on the regions of the paper). Those rows are the active set of the
    solver's answer, fewer than ``d`` (230-450 of 3,072 rows on MNIST, 550-1,550 of 12,512 on
    the CIFAR-10 CNN), so the system is underdetermined; its minimum-norm solution comes from
    the rows' Gram matrix (``lstsq`` if that is singular). Rows already clear by two margins
    are held where they are.
    """
    lo, hi = poly.lo, poly.hi
    if np.any(x < lo) or np.any(x > hi):
        return None
    s = poly.slack(x)
    tight = _rows_below_margin(poly, x, s, 4.0)
    need = np.zeros(poly.n_rows)
    need[tight] = _row_margins(poly, x, tight)
    near_box = np.flatnonzero(np.minimum(x - lo, hi - x) < 1e-9)
    for fixed in (near_box, near_box[:0]):
        rows = tight
        for _ in range(rounds):
            if rows.size == 0 or rows.size + fixed.size > poly.dim:
                break
            free = np.setdiff1d(np.arange(poly.dim), fixed, assume_unique=True)
            delta = np.zeros(poly.dim)
            delta[free] = _min_norm_solution(poly.A[rows][:, free],
                                             np.maximum(2.0 * need[rows] - s[rows], 0.0))
            x_new = x + delta
            out = np.flatnonzero((x_new < lo) | (x_new > hi))
            s_new = poly.slack(x_new)
            low = _rows_below_margin(poly, x_new, s_new, 2.0)  # those below one margin among them
            if out.size == 0 and np.all(s_new[low] >= _row_margins(poly, x_new, low)):
                return x_new
            low = np.setdiff1d(low, rows)
            need[low] = _row_margins(poly, x, low)
            rows, fixed = np.union1d(rows, low), np.union1d(fixed, out)
    return None


def _min_norm_solution(A_r, r: np.ndarray) -> np.ndarray:
    """``A_r^T (A_r A_r^T)^{-1} r``, the minimum-norm solution of ``A_r delta = r`` (dense or
    sparse ``A_r`` of full row rank); ``lstsq`` when the Gram matrix is singular."""
    gram = A_r @ A_r.T
    gram = gram.toarray() if hasattr(gram, "toarray") else gram
    try:
        y = sla.cho_solve(sla.cho_factor(gram, check_finite=False), r, check_finite=False)
        return np.asarray(A_r.T @ y).ravel()
    except np.linalg.LinAlgError:
        dense = A_r.toarray() if hasattr(A_r, "toarray") else np.asarray(A_r)
        return sla.lstsq(dense, r, lapack_driver="gelsd", check_finite=False)[0]


def _pull_toward(poly: Polytope, x: np.ndarray, x_in: np.ndarray) -> np.ndarray:
    """Smallest move of ``x`` toward the strictly interior ``x_in`` that makes it strictly
    interior.

    Slacks are affine along the segment, so the fraction is computed in closed form, then
    doubled until the float64 check passes.
    """
    m = poly.n_rows
    need = np.concatenate([_row_margins(poly, x), np.zeros(2 * poly.dim)])
    s, s_in = _all_slacks(poly, x) - need, _all_slacks(poly, x_in) - need
    bad = s < 0
    if np.any(s_in[bad] <= 0):
        raise SolverError("could not pull the point inside the region: x_in is not interior "
                          f"enough ({int(np.sum(s_in[:m] <= 0))} rows at its margin).")
    theta = float(np.max(-s[bad] / (s_in[bad] - s[bad])))
    for _ in range(60):
        x_new = x + theta * (x_in - x)
        if _inside_enough(poly, x_new):
            return x_new
        theta = min(1.0, 2.0 * theta + 1e-16)
    raise SolverError("could not pull the point inside the region: x_in is not interior.")


def _active_counts(poly: Polytope, x: np.ndarray, tol: float) -> tuple[int, int]:
    """Hyperplane rows and box faces within Euclidean distance ``tol`` of ``x``."""
    m = poly.n_rows
    s = _all_slacks(poly, x)
    norms = poly.row_norms
    rows = int(np.sum(s[:m] <= tol * np.where(norms > 0, norms, 1.0)))
    return rows, int(np.sum(s[m:] <= tol))


# --------------------------------------------------------------------------------------------
# validation at the public boundary
# --------------------------------------------------------------------------------------------


def _check_problem(poly, W, c, t=None) -> tuple[np.ndarray, np.ndarray, int | None]:
    if not isinstance(poly, Polytope):
        raise TypeError(f"poly must be an lrtools Polytope; got {type(poly).__name__}.")
    W = check_array(W, "W", ndim=2, hint="Pass Region.logit_W of shape (M, d).")
    M = W.shape[0]
    if W.shape[1] != poly.dim:
        raise ValueError(
            f"W must have shape (M, {poly.dim}) to match the region's dimension; got {W.shape}. "
            "Pass Region.logit_W."
        )
    if M < 2:
        raise ValueError(f"W must have at least 2 rows (classes); got {M}.")
    c = check_array(c, "c", shape=(M,), hint="Pass Region.logit_b.")
    if t is not None:
        check_scalar(t, "t", (int, np.integer), min_val=0, max_val=M - 1)
        t = int(t)
    return W, c, t


def _check_point(poly: Polytope, x, name: str) -> np.ndarray | None:
    if x is None:
        return None
    return check_array(x, name, shape=(poly.dim,), hint="Pass a flattened input, e.g. x.ravel().")


def _check_tols(gap_tol: float, active_tol: float) -> None:
    check_scalar(gap_tol, "gap_tol", float, min_val=0.0, include_min=False)
    check_scalar(active_tol, "active_tol", float, min_val=0.0)


# --------------------------------------------------------------------------------------------
# verification and packaging (shared by the reference and the fast path)
# --------------------------------------------------------------------------------------------


class _Problem:
    """Data of eq. (6) in the stacked form ``s = G x + h0 >= 0``.

    ``G = [A; I; -I]`` and ``h0 = [b; -lo; hi]``; ``G`` is applied as an operator, never formed.
    The rows of ``A`` go to the shared :class:`~lrtools.solvers._kernel.NormalMatrix` (dense
    rows by ``syrk``, sparse convolution rows of CNN regions, Appendix E of [1], as CSR); the
    box rows enter the normal matrix as a diagonal.
    """

    def __init__(self, poly: Polytope, W: np.ndarray, c: np.ndarray, t: int,
                 device: str | None = None):
        self.poly = poly
        self.A = poly.A
        self.m, self.d = poly.A.shape
        self.h0 = np.concatenate([poly.b, -poly.lo, poly.hi])
        self.W, self.c, self.t = W, c, t
        self.rows = region_normal_matrix(  # one per region, shared by its classes and optima
            poly.A, dense_row_fraction=_DENSE_ROW_FRACTION, device=device, objective=W)
        self.n_dense = int(self.rows.dense_idx.size)
        self._A_csr = None

    def rows_on(self, rows: np.ndarray, cols: np.ndarray):
        """``A[rows][:, cols]``: dense for MLP regions, CSR (built once) for sparser ones."""
        A = self.A
        if not sparse.issparse(A) and self.rows.dense_idx.size == self.m:
            return A[np.ix_(rows, cols)]
        if self._A_csr is None:
            self._A_csr = region_memo(A, ("csr",), sparse.csr_matrix)
        return self._A_csr[rows][:, cols]

    def G(self, x: np.ndarray) -> np.ndarray:
        return np.concatenate([self.rows.matvec(x), x, -x])

    def GT(self, v: np.ndarray) -> np.ndarray:
        m, d = self.m, self.d
        return self.rows.rmatvec(v[:m]) + v[m : m + d] - v[m + d :]

    def slack(self, x: np.ndarray) -> np.ndarray:
        return self.G(x) + self.h0

    def grad_hess(self, x: np.ndarray) -> tuple[np.ndarray, LowRank]:
        """Gradient ``W^T (p - e_t)`` and Hessian ``W^T (diag p - p p^T) W`` of phi_t, the
        Hessian as the low-rank term ``(W^T diag sqrt p)(...)^T - (W^T p)(W^T p)^T``."""
        p = softmax(self.W @ x + self.c)
        y = p.copy()
        y[self.t] -= 1.0
        return self.W.T @ y, LowRank(self.W.T * np.sqrt(p), (self.W.T @ p,))

    def normal_matrix(self, H: LowRank, dvec: np.ndarray, n_keep: int):
        """``H + A^T D_A A + diag(D_lo + D_hi)``, dense rows beyond ``n_keep`` by their diagonal.

        Only the ``n_keep`` dense rows of largest weight ``D_i ||a_i||^2`` enter
        ``A^T D_A A`` exactly (the others add ``diag(A^T D A)``; sparse rows are always exact):
        an inexact Newton matrix, which changes the path but not the answer, as feasibility and
        the gap are always measured exactly. Written in place into the kernel's buffer.
        """
        m, d = self.m, self.d
        keep = self.rows.heaviest(dvec[:m], n_keep)
        diag = dvec[m : m + d] + dvec[m + d :]
        return self.rows.update(dvec[:m], diag=diag, extra=H, keep=keep)


def _polish_multipliers(prob: _Problem, s: np.ndarray, lam: np.ndarray, g, ratio: float):
    """Least-squares row multipliers on the active set ``{lam_i > ratio s_i}``, clipped at 0.

    At an optimum ``g = A_S^T lam_S`` on the coordinates not fixed by an active box face;
    solving this least-squares problem (LAPACK, or LSQR started from ``lam`` when it is large)
    removes the residual that the ill-conditioned
    Newton systems leave (any ``lam >= 0`` is valid in :func:`certify_max_log_prob`).
    """
    m, d = prob.m, prob.d
    active = lam > ratio * s
    rows = np.flatnonzero(active[:m])
    free = ~(active[m : m + d] | active[m + d :])
    if rows.size == 0 or not free.any():
        return lam
    A_s = prob.rows_on(rows, np.flatnonzero(free))
    if rows.size * free.sum() > _LSTSQ_DENSE_MAX:  # large: a few LSQR sweeps from lam
        sol = lsqr(A_s.T, g[free], x0=lam[rows], atol=1e-14, btol=1e-14, iter_lim=_LSQR_ITER)[0]
    else:
        A_s = A_s.toarray() if sparse.issparse(A_s) else A_s
        sol = _least_squares(A_s.T, g[free])
    out = lam.copy()
    out[:m] = 0.0
    out[rows] = np.maximum(sol, 0.0)
    return out


def _least_squares(M: np.ndarray, g: np.ndarray) -> np.ndarray:
    """A least-squares solution of ``M v = g`` by the semi-normal equations, refined.

    Cholesky of the smaller Gram matrix (``M^T M``, or ``M M^T`` for the minimum-norm solution
    when ``M`` is wide), one refinement step from the residual; a ridge of 1e-12, then 1e-9, of
    its largest diagonal entry when the Gram matrix is not numerically positive definite
    (rank-deficient active sets), and LAPACK's pivoted QR (``gelsy``) if that fails too.
    Measured on paper-size MNIST regions (280-2100 active rows x 40-780 free coordinates):
    2-5 ms instead of gelsy's 10-55 ms. The result only has to be non-negative after clipping
    to be usable: the certificate of
    :func:`certify_max_log_prob` is exact for any multipliers, so accuracy lost here can cost
    an iteration, never a wrong answer.
    """
    tall = M.shape[0] >= M.shape[1]
    K = M.T @ M if tall else M @ M.T
    cf = None
    for shift in (0.0, 1e-12, 1e-9):  # a rank-deficient M: a tiny ridge, then pivoted QR
        if shift:
            K[np.diag_indices_from(K)] += shift * float(np.max(np.diag(K), initial=0.0))
        try:
            cf = sla.cho_factor(K, check_finite=False)
            break
        except np.linalg.LinAlgError:
            continue
    if cf is not None and np.all(np.isfinite(cf[0])):
        def solve(rhs):
            return sla.cho_solve(cf, M.T @ rhs, check_finite=False) if tall else \
                M.T @ sla.cho_solve(cf, rhs, check_finite=False)

        v = solve(g)
        v += solve(g - M @ v)
        if np.all(np.isfinite(v)):
            return v
    return sla.lstsq(M, g, lapack_driver="gelsy", check_finite=False)[0]


def _gap_target(phi: float, gap_tol: float, gap_scale: float) -> float:
    """Accepted certified gap: ``gap_tol (|phi| + gap_scale)`` plus a float64 floor."""
    return gap_tol * (abs(phi) + gap_scale) + _GAP_FLOOR


def _best_certificate(prob: _Problem, x, s, lam, g, gap_tol: float, gap_scale: float,
                      own_rows: bool = False):
    """``(phi, gap, lam)`` for the better of the given and the polished multipliers.

    Polishing is tried only near the end (gap within ``1e3`` of the target, above it) and once
    complementarity ``s^T lam`` is below the gap, i.e. when the dual residual (which polishing
    removes) dominates the gap. ``A^T lam`` is taken from the kernel's row blocks (a CNN
    region's dense ``A`` is 307 MB: 17 ms a product, against about 3 ms), or from the region's
    own ``A`` with ``own_rows`` (the answer's final certificate, :func:`_finish`).
    """
    poly, W, c, t, m = prob.poly, prob.W, prob.c, prob.t, prob.m
    rmatvec = None if own_rows else prob.rows.rmatvec
    phi, lower = certify_max_log_prob(poly, W, c, t, x, lam[:m], rmatvec=rmatvec)
    target = _gap_target(phi, gap_tol, gap_scale)
    if target < phi - lower < 1e3 * target and s @ lam < phi - lower:
        for ratio in _POLISH_RATIOS:
            lam_p = _polish_multipliers(prob, s, lam, g, ratio)
            _, lower_p = certify_max_log_prob(poly, W, c, t, x, lam_p[:m], rmatvec=rmatvec)
            if lower_p > lower:
                lam, lower = lam_p, lower_p
            if phi - lower <= target:
                break
    return phi, phi - lower, lam


def _finish(
    prob: _Problem, x, lam, *, x_star, method, status, t0, gap_tol, gap_scale, active_tol, info
):
    """Verify feasibility and the certified gap of ``x``, then package the answer."""
    poly, t = prob.poly, prob.t
    s = prob.slack(x)
    min_slack = float(s.min())
    size = f"{poly.n_rows} rows x {poly.dim} dims, class {t}"
    if min_slack < 0:
        raise SolverError(
            f"eq. (6) answer of {method} (status {status}) violates the region by "
            f"{-min_slack:.3g} on {size}."
        )
    if not _inside_enough(poly, x):
        raise SolverError(
            f"eq. (6) answer of {method} (status {status}) has a hyperplane slack below its "
            f"float64 margin (the activation pattern at x^t could flip) on {size}."
        )
    g, _ = prob.grad_hess(x)
    phi, gap, lam = _best_certificate(prob, x, np.maximum(s, 0.0), lam, g, gap_tol, gap_scale,
                                      own_rows=True)
    info["row_multipliers"] = np.maximum(lam[: prob.m], 0.0)  # of the certificate (margin LP)
    if not np.isfinite(gap) or gap > _gap_target(phi, gap_tol, gap_scale):
        raise SolverError(
            f"eq. (6) answer of {method} (status {status}) has certified gap {gap:.3g} > "
            f"{gap_tol:g} (|log p_t| + {gap_scale:g}) on {size}."
        )
    n_rows, n_box = _active_counts(poly, x, active_tol)
    distortion = float(np.linalg.norm(x - x_star)) if x_star is not None else float("nan")
    return MaxProbResult(
        x=x,
        target=t,
        log_prob=-phi,
        gap=max(gap, 0.0),
        predicted=int(np.argmax(prob.W @ x + prob.c)),
        distortion=distortion,
        n_active_rows=n_rows,
        n_active_box=n_box,
        min_slack=min_slack,
        method=method,
        status=status,
        seconds=time.perf_counter() - t0,
        info=info,
    )


# --------------------------------------------------------------------------------------------
# reference: cvxpy + Clarabel
# --------------------------------------------------------------------------------------------


def max_log_prob_cvxpy(
    poly: Polytope,
    W: np.ndarray,
    c: np.ndarray,
    t: int,
    *,
    x_star: np.ndarray | None = None,
    x_in: np.ndarray | None = None,
    gap_tol: float = 1e-3,
    active_tol: float = 1e-6,
) -> MaxProbResult:
    r"""Reference: eq. (6) written in cvxpy and solved with Clarabel.

    .. math::

        \max_x\; z_t(x) - \log \sum_j \exp z_j(x)\quad \text{s.t.}\quad
        A x + b \ge 0,\; \ell \le x \le u,\qquad z(x) = W x + c \;\text{(eq. 7)}.

    The affine logits are substituted into the objective (equality-constrained logit variables
    make Clarabel fail). The settings of :data:`CLARABEL_ATTEMPTS` are tried in turn.

    Parameters
    ----------
    poly : Polytope
        The region.
    W : ndarray of shape (M, d)
        ``Region.logit_W``.
    c : ndarray of shape (M,)
        ``Region.logit_b``.
    t : int
        The class, ``0 <= t < M``.
    x_star : ndarray of shape (d,), optional
        The region's input (``Region.x_star``), for the distortion (eq. 8) and to find an
        interior point cheaply.
    x_in : ndarray of shape (d,), optional
        A strictly interior point used to pull a slightly infeasible answer inside; computed by
        :func:`interior_point` only when needed.
    gap_tol : float, default=1e-3
        Accepted certified gap, relative to ``1 + |log p_t|``. Much looser than the fast
        path's: Clarabel's value is accurate (within ~1e-7 of the fast path's on MNIST regions)
        but its point is less so, and the certificate of :func:`certify_max_log_prob` at a
        point ``x`` is at least the Frank-Wolfe gap
        :math:`\max_{x' \in P} \nabla\varphi_t(x)^T (x - x')`, which at Clarabel's points
        measured 1e-6 to 3e-4 even with the best multipliers.
    active_tol : float, default=1e-6
        Distance below which a constraint counts as active.

    Returns
    -------
    MaxProbResult
        ``method="clarabel"``; ``info`` holds ``attempt``, ``settings`` and ``pulled`` (the
        length of the move that made the answer strictly interior, :func:`_pull_inside`).

    Raises
    ------
    SolverError
        When every attempt fails or its answer fails verification.
    """
    poly = _nontrivial(poly)
    W, c, t = _check_problem(poly, W, c, t)
    x_star = _check_point(poly, x_star, "x_star")
    x_in = _check_point(poly, x_in, "x_in")
    _check_tols(gap_tol, active_tol)
    return _cvxpy_solve(_Problem(poly, W, c, t), x_star, x_in, gap_tol, active_tol)


def _cvxpy_problem(poly: Polytope, W: np.ndarray, c: np.ndarray, t: int):
    """Eq. (6) with the affine logits of eq. (7) substituted."""
    import cvxpy as cp

    x = cp.Variable(poly.dim)
    z = W @ x + c
    cons = [poly.A @ x + poly.b >= 0, poly.lo <= x, x <= poly.hi]
    return cp.Problem(cp.Maximize(z[t] - cp.log_sum_exp(z)), cons), x, cons


def _cvxpy_solve(prob: _Problem, x_star, x_in, gap_tol, active_tol) -> MaxProbResult:
    import cvxpy as cp

    poly, t = prob.poly, prob.t
    t0 = time.perf_counter()
    errors = []
    for attempt, opts in enumerate(CLARABEL_ATTEMPTS):
        problem, x, cons = _cvxpy_problem(poly, prob.W, prob.c, t)
        try:
            with warnings.catch_warnings():  # cvxpy's inaccuracy warning: the status is checked
                warnings.simplefilter("ignore", UserWarning)
                problem.solve(solver=cp.CLARABEL, **opts)
        except cp.error.SolverError as exc:
            errors.append(f"{opts}: {exc}")
            continue
        if problem.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) or x.value is None:
            errors.append(f"{opts}: status {problem.status}")
            continue
        xv = np.asarray(x.value, dtype=np.float64)
        lam = np.concatenate([np.ravel(k.dual_value) for k in cons]).astype(np.float64)
        moved = 0.0
        if not _inside_enough(poly, xv):  # strictly interior rows: the pattern at x^t holds
            if x_in is None:
                x_in = interior_point(poly, x_star)
            xv, moved = _pull_inside(poly, xv, x_in)
        info = {"attempt": attempt, "settings": opts, "pulled": moved, "errors": list(errors)}
        try:
            return _finish(
                prob,
                xv,
                lam,
                x_star=x_star,
                method="clarabel",
                status=problem.status,
                t0=t0,
                gap_tol=gap_tol,
                gap_scale=1.0,
                active_tol=active_tol,
                info=info,
            )
        except SolverError as exc:
            errors.append(f"{opts}: {exc}")
    raise SolverError(
        f"eq. (6) in cvxpy+CLARABEL failed for class {t} on {poly.n_rows} rows x {poly.dim} "
        "dims: " + "; ".join(errors)
    )


# --------------------------------------------------------------------------------------------
# fast path: primal-dual interior-point method (Mehrotra predictor-corrector + Gondzio)
# --------------------------------------------------------------------------------------------


def max_log_prob_ipm(
    poly: Polytope,
    W: np.ndarray,
    c: np.ndarray,
    t: int,
    *,
    x_star: np.ndarray | None = None,
    x_in: np.ndarray | None = None,
    gap_tol: float = 1e-7,
    max_iter: int = 80,
    n_keep: int | None = None,
    active_tol: float = 1e-6,
    device: str | None = None,
    threads: int | None = None,
) -> MaxProbResult:
    r"""Fast exact path: eq. (6) by a primal-dual interior-point method in float64.

    Minimises :math:`\varphi_t(x) = -\log p_t(x)` over :math:`P` from a strictly interior point;
    every iterate stays strictly feasible. Each iteration factors (Cholesky, ``d x d``)

    .. math::

        K = W^T(\operatorname{diag} p - p p^T) W + A^T \operatorname{diag}(\lambda / s) A
            + \operatorname{diag}(\lambda_\ell / s_\ell + \lambda_u / s_u)

    once and solves a Mehrotra predictor, a corrector and up to two Gondzio centrality
    correctors with it. It stops when the certified gap of :func:`certify_max_log_prob` is
    below ``gap_tol |log p_t| + 1e-13``: a relative accuracy of :math:`-\log p_t`, so that
    :math:`x^t` is resolved even for the predicted class, where :math:`p_t \approx 1`.

    The target is met at the returned point itself: an iterate with a hyperplane slack below
    its float64 margin (the activation pattern could flip there) is first moved strictly
    inside by :func:`_pull_inside`, and if the move loses the target the method iterates on.

    Parameters
    ----------
    poly, W, c, t, x_star, active_tol
        As in :func:`max_log_prob_cvxpy`.
    x_in : ndarray of shape (d,), optional
        Strictly interior starting point; default :func:`interior_point` ``(poly, x_star)``
        (pass ``x_star``: without it an LP of the region's size is solved first).
    gap_tol : float, default=1e-7
        Target certified gap, relative to ``|log p_t|`` (plus a ``1e-13`` floor).
    max_iter : int, default=80
    n_keep : int, optional
        Dense rows entering ``A^T diag(lambda/s) A`` exactly (the heaviest ones; the others by
        their diagonal; sparse convolution rows always enter exactly). Default
        ``max(d, 256)`` when every row is dense (MLP regions), ``max(n_dense // 4, 256)`` when
        sparse rows are split off (CNN regions); ``poly.n_rows`` gives the exact Newton
        matrix. It affects speed only: the answer is verified exactly either way, and a step
        shorter than 0.1 is recomputed with the exact matrix.
    device : {None, "numpy", "cpu", "cuda"}, default=None
        Where the Newton matrix and its Cholesky factor live (see
        :func:`lrtools.solvers.ipm.lp_ipm`); certificates are measured in numpy float64.
    threads : int or None, default=None
        BLAS threads during the solve (``None``: ``LRTOOLS_BLAS_THREADS`` or unchanged).

    Returns
    -------
    MaxProbResult
        ``method="ipm"``; ``info`` holds ``iterations``, ``gap_history``,
        ``n_active_multipliers``, ``pulled`` (length of the move that made the answer strictly
        interior) and ``n_rejected`` (iterates that met the target but lost it in that move).

    Raises
    ------
    SolverError
        When the certified gap does not reach ``gap_tol`` (stall or ``max_iter``).
    """
    poly = _nontrivial(poly)
    W, c, t = _check_problem(poly, W, c, t)
    x_star = _check_point(poly, x_star, "x_star")
    x_in = _check_point(poly, x_in, "x_in")
    _check_tols(gap_tol, active_tol)
    check_scalar(max_iter, "max_iter", int, min_val=1)
    if n_keep is not None:
        check_scalar(n_keep, "n_keep", int, min_val=1)
    t0 = time.perf_counter()
    if x_in is None:
        x_in = interior_point(poly, x_star)
    elif _min_slack(poly, x_in) <= 0:
        raise ValueError("x_in must lie strictly inside the region (every slack positive).")
    prob = _Problem(poly, W, c, t, device=resolve_device(device))
    if n_keep is None:
        n_keep = _default_n_keep(poly.dim, prob.n_dense, prob.n_dense == prob.m)
    if n_keep < prob.n_dense:
        prob.rows.prepare_reduction()
    pulled = [0.0]

    def accept(x, lam):
        """``x`` made strictly interior if its certified gap still meets the target there (the
        lift of :func:`_pull_inside` adds about ``sum lam_i margin_i`` to it), else None."""
        try:
            lifted, moved = _pull_inside(poly, x, x_in)
        except SolverError:
            return None
        if moved == 0.0:  # already strictly interior
            return x
        g, _ = prob.grad_hess(lifted)
        s = np.maximum(prob.slack(lifted), 0.0)
        phi, gap, _ = _best_certificate(prob, lifted, s, lam, g, gap_tol, 0.0)
        if gap > _gap_target(phi, gap_tol, 0.0):
            return None
        pulled[0] = moved
        return lifted

    with blas_threads(threads):
        x, lam, info = _ipm(prob, x_in, gap_tol, max_iter, n_keep, accept)
    info["pulled"] = pulled[0]
    return _finish(
        prob,
        x,
        lam,
        x_star=x_star,
        method="ipm",
        status=info["status"],
        t0=t0,
        gap_tol=gap_tol,
        gap_scale=0.0,
        active_tol=active_tol,
        info=info,
    )


def _default_n_keep(d: int, n_dense: int, all_dense: bool) -> int:
    """Dense rows in the reduced Newton matrix (``n_keep`` of :func:`max_log_prob_ipm`):
    ``max(d, 256)`` when every row is dense (MLP regions), else ``max(n_dense // 4, 256)``."""
    return max(d, 256) if all_dense else max(n_dense // 4, 256)


def _factor(K, work=None, single=None):
    """The kernel's regularised Cholesky factor of K (computed in ``work``, preallocated;
    float32 with refinement while ``single`` allows); SolverError if it stays singular."""
    F = cholesky(K, work=work, max_tries=13, single=single)
    if F is None:
        raise SolverError("the Newton system of eq. (6) stays singular after regularisation.")
    return F


def _initial_multipliers(prob: _Problem, s: np.ndarray, g: np.ndarray) -> np.ndarray:
    """``lam = mu0 / s`` plus box multipliers that cancel the initial dual residual."""
    m, d = prob.m, prob.d
    lam = max(1.0, float(np.linalg.norm(g, np.inf))) / s
    r = g - prob.GT(lam)
    lam[m : m + d] += np.maximum(r, 0.0)
    lam[m + d :] += np.maximum(-r, 0.0)
    return lam


def _direction(prob: _Problem, g, H, s, lam, n_keep, mu_floor=0.0):
    """Predictor-corrector direction ``(dx, ds, dlam)`` and step lengths ``(a_p, a_d)``.

    Newton on ``g(x) - G^T lam = 0``, ``lam * s = target`` with complementarity residual ``r``:
    ``K dx = -g + G^T(lam - r / s)``, ``ds = G dx``, ``dlam = -(r + lam ds) / s``. The centring
    target ``sigma mu`` is kept above ``mu_floor``: when ``-log p_t`` is tiny (the predicted
    class) a collapsing ``mu`` would otherwise freeze the iterate far from the optimum.
    """
    n = s.size
    mu = s @ lam / n
    cf = _factor(prob.normal_matrix(H, lam / s, n_keep), prob.rows.work, prob.rows.single)

    def solve(r, rhs=None):
        dx = cf.solve(-g + prob.GT(lam - r / s) if rhs is None else rhs)
        ds = prob.G(dx)
        return dx, ds, -(r + lam * ds) / s

    # predictor (affine scaling): r = s lam makes lam - r / s vanish, so its right-hand side
    # is -g, without a product with G^T (one of the ~10 passes over A of an iteration)
    dx, ds, dl = solve(s * lam, -g)
    a_p, a_d = min(1.0, max_step(s, ds)), min(1.0, max_step(lam, dl))
    sigma = ((s + a_p * ds) @ (lam + a_d * dl) / n / mu) ** 3
    sigma = min(1.0, max(sigma, mu_floor / mu))
    r = s * lam + ds * dl - sigma * mu  # Mehrotra corrector
    return centrality_correctors(s, lam, solve(r), r, sigma, mu, solve)


def _primal_step(prob: _Problem, x, dx, a_p):
    """``x + a dx`` with ``a <= a_p`` halved until every recomputed slack is positive."""
    for _ in range(60):
        s_new = prob.slack(x + a_p * dx)
        if s_new.min() > 0:
            return x + a_p * dx, s_new
        a_p *= 0.5
    return x, prob.slack(x)


def _ipm(prob: _Problem, x: np.ndarray, gap_tol: float, max_iter: int, n_keep: int,
         accept=None):
    """Primal-feasible, dual-infeasible primal-dual IPM; returns the best certified iterate.

    ``accept(x, lam)``, called on an iterate that meets the target, returns the point to
    answer with (``x`` itself, or ``x`` made strictly interior with the target still met) or
    None; on None the method iterates on, at most ``_MAX_REJECTED`` times.
    """
    s = prob.slack(x)
    g, H = prob.grad_hess(x)
    lam = _initial_multipliers(prob, s, g)
    status, history, best, n_exact, n_rejected = "max_iter", [], (np.inf, x, lam, s), 0, 0
    single = prob.rows.single
    if single is not None:
        single.reset()
    for _ in range(max_iter):
        phi, gap, lam_c = _best_certificate(prob, x, s, lam, g, gap_tol, 0.0)
        history.append(gap)
        if gap < best[0]:
            best = (gap, x, lam_c, s)
        if gap <= _gap_target(phi, gap_tol, 0.0):
            x_ok = x if accept is None else accept(x, lam_c)
            if x_ok is not None:
                status, best = "optimal", (gap, x_ok, lam_c, s)
                break
            n_rejected += 1
            if n_rejected >= _MAX_REJECTED:
                status = "rejected at the pull inside"
                break
        stalled = len(history) > _STALL and min(history[-_STALL:]) > 0.5 * min(history[:-_STALL])
        if stalled and s @ lam < 1e-3 * gap:
            status = "stalled"
            break
        mu_floor = _MU_FLOOR * gap / s.size
        (dx, _, dl), a_p, a_d = _direction(prob, g, H, s, lam, n_keep, mu_floor)
        if n_keep < prob.n_dense and min(a_p, a_d) < _SHORT_STEP:  # redo with the exact matrix
            (dx, _, dl), a_p, a_d = _direction(prob, g, H, s, lam, prob.m, mu_floor)
            n_exact += 1
        x, s = _primal_step(prob, x, dx, a_p)
        lam = lam + a_d * dl
        g, H = prob.grad_hess(x)
    gap, x, lam, s = best
    it = len(history)
    info = {
        "status": status,
        "iterations": it,
        "gap_history": history,
        "n_keep": n_keep,
        "n_exact_newton": n_exact,
        "n_rejected": n_rejected,
        "n_active_multipliers": int(np.sum(lam > s)),
        "n_single_factors": 0 if single is None else single.n_single,
    }
    if status != "optimal":
        raise SolverError(
            f"eq. (6) interior-point method {status} after {it} iterations with certified gap "
            f"{gap:.3g} on {prob.m} rows x {prob.d} dims, class {prob.t}."
        )
    return x, lam, info


# --------------------------------------------------------------------------------------------
# dispatch
# --------------------------------------------------------------------------------------------


def max_log_prob(
    poly: Polytope,
    W: np.ndarray,
    c: np.ndarray,
    t: int,
    *,
    x_star: np.ndarray | None = None,
    method: str = "auto",
    x_in: np.ndarray | None = None,
    active_tol: float = 1e-6,
) -> MaxProbResult:
    r"""The most probable point of class ``t`` in the region (eq. 6), verified.

    .. math::

        x^t \in \arg\max_{x \in P}\; z_t(x) - \log \sum_{j=1}^M \exp z_j(x),
        \qquad z(x) = W x + c \;\text{(eq. 7)}.

    Parameters
    ----------
    poly : Polytope
        The region, ``Region.polytope``.
    W : ndarray of shape (M, d)
        ``Region.logit_W``.
    c : ndarray of shape (M,)
        ``Region.logit_b``.
    t : int
        The class, ``0 <= t < M``.
    x_star : ndarray of shape (d,), optional
        ``Region.x_star``: gives the distortion (eq. 8) and a cheap interior starting point.
    method : {"auto", "ipm", "clarabel"}, default="auto"
        ``"ipm"``: :func:`max_log_prob_ipm`; ``"clarabel"``: :func:`max_log_prob_cvxpy`;
        ``"auto"``: the interior-point method, falling back to the reference when its check
        fails (``info["fallback"] = True``, and ``FALLBACKS["max_log_prob"]`` is incremented).
    x_in : ndarray of shape (d,), optional
        A strictly interior point (default from :func:`interior_point`).
    active_tol : float, default=1e-6
        Distance below which a constraint counts as active.

    Returns
    -------
    MaxProbResult

    Raises
    ------
    SolverError
        When the chosen method fails; with ``"auto"``, when both fail (both messages given).

    Examples
    --------
    >>> from lrtools.models import build_mlp
    >>> from lrtools.regions import linear_region
    >>> net = build_mlp(2, [8, 8], 3, seed=0)
    >>> r = linear_region(net, [0.2, -0.4])
    >>> res = max_log_prob(r.polytope, r.logit_W, r.logit_b, 1, x_star=r.x_star)
    >>> bool(r.polytope.contains(res.x)) and res.gap < 1e-6
    True
    """
    check_choice(method, "method", _METHODS)
    W, c, t = _check_problem(poly, W, c, t)
    x_star = _check_point(poly, x_star, "x_star")
    x_in = _check_point(poly, x_in, "x_in")
    if method == "clarabel":
        return max_log_prob_cvxpy(poly, W, c, t, x_star=x_star, x_in=x_in, active_tol=active_tol)
    if method == "ipm":
        return max_log_prob_ipm(poly, W, c, t, x_star=x_star, x_in=x_in, active_tol=active_tol)
    try:
        return max_log_prob_ipm(poly, W, c, t, x_star=x_star, x_in=x_in, active_tol=active_tol)
    except SolverError as exc:
        record_fallback("max_log_prob")
        try:
            res = max_log_prob_cvxpy(poly, W, c, t, x_star=x_star, x_in=x_in, active_tol=active_tol)
        except SolverError as exc2:
            raise SolverError(f"both solvers failed. ipm: {exc}. clarabel: {exc2}") from exc2
        res.info.update(fallback=True, ipm_error=str(exc))
        return res


def max_log_prob_all(
    poly: Polytope,
    W: np.ndarray,
    c: np.ndarray,
    *,
    x_star: np.ndarray | None = None,
    method: str = "auto",
    classes=None,
    on_error: str = "raise",
    active_tol: float = 1e-6,
) -> MaxProbTable:
    """:math:`x^t` for every class ``t`` of one region (eq. 6), and the distortion (eq. 8).

    The strictly interior starting point is computed once and shared by all classes.

    Parameters
    ----------
    poly, W, c, x_star, method, active_tol
        As in :func:`max_log_prob`.
    classes : sequence of int, optional
        The classes to solve; default all ``M``.
    on_error : {"raise", "record"}, default="raise"
        ``"record"`` puts a row with ``status="failed"``, NaN values and ``info["error"]``
        in the table instead of raising when every solver fails for a class.

    Returns
    -------
    MaxProbTable
        ``table.n_classes_reached`` (Table 2's "Number"), ``table.distortion`` (eq. 8) and
        ``table.to_dict()`` for a per-class table.
    """
    check_choice(method, "method", _METHODS)
    check_choice(on_error, "on_error", ("raise", "record"))
    W, c, _ = _check_problem(poly, W, c)
    x_star = _check_point(poly, x_star, "x_star")
    if classes is None:
        classes = range(W.shape[0])
    classes = [_check_problem(poly, W, c, k)[2] for k in classes]
    t0 = time.perf_counter()
    x_in = interior_point(poly, x_star) if method != "clarabel" else None
    x_in_seconds = time.perf_counter() - t0
    results = []
    for k in classes:
        try:
            res = max_log_prob(
                poly, W, c, k, x_star=x_star, method=method, x_in=x_in, active_tol=active_tol
            )
        except SolverError as exc:
            if on_error == "raise":
                raise
            res = _failed(poly.dim, k, method, str(exc))
        res.info["x_in_seconds"] = x_in_seconds
        results.append(res)
    return MaxProbTable(results)


def _failed(d: int, t: int, method: str, error: str) -> MaxProbResult:
    nan = float("nan")
    return MaxProbResult(
        x=np.full(d, nan),
        target=t,
        log_prob=nan,
        gap=nan,
        predicted=-1,
        distortion=nan,
        n_active_rows=-1,
        n_active_box=-1,
        min_slack=nan,
        method=method,
        status="failed",
        seconds=nan,
        info={"error": error},
    )


# --------------------------------------------------------------------------------------------
# exact existence test: the margin LP
# --------------------------------------------------------------------------------------------


def class_region_exists(
    poly: Polytope,
    W: np.ndarray,
    c: np.ndarray,
    t: int,
    *,
    x_star: np.ndarray | None = None,
    witness: np.ndarray | None = None,
    tol: float = 1e-9,
    gap_tol: float = 1e-7,
    method: str = "auto",
    sign_only: bool = False,
    log_prob_upper: float | None = None,
    witness_multipliers: np.ndarray | None = None,
) -> ClassRegionResult:
    r"""Whether class ``t``'s classification region meets the region, by a margin LP.

    .. math::

        s^* = \max_{x, s}\; s \quad\text{s.t.}\quad z_t(x) - z_j(x) \ge s \;\; \forall j \ne t,
        \qquad A x + b \ge 0,\; \ell \le x \le u.

    Class ``t`` is the strict argmax on a subset of the region with non-empty interior iff
    :math:`s^* > 0` (the region is assumed to have an interior). The LP is solved with
    ``scipy.optimize.linprog`` (HiGHS); the witness is made feasible, its margin recomputed, and
    :math:`s^*` bounded above with the LP duals (the box absorbs the dual residual).

    Relation to the paper's criterion (Section 3.4: class ``t`` is present iff :math:`x^t` of
    eq. 6 is classified as ``t``): if :math:`x^t` is classified as ``t`` with a strict margin,
    then :math:`s^* > 0`; the converse fails. Maximising :math:`p_t` trades the top competitor
    against all the others, so when class ``t`` wins only narrowly against several classes at
    once, :math:`x^t` may sit where a single competitor wins while :math:`p_t` is larger (e.g.
    ``1/(1 + e^{0.5})`` beats ``1/(1 + 9 e^{-0.01})``). The paper's count (Table 2) is thus a
    lower bound on the number of classes whose regions meet the linear region.

    Parameters
    ----------
    poly, W, c, t
        As in :func:`max_log_prob`.
    x_star : ndarray of shape (d,), optional
        Helps find the interior point used if the LP's witness is slightly outside.
    witness : ndarray of shape (d,), optional
        A candidate point, e.g. :math:`x^t` of eq. (6). If it satisfies every inequality of the
        region in float64 and has margin ``> tol``, class ``t`` exists and the LP is skipped
        (``by="witness"``); otherwise the LP is solved as usual. The answer (exists or not) is
        the same either way; only ``margin`` is then a lower bound instead of :math:`s^*`.
    log_prob_upper : float, optional
        A certified upper bound on :math:`\max_{x \in S} \log p_t(x)` over the same region
        (eq. 6: ``log_prob + gap`` of :func:`max_log_prob`). Where it proves
        :math:`s^* \le -` ``tol`` (:func:`margin_bound_from_log_prob`), the class is absent
        and the LP is skipped (``by="eq6-bound"``); otherwise the LP is solved as usual.
    witness_multipliers : ndarray of shape (m,), optional
        Eq. 6's multipliers of the region's rows at ``witness`` (``info["row_multipliers"]``
        of :func:`max_log_prob`). Where :func:`margin_bound_from_eq6` then proves
        :math:`s^* \le -` ``tol``, the class is absent and the LP is skipped
        (``by="eq6-dual"``). Any multipliers give a valid bound; only eq. 6's are useful.
    sign_only : bool, default=False
        Stop the interior-point LP as soon as the answer is certified: a feasible iterate with
        margin ``> tol`` (exists), or a weak-duality bound :math:`s^* \le` ``-tol`` (absent).
        ``exists`` is the same as with the full solve; ``margin`` and ``margin_upper`` are then
        only bounds (``by="lp-sign"``, ``gap`` possibly large). Several times faster on CNN
        regions, where the full LP takes 60-100 s.
    tol : float, default=1e-9
        Margins within ``tol`` of 0 are reported as ``"tie"``.
    gap_tol : float, default=1e-7
        Accepted ``margin_upper - margin``, relative to ``1 + |margin|``.
    method : str, default="auto"
        ``"ipm"`` (:func:`lrtools.solvers.ipm.lp_ipm`), a ``linprog`` method (``"highs"``,
        ``"highs-ds"``, ``"highs-ipm"``), or ``"auto"``: ``"ipm"`` then ``"highs-ipm"``. The
        answer is certified by the same weak-duality bound whatever the solver.

    Returns
    -------
    ClassRegionResult

    Raises
    ------
    SolverError
        When HiGHS fails or the certified gap exceeds ``gap_tol``.
    """
    poly = _nontrivial(poly)
    W, c, t = _check_problem(poly, W, c, t)
    x_star = _check_point(poly, x_star, "x_star")
    check_scalar(tol, "tol", float, min_val=0.0)
    check_scalar(gap_tol, "gap_tol", float, min_val=0.0, include_min=False)
    check_choice(method, "method", ("auto", "ipm", "highs", "highs-ds", "highs-ipm"))
    witness = _check_point(poly, witness, "witness")
    if log_prob_upper is not None:
        check_scalar(log_prob_upper, "log_prob_upper", (int, float))
    t0 = time.perf_counter()
    if witness is not None and _min_slack(poly, witness) >= 0:
        margin = _margin(W, c, t, witness)
        if margin > tol:
            return ClassRegionResult(
                t, True, margin, np.inf, witness, np.nan, "exists",
                time.perf_counter() - t0, by="witness",
            )
        if witness_multipliers is not None:
            upper = margin_bound_from_eq6(poly, W, c, t, witness, witness_multipliers)
            if upper <= -tol:
                return ClassRegionResult(
                    t, False, margin, upper, witness, max(upper - margin, 0.0), "absent",
                    time.perf_counter() - t0, by="eq6-dual",
                )
        if log_prob_upper is not None:
            upper = margin_bound_from_log_prob(float(log_prob_upper), W.shape[0])
            if upper <= -tol:
                return ClassRegionResult(
                    t, False, margin, upper, witness, max(upper - margin, 0.0), "absent",
                    time.perf_counter() - t0, by="eq6-bound",
                )
    obj, G, h, bounds = _margin_lp(poly, W, c, t)
    stop = _sign_stop(obj, G, h, bounds, poly, W, c, t, tol) if sign_only else None
    try:
        res = _solve_lp(obj, G, h, bounds, "ipm" if method == "auto" else method, poly, t, stop,
                        gap_atol=0.1 * gap_tol)
    except SolverError:
        if method != "auto":
            raise
        record_fallback("margin_lp")
        res = _solve_lp(obj, G, h, bounds, "highs-ipm", poly, t)
    x = res.x[: poly.dim]
    if not _inside_enough(poly, x):
        x, _ = _pull_inside(poly, x, interior_point(poly, x_star))
    margin = _margin(W, c, t, x)
    upper = -lp_lower_bound(obj, G, h, bounds, res.lam)
    gap = upper - margin
    decided = sign_only and (margin > tol or upper <= -tol)
    if not decided and (not np.isfinite(gap) or gap > gap_tol * (1.0 + abs(margin))):
        raise SolverError(
            f"margin LP for class {t} ({method}) has certified gap {gap:.3g} > {gap_tol:g} on "
            f"{poly.n_rows} rows x {poly.dim} dims."
        )
    status = "exists" if margin > tol else ("absent" if upper <= -tol else "tie")
    return ClassRegionResult(
        t, status == "exists", margin, upper, x, max(gap, 0.0), status, time.perf_counter() - t0,
        by="lp-sign" if res.status == "stopped" else "lp",
    )


def margin_bound_from_log_prob(log_prob_upper: float, n_classes: int) -> float:
    r"""Upper bound on the margin LP's optimum :math:`s^*` from an upper bound on eq. (6).

    At any :math:`x` with margin :math:`s = z_t - \max_{j \ne t} z_j`,
    :math:`p_t(x) = 1 / (1 + \sum_{j \ne t} e^{z_j - z_t}) \ge 1 / (1 + (K - 1) e^{-s})`.
    So if :math:`\log p_t \le L` on the whole region (:math:`P = e^L < 1`),

    .. math::

        s^* \le \log \frac{(K - 1) P}{1 - P},

    which is negative exactly when :math:`P < 1/K`: a class whose most probable point (eq. 6)
    has :math:`p_t < 1/K` cannot be the argmax anywhere in the region. Returns ``inf`` when
    :math:`P \ge 1` (no information). Computed with ``log1p``/``expm1`` so that very negative
    :math:`L` keeps full relative precision.
    """
    if n_classes < 2:
        raise ValueError(f"n_classes must be at least 2, got {n_classes}.")
    if not log_prob_upper < 0.0:
        return np.inf
    # log(P / (1 - P)) = L - log(1 - e^L) = L - log(-expm1(L))
    return float(np.log(n_classes - 1) + log_prob_upper - np.log(-np.expm1(log_prob_upper)))


def margin_bound_from_eq6(
    poly: Polytope, W: np.ndarray, c: np.ndarray, t: int, x: np.ndarray, lam: np.ndarray
) -> float:
    r"""Upper bound on the margin LP's optimum :math:`s^*` from eq. (6)'s solution for class t.

    Weak duality of the margin LP (:func:`class_region_exists`) with the dual point
    :math:`\mu_j = p_j(x) / \sum_{k \ne t} p_k(x)` on the rows :math:`z_t - z_j \ge s` and
    :math:`\tilde\lambda = \lambda / (1 - p_t(x))` on the region's rows, the box absorbing
    the dual residual:

    .. math::

        s^* \le \max_{\ell \le x' \le u}\; \sum_{j \ne t} \mu_j (z_t - z_j)(x')
              + \tilde\lambda^T (A x' + b).

    Valid for any ``x`` and ``lam >= 0``. At eq. 6's optimum :math:`x^t` with its multipliers
    ``lam`` the linear part's gradient is :math:`(\nabla \log p_t(x^t) + A^T\lambda) / (1 -
    p_t)`, which the KKT conditions make vanish off the box faces, so the bound is close to
    the :math:`p`-weighted mean margin at :math:`x^t`: on paper-size MNIST regions it proved
    absence for 9 of the 11 classes that needed an LP (about 1 s each) otherwise.

    Parameters
    ----------
    poly, W, c, t
        As in :func:`max_log_prob`.
    x : ndarray of shape (d,)
        The point whose probabilities weight the classes (eq. 6's :math:`x^t`).
    lam : ndarray of shape (m,)
        Multipliers of the region's rows (``info["row_multipliers"]`` of
        :func:`max_log_prob`); negative entries are clipped to 0.

    Returns
    -------
    float
        The bound; ``inf`` when the weights are not finite.
    """
    poly = _nontrivial(poly)
    lam = np.asarray(lam, dtype=np.float64)
    if lam.shape != (poly.n_rows,):
        raise ValueError(
            f"lam must hold one multiplier per non-zero row of the region, shape "
            f"({poly.n_rows},); got {lam.shape}. Pass info['row_multipliers'] of eq. 6 "
            "solved on the same polytope."
        )
    z = W @ x + c
    p = softmax(z)
    others, D, e = _margin_rows(W, c, t)
    rest = float(p[others].sum())  # 1 - p_t without cancellation
    if not rest > 0 or not np.isfinite(rest):
        return np.inf
    mu = p[others] / rest
    lam = np.maximum(lam, 0.0) / rest
    r = D.T @ mu + poly.A.T @ lam  # gradient of the Lagrangian in x (maximised over the box)
    upper = float(mu @ e + lam @ poly.b + np.sum(np.maximum(r * poly.lo, r * poly.hi)))
    upper += abs(1.0 - float(mu.sum())) * _margin_bound_S(poly, D, e)  # s column's rounding
    return upper if np.isfinite(upper) else np.inf


def _sign_stop(obj, G, h, bounds, poly, W, c, t, tol):
    """``stop(y, lam)`` for :func:`lp_ipm`: True once the sign of the margin LP is certified."""
    n_g, d = G.shape[0], poly.dim

    def stop(y: np.ndarray, lam: np.ndarray) -> bool:
        if -lp_lower_bound(obj, G, h, bounds, lam[:n_g]) <= -tol:
            return True  # certified absent
        x = y[:d]
        return _min_slack(poly, x) >= 0 and _margin(W, c, t, x) > tol  # certified witness

    return stop


def _margin(W: np.ndarray, c: np.ndarray, t: int, x: np.ndarray) -> float:
    r""":math:`\min_{j \ne t} z_t(x) - z_j(x)`."""
    z = W @ x + c
    return float(z[t] - np.max(np.delete(z, t)))


def _margin_rows(W: np.ndarray, c: np.ndarray, t: int):
    """``(others, D, e)``: the classes ``j != t`` and the margin rows
    ``z_t - z_j = D_j x + e_j``."""
    others = np.delete(np.arange(W.shape[0]), t)
    return others, W[t] - W[others], c[t] - c[others]


def _margin_bound_S(poly: Polytope, D: np.ndarray, e: np.ndarray) -> float:
    """``S``: 1 + the largest ``|z_t - z_j|`` over the box, the margin variable's bound."""
    mid, half = 0.5 * (poly.lo + poly.hi), 0.5 * (poly.hi - poly.lo)
    return 1.0 + float(np.max(np.abs(D @ mid + e) + np.abs(D) @ half))


def _all_rows_dense(poly: Polytope) -> bool:
    """Whether every row of the region is dense (more than ``_DENSE_ROW_FRACTION`` of its
    entries non-zero, as in :class:`~lrtools.solvers._kernel.NormalMatrix`): MLP regions,
    not the convolution rows of CNN regions. Counted once per region (:func:`region_memo`)."""
    A = poly.A
    if sparse.issparse(A):
        return False
    nnz = region_memo(A, ("row_nnz",), lambda G: np.count_nonzero(G, axis=1))
    return bool(np.all(nnz > _DENSE_ROW_FRACTION * poly.dim))


def _margin_lp(poly: Polytope, W: np.ndarray, c: np.ndarray, t: int):
    """``min -s`` s.t. ``G (x, s) <= h`` in linprog form, with finite bounds on every variable.

    ``s`` is bounded by ``|s| <= S``, ``S`` the largest ``|z_t - z_j|`` over the box, which
    never binds but makes the weak-duality bound (:func:`lp_lower_bound`) finite.
    """
    from scipy import sparse

    d = poly.dim
    others, D, e = _margin_rows(W, c, t)
    S = _margin_bound_S(poly, D, e)
    k = len(others)
    if not _all_rows_dense(poly):  # CNN regions: CSR skips the zeros of convolution rows
        G = sparse.vstack(
            [
                sparse.hstack([sparse.csr_matrix(-D), np.ones((k, 1))]),
                sparse.hstack([-sparse.csr_matrix(poly.A), sparse.csr_matrix((poly.n_rows, 1))]),
            ],
            format="csr",
        )
    else:  # MLP regions stay dense (a CSR copy cost a third of a paper-size MNIST LP)
        G = np.zeros((k + poly.n_rows, d + 1))
        G[:k, :d], G[:k, d], G[k:, :d] = -D, 1.0, -poly.A
    h = np.concatenate([e, poly.b])
    obj = np.zeros(d + 1)
    obj[-1] = -1.0
    bounds = np.vstack([np.column_stack([poly.lo, poly.hi]), [[-S, S]]])
    return obj, G, h, bounds


def _solve_lp(obj, G, h, bounds, method, poly, t, stop=None, gap_atol=0.0) -> LPSolution:
    """The margin LP with one back-end of the LP front; SolverError unless solved (or stopped).

    The certificate is the caller's weak-duality bound on ``res.lam``, whatever the solver.
    A dense ``G`` (:func:`_margin_lp` on an MLP region) gets eq. 6's reduced Newton matrix
    (:func:`_default_n_keep` as ``n_keep`` of :func:`lp_ipm`: speed only, every residual is
    measured exactly and a stalled reduced run is redone exactly).
    ``gap_atol`` (``"ipm"`` only) is the absolute gap the interior-point method may stop at:
    the margin's optimum is often near 0, where its relative test (1e-9 of ``|s*|``) asks
    for more digits than the caller's ``gap_tol`` and than float64 gives (it then stalls,
    and the HiGHS fallback took 24 s instead of 2 s on a paper-size MNIST region).
    """
    options = None
    if method == "ipm":
        options = {"gap_atol": gap_atol} if gap_atol > 0 else {}
        if not sparse.issparse(G):  # an MLP region (MNIST margin LP: about 0.8 -> 0.7 CPU-s)
            options["n_keep"] = _default_n_keep(poly.dim, G.shape[0], True)
    res = solve_lp(obj, G, h, bounds, method=method, stop=stop, options=options)
    if not (res.success or res.status == "stopped"):
        raise SolverError(
            f"margin LP for class {t} with {method}: status {res.status} ({res.raw_status}) on "
            f"{poly.n_rows} rows x {poly.dim} dims."
        )
    return res
