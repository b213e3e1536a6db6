"""Tests of lrtools.solvers.nearest: the optimal point of eq. (6) nearest x* (eq. 6-8 of [1]).

Independent references: the same program in cvxpy + Clarabel (exponential cone), a hand-built
region whose optimal set of eq. (6) is a whole face (the nearest optimum is computed by hand),
the torch model itself for the activation pattern, and the certificate's validity for random
multipliers.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import sparse
from scipy.special import logsumexp
from threadpoolctl import threadpool_limits

from lrtools.exceptions import LRToolsError, SolverError
from lrtools.models import build_cnn, build_mlp
from lrtools.polytope import Polytope
from lrtools.regions import activation_patterns, linear_region, predict
from lrtools.solvers.maxprob import max_log_prob
from lrtools.solvers.nearest import (
    certify_nearest,
    nearest_optimum,
    nearest_optimum_cvxpy,
)


def _train(net: torch.nn.Module, d: int, n_classes: int, seed: int, steps: int = 60):
    """A few Adam steps on Gaussian blobs in [-1, 1]^d (trained-looking regions)."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.rand(n_classes, d, generator=g) * 1.6 - 0.8
    y = torch.randint(0, n_classes, (512,), generator=g)
    X = centres[y] + 0.25 * torch.randn(512, d, generator=g)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    net.train()
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(X.reshape(512, *_in_shape(net, d))), y).backward()
        opt.step()
    return net.eval()


def _in_shape(net, d):
    return (d,) if isinstance(net[0], torch.nn.Linear) else (1, int(np.sqrt(d)), int(np.sqrt(d)))


@pytest.fixture(scope="module", params=[0, 1, 2])
def small_region(request):
    seed = request.param
    d = 10
    net = _train(build_mlp(d, [16, 16], 4, seed=seed), d, 4, seed)
    x = np.random.default_rng(seed).uniform(-0.5, 0.5, d)
    return net, linear_region(net, x)


def _solve_both(region, t):
    poly, W, c, xs = region.polytope, region.logit_W, region.logit_b, region.x_star
    opt = max_log_prob(poly, W, c, t, x_star=xs)
    near = nearest_optimum(poly, W, c, t, xs, opt.x, opt.log_prob, opt.gap)
    return opt, near


def _check_against_reference(region, t, opt, near):
    """Clarabel's distance agrees (its point is accurate to ~1e-9 in log p_t, which moves the
    distance by up to ~1e-5 relative on this thin feasible set); where it lies below the
    certified lower bound, Clarabel's point is infeasible, as the certificate says it must be.
    Both points lie within the certified radius of the exact minimiser."""
    poly, W, c, xs = region.polytope, region.logit_W, region.logit_b, region.x_star
    x_ref, d_ref = nearest_optimum_cvxpy(poly, W, c, t, xs, opt.x, opt.log_prob, opt.gap)
    np.testing.assert_allclose(near.distance, d_ref, rtol=1e-4)
    assert d_ref <= near.distance + 1e-6  # Clarabel's optimum is no worse than our point
    if d_ref < near.lower_bound:
        z = W @ x_ref + c
        violation = max(near.level - (z[t] - logsumexp(z)), -poly.slack(x_ref).min(),
                        np.max(np.abs(x_ref)) - 1.0)
        assert violation > 0
    else:  # a feasible reference point is at least as far as the exact minimiser
        assert np.linalg.norm(x_ref - near.x) <= near.x_radius + np.sqrt(
            max(d_ref**2 - near.lower_bound**2, 0.0)) + 1e-6
    return d_ref


def _pattern_holds(net, region, x, tol=1e-9):
    """The model's own activation pattern at ``x`` equals the region's on every row that is not
    tight, and the model's logits equal the region's affine logits (eq. 7)."""
    pattern = activation_patterns(net, x.reshape(1, *region.input_shape))[0]
    loose = region.polytope.slack(x) > tol * region.polytope.row_norms
    same = np.array_equal(pattern[loose], region.pattern[loose])
    logits = predict(net, x.reshape(1, *region.input_shape))[0]
    return same and np.allclose(logits, region.logits(x), atol=1e-8, rtol=1e-8)


# --------------------------------------------------------------------------------------------
# agreement with the reference, feasibility, certificate
# --------------------------------------------------------------------------------------------


def test_agrees_with_clarabel_on_small_regions(small_region):
    net, region = small_region
    poly, W = region.polytope, region.logit_W
    for t in range(W.shape[0]):
        opt, near = _solve_both(region, t)
        _check_against_reference(region, t, opt, near)
        assert near.gap <= 1e-5 * (1 + near.distance)  # the default gap_tol
        # feasibility in float64: rows, box and the log-probability level
        assert poly.contains(near.x, tol=0.0)
        assert near.min_slack >= 0 and near.log_prob >= near.level
        assert near.level == pytest.approx(opt.log_prob - 1e-6, abs=1e-15)
        assert _pattern_holds(net, region, near.x)
        # x^t itself is feasible, so the nearest optimum is never farther than x^t
        assert near.distance <= opt.distortion + 1e-9


def test_certificate_is_a_lower_bound_for_any_multipliers(small_region):
    _, region = small_region
    poly, W, c, xs = region.polytope, region.logit_W, region.logit_b, region.x_star
    opt, near = _solve_both(region, 1)
    _, d_ref = nearest_optimum_cvxpy(poly, W, c, 1, xs, opt.x, opt.log_prob, opt.gap)
    rng = np.random.default_rng(0)
    phi_max = -near.level
    for _ in range(20):
        x = rng.uniform(-1, 1, poly.dim)
        mult = rng.exponential(5.0)
        nu = rng.exponential(1.0, poly.n_rows) * (rng.uniform(size=poly.n_rows) < 0.3)
        assert certify_nearest(poly, W, c, 1, xs, phi_max, x, mult, nu) <= d_ref + 1e-7


def test_sparse_rows_give_the_same_answer(small_region):
    _, region = small_region
    poly, W, c, xs = region.polytope, region.logit_W, region.logit_b, region.x_star
    opt, near = _solve_both(region, 2)
    sp = Polytope(sparse.csr_matrix(poly.A), poly.b, poly.lo, poly.hi)
    near_sp = nearest_optimum(sp, W, c, 2, xs, opt.x, opt.log_prob, opt.gap)
    np.testing.assert_allclose(near_sp.distance, near.distance, rtol=1e-6)


def test_reduced_newton_matrix_gives_the_certified_answer_of_the_exact_one(small_region):
    """Constraint reduction (a Newton matrix from the heaviest rows only) changes the path,
    not the answer: with 8 of the region's rows kept, the same distance within the certified
    gaps and the same feasibility checks."""
    _, region = small_region
    poly, W, c, xs = region.polytope, region.logit_W, region.logit_b, region.x_star
    assert poly.n_rows > 8
    for t in range(W.shape[0]):
        opt = max_log_prob(poly, W, c, t, x_star=xs)
        exact = nearest_optimum(poly, W, c, t, xs, opt.x, opt.log_prob, opt.gap,
                                n_keep=poly.n_rows)
        reduced = nearest_optimum(poly, W, c, t, xs, opt.x, opt.log_prob, opt.gap, n_keep=8)
        assert reduced.gap <= 1e-5 * (1 + reduced.distance)
        assert poly.contains(reduced.x, tol=0.0) and reduced.log_prob >= reduced.level
        assert abs(reduced.distance - exact.distance) <= reduced.gap + exact.gap + 1e-12
        assert max(reduced.lower_bound, exact.lower_bound) <= min(reduced.distance,
                                                                  exact.distance) + 1e-12


def test_cnn_region_mixed_dense_and_sparse_rows():
    net = build_cnn(in_channels=1, image_size=15, channels=(3, 4, 4), dense=12, n_classes=4,
                    seed=3).eval()
    x = np.random.default_rng(3).uniform(-0.5, 0.5, (1, 15, 15))
    region = linear_region(net, x)
    nnz = np.count_nonzero(region.polytope.A, axis=1)
    dense = nnz > 0.05 * region.polytope.dim
    assert (~dense).any() and dense.any()
    compared = 0
    # one BLAS thread: Clarabel's status on these thin sets moves with the last bits of x^t
    with threadpool_limits(1):
        for t in range(4):  # every class is certified; Clarabel (the reference) can be inaccurate
            opt, near = _solve_both(region, t)
            assert _pattern_holds(net, region, near.x)
            # CNN regions: every dense row in the Newton matrix by default; a reduced one
            # (4 rows) changes the path only
            assert near.info["n_keep"] == near.info["n_dense"] < region.polytope.n_rows
            if near.status == "optimal":
                reduced = nearest_optimum(region.polytope, region.logit_W, region.logit_b, t,
                                          region.x_star, opt.x, opt.log_prob, opt.gap, n_keep=4)
                # a stall of the reduced matrix is redone with every dense row (on this
                # machine's OpenBLAS, class 2 stalls at gap 1.65 with 4 rows)
                kept = reduced.info.get("reduced_stall", reduced.info)["n_keep"]
                assert kept == 4
                assert abs(reduced.distance - near.distance) <= reduced.gap + near.gap + 1e-12
            try:
                _check_against_reference(region, t, opt, near)
            except SolverError as exc:
                assert "optimal_inaccurate" in str(exc) or "failed" in str(exc)
                continue
            compared += 1
    assert compared >= 1, "the reference solved none of the 4 classes"


def test_a_stalled_reduced_solve_is_redone_with_every_dense_row(monkeypatch):
    """A reduced Newton matrix whose solve stalls (forced here: every reduced run returns its
    start with zero multipliers) gets the whole solve again with every dense row: the same
    certified nearest optimum as the exact solve, and the stalled attempt in ``info``."""
    import lrtools.solvers.nearest as nearest_mod

    net = build_mlp(6, [8, 8], 3, seed=0)
    r = linear_region(net, [0.2, -0.4, 0.1, 0.0, 0.3, -0.2])
    opt = max_log_prob(r.polytope, r.logit_W, r.logit_b, 1, x_star=r.x_star)
    args = (r.polytope, r.logit_W, r.logit_b, 1, r.x_star, opt.x, opt.log_prob, opt.gap)
    exact = nearest_optimum(*args)  # 16 rows: every row in the Newton matrix by default
    assert exact.info["n_keep"] == exact.info["n_dense"] == 16
    real, calls = nearest_mod._ipm, []

    def stalling(*a, **k):
        out = real(*a, **k)
        n_keep = a[9] if len(a) > 9 else k.get("n_keep")
        calls.append(n_keep)
        if n_keep == 4:
            return a[5], 0.0, np.zeros_like(out[2]), out[3], out[4], "stalled"
        return out

    monkeypatch.setattr(nearest_mod, "_ipm", stalling)
    near = nearest_optimum(*args, n_keep=4)
    assert calls[0] == 4 and calls[-1] == 16
    assert near.info["reduced_stall"]["n_keep"] == 4 and near.info["reduced_stall"]["gap"] > 1e-3
    assert near.info["n_keep"] == 16 and near.status == "optimal"
    assert abs(near.distance - exact.distance) <= near.gap + exact.gap + 1e-12
    assert near.iterations > exact.iterations  # the stalled attempt's iterations count


# --------------------------------------------------------------------------------------------
# a hand-built region with a non-unique optimum
# --------------------------------------------------------------------------------------------


def _face_region():
    r"""d = 3, box [-1, 1]^3, one row x0 + x1 <= 1.2; logits (x0, 0, -x0).

    :math:`-\log p_0 = \log(e^{x_0} + 1 + e^{-x_0}) - x_0` decreases in :math:`x_0`, so the
    optimal set of eq. (6) for class 0 is the whole face
    :math:`\{x_0 = 1,\ x_1 \le 0.2,\ |x_2| \le 1\}`: the logits are constant along
    :math:`x_1, x_2`. Its point nearest :math:`x^* = (0.2, 0.6, -0.4)` is
    :math:`(1, 0.2, -0.4)` (the projection onto a box-shaped face), at distance
    :math:`\sqrt{0.8}`.
    """
    poly = Polytope(np.array([[-1.0, -1.0, 0.0]]), np.array([1.2]), -np.ones(3), np.ones(3))
    W = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [-1.0, 0.0, 0.0]])
    return poly, W, np.zeros(3), np.array([0.2, 0.6, -0.4])


def _log_p0(W, c, x):
    z = W @ x + c
    return float(z[0] - np.log(np.sum(np.exp(z))))


def test_non_unique_optimum_nearest_is_found_and_differs_from_the_solvers():
    poly, W, c, xs = _face_region()
    opt = max_log_prob(poly, W, c, 0, x_star=xs)
    assert opt.x[0] == pytest.approx(1.0, abs=1e-6)  # an optimum: on the face
    near = nearest_optimum(poly, W, c, 0, xs, opt.x, opt.log_prob, opt.gap, tol=1e-9,
                           gap_tol=1e-10)
    # within the certified radius (plus the O(tol) widening of the face by the level tolerance)
    assert np.linalg.norm(near.x - [1.0, 0.2, -0.4]) <= near.x_radius + 1e-8
    assert near.x_radius < 1e-4
    assert near.distance == pytest.approx(np.sqrt(0.8), abs=1e-6)
    assert near.lower_bound <= near.distance and near.gap <= 1e-10 * (1 + near.distance)
    assert near.log_prob >= opt.log_prob - 1e-9
    # the solver's optimum is another point of the face, farther from x*
    assert np.linalg.norm(opt.x - near.x) > 0.1
    assert opt.distortion > near.distance + 0.05


@pytest.mark.parametrize("scale", [10.0, 20.0, 30.0])
def test_sharp_softmax_with_p_t_near_one_converges_to_the_analytic_point(scale):
    """Logits ``scale * (x0, 0, -x0)``: at the optimum ``p_0 = 1 - 5e-5 ... 1 - 1e-13``, where
    the gradient of ``-log p_0`` is of order ``1 - p_0``. The near-optimal set is
    ``{x0 >= a}`` (``-log p_0(a) = level``), so the nearest point to ``x*`` is the projection
    onto ``{x0 >= a, x0 + x1 <= 1.2}``. In the log-probability form the method needed 10-20
    iterations here (and stalled on paper-size regions); in the log-odds form it needs 5."""
    from scipy.optimize import brentq

    poly, W, c, xs = _face_region()
    W = scale * W
    opt = max_log_prob(poly, W, c, 0, x_star=xs)
    assert 1.0 - np.exp(opt.log_prob) < 1e-4
    phi_max = -opt.log_prob + 1e-6
    a = brentq(lambda v: np.log1p(np.exp(-scale * v) + np.exp(-2 * scale * v)) - phi_max, -1, 1)
    x0 = max(a, 0.2)
    ref = np.array([x0, 0.6, -0.4]) if x0 + 0.6 <= 1.2 else np.array([max(a, 0.4),
                                                                     1.2 - max(a, 0.4), -0.4])
    near = nearest_optimum(poly, W, c, 0, xs, opt.x, opt.log_prob, opt.gap)
    assert near.status == "optimal" and near.iterations <= 8
    assert near.lower_bound <= np.linalg.norm(ref - xs) <= near.distance + 1e-12
    assert np.linalg.norm(near.x - ref) <= near.x_radius + 1e-9
    assert near.log_prob >= near.level and poly.contains(near.x, tol=0.0)


def _cone_region(seed: int, k: int = 600, d: int = 300, f: int = 150):
    """``k`` hyperplanes through one point ``v`` of the first ``f`` coordinates, around the
    logit direction ``u``: the eq. (6) optimum set is ``{x[:f] = v}`` (``k`` rows tight, a
    degenerate vertex in those coordinates, any values in the others), so the nearest optimum
    is ``(v, x*[f:])`` at distance ``||v - x*[:f]|| = 0.5``."""
    rng = np.random.default_rng(seed)
    u = rng.standard_normal(f)
    u /= np.linalg.norm(u)
    a = u + 0.3 * rng.standard_normal((k, f))
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    v = 0.3 * rng.uniform(-1, 1, f)
    A = np.zeros((k, d))
    A[:, :f] = -a
    poly = Polytope(A, a @ v, -np.ones(d), np.ones(d))
    W = np.zeros((3, d))
    W[0, :f] = 5 * u
    xs = np.concatenate([v - 0.5 * u, rng.uniform(-0.9, 0.9, d - f)])
    return poly, W, np.zeros(3), xs, v


@pytest.mark.parametrize("seed", [0, 1])
def test_hundreds_of_tight_rows_at_the_optimum(seed):
    """The start lies within about tol of x^t, on 600 nearly tight rows (slacks ~1e-9): the
    initial multipliers are bounded there, and the method converges to the known point."""
    poly, W, c, xs, v = _cone_region(seed)
    opt = max_log_prob(poly, W, c, 0, x_star=xs)
    assert int(np.sum(poly.slack(opt.x) < 1e-6)) == 600
    near = nearest_optimum(poly, W, c, 0, xs, opt.x, opt.log_prob, opt.gap)
    ref = np.concatenate([v, xs[150:]])
    assert near.status == "optimal" and near.iterations <= 8
    assert near.lower_bound <= np.linalg.norm(ref - xs) + 1e-12
    assert near.distance == pytest.approx(0.5, rel=2e-6)  # the level allows O(tol) less
    assert np.linalg.norm(near.x - ref) <= near.x_radius + 1e-9
    assert opt.distortion > near.distance + 0.5  # the solver's optimum is elsewhere on the face


def test_non_unique_optimum_does_not_depend_on_the_given_optimum():
    poly, W, c, xs = _face_region()
    for x_opt in ([1.0, -0.9, 0.9], [1.0, 0.2, 1.0], [1.0, -1.0, -1.0]):
        x_opt = np.array(x_opt)
        near = nearest_optimum(poly, W, c, 0, xs, x_opt, _log_p0(W, c, x_opt), 0.0, tol=1e-9,
                               gap_tol=1e-10)
        assert np.linalg.norm(near.x - [1.0, 0.2, -0.4]) <= near.x_radius + 1e-8 < 1e-4


def test_x_star_already_optimal():
    poly, W, c, _ = _face_region()
    xs = np.array([1.0, 0.1, 0.3])  # on the optimal face
    x_opt = np.array([1.0, -0.5, 0.0])
    near = nearest_optimum(poly, W, c, 0, xs, x_opt, _log_p0(W, c, x_opt), 0.0)
    assert near.status == "at_x_star" and near.distance == 0.0
    np.testing.assert_array_equal(near.x, xs)


# --------------------------------------------------------------------------------------------
# bad input and failures
# --------------------------------------------------------------------------------------------


def _args():
    poly, W, c, xs = _face_region()
    x_opt = np.array([1.0, -0.9, 0.9])
    return [poly, W, c, 0, xs, x_opt, _log_p0(W, c, x_opt), 0.0]


@pytest.mark.parametrize(
    "position, value, error, match",
    [
        (0, "poly", TypeError, "poly must be an lrtools Polytope"),
        (1, np.ones((3, 2)), ValueError, r"W must have shape \(M, 3\)"),
        (2, np.zeros(2), ValueError, "c must have shape"),
        (3, 3, ValueError, "t == 3, must be <= 2"),
        (4, np.array([2.0, 0.0, 0.0]), ValueError, "x_star must lie in the region"),
        (5, np.array([1.0, 0.5, 0.0]), ValueError, "x_opt must lie in the region"),
        (5, np.zeros(2), ValueError, "x_opt must have shape"),
        (6, -0.1, ValueError, "does not match log p_t"),
        (6, float("nan"), ValueError, "must be finite"),
        (7, -1e-3, ValueError, "gap == -0.001, must be >= 0"),
    ],
)
def test_bad_input(position, value, error, match):
    args = _args()
    args[position] = value
    with pytest.raises(error, match=match):
        nearest_optimum(*args)


def test_bad_tolerances():
    with pytest.raises(ValueError, match="tol == 0.0, must be > 0"):
        nearest_optimum(*_args(), tol=0.0)
    with pytest.raises(ValueError, match="gap_tol == -1.0, must be > 0"):
        nearest_optimum(*_args(), gap_tol=-1.0)


def test_stop_below_gives_a_verified_upper_bound_with_fewer_iterations(small_region):
    """``stop_below`` above the nearest distance: the solve stops at a feasible point no
    farther than that (an upper bound, never below the certified optimum); below it: the
    same certified answer as without it."""
    _, region = small_region
    poly, W, c, xs = region.polytope, region.logit_W, region.logit_b, region.x_star
    opt, near = _solve_both(region, 1)
    args = (poly, W, c, 1, xs, opt.x, opt.log_prob, opt.gap)
    cut = nearest_optimum(*args, stop_below=near.distance * 1.2)
    assert cut.status == "bounded" and cut.iterations < near.iterations
    assert near.lower_bound - 1e-9 <= cut.distance <= near.distance * 1.2
    assert poly.contains(cut.x, tol=0.0) and cut.log_prob >= cut.level  # verified feasible
    assert cut.lower_bound <= near.distance + 1e-9  # its certificate still bounds from below
    full = nearest_optimum(*args, stop_below=near.lower_bound * 0.9)
    assert full.status == "optimal"
    np.testing.assert_allclose(full.distance, near.distance, rtol=1e-12)
    with pytest.raises(ValueError, match="stop_below == -1.0, must be >= 0"):
        nearest_optimum(*args, stop_below=-1.0)


def test_failure_raises_solver_error_with_the_gap(small_region):
    _, region = small_region
    poly, W, c, xs = region.polytope, region.logit_W, region.logit_b, region.x_star
    opt = max_log_prob(poly, W, c, 0, x_star=xs)
    with pytest.raises(SolverError, match="certified gap") as info:
        nearest_optimum(poly, W, c, 0, xs, opt.x, opt.log_prob, opt.gap, max_iter=1,
                        clarabel_duals=False)
    assert isinstance(info.value, LRToolsError)


def test_stalled_ipm_is_certified_with_clarabel_duals(small_region):
    """After an early stop, Clarabel's multipliers may close the gap (they do not always: its
    answer can be inaccurate); a rescued answer is still checked (feasible, bound below the
    distance) and agrees with the full interior-point solve, and an unrescued one raises."""
    _, region = small_region
    poly, W, c, xs = region.polytope, region.logit_W, region.logit_b, region.x_star
    rescued = 0
    for t in range(W.shape[0]):
        opt = max_log_prob(poly, W, c, t, x_star=xs)
        full = nearest_optimum(poly, W, c, t, xs, opt.x, opt.log_prob, opt.gap)
        try:
            early = nearest_optimum(poly, W, c, t, xs, opt.x, opt.log_prob, opt.gap, max_iter=2)
        except SolverError as exc:
            assert "also with Clarabel's multipliers" in str(exc)
            continue
        rescued += 1
        assert early.status == "optimal_clarabel_duals" and "clarabel" in early.info
        assert poly.contains(early.x, tol=0.0) and early.log_prob >= early.level
        assert early.lower_bound <= full.distance + 1e-9
        assert full.lower_bound <= early.distance + 1e-9
        np.testing.assert_allclose(early.distance, full.distance, rtol=1e-4)
    assert rescued >= 1, "Clarabel's multipliers certified no early-stopped class"




def test_the_rescue_is_skipped_above_its_size_and_the_error_says_so(small_region, monkeypatch):
    """``clarabel_duals=None`` tries Clarabel only up to RESCUE_MAX_SIZE: above it a stall is
    raised at once (no cvxpy solve), naming the rule and how to force the rescue."""
    import lrtools.solvers.nearest as nearest_mod

    _, region = small_region
    poly, W, c, xs = region.polytope, region.logit_W, region.logit_b, region.x_star
    assert poly.n_rows * poly.dim <= nearest_mod.RESCUE_MAX_SIZE  # small: rescue tried
    opt = max_log_prob(poly, W, c, 0, x_star=xs)
    monkeypatch.setattr(nearest_mod, "RESCUE_MAX_SIZE", poly.n_rows * poly.dim - 1)
    calls = []
    monkeypatch.setattr(nearest_mod, "_with_clarabel_duals",
                        lambda *a, **k: calls.append(1) or (a[6], a[8], "optimal"))
    with pytest.raises(SolverError, match="not tried .*RESCUE_MAX_SIZE.*clarabel_duals=True"):
        nearest_optimum(poly, W, c, 0, xs, opt.x, opt.log_prob, opt.gap, max_iter=1)
    assert calls == []
    with pytest.raises(SolverError, match="also with Clarabel's multipliers"):
        nearest_optimum(poly, W, c, 0, xs, opt.x, opt.log_prob, opt.gap, max_iter=1,
                        clarabel_duals=True)
    assert calls == [1]  # forced: tried even above the size
