"""Tests of lrtools.solvers.maxprob: eq. (6)-(8) and Appendix D of Zhang & Wu (ICLR 2020).

Independent references: cvxpy + Clarabel (eq. 6 as written), HiGHS (the margin LP), dense
sampling of the region with the torch model itself, and a hand-computed example. Every point
comparison is justified by the certified gaps (see ``_logit_tolerance``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import sparse
from scipy.optimize import linprog, minimize

import lrtools.solvers.maxprob as mp
from lrtools.exceptions import SolverError
from lrtools.models import build_mlp
from lrtools.polytope import Polytope
from lrtools.regions import activation_patterns, linear_region, predict
from lrtools.solvers.insphere import insphere_highs
from lrtools.solvers.maxprob import (
    certify_max_log_prob,
    class_region_exists,
    margin_bound_from_log_prob,
    max_log_prob,
    max_log_prob_all,
    max_log_prob_cvxpy,
    max_log_prob_ipm,
)

# --------------------------------------------------------------------------------------------
# fixtures: small trained networks and their regions
# --------------------------------------------------------------------------------------------


def _train(net: torch.nn.Module, d: int, n_classes: int, seed: int, steps: int = 60):
    """A few Adam steps on Gaussian blobs in [-1, 1]^d (gives trained-looking regions)."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.rand(n_classes, d, generator=g) * 1.6 - 0.8
    y = torch.randint(0, n_classes, (512,), generator=g)
    X = centres[y] + 0.25 * torch.randn(512, d, generator=g)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    net.train()
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(X), y).backward()
        opt.step()
    return net.eval()


def _make_region(d, widths, n_classes, variant, seed, x=None):
    net = _train(build_mlp(d, widths, n_classes, variant=variant, seed=seed), d, n_classes, seed)
    if x is None:
        x = np.random.default_rng(seed).uniform(-0.5, 0.5, d)
    return net, linear_region(net, x)


@pytest.fixture(scope="module")
def region_2d():
    """2-D input, 3 classes: the logit differences determine x^t uniquely (D is 2 x 2)."""
    return _make_region(2, [8, 8], 3, "vanilla", seed=1)


@pytest.fixture(scope="module", params=["vanilla", "bn", "dropout"])
def region_20d(request):
    """20-D input, 10 classes, one region per training variant."""
    return _make_region(20, [24, 24], 10, request.param, seed=2)


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _logit_tolerance(W, c, t, x, gap_sum):
    """Bound on the distance of two near-optimal logit-difference vectors.

    ``F(u) = lse(u) - u_t`` is strongly convex on ``u - u_t 1`` with modulus ``kappa`` (the
    smallest non-zero eigenvalue of ``diag p - p p^T``); if ``u1, u2`` come from points of the
    convex region that are ``eps1, eps2``-optimal, the midpoint is feasible and
    ``kappa / 8 ||u1 - u2||^2 <= (eps1 + eps2) / 2``. We take kappa at x^t, halved, and a factor
    2 on the result for the variation of p along the segment.
    """
    p = np.exp(W @ x + c - np.max(W @ x + c))
    p /= p.sum()
    ev = np.linalg.eigvalsh(np.diag(p) - np.outer(p, p))
    kappa = 0.5 * np.sort(ev)[1]
    return 2.0 * np.sqrt(4.0 * gap_sum / kappa) + 1e-9


def _diffs(W, c, t, x):
    z = W @ x + c
    return z - z[t]


def _feasible_samples(poly: Polytope, centre: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Points on random chords from the centre: ``centre + u * tau_max * dir``, some with u=1."""
    rng = np.random.default_rng(seed)
    dirs = rng.standard_normal((n, poly.dim))
    s0 = poly.slack(centre)
    rate = dirs @ poly.A.T  # (n, m)
    with np.errstate(divide="ignore"):
        tau_rows = np.where(rate < 0, s0 / -rate, np.inf).min(axis=1)
        tau_hi = np.where(dirs > 0, (poly.hi - centre) / dirs, np.inf).min(axis=1)
        tau_lo = np.where(dirs < 0, (poly.lo - centre) / dirs, np.inf).min(axis=1)
    tau = np.minimum(tau_rows, np.minimum(tau_hi, tau_lo)) * (1 - 1e-12)
    u = rng.uniform(0, 1, n)
    u[: n // 4] = 1.0  # boundary points
    return centre + (u * tau)[:, None] * dirs


# --------------------------------------------------------------------------------------------
# fast path vs the cvxpy + Clarabel reference
# --------------------------------------------------------------------------------------------


def _slsqp_reference(poly: Polytope, W, c, t, centre):
    """Independent third solver for tiny problems: SLSQP, then a Frank-Wolfe certificate.

    Returns a feasible point (pulled toward ``centre`` if SLSQP's is outside by rounding) and
    ``max_{x' in P} grad^T (x - x')`` from a HiGHS LP, which bounds ``phi(x) - phi*``.
    """

    def phi(x):
        z = W @ x + c
        return np.logaddexp.reduce(z) - z[t]

    def grad(x):
        z = W @ x + c
        p = np.exp(z - np.logaddexp.reduce(z))
        p[t] -= 1.0
        return W.T @ p

    cons = [{"type": "ineq", "fun": poly.slack, "jac": lambda x: poly.A}]
    res = minimize(
        phi,
        centre,
        jac=grad,
        bounds=np.column_stack([poly.lo, poly.hi]),
        constraints=cons,
        method="SLSQP",
        options={"ftol": 1e-15, "maxiter": 500},
    )
    x = res.x
    for theta in (0.0, 1e-12, 1e-10, 1e-8):
        xin = x + theta * (centre - x)
        if poly.contains(xin, tol=0.0):
            break
    g = grad(xin)
    lp = linprog(g, A_ub=-poly.A, b_ub=poly.b, bounds=np.column_stack([poly.lo, poly.hi]))
    return xin, float(g @ xin - lp.fun)


def test_2d_ipm_matches_two_references_point_and_value(region_2d):
    _, r = region_2d
    W, c, poly = r.logit_W, r.logit_b, r.polytope
    D_rank = np.linalg.matrix_rank(W[1:] - W[0])
    assert D_rank == 2  # logit differences determine x uniquely
    centre = insphere_highs(poly, method="highs-ipm").center
    for t in range(3):
        fast = max_log_prob_ipm(poly, W, c, t, x_star=r.x_star)
        ref = max_log_prob_cvxpy(poly, W, c, t, x_star=r.x_star)
        x_sq, gap_sq = _slsqp_reference(poly, W, c, t, centre)
        # all values are certified: opt - gap <= value <= opt
        assert abs(fast.log_prob - ref.log_prob) <= fast.gap + ref.gap + 1e-12
        np.testing.assert_allclose(fast.log_prob, ref.log_prob, rtol=0, atol=1e-6)
        D = np.delete(W - W[t], t, axis=0)
        smin = np.linalg.svd(D, compute_uv=False).min()
        for x_other, gap_other in ((ref.x, ref.gap), (x_sq, gap_sq)):
            tol_x = _logit_tolerance(W, c, t, fast.x, fast.gap + gap_other) / smin
            np.testing.assert_allclose(fast.x, x_other, rtol=0, atol=tol_x)
        assert gap_sq < 1e-8  # so the SLSQP comparison is a tight one (tol_x ~ 1e-3)


def test_20d_ipm_matches_reference_value_and_logits(region_20d):
    _, r = region_20d
    W, c, poly = r.logit_W, r.logit_b, r.polytope
    for t in (0, 3, 7, int(np.argmax(r.logits(r.x_star)))):
        fast = max_log_prob(poly, W, c, t, x_star=r.x_star, method="ipm")
        ref = max_log_prob(poly, W, c, t, x_star=r.x_star, method="clarabel")
        assert fast.method == "ipm" and ref.method == "clarabel"
        assert abs(fast.log_prob - ref.log_prob) <= fast.gap + ref.gap + 1e-12
        np.testing.assert_allclose(fast.log_prob, ref.log_prob, rtol=0, atol=1e-6)
        # x^t itself is not unique in 20-D (phi_t is flat along null(W)); the logit
        # differences are, up to the strong-convexity bound
        tol_u = _logit_tolerance(W, c, t, fast.x, fast.gap + ref.gap)
        np.testing.assert_allclose(
            _diffs(W, c, t, fast.x), _diffs(W, c, t, ref.x), rtol=0, atol=tol_u
        )


def test_exact_newton_matrix_and_sparse_rows_give_the_same_answer(region_20d):
    _, r = region_20d
    W, c, poly = r.logit_W, r.logit_b, r.polytope
    base = max_log_prob_ipm(poly, W, c, 4, x_star=r.x_star, n_keep=1)
    exact = max_log_prob_ipm(poly, W, c, 4, x_star=r.x_star, n_keep=poly.n_rows)
    sp = Polytope(sparse.csr_matrix(poly.A), poly.b, poly.lo, poly.hi)
    via_sparse = max_log_prob_ipm(sp, W, c, 4, x_star=r.x_star)
    for other in (exact, via_sparse):
        assert abs(other.log_prob - base.log_prob) <= other.gap + base.gap + 1e-12


def test_without_x_star_uses_chebyshev_centre(region_2d):
    _, r = region_2d
    res = max_log_prob_ipm(r.polytope, r.logit_W, r.logit_b, 2)
    ref = max_log_prob_ipm(r.polytope, r.logit_W, r.logit_b, 2, x_star=r.x_star)
    assert np.isnan(res.distortion)
    assert abs(res.log_prob - ref.log_prob) <= res.gap + ref.gap + 1e-12


# --------------------------------------------------------------------------------------------
# properties of x^t: feasibility, activation pattern, optimality against sampling, Appendix D
# --------------------------------------------------------------------------------------------


def test_xt_is_in_region_and_keeps_the_activation_pattern(region_20d):
    net, r = region_20d
    poly = r.polytope
    centre = insphere_highs(poly, method="highs-ipm").center
    table = max_log_prob_all(poly, r.logit_W, r.logit_b, x_star=r.x_star, method="ipm")
    for res in table.results:
        assert res.min_slack >= 0.0
        assert poly.contains(res.x, tol=0.0)
        nudged = res.x + 1e-6 * (centre - res.x)
        np.testing.assert_array_equal(activation_patterns(net, nudged[None])[0], r.pattern)
        # the torch model reproduces the region's logits at x^t
        np.testing.assert_allclose(predict(net, nudged[None])[0], r.logits(nudged), atol=1e-9)


def test_xt_beats_random_feasible_points(region_20d):
    _, r = region_20d
    W, c, poly = r.logit_W, r.logit_b, r.polytope
    centre = insphere_highs(poly, method="highs-ipm").center
    X = _feasible_samples(poly, centre, 4000, seed=3)
    assert np.all(poly.contains(X, tol=1e-9))
    Z = X @ W.T + c
    logp = Z - np.logaddexp.reduce(Z, axis=1, keepdims=True)
    for t in range(W.shape[0]):
        res = max_log_prob_ipm(poly, W, c, t, x_star=r.x_star)
        assert logp[:, t].max() <= res.log_prob + res.gap + 1e-12


def test_appendix_d_xt_lies_on_the_boundary(region_20d):
    _, r = region_20d
    assert np.linalg.matrix_rank(r.logit_W) == r.logit_W.shape[0]  # Prop. 1's assumption
    table = max_log_prob_all(r.polytope, r.logit_W, r.logit_b, x_star=r.x_star, method="ipm")
    for res in table.results:
        assert res.n_active >= 1
        # and the tolerance-free multiplier count agrees that some constraint is active
        assert res.info["n_active_multipliers"] >= 1


def test_table_summaries(region_20d):
    _, r = region_20d
    table = max_log_prob_all(r.polytope, r.logit_W, r.logit_b, x_star=r.x_star)
    cols = table.to_dict()
    assert cols["class"] == list(range(10))
    assert table.n_classes_reached == sum(p == k for k, p in enumerate(cols["predicted"]))
    assert table.distortion == max(cols["distortion"])
    dist = [np.linalg.norm(res.x - r.x_star) for res in table.results]
    np.testing.assert_allclose(cols["distortion"], dist, rtol=1e-12)
    z = r.logits(r.x_star)
    k = int(np.argmax(z))
    if np.exp(z[k] - np.logaddexp.reduce(z)) > 0.5:  # p_k(x^k) >= p_k(x*) > 1/2
        assert table.results[k].reaches_class


def test_certificate_is_a_lower_bound_for_any_multipliers(region_20d):
    _, r = region_20d
    W, c, poly = r.logit_W, r.logit_b, r.polytope
    res = max_log_prob_ipm(poly, W, c, 5, x_star=r.x_star)
    rng = np.random.default_rng(4)
    for _ in range(20):
        lam = rng.exponential(rng.uniform(0.01, 1.0), poly.n_rows)
        x = _feasible_samples(poly, res.x + 0.0, 1, seed=int(rng.integers(1 << 30)))[0]
        phi, lower = certify_max_log_prob(poly, W, c, 5, x, lam)
        assert lower <= -res.log_prob + 1e-12
        assert phi >= -res.log_prob - res.gap - 1e-12


# --------------------------------------------------------------------------------------------
# the margin LP and the paper's criterion
# --------------------------------------------------------------------------------------------


def test_margin_lp_agrees_with_dense_sampling_2d():
    net, r = _make_region(2, [4], 4, "vanilla", seed=5, x=np.array([0.05, -0.1]))
    poly = r.polytope
    g = np.linspace(-1, 1, 301)
    X = np.stack(np.meshgrid(g, g), axis=-1).reshape(-1, 2)
    inside = np.all(activation_patterns(net, X) == r.pattern, axis=1)
    assert inside.sum() > 100
    seen = set(np.argmax(predict(net, X[inside]), axis=1).tolist())
    assert len(seen) >= 2  # the example is not trivial
    for t in range(4):
        res = class_region_exists(poly, r.logit_W, r.logit_b, t, x_star=r.x_star)
        assert res.gap <= 1e-7 * (1 + abs(res.margin))
        assert poly.contains(res.x, tol=0.0)
        if t in seen:
            assert res.exists
        if res.exists:  # the witness is classified as t by the network itself
            centre = insphere_highs(poly, method="highs-ipm").center
            w = res.x + 1e-9 * (centre - res.x)
            assert int(np.argmax(predict(net, w[None])[0])) == t
        # the paper's criterion implies existence, never the other way round
        xt = max_log_prob_ipm(poly, r.logit_W, r.logit_b, t, x_star=r.x_star)
        if xt.reaches_class and _margin_at(r, xt.x, t) > 1e-9:
            assert res.exists


def test_paper_criterion_implies_margin_lp_20d(region_20d):
    _, r = region_20d
    W, c, poly = r.logit_W, r.logit_b, r.polytope
    table = max_log_prob_all(poly, W, c, x_star=r.x_star, method="ipm")
    n_exists = 0
    for res in table.results:
        lp = class_region_exists(poly, W, c, res.target, x_star=r.x_star)
        n_exists += lp.exists
        if res.reaches_class and _margin_at(r, res.x, res.target) > 1e-9:
            assert lp.exists
            assert lp.margin >= _margin_at(r, res.x, res.target) - 1e-9  # s* is the max margin
    assert n_exists >= table.n_classes_reached


def test_witness_shortcut_gives_the_lp_answer_20d(region_20d):
    _, r = region_20d
    W, c, poly = r.logit_W, r.logit_b, r.polytope
    table = max_log_prob_all(poly, W, c, x_star=r.x_star, method="ipm")
    n_witness = 0
    for res in table.results:
        lp = class_region_exists(poly, W, c, res.target, x_star=r.x_star)
        fast = class_region_exists(poly, W, c, res.target, x_star=r.x_star, witness=res.x)
        assert fast.exists == lp.exists
        if fast.by == "witness":
            n_witness += 1
            assert fast.margin > 0 and fast.margin <= lp.margin_upper + 1e-12
            assert poly.contains(fast.x, tol=0.0)
        else:
            assert fast.margin == pytest.approx(lp.margin, abs=1e-6)
    assert n_witness == table.n_classes_reached > 0


def test_sign_only_margin_lp_gives_the_full_answer_20d(region_20d):
    _, r = region_20d
    W, c, poly = r.logit_W, r.logit_b, r.polytope
    early = 0
    for t in range(W.shape[0]):
        full = class_region_exists(poly, W, c, t, x_star=r.x_star)
        fast = class_region_exists(poly, W, c, t, x_star=r.x_star, sign_only=True)
        assert fast.exists == full.exists and fast.status == full.status
        # the bounds bracket the exact optimum s* of the full solve
        assert fast.margin <= full.margin_upper + 1e-9
        assert fast.margin_upper >= full.margin - 1e-9
        if fast.exists:
            assert poly.contains(fast.x, tol=0.0) and fast.margin > 0
        else:
            assert fast.margin_upper <= -1e-9
        early += fast.by == "lp-sign"
    assert early > 0  # the early stop did happen


def test_margin_bound_from_log_prob_by_hand():
    # K = 2: p_t = sigmoid(s), so log p_t <= L gives exactly s <= logit(e^L)
    for s in (-3.0, -0.5, 0.0, 0.7):
        L = -np.log1p(np.exp(-s))
        assert margin_bound_from_log_prob(L, 2) == pytest.approx(s, abs=1e-12)
    # K = 10, every competitor tied at margin s: p_t = 1 / (1 + 9 e^{-s}) is the bound's worst case
    s = -1.25
    L = -np.log1p(9 * np.exp(-s))
    assert margin_bound_from_log_prob(L, 10) == pytest.approx(s, abs=1e-12)
    # p_t = 1/K is the threshold; very negative L keeps its precision (no log(1 - 1))
    assert margin_bound_from_log_prob(np.log(0.1), 10) == pytest.approx(0.0, abs=1e-12)
    assert margin_bound_from_log_prob(-800.0, 10) == pytest.approx(np.log(9) - 800.0)
    assert margin_bound_from_log_prob(0.0, 10) == np.inf
    with pytest.raises(ValueError, match="at least 2"):
        margin_bound_from_log_prob(-1.0, 1)


def test_eq6_bound_proves_absence_as_the_lp_does_20d(region_20d):
    """Absence from eq. 6's certified optimum (p_t < 1/K) agrees with the full margin LP, and
    its margin interval brackets the LP's optimum s*."""
    _, r = region_20d
    W, c, poly = r.logit_W, r.logit_b, r.polytope
    table = max_log_prob_all(poly, W, c, x_star=r.x_star, method="ipm")
    n_bound = 0
    for res in table.results:
        full = class_region_exists(poly, W, c, res.target, x_star=r.x_star)
        fast = class_region_exists(poly, W, c, res.target, x_star=r.x_star, witness=res.x,
                                   sign_only=True, log_prob_upper=res.log_prob + res.gap)
        assert fast.exists == full.exists and fast.status == full.status
        assert fast.margin <= full.margin_upper + 1e-9
        assert fast.margin_upper >= full.margin - 1e-9
        if fast.by == "eq6-bound":
            n_bound += 1
            assert np.exp(res.log_prob + res.gap) < 1 / W.shape[0]
            assert not fast.exists and fast.margin_upper <= -1e-9
    assert n_bound > 0  # the shortcut was taken
    # a bound that proves nothing leaves the LP to decide
    res = table.results[0]
    weak = class_region_exists(poly, W, c, res.target, x_star=r.x_star, witness=res.x,
                               sign_only=True, log_prob_upper=0.0)
    assert weak.by != "eq6-bound"


def test_eq6_dual_bound_is_valid_and_decides_as_the_lp_does_20d(region_20d):
    """The margin-LP dual point built from eq. 6's solution bounds the LP's optimum s* from
    above for every class (weak duality, checked against the full LP), and where it proves
    absence the full LP agrees."""
    _, r = region_20d
    W, c, poly = r.logit_W, r.logit_b, r.polytope
    table = max_log_prob_all(poly, W, c, x_star=r.x_star, method="ipm")
    n_dual = 0
    for res in table.results:
        lam = res.info["row_multipliers"]
        full = class_region_exists(poly, W, c, res.target, x_star=r.x_star)
        upper = mp.margin_bound_from_eq6(poly, W, c, res.target, res.x, lam)
        assert upper >= full.margin - 1e-9
        # any non-negative multipliers give a valid (weaker) bound
        noisy = lam * np.random.default_rng(res.target).uniform(0, 2, lam.size)
        assert mp.margin_bound_from_eq6(poly, W, c, res.target, res.x, noisy) >= full.margin - 1e-9
        fast = class_region_exists(poly, W, c, res.target, x_star=r.x_star, witness=res.x,
                                   sign_only=True, witness_multipliers=lam)
        assert fast.exists == full.exists and fast.status == full.status
        if fast.by == "eq6-dual":
            n_dual += 1
            assert fast.margin_upper == upper <= -1e-9
    assert n_dual > 0  # the shortcut was taken
    with pytest.raises(ValueError, match="one multiplier per non-zero row"):
        mp.margin_bound_from_eq6(poly, W, c, 0, r.x_star, np.ones(3))


def test_witness_outside_the_region_is_not_trusted(region_20d):
    _, r = region_20d
    W, c, poly = r.logit_W, r.logit_b, r.polytope
    t = int(np.argmax(r.logits(r.x_star)))
    # a point far outside the region that the affine logits still assign to class t
    outside = r.x_star + 50.0 * (W[t] - W.mean(axis=0))
    assert not poly.contains(outside, tol=0.0)
    res = class_region_exists(poly, W, c, t, x_star=r.x_star, witness=outside)
    assert res.by == "lp" and np.isfinite(res.margin_upper)


def _margin_at(r, x, t):
    z = r.logits(x)
    return z[t] - np.max(np.delete(z, t))


def _sliver_example():
    """Hand-made region where class 0 exists but x^0 is classified as class 1.

    x in [-2, 2]^2, one redundant row. z_0 = 0, z_1 = x_1 - 0.1, z_j = -x_1 (j = 2..9).
    Class 0 wins iff 0 < x_1 < 0.1, so s* = 0.05 at x_1 = 0.05; p_0 = 1 / (1 + e^{x_1 - 0.1}
    + 8 e^{-x_1}) peaks at x_1 = (ln 8 + 0.1) / 2 = 1.0897, where z_1 > 0.
    """
    poly = Polytope(np.array([[0.0, 1.0]]), np.array([3.0]), np.full(2, -2.0), np.full(2, 2.0))
    W = np.zeros((10, 2))
    c = np.zeros(10)
    W[1, 0], c[1] = 1.0, -0.1
    W[2:, 0] = -1.0
    return poly, W, c


def test_paper_criterion_misses_a_class_that_the_margin_lp_finds():
    poly, W, c = _sliver_example()
    x1 = (np.log(8.0) + 0.1) / 2
    best = -np.log1p(np.exp(x1 - 0.1) + 8 * np.exp(-x1))
    # curvature of phi_0 along x_1 at the optimum, for the gap -> distance bound
    e1, e2 = np.exp(x1 - 0.1), 8 * np.exp(-x1)
    curv = (e1 + e2 + 4 * e1 * e2) / (1 + e1 + e2) ** 2
    for method in ("ipm", "clarabel"):
        res = max_log_prob(poly, W, c, 0, x_star=np.zeros(2), method=method)
        tol = 2 * np.sqrt(2 * (res.gap + 1e-15) / curv)  # phi - phi* >= curv/2 dx^2 nearby
        np.testing.assert_allclose(res.x[0], x1, atol=tol)  # x_2 is free: not unique
        np.testing.assert_allclose(res.log_prob, best, rtol=0, atol=1e-7)
        assert res.predicted == 1 and not res.reaches_class
    lp = class_region_exists(poly, W, c, 0)
    assert lp.exists and lp.status == "exists"
    np.testing.assert_allclose(lp.margin, 0.05, atol=1e-9)
    np.testing.assert_allclose(lp.x[0], 0.05, atol=1e-9)
    # dense sampling of the logit map agrees: class 0 is the argmax somewhere
    xs = np.linspace(-2, 2, 4001)
    Z = np.stack([np.zeros_like(xs), xs - 0.1] + [-xs] * 8, axis=1)
    assert np.any(np.argmax(Z, axis=1) == 0)


def test_margin_lp_reports_absent_class():
    poly, W, c = _sliver_example()
    c2 = c.copy()
    c2[0] = -5.0  # class 0 now loses everywhere in the box
    lp = class_region_exists(poly, W, c2, 0)
    assert not lp.exists and lp.status == "absent"
    assert lp.margin_upper < 0


# --------------------------------------------------------------------------------------------
# fallback and validation
# --------------------------------------------------------------------------------------------


def test_auto_falls_back_to_reference_and_counts(region_2d, monkeypatch):
    _, r = region_2d

    def broken(*args, **kwargs):
        raise SolverError("forced failure")

    monkeypatch.setattr(mp, "max_log_prob_ipm", broken)
    before = mp.FALLBACKS["max_log_prob"]
    res = max_log_prob(r.polytope, r.logit_W, r.logit_b, 1, x_star=r.x_star)
    assert res.method == "clarabel" and res.info["fallback"]
    assert "forced failure" in res.info["ipm_error"]
    assert mp.FALLBACKS["max_log_prob"] == before + 1

    monkeypatch.setattr(mp, "max_log_prob_cvxpy", broken)
    with pytest.raises(SolverError, match="both solvers failed"):
        max_log_prob(r.polytope, r.logit_W, r.logit_b, 1, x_star=r.x_star)
    table = max_log_prob_all(r.polytope, r.logit_W, r.logit_b, x_star=r.x_star, on_error="record")
    assert [res.status for res in table.results] == ["failed"] * 3
    assert np.isnan(table.distortion)


def test_ipm_reports_failure_instead_of_a_number(region_20d):
    _, r = region_20d
    with pytest.raises(SolverError, match="certified gap"):
        max_log_prob_ipm(r.polytope, r.logit_W, r.logit_b, 0, x_star=r.x_star, max_iter=2)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"W": np.zeros((3, 5))}, ValueError, r"W must have shape \(M, 2\)"),
        ({"W": np.zeros(2)}, ValueError, "W must have 2 dimension"),
        ({"W": np.zeros((1, 2)), "c": np.zeros(1)}, ValueError, "at least 2 rows"),
        ({"c": np.zeros(4)}, ValueError, r"c must have shape \(3,?\)"),
        ({"t": 3}, ValueError, "t == 3, must be <= 2"),
        ({"t": -1}, ValueError, "t == -1, must be >= 0"),
        ({"t": 1.0}, TypeError, "t must be an instance"),
        ({"method": "newton"}, ValueError, "method == 'newton' is not supported"),
        ({"x_star": np.zeros(3)}, ValueError, r"x_star must have shape \(2,?\)"),
        ({"poly": np.eye(2)}, TypeError, "poly must be an lrtools Polytope"),
    ],
)
def test_bad_input_raises_clear_errors(region_2d, kwargs, error, match):
    _, r = region_2d
    args = {"poly": r.polytope, "W": r.logit_W, "c": r.logit_b, "t": 0, **kwargs}
    with pytest.raises(error, match=match):
        max_log_prob(args.pop("poly"), args.pop("W"), args.pop("c"), args.pop("t"), **args)


def test_bad_input_margin_lp_and_table(region_2d):
    _, r = region_2d
    with pytest.raises(ValueError, match="t == 5, must be <= 2"):
        class_region_exists(r.polytope, r.logit_W, r.logit_b, 5)
    with pytest.raises(ValueError, match="on_error == 'ignore' is not supported"):
        max_log_prob_all(r.polytope, r.logit_W, r.logit_b, on_error="ignore")
    with pytest.raises(ValueError, match="x_in must lie strictly inside"):
        max_log_prob_ipm(r.polytope, r.logit_W, r.logit_b, 0, x_in=np.full(2, 5.0))


@pytest.mark.parametrize("shape, rank", [((300, 80), 80), ((80, 300), 80), ((300, 80), 50),
                                         ((80, 300), 50)])
def test_polishing_least_squares_matches_lapack(shape, rank):
    """The semi-normal-equation solve used to polish eq. (6)'s multipliers reaches LAPACK's
    least-squares residual on tall and wide active sets of full rank (and the minimum norm
    when wide), and within 1% of it on rank-deficient ones (where it is a tiny ridge)."""
    from scipy import linalg as sla

    rng = np.random.default_rng(rank + shape[0])
    M = rng.standard_normal((shape[0], rank)) @ rng.standard_normal((rank, shape[1]))
    g = rng.standard_normal(shape[0])
    v = mp._least_squares(M.copy(), g)
    ref = sla.lstsq(M, g, lapack_driver="gelsd")[0]
    res, res_ref = np.linalg.norm(M @ v - g), np.linalg.norm(M @ ref - g)
    rel = 1e-6 if rank == min(shape) else 1e-2
    assert res <= res_ref * (1 + rel) + 1e-9 * np.linalg.norm(g)
    if rank == min(shape) and shape[0] < shape[1]:
        assert np.linalg.norm(v) <= np.linalg.norm(ref) * (1 + 1e-8)


def test_margin_lp_on_a_wide_mlp_region_reduced_dense_equals_exact_csr_and_highs(monkeypatch):
    """More rows than eq. 6's ``n_keep`` (400 > 256): the dense region's margin LP runs with
    the reduced Newton matrix on dense rows; the same polytope with CSR rows takes the exact
    CSR path, and HiGHS is an independent reference. All three give one optimum s*."""
    _, r = _make_region(20, [200, 200], 10, "vanilla", seed=5)
    W, c, poly = r.logit_W, r.logit_b, r.polytope
    assert poly.n_rows > 256 and mp._all_rows_dense(poly)
    csr = Polytope(sparse.csr_matrix(poly.A), poly.b, poly.lo, poly.hi)
    assert not mp._all_rows_dense(csr)
    seen = []
    real = mp.solve_lp

    def spy(*args, **kwargs):
        seen.append((sparse.issparse(args[1]), (kwargs.get("options") or {}).get("n_keep")))
        return real(*args, **kwargs)

    monkeypatch.setattr(mp, "solve_lp", spy)
    for t in range(W.shape[0]):
        dense = class_region_exists(poly, W, c, t, x_star=r.x_star, method="ipm")
        exact = class_region_exists(csr, W, c, t, x_star=r.x_star, method="ipm")
        ref = class_region_exists(poly, W, c, t, x_star=r.x_star, method="highs")
        for res in (exact, ref):
            assert dense.status == res.status
            assert abs(dense.margin - res.margin) <= 1e-6 * (1.0 + abs(res.margin))
        assert poly.contains(dense.x, tol=0.0)
    # dense G with n_keep = 256 on the dense region, CSR without reduction on the CSR one
    assert (False, 256) in seen and (True, None) in seen


def test_margin_lp_on_a_dense_array_with_sparse_rows_takes_the_csr_path():
    """A dense ``A`` whose rows are not all dense (a CNN region's convolution rows) builds the
    CSR margin LP from the array itself, and its answer matches HiGHS."""
    _, r = _make_region(20, [24, 24], 10, "vanilla", seed=3)
    A = np.array(r.polytope.A)
    b = np.array(r.polytope.b)
    half = A.shape[0] // 2
    A[:half, 1:] = 0.0  # half the rows see 1 of 20 inputs: sparse rows,
    b[:half] = np.abs(b[:half]) + np.abs(A[:half, 0]) + 1.0  # loose on the whole box
    poly = Polytope(A, b, r.polytope.lo, r.polytope.hi)
    assert isinstance(poly.A, np.ndarray) and not mp._all_rows_dense(poly)
    for t in range(3):
        ipm = class_region_exists(poly, r.logit_W, r.logit_b, t, method="ipm")
        ref = class_region_exists(poly, r.logit_W, r.logit_b, t, method="highs")
        assert ipm.status == ref.status
        assert abs(ipm.margin - ref.margin) <= 1e-6 * (1.0 + abs(ref.margin))
