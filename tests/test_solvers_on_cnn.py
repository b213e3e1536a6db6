"""The fast solvers equal their references on small CNN regions (Conv2d, BatchNorm2d, Dropout),
completing the MLP cases of test_maxprob.py and test_redundancy.py."""

from __future__ import annotations

import numpy as np
import pytest

from lrtools.regions import activation_patterns, linear_region
from lrtools.solvers.insphere import insphere
from lrtools.solvers.maxprob import max_log_prob, max_log_prob_cvxpy
from lrtools.solvers.redundancy import redundant_rows, redundant_rows_naive, verify_redundancy


@pytest.fixture
def cnn_region(small_cnn):
    x = np.random.default_rng(3).uniform(-0.8, 0.8, (1, 9, 9))
    return small_cnn, linear_region(small_cnn, x)


def test_max_log_prob_fast_equals_reference_on_cnn(cnn_region):
    model, region = cnn_region
    poly, W, c = region.polytope, region.logit_W, region.logit_b
    for t in range(W.shape[0]):
        fast = max_log_prob(poly, W, c, t, x_star=region.x_star, method="ipm")
        ref = max_log_prob_cvxpy(poly, W, c, t, x_star=region.x_star)
        # values agree within the two certified gaps
        assert abs(fast.log_prob - ref.log_prob) <= fast.gap + ref.gap + 1e-9
        assert poly.contains(fast.x, tol=1e-12)
        # a point slightly inside, toward the Chebyshev centre, has x*'s activation pattern
        centre = insphere(poly).center
        inner = fast.x + 1e-6 * (centre - fast.x)
        assert (activation_patterns(model, inner.reshape(1, 1, 9, 9))[0] == region.pattern).all()


def test_max_log_prob_split_rows_path_matches_dense(cnn_region, monkeypatch):
    """The exact split Newton matrix (sparse conv rows + dense rows) gives the dense answer."""
    from lrtools.solvers import maxprob

    _, region = cnn_region
    poly, W, c = region.polytope, region.logit_W, region.logit_b
    dense = [max_log_prob(poly, W, c, t, x_star=region.x_star, method="ipm") for t in (0, 2)]
    monkeypatch.setattr(maxprob, "_DENSE_ROW_FRACTION", 0.5)
    assert maxprob._Problem(poly, W, c, 0).rows is not None  # the split path is taken
    for ref in dense:
        res = max_log_prob(poly, W, c, ref.target, x_star=region.x_star, method="ipm")
        assert abs(res.log_prob - ref.log_prob) <= res.gap + ref.gap + 1e-9
        assert poly.contains(res.x, tol=0.0)


def test_redundancy_fast_equals_naive_on_cnn(cnn_region):
    _, region = cnn_region
    fast = redundant_rows(region.polytope)
    naive = redundant_rows_naive(region.polytope)
    np.testing.assert_array_equal(fast.redundant, naive.redundant)
    verify_redundancy(region.polytope, fast)


def test_single_precision_factors_keep_the_certified_answers(cnn_region, monkeypatch):
    """float32 Cholesky factors with refinement (used from n = 2048 on, forced here on the small
    CNN) give eq. 6 and the insphere of the float64 path and of the independent references."""
    from lrtools.solvers import _kernel

    _, region = cnn_region
    poly, W, c = region.polytope, region.logit_W, region.logit_b
    monkeypatch.setattr(_kernel, "_SINGLE_MIN_N", 1)
    monkeypatch.delenv("LRTOOLS_CHOLESKY", raising=False)
    single = [max_log_prob(poly, W, c, t, x_star=region.x_star, method="ipm") for t in (0, 2)]
    ball = insphere(poly, method="ipm")
    monkeypatch.setenv("LRTOOLS_CHOLESKY", "double")
    for res in single:
        assert res.info["n_single_factors"] > 0
        double = max_log_prob(poly, W, c, res.target, x_star=region.x_star, method="ipm")
        assert double.info["n_single_factors"] == 0
        ref = max_log_prob_cvxpy(poly, W, c, res.target, x_star=region.x_star)
        for other in (double, ref):
            assert abs(res.log_prob - other.log_prob) <= res.gap + other.gap + 1e-9
        assert poly.contains(res.x, tol=0.0)
    ref_ball = insphere(poly, method="clarabel")
    assert ball.radius == pytest.approx(ref_ball.radius, rel=1e-7)
    assert ball.radius == pytest.approx(insphere(poly, method="ipm").radius, rel=1e-9)


def test_unseen_pixels_are_split_off_and_the_answers_match_the_references():
    """Stride-2 3x3 convolutions on 10 x 10 inputs see pixels 0-8 of each row and column only:
    the 19 others are zero columns of A and of the logit Jacobian, split off the Newton
    matrices of eq. 6 and of the nearest optimum. Both agree with cvxpy + Clarabel."""
    from lrtools.exceptions import SolverError
    from lrtools.models import build_cnn
    from lrtools.solvers import maxprob
    from lrtools.solvers.nearest import nearest_optimum, nearest_optimum_cvxpy

    net = build_cnn(1, 10, channels=(3, 4), dense=6, n_classes=3, seed=4).eval()
    region = linear_region(net, np.random.default_rng(5).uniform(-0.8, 0.8, (1, 10, 10)))
    poly, W, c, xs = region.polytope, region.logit_W, region.logit_b, region.x_star
    free = maxprob._Problem(poly, W, c, 0).rows.free
    unseen = np.zeros((10, 10), dtype=bool)
    unseen[9, :] = unseen[:, 9] = True
    assert free is not None and free.tolist() == np.flatnonzero(unseen.ravel()).tolist()
    compared = 0
    for t in range(3):
        fast = max_log_prob(poly, W, c, t, x_star=xs, method="ipm")
        ref = max_log_prob_cvxpy(poly, W, c, t, x_star=xs)
        assert fast.method == "ipm" and poly.contains(fast.x, tol=0.0)
        assert abs(fast.log_prob - ref.log_prob) <= fast.gap + ref.gap + 1e-9
        near = nearest_optimum(poly, W, c, t, xs, fast.x, fast.log_prob, fast.gap)
        # the free pixels meet only their box: the nearest optimum keeps x*'s values there
        np.testing.assert_allclose(near.x[free], xs[free], atol=1e-6)
        try:
            _, d_ref = nearest_optimum_cvxpy(poly, W, c, t, xs, fast.x, fast.log_prob, fast.gap)
        except SolverError:  # Clarabel can be inaccurate on these thin sets: not a reference
            continue
        np.testing.assert_allclose(near.distance, d_ref, rtol=1e-4)
        compared += 1
    assert compared >= 1
