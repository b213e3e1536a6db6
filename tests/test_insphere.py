"""Tests of the insphere (eq. 5) solvers and of the generic LP interior-point method.

References used: Clarabel (cvxpy) and HiGHS (scipy) for the radius, closed-form inradii of
triangles and boxes, weak duality for the dual certificate, and the network itself
(``activation_patterns``) for the claim that the ball lies in the linear region.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import sparse
from scipy.optimize import linprog

from lrtools.exceptions import SolverError
from lrtools.models import build_cnn, build_mlp
from lrtools.polytope import Polytope
from lrtools.regions import activation_patterns, linear_region, predict
from lrtools.solvers.insphere import (
    fallback_counts,
    insphere,
    insphere_dual_bound,
    insphere_ipm,
    reset_fallback_counts,
)
from lrtools.solvers.ipm import lp_ipm

RTOL_RADIUS = 1e-6  # cross-solver agreement required by the task
RTOL_CERT = 1e-8  # insphere_ipm certifies |dual bound - r| <= 1e-8 r + 1e-12


# ----------------------------------------------------------------------------- fixtures


def _train_briefly(net: torch.nn.Sequential, in_shape: tuple[int, ...], seed: int) -> None:
    """A few Adam steps on a fixed random labelling, so weights (and BN stats) are not at init."""
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(256, *in_shape, generator=g) * 2 - 1
    y = (X.reshape(256, -1)[:, :3].sum(1) > 0).long() + (X.reshape(256, -1)[:, 3] > 0.5).long()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    net.train()
    for _ in range(30):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(X), y).backward()
        opt.step()
    net.eval()


def _mlp(variant: str, trained: bool):
    net = build_mlp(6, [12, 12, 12], 3, variant=variant, seed=1)
    if trained or variant == "bn":
        _train_briefly(net, (6,), seed=2)
    return net, (6,)


def _cnn(variant: str = "vanilla"):
    net = build_cnn(1, 9, channels=(2, 3), dense=8, n_classes=3, variant=variant, seed=3)
    _train_briefly(net, (1, 9, 9), seed=4)
    return net, (1, 9, 9)


CASES = {
    "mlp-vanilla-random": lambda: _mlp("vanilla", trained=False),
    "mlp-vanilla-trained": lambda: _mlp("vanilla", trained=True),
    "mlp-bn-trained": lambda: _mlp("bn", trained=True),
    "mlp-dropout-trained": lambda: _mlp("dropout", trained=True),
    "cnn-vanilla-trained": lambda: _cnn("vanilla"),
    "cnn-bn-trained": lambda: _cnn("bn"),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request):
    """(model, region, {method: InsphereResult}) for one network and one random input."""
    net, in_shape = CASES[request.param]()
    rng = np.random.default_rng(sum(map(ord, request.param)))
    region = linear_region(net, rng.uniform(-0.8, 0.8, in_shape))
    results = {m: insphere(region.polytope, method=m) for m in ("ipm", "clarabel", "highs")}
    return net, region, results


# ----------------------------------------------------------------------------- (a) agreement


def test_radius_agrees_across_solvers(case):
    _, region, res = case
    r = res["ipm"].radius
    assert r > 0
    np.testing.assert_allclose(res["clarabel"].radius, r, rtol=RTOL_RADIUS)
    np.testing.assert_allclose(res["highs"].radius, r, rtol=RTOL_RADIUS)
    assert res["ipm"].method == "ipm" and res["ipm"].status == "optimal"


def test_sparse_and_dense_paths_agree(case):
    _, region, res = case
    poly = region.polytope
    sparse_path = insphere_ipm(poly, sparse_below=1.01)
    dense_path = insphere_ipm(poly, sparse_below=0.0)
    as_csr = insphere_ipm(Polytope(sparse.csr_matrix(poly.A), poly.b, poly.lo, poly.hi))
    for other in (sparse_path, dense_path, as_csr):
        np.testing.assert_allclose(other.radius, res["highs"].radius, rtol=RTOL_RADIUS)


# ----------------------------------------------------------------------------- (b) the ball


def _unit_directions(rng, n: int, d: int) -> np.ndarray:
    u = rng.standard_normal((n, d))
    return u / np.linalg.norm(u, axis=1, keepdims=True)


def test_sphere_surface_stays_in_region(case):
    net, region, res = case
    poly, center, r = region.polytope, res["ipm"].center, res["ipm"].radius
    pts = center + r * _unit_directions(np.random.default_rng(0), 300, poly.dim)
    assert np.all(poly.contains(pts, tol=1e-9))
    shape = region.input_shape
    assert np.array_equal(activation_patterns(net, region.x_star.reshape(1, *shape))[0],
                          region.pattern)
    patterns = activation_patterns(net, pts.reshape(-1, *shape))
    assert np.all(patterns == region.pattern[None, :])
    # on the ball the network is the region's affine map (eq. 7)
    np.testing.assert_allclose(predict(net, pts.reshape(-1, *shape)), region.logits(pts),
                               rtol=1e-9, atol=1e-9)


def _facet_distances(poly: Polytope, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distances from ``x`` to every facet and the facets' inward unit normals."""
    norms = poly.row_norms
    d = poly.dim
    dist = np.concatenate([poly.slack(x) / norms, x - poly.lo, poly.hi - x])
    normals = np.vstack([poly.A / norms[:, None], np.eye(d), -np.eye(d)])
    return dist, normals


def test_ball_touches_tightest_facet_and_slightly_larger_ball_leaves(case):
    _, region, res = case
    poly, center, r = region.polytope, res["ipm"].center, res["ipm"].radius
    dist, normals = _facet_distances(poly, center)
    i = int(np.argmin(dist))
    np.testing.assert_allclose(dist[i], r, rtol=1e-7)
    outside = center - 1.01 * r * normals[i]
    assert not poly.contains(outside, tol=0.0)
    inside = center - 0.99 * r * normals[i]
    assert poly.contains(inside, tol=0.0)


# ----------------------------------------------------------------------------- (c) hand cases


@pytest.mark.parametrize("method", ["auto", "ipm", "clarabel", "highs"])
def test_right_triangle_3_4_5(method):
    # x >= 0, y >= 0, 3x + 4y <= 12: inradius (3 + 4 - 5) / 2 = 1 at (1, 1)
    A = np.array([[1.0, 0.0], [0.0, 1.0], [-3.0, -4.0]])
    b = np.array([0.0, 0.0, 12.0])
    res = insphere(Polytope.from_box(A, b, -10.0, 10.0), method=method)
    np.testing.assert_allclose(res.radius, 1.0, rtol=1e-7)
    np.testing.assert_allclose(res.center, [1.0, 1.0], atol=1e-6)


def test_unit_triangle_and_row_scaling():
    # the triangle x, y >= 0, x + y <= 1 has inradius 1 - sqrt(2)/2; scaling rows changes nothing
    A = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]])
    b = np.array([0.0, 0.0, 1.0])
    expected = 1.0 - np.sqrt(2.0) / 2.0
    for scale in ([1.0, 1.0, 1.0], [1e-3, 7.0, 250.0]):
        s = np.asarray(scale)[:, None]
        res = insphere_ipm(Polytope.from_box(A * s, b * s[:, 0], -1.0, 1.0))
        np.testing.assert_allclose(res.radius, expected, rtol=RTOL_CERT)
        np.testing.assert_allclose(res.center, [expected, expected], atol=1e-7)


def test_box_only_and_binding_box():
    # no hyperplanes: the box [0, 2] x [0, 1] has inradius 1/2 (centre not unique in x)
    poly = Polytope(np.zeros((0, 2)), np.zeros(0), np.array([0.0, 0.0]), np.array([2.0, 1.0]))
    res = insphere_ipm(poly)
    np.testing.assert_allclose(res.radius, 0.5, rtol=RTOL_CERT)
    np.testing.assert_allclose(res.center[1], 0.5, atol=1e-7)
    # a zero row with b >= 0 is always satisfied and must be ignored
    poly0 = Polytope(np.zeros((1, 2)), np.array([0.3]), poly.lo, poly.hi)
    np.testing.assert_allclose(insphere_ipm(poly0).radius, 0.5, rtol=RTOL_CERT)


# ----------------------------------------------------------------------------- (d) certificate


def test_dual_certificate(case):
    _, region, res = case
    poly = region.polytope
    ipm, highs, clar = res["ipm"], res["highs"], res["clarabel"]
    # the IPM's own bound certifies its radius (the gap may be a hair negative: the primal
    # answer is feasible only up to rounding)
    assert abs(ipm.info["certified_gap"]) <= 1e-8 * ipm.radius + 1e-12
    np.testing.assert_allclose(ipm.info["dual_bound"], ipm.radius + ipm.info["certified_gap"])
    # weak duality across solvers: every dual bound lies above every verified radius
    for bound in (ipm.info["dual_bound"], highs.info["dual_bound"], clar.info["dual_bound"]):
        for radius in (ipm.radius, highs.radius, clar.radius):
            assert bound >= radius - 1e-9 * radius
    # arbitrary non-negative multipliers also bound the radius from above
    rng = np.random.default_rng(5)
    for _ in range(20):
        lam = [rng.exponential(size=n) * rng.integers(0, 2, n) for n in (poly.n_rows, poly.dim,
                                                                          poly.dim)]
        assert insphere_dual_bound(poly, *lam) >= highs.radius * (1 - 1e-9)


def test_certificate_rejects_loose_ipm_answer():
    net, in_shape = _mlp("vanilla", trained=True)
    poly = linear_region(net, np.full(in_shape, 0.1)).polytope
    with pytest.raises(SolverError, match="dual certificate failed|violates eq. 5"):
        insphere_ipm(poly, tol=1e-3, certify_rtol=1e-10, certify_atol=0.0)


# ----------------------------------------------------------------------------- (e) bad input


def test_empty_polytope_raises():
    A = np.array([[1.0, 0.0], [-1.0, 0.0]])  # x >= 0.5 and x <= -0.5
    empty = Polytope.from_box(A, np.array([-0.5, -0.5]))
    with pytest.raises(SolverError, match="empty"):
        insphere_ipm(empty)
    dead_row = Polytope.from_box(np.zeros((1, 2)), np.array([-1.0]))
    with pytest.raises(SolverError, match="empty: row 0 has w_i = 0"):
        insphere_ipm(dead_row)


def test_flat_box_has_zero_radius():
    flat = Polytope(np.array([[1.0, 1.0]]), np.array([0.5]), np.zeros(2), np.array([1.0, 0.0]))
    res = insphere_ipm(flat)
    assert 0.0 <= res.radius <= 1e-12
    ref = insphere(flat, method="highs")
    np.testing.assert_allclose(res.radius, ref.radius, atol=1e-9)


def test_invalid_arguments():
    poly = Polytope.from_box(np.eye(2), np.ones(2))
    with pytest.raises(ValueError, match="method == 'simplex' is not supported"):
        insphere(poly, method="simplex")
    with pytest.raises(TypeError, match="poly must be a Polytope"):
        insphere(np.eye(2))
    with pytest.raises(ValueError, match="A contains NaN"):
        Polytope.from_box(np.array([[np.nan, 1.0]]), np.ones(1))
    with pytest.raises(ValueError, match="certify_rtol"):
        insphere_ipm(poly, certify_rtol=-1.0)


# ----------------------------------------------------------------------------- (f) fallback


def test_auto_uses_ipm_and_falls_back_when_forced(case):
    _, region, res = case
    poly = region.polytope
    if poly.n_rows < poly.dim:
        pytest.skip("fewer rows than dims: auto tries Clarabel first (tested separately)")
    reset_fallback_counts()
    ok = insphere(poly)
    assert ok.method == "ipm" and ok.info["fallback"] is False
    forced = insphere(poly, method="auto", max_iter=1)
    assert forced.method == "clarabel" and forced.info["fallback"] is True
    assert "max_iter" in forced.info["fallback_reason"]
    np.testing.assert_allclose(forced.radius, res["highs"].radius, rtol=RTOL_RADIUS)
    assert fallback_counts() == {"auto_calls": 2, "fallbacks": 1, "failures": 0}
    reset_fallback_counts()
    assert fallback_counts() == {"auto_calls": 0, "fallbacks": 0, "failures": 0}


def test_auto_prefers_clarabel_when_rows_are_fewer_than_dims():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(5, 12))  # 5 hyperplanes in 12 dimensions through a point near 0
    poly = Polytope.from_box(A, 0.3 + rng.uniform(0, 0.2, 5))
    reset_fallback_counts()
    res = insphere(poly)
    assert res.method == "clarabel" and res.info["fallback"] is False
    ref = insphere(poly, method="ipm")
    np.testing.assert_allclose(res.radius, ref.radius, rtol=RTOL_RADIUS)
    assert poly.contains(res.center, tol=1e-9)
    assert fallback_counts() == {"auto_calls": 1, "fallbacks": 0, "failures": 0}
    reset_fallback_counts()


def test_auto_reports_both_failures():
    reset_fallback_counts()
    empty = Polytope.from_box(np.array([[1.0, 0.0], [-1.0, 0.0]]), np.array([-0.5, -0.5]))
    with pytest.raises(SolverError, match="both solvers. IPM: .*empty.* Clarabel: "):
        insphere(empty)
    assert fallback_counts() == {"auto_calls": 1, "fallbacks": 1, "failures": 1}
    reset_fallback_counts()


# ----------------------------------------------------------------------------- lp_ipm itself


def _random_lp(seed: int, m: int = 60, n: int = 12):
    """A bounded, feasible LP: random rows around an interior point plus a box."""
    rng = np.random.default_rng(seed)
    G = rng.standard_normal((m, n))
    h = G @ rng.uniform(-0.5, 0.5, n) + rng.uniform(0.1, 1.0, m)
    G = np.vstack([G, np.eye(n), -np.eye(n)])
    h = np.concatenate([h, np.full(2 * n, 2.0)])
    return rng.standard_normal(n), G, h


@pytest.mark.parametrize("seed", range(4))
def test_lp_ipm_matches_highs_and_kkt(seed):
    c, G, h = _random_lp(seed)
    ref = linprog(c, A_ub=G, b_ub=h, bounds=(None, None), method="highs")
    variants = ((G, 0.05, None), (sparse.csr_matrix(G), 0.05, None), (G, 0.0, 1), (G, 1.0, None))
    for G_in, frac, threads in variants:
        res = lp_ipm(c, G_in, h, dense_row_fraction=frac, threads=threads)
        assert res.success and res.status == "optimal"
        np.testing.assert_allclose(res.primal_objective, ref.fun, rtol=1e-8, atol=1e-10)
        # KKT at the returned pair, independently of the solver's own measures
        assert np.all(res.lam > 0)
        assert np.max(G @ res.y - h) <= 1e-9 * (1 + np.abs(h).max())
        np.testing.assert_allclose(G.T @ res.lam, -c, atol=1e-9 * (1 + np.abs(c).max()))
        np.testing.assert_allclose(c @ res.y, -h @ res.lam, rtol=1e-8, atol=1e-12)
        slack = h - G @ res.y
        assert np.max(res.lam * slack) <= 1e-8 * (1 + abs(ref.fun))


def test_lp_ipm_reports_infeasible_unbounded_and_iteration_limit():
    infeasible = lp_ipm([0.0], [[1.0], [-1.0]], [-1.0, -1.0])  # y <= -1 and y >= 1
    assert infeasible.status == "primal_infeasible" and not infeasible.success
    unbounded = lp_ipm([-1.0, 0.0], [[-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]], [0.0, 1.0, 1.0])
    assert unbounded.status == "dual_infeasible" and not unbounded.success
    c, G, h = _random_lp(9)
    short = lp_ipm(c, G, h, max_iter=1)
    assert short.status == "max_iter" and not short.success and short.iterations == 1
    # an unattainable gap tolerance is reported as a failure, never as success
    strict = lp_ipm(c, G, h, tol=1e-30)
    assert strict.status in ("stalled", "max_iter") and not strict.success
    assert strict.rel_gap > 1e-30


def _merit(res) -> float:
    """The stall test's progress measure, from the public fields of an LPResult."""
    scale = max(abs(res.primal_objective), abs(res.dual_objective))
    return max(res.primal_residual, res.dual_residual, res.gap / (1.0 + scale))


@pytest.mark.parametrize("seed", [9, 1])
def test_lp_ipm_answers_a_stall_with_its_best_iterate(seed):
    c, G, h = _random_lp(seed)
    stall = lp_ipm(c, G, h, tol=1e-30)  # unattainable: the iterates drift after the best one
    assert stall.status == "stalled" and not stall.success
    assert 0 <= stall.info["best_iteration"] < stall.iterations
    # the runs cut at k iterations follow the same path: their answers never get worse with
    # k, and the stalled run's answer is the best of them (not its drifted last iterate)
    merits = [_merit(lp_ipm(c, G, h, tol=1e-30, max_iter=k))
              for k in range(1, stall.iterations + 1)]
    assert np.all(np.diff(merits) <= 0)
    assert _merit(stall) == min(merits)
    assert np.all(stall.lam > 0) and np.max(G @ stall.y - h) <= 1e-12


def test_insphere_certificate_decides_when_the_lp_stalls(case):
    _, region, res = case
    poly = region.polytope
    ref = res["highs"].radius
    # an unattainable LP tolerance: the LP stalls (as on a BN MNIST region at tol 1e-9), and
    # its best iterate is certified by the ball check and the dual bound, not by the LP's test
    stalled = insphere_ipm(poly, tol=1e-30)
    assert stalled.info["lp_status"] in ("stalled", "max_iter") and stalled.status == "optimal"
    assert stalled.info["certified_gap"] <= RTOL_CERT * stalled.radius + 1e-12
    # the certified interval [r, bound] holds the reference radius, and the ball is inside
    assert stalled.radius <= ref * (1 + 1e-9) and stalled.info["dual_bound"] >= ref * (1 - 1e-9)
    np.testing.assert_allclose(stalled.radius, res["ipm"].radius, rtol=2 * RTOL_CERT)
    rng = np.random.default_rng(3)
    surface = stalled.center + stalled.radius * _unit_directions(rng, 200, poly.dim)
    assert all(poly.contains(x, tol=1e-9) for x in surface)
    # an LP stopped early is not rescued unless its certificate holds
    k = res["ipm"].info["iterations"] - 2
    with pytest.raises(SolverError, match="no certified optimum|dual certificate failed"):
        insphere_ipm(poly, max_iter=k, certify_rtol=1e-13, certify_atol=0.0)


def test_insphere_retries_a_converged_lp_whose_certificate_misses(case, monkeypatch):
    """An LP that meets its own tolerance but whose dual bound misses the certificate (its dual
    residual, summed over the box columns) is solved once more, 100x tighter; the answer is
    certified all the same."""
    import lrtools.solvers.insphere as ins

    _, region, res = case
    tols = []

    def recording(*args, **kwargs):
        tols.append(kwargs["tol"])
        return lp_ipm(*args, **kwargs)

    monkeypatch.setattr(ins, "lp_ipm", recording)
    loose = insphere_ipm(region.polytope, tol=1e-6)  # certificate 1e-8: the first LP misses it
    np.testing.assert_allclose(tols, [1e-6, 1e-8])
    assert loose.info["lp_tol"] == pytest.approx(1e-8)
    assert abs(loose.info["certified_gap"]) <= RTOL_CERT * loose.radius + 1e-12
    np.testing.assert_allclose(loose.radius, res["highs"].radius, rtol=RTOL_RADIUS)


def test_lp_ipm_validation():
    with pytest.raises(ValueError, match="G must have shape"):
        lp_ipm(np.ones(3), np.ones((4, 2)), np.ones(4))
    with pytest.raises(ValueError, match="h must have shape"):
        lp_ipm(np.ones(2), np.ones((4, 2)), np.ones(3))
    with pytest.raises(ValueError, match="tol == 0.0, must be > 0.0"):
        lp_ipm(np.ones(2), np.ones((4, 2)), np.ones(4), tol=0.0)
    with pytest.raises(ValueError, match="threads == 0, must be >= 1"):
        lp_ipm(np.ones(2), np.ones((4, 2)), np.ones(4), threads=0)
    with pytest.raises(ValueError, match="G contains NaN"):
        lp_ipm(np.ones(2), sparse.csr_matrix(np.array([[np.nan, 1.0]])), np.ones(1))


def test_lp_ipm_stop_callback():
    from lrtools.solvers.ipm import lp_ipm

    G = [[1, 0], [0, 1], [-1, 0], [0, -1]]
    seen = []

    def stop(y, lam):
        seen.append(y.copy())
        return len(seen) == 2

    res = lp_ipm([-1.0, -1.0], G, [1, 2, 0, 0], stop=stop)
    assert res.status == "stopped" and not res.success and len(seen) == 2
    np.testing.assert_array_equal(res.y, seen[-1])
    full = lp_ipm([-1.0, -1.0], G, [1, 2, 0, 0], stop=lambda y, lam: False)
    assert full.status == "optimal"
    with pytest.raises(TypeError, match="stop must be callable"):
        lp_ipm([-1.0, -1.0], G, [1, 2, 0, 0], stop=1)


def test_coordinates_no_row_uses_are_left_out_and_the_radius_is_still_certified():
    """Zero columns of A meet only their box: left out of the LP (all but the narrowest box,
    when that one binds); the ball and its certificate hold in the full space, against
    Clarabel on the same polytope."""
    from lrtools.solvers.insphere import _insphere_lp, verify_insphere

    rng = np.random.default_rng(7)
    A = rng.standard_normal((30, 6))
    A[:, [1, 4]] = 0.0
    b = rng.uniform(0.5, 1.5, 30)
    for lo4, expected in ((-1.0, [0, 2, 3, 5]), (-0.9999, [0, 2, 3, 4, 5])):
        lo, hi = -np.ones(6), np.ones(6)
        lo[4], hi[4] = lo4, -lo4  # coordinate 4 narrower than every used one: it binds
        poly = Polytope(A, b, lo, hi)
        assert _insphere_lp(poly, 0.5)[4].tolist() == expected
        fast = insphere(poly, method="ipm")
        ref = insphere(poly, method="clarabel")
        np.testing.assert_allclose(fast.radius, ref.radius, rtol=1e-7)
        assert verify_insphere(poly, fast.center, fast.radius) <= 1e-9
        assert fast.center[1] == 0.0  # a left-out coordinate sits at its box centre
        assert abs(fast.info["certified_gap"]) <= 1e-8 * fast.radius + 1e-12
    # a box so narrow in an unused coordinate that it fixes the radius
    lo, hi = -np.ones(6), np.ones(6)
    lo[1], hi[1] = -0.01, 0.01
    fast = insphere(Polytope(A, b, lo, hi), method="ipm")
    np.testing.assert_allclose(fast.radius, 0.01, rtol=1e-8)
