"""The shared solver core against cvxpy + Clarabel: reduced Newton matrices, the torch device,
strictly interior eq. 6 answers (the activation pattern at x^t is the region's)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

from lrtools.exceptions import SolverError
from lrtools.models import build_mlp
from lrtools.polytope import Polytope
from lrtools.regions import activation_patterns, linear_region
from lrtools.solvers import maxprob as mp
from lrtools.solvers.insphere import insphere_cvxpy, insphere_ipm
from lrtools.solvers.ipm import lp_ipm
from lrtools.solvers.maxprob import max_log_prob_cvxpy, max_log_prob_ipm

from .conftest import with_biases


def _pattern_at(model, region, x) -> np.ndarray:
    return activation_patterns(model, x.reshape(1, *region.input_shape))[0]


@pytest.fixture
def wide_region():
    """A region with many more rows than dimensions (reduction applies): 10 inputs, 3x40 units."""
    net = with_biases(build_mlp(10, [40, 40, 40], 5, seed=4), seed=4)
    x = np.random.default_rng(4).uniform(-0.5, 0.5, 10)
    return net, linear_region(net, x)


def test_reduced_newton_insphere_equals_clarabel(wide_region):
    _, region = wide_region
    poly = region.polytope
    ref = insphere_cvxpy(poly)
    exact = insphere_ipm(poly, n_keep=None)
    reduced = insphere_ipm(poly, n_keep=15)  # 15 of 120 hyperplane rows
    for res in (exact, reduced):
        np.testing.assert_allclose(res.radius, ref.radius, rtol=1e-6)
        assert abs(res.info["certified_gap"]) <= 1e-8 * res.radius + 1e-12
    np.testing.assert_allclose(reduced.radius, exact.radius, rtol=1e-8)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lp_ipm_reduced_matches_exact_on_random_lps(seed):
    rng = np.random.default_rng(seed)
    n, m = 12, 200
    G = rng.standard_normal((m, n))
    h = G @ rng.uniform(-0.3, 0.3, n) + rng.uniform(0.05, 1.0, m)
    c = rng.standard_normal(n)
    exact = lp_ipm(c, G, h)
    reduced = lp_ipm(c, G, h, n_keep=20)
    assert exact.success and reduced.success
    np.testing.assert_allclose(reduced.primal_objective, exact.primal_objective, rtol=1e-7,
                               atol=1e-9)


def test_a_reduced_run_without_an_answer_is_rerun_with_the_exact_matrix(wide_region, monkeypatch):
    """A stalled reduced run (as on MNIST BN regions) is not the end: lp_ipm reruns it exactly
    and says so, and the insphere is certified as Clarabel's; answers are not rerun."""
    import lrtools.solvers.ipm as ipm

    real, calls = ipm._lp_ipm, []

    def stalling(c, G, h, opts, stop=None, n_keep=None, device=None):
        calls.append(n_keep)
        res = real(c, G, h, opts, stop, n_keep=n_keep, device=device)
        if n_keep is None:
            return res
        return ipm.LPResult(**{**res.__dict__, "status": "stalled", "success": False})

    monkeypatch.setattr(ipm, "_lp_ipm", stalling)
    _, region = wide_region
    ref = insphere_cvxpy(region.polytope)
    res = insphere_ipm(region.polytope, n_keep=15)
    assert calls == [15, None]
    assert res.info["n_keep"] == 15 and res.status == "optimal"
    np.testing.assert_allclose(res.radius, ref.radius, rtol=1e-6)
    lp = ipm.lp_ipm(*_wide_lp(), n_keep=20)
    assert lp.success and lp.info["reduced_status"] == "stalled"
    assert lp.info["reduced_iterations"] > 0
    calls.clear()
    assert ipm.lp_ipm(*_wide_lp(), n_keep=None).success and calls == [None]  # exact: once


def _wide_lp():
    rng = np.random.default_rng(0)
    G = rng.standard_normal((200, 12))
    h = G @ rng.uniform(-0.3, 0.3, 12) + rng.uniform(0.05, 1.0, 200)
    return rng.standard_normal(12), G, h


def test_torch_cpu_device_matches_numpy_on_mlp_and_cnn(small_mlp, small_cnn):
    for net, shape in ((small_mlp, (12,)), (small_cnn, (1, 9, 9))):
        x = np.random.default_rng(7).uniform(-0.7, 0.7, shape)
        region = linear_region(net, x)
        poly, W, c = region.polytope, region.logit_W, region.logit_b
        a = insphere_ipm(poly)
        b = insphere_ipm(poly, device="cpu")
        np.testing.assert_allclose(b.radius, a.radius, rtol=1e-9)
        assert abs(b.info["certified_gap"]) <= 1e-8 * b.radius + 1e-12
        for t in range(W.shape[0]):
            fn = max_log_prob_ipm(poly, W, c, t, x_star=region.x_star)
            ft = max_log_prob_ipm(poly, W, c, t, x_star=region.x_star, device="cpu")
            assert abs(fn.log_prob - ft.log_prob) <= fn.gap + ft.gap + 1e-12
            assert ft.min_slack >= 0


def test_eq6_answers_are_strictly_interior(small_mlp):
    x = np.random.default_rng(9).uniform(-0.7, 0.7, 12)
    region = linear_region(small_mlp, x)
    poly, W, c = region.polytope, region.logit_W, region.logit_b
    for t in range(W.shape[0]):
        for res in (max_log_prob_cvxpy(poly, W, c, t, x_star=region.x_star),
                    max_log_prob_ipm(poly, W, c, t, x_star=region.x_star)):
            assert np.all(poly.slack(res.x) > 0), res.method
            assert np.array_equal(_pattern_at(small_mlp, region, res.x), region.pattern)


def test_pull_inside_leaves_a_zero_slack_hyperplane():
    # region {x in [0,1]^2 : x_0 - 0.5 >= 0}; a point exactly on the hyperplane
    poly = Polytope(np.array([[1.0, 0.0]]), np.array([-0.5]), np.zeros(2), np.ones(2))
    on_plane = np.array([0.5, 1.0])  # also on a box face, which is allowed
    x_in = np.array([0.75, 0.5])
    x, moved = mp._pull_inside(poly, on_plane, x_in)
    assert poly.slack(x)[0] > 0 and 0 < moved < 1e-9
    assert moved == pytest.approx(np.linalg.norm(x - on_plane))
    assert np.all(x >= poly.lo) and np.all(x <= poly.hi)
    slightly_out = np.array([0.5 - 1e-17, 0.3])
    x2, _ = mp._pull_inside(poly, slightly_out, x_in)
    assert poly.slack(x2)[0] >= mp._row_margins(poly, x2)[0] > 0
    same, moved0 = mp._pull_inside(poly, x_in, np.array([0.8, 0.5]))
    assert moved0 == 0.0 and np.array_equal(same, x_in)


def test_pull_inside_moves_by_the_margin_when_x_in_is_near_the_same_hyperplane():
    # the eq. (6) failure of a cold build: the interior point x_in had a slack of only ~1e-4
    # on the rows tight at the optimum, so the segment toward it moved x by ~1e-7 and the
    # certified gap was lost. The lift moves by about the margin itself.
    A = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    b = np.array([-0.5, 0.0, 0.0])
    poly = Polytope(A, b, -np.ones(2), np.ones(2))
    x = np.array([0.5, 0.2])  # on row 0
    x_in = np.array([0.5 + 1e-4, 0.9])
    margin = mp._row_margins(poly, x)[0]
    seg = mp._pull_toward(poly, x, x_in)
    lifted, moved = mp._pull_inside(poly, x, x_in)
    assert mp._inside_enough(poly, lifted) and mp._inside_enough(poly, seg)
    assert moved <= 3 * margin  # a_0 has unit norm: the lift is 2 margins along it
    assert np.linalg.norm(seg - x) > 1e3 * moved
    assert lifted[1] == x[1]  # rows clear of their margin are held where they are


def test_lift_rows_holds_the_box_faces_it_would_cross():
    # {x in [0,1]^2 : x_0 + x_1 - 1 >= 0} at the corner (1, 0), on the hyperplane: the
    # shortest lift would leave the box through x_0 = 1, so x_0 is held and x_1 rises
    poly = Polytope(np.array([[1.0, 1.0]]), np.array([-1.0]), np.zeros(2), np.ones(2))
    x = np.array([1.0, 0.0])
    lifted = mp._lift_rows(poly, x)
    assert lifted is not None and lifted[0] == 1.0 and 0 < lifted[1] < 1e-12
    assert poly.slack(lifted)[0] >= mp._row_margins(poly, lifted)[0]
    # a point outside the box is not the lift's job
    assert mp._lift_rows(poly, np.array([1.0 + 1e-12, 0.0])) is None


def test_clarabel_answer_on_the_boundary_is_pulled_inside():
    # a solver that returns a point with a hyperplane slack of exactly 0 (as Clarabel can):
    # the reference path must move it strictly inside before it is certified
    A = np.array([[1.0, 1.0], [-1.0, 0.5]])
    b = np.array([0.0, 1.0])
    poly = Polytope(A, b, -np.ones(2), np.ones(2))
    W = np.array([[-1.0, -1.0], [1.0, 0.0], [0.0, 1.0]])
    c = np.zeros(3)
    res = max_log_prob_cvxpy(poly, W, c, 0, x_in=np.array([0.5, 0.2]))
    # class 0 wants x_0 + x_1 as small as possible: the optimum lies on row 0 (x_0 + x_1 = 0)
    assert 0 < poly.slack(res.x)[0] < 1e-6
    assert poly.slack(res.x)[0] >= mp._row_margins(poly, res.x)[0]
    assert np.isfinite(res.log_prob) and res.gap <= 1e-3 * (1 + abs(res.log_prob))


def test_stall_measure_follows_the_gap_when_the_optimum_is_near_zero():
    """Iterates logged on a paper-size MNIST margin LP (optimum -s* = 0.0038): the primal and
    dual objectives have opposite signs while the gap falls from 513 to 0.03, so ``rel_gap``
    stays >= 1 and must not be the progress measure (it made the method stop as "stalled" after
    13 iterations and fall back to a 24 s HiGHS solve)."""
    from lrtools.solvers.ipm import _merit

    logged = [  # (primal objective, dual objective, primal residual, dual residual)
        (-1.341e-02, -5.134e02, 2.2e-04, 4.6e00),
        (1.193e00, -1.624e02, 5.7e-04, 1.1e00),
        (8.057e-01, -7.194e00, 4.8e-05, 4.0e-02),
        (2.485e-01, -1.566e00, 5.7e-06, 5.3e-03),
        (8.259e-02, -2.911e-01, 0.0, 8.0e-04),
        (3.489e-02, -5.737e-02, 0.0, 1.2e-04),
        (1.120e-02, -1.896e-02, 0.0, 1.9e-05),
    ]
    merits, rel_gaps = [], []
    for p, d, rp, rd in logged:
        gap = abs(p - d)
        rel_gaps.append(gap / max(abs(p), abs(d)))
        merits.append(_merit({"primal_objective": p, "dual_objective": d, "primal_residual": rp,
                              "dual_residual": rd, "gap": gap, "rel_gap": rel_gaps[-1]}))
    assert min(rel_gaps[1:]) >= 1.0  # the old measure never improved on the first iterate
    assert all(b < a for a, b in zip(merits[:-1], merits[1:], strict=True))
    assert merits[-1] < 0.05


def test_rows_below_margin_equals_the_full_margin_test():
    # the Cauchy-Schwarz prefilter must not change which rows are below their margin: rows
    # placed at 0.5, 1, 1.5 and 4 margins, dense and sparse A, factor 1 and 2
    rng = np.random.default_rng(3)
    A = rng.normal(size=(300, 40)) * (rng.random((300, 40)) < 0.3)
    x = rng.uniform(-0.9, 0.9, 40)
    margins = mp._row_margins(Polytope(A, np.zeros(300), -np.ones(40), np.ones(40)), x)
    where = rng.choice([0.5, 1.0, 1.5, 4.0, 1e6], size=300)
    b = -A @ x + where * margins
    for A_ in (A, sparse.csr_matrix(A)):
        poly = Polytope(A_, b, -np.ones(40), np.ones(40))
        s = poly.slack(x)
        for factor in (1.0, 2.0):
            full = np.flatnonzero(s < factor * mp._row_margins(poly, x))
            np.testing.assert_array_equal(mp._rows_below_margin(poly, x, s, factor), full)
        assert mp._inside_enough(poly, x) is bool(np.all(s >= mp._row_margins(poly, x)))
        assert not mp._inside_enough(poly, x)  # the rows at 0.5 margins
    np.testing.assert_allclose(poly.row_norms, np.linalg.norm(A, axis=1), rtol=1e-14)


def test_eq6_iterates_on_when_the_pull_inside_loses_the_target(small_mlp):
    # the stop test of eq. (6)'s IPM applies to the point it answers with: an iterate whose
    # strictly interior version is rejected is not returned, the method iterates on and the
    # accepted point has a certified gap no larger than the rejected ones'
    x = np.random.default_rng(9).uniform(-0.7, 0.7, 12)
    region = linear_region(small_mlp, x)
    poly = mp._nontrivial(region.polytope)
    W, c, t = region.logit_W, region.logit_b, 1
    x_in = mp.interior_point(poly, region.x_star)
    offered = []

    def reject_twice(xk, lam):
        offered.append(xk)
        return xk if len(offered) > 2 else None

    prob = mp._Problem(poly, W, c, t, device=None)
    x_ok, lam, info = mp._ipm(prob, x_in, 1e-7, 80, poly.n_rows, reject_twice)
    assert info["status"] == "optimal" and info["n_rejected"] == 2
    assert x_ok is offered[-1] and len(offered) == 3
    hist = info["gap_history"]
    assert hist[-1] <= min(hist[:-1]) and info["iterations"] >= 3

    def reject(xk, lam):
        return None

    with pytest.raises(SolverError, match="rejected at the pull inside"):
        mp._ipm(mp._Problem(poly, W, c, t, device=None), x_in, 1e-7, 80, poly.n_rows, reject)
