"""Tests of redundancy removal (eq. 18, Appendix C): naive LPs vs the output-sensitive method.

Independent references: hand-computed polygons, the edges of the polygon computed by
scipy.spatial.HalfspaceIntersection + ConvexHull (2-D), a Chebyshev centre from scipy's linprog,
and ray sampling of the region without row k. Certificates are re-checked here with plain numpy.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from scipy.optimize import linprog
from scipy.spatial import ConvexHull, HalfspaceIntersection

from lrtools.exceptions import SolverError
from lrtools.models import build_mlp
from lrtools.polytope import Polytope
from lrtools.regions import linear_region
from lrtools.solvers.redundancy import (
    _hits,
    _normalise,
    _RayScene,
    _Record,
    _record_rays,
    redundant_rows,
    redundant_rows_naive,
    verify_redundancy,
)

TOL = 1e-7  # the definition's tolerance (distance units), the modules' default
VERTEX_ATOL = 1e-8  # a qhull vertex lies on a hyperplane within this distance


# ----------------------------------------------------------------------------- helpers


def _square(extra_A, extra_b, half: float = 0.5) -> Polytope:
    """The square |x|, |y| <= half (four rows) in the box [-1, 1]^2, plus extra rows."""
    A = np.array([[1.0, 0], [-1, 0], [0, 1], [0, -1]])
    b = np.full(4, half)
    return Polytope.from_box(np.vstack([A, extra_A]), np.concatenate([b, extra_b]))


def _trained_mlp(d: int, widths: list[int], variant: str, seed: int) -> torch.nn.Sequential:
    """A few Adam steps on a fixed random labelling: non-zero biases, BN statistics."""
    net = build_mlp(d, widths, 3, variant=variant, seed=seed)
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(256, d, generator=g) * 2 - 1
    y = (X[:, 0] + X[:, 1 % d] > 0).long() + (X[:, -1] > 0.4).long()
    opt = torch.optim.Adam(net.parameters(), lr=2e-2)
    net.train()
    for _ in range(30):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(X), y).backward()
        opt.step()
    return net.eval()


def _region(d: int, widths: list[int], variant: str, seed: int) -> Polytope:
    net = _trained_mlp(d, widths, variant, seed)
    x = np.random.default_rng(seed).uniform(-0.4, 0.4, d)
    return linear_region(net, x).polytope


def _chebyshev(poly: Polytope) -> np.ndarray:
    """Chebyshev centre with scipy's linprog (independent of lrtools' solvers)."""
    G, h = poly.as_leq()
    norms = np.linalg.norm(G, axis=1)
    d = poly.dim
    c = np.zeros(d + 1)
    c[-1] = -1.0
    res = linprog(c, A_ub=np.column_stack([G, norms]), b_ub=h,
                  bounds=[(None, None)] * d + [(0, None)], method="highs")
    assert res.status == 0 and res.x[-1] > 0
    return res.x[:d]


def _polygon_edges(poly: Polytope) -> set[int]:
    """Hyperplane rows containing an edge (two distinct vertices) of the 2-D region."""
    G, h = poly.as_leq()  # G x <= h, qhull wants [G, -h] with G x - h <= 0
    hs = HalfspaceIntersection(np.column_stack([G, -h]), _chebyshev(poly))
    V = hs.intersections[ConvexHull(hs.intersections).vertices]
    edges = set()
    for k in range(poly.n_rows):
        w = poly.A[k]
        on = np.abs(V @ w + poly.b[k]) <= VERTEX_ATOL * np.linalg.norm(w)
        if on.sum() >= 2 and np.ptp(V[on], axis=0).max() > 1e-6:
            edges.add(k)
    return edges


def _present(res, k: int) -> np.ndarray:
    """Rows of C*_k: all rows except k and the rows found redundant before k."""
    idx = np.arange(res.redundant.size)
    return np.flatnonzero(~(res.redundant & (idx < k)) & (idx != k))


def _check_witnesses(poly: Polytope, res) -> int:
    """Every non-redundant row with a witness: in the box, others hold, row k violated."""
    n = 0
    for k in np.flatnonzero(res.tested & ~res.redundant):
        w = res.witness[k]
        if np.isnan(w).any():
            continue
        others = _present(res, k)
        norms = np.linalg.norm(poly.A[others], axis=1)
        assert np.all(w >= poly.lo) and np.all(w <= poly.hi)
        assert np.all(poly.A[others] @ w + poly.b[others] >= -1e-12 * norms)
        assert (poly.A[k] @ w + poly.b[k]) / np.linalg.norm(poly.A[k]) < -TOL
        n += 1
    return n


def _sampled_min_slack(poly: Polytope, res, k: int, n_rays: int, rng, towards=None) -> float:
    """Smallest unit slack of row k at points sampled on rays in the region without row k.

    Rays start at the Chebyshev centre of the region without row k and run in random directions
    (plus the direction of ``towards``, if given) up to that region's boundary.
    """
    others = _present(res, k)
    x0 = _chebyshev(poly.with_rows(others))
    D = rng.standard_normal((n_rays, poly.dim))
    if towards is not None:
        D = np.vstack([D, towards - x0])
    A, b = poly.A[others], poly.b[others]
    rate = D @ A.T  # (n, m)
    with np.errstate(divide="ignore"):
        t_rows = np.where(rate < 0, (A @ x0 + b) / -rate, np.inf).min(axis=1)
        t_box = np.where(D > 0, (poly.hi - x0) / D, np.where(D < 0, (poly.lo - x0) / D, np.inf))
    t_max = np.minimum(t_rows, t_box.min(axis=1))
    frac = np.concatenate([[1.0], rng.uniform(0, 1, 4)])
    pts = (x0 + (frac[:, None, None] * t_max[None, :, None]) * D[None]).reshape(-1, poly.dim)
    return float(((pts @ poly.A[k] + poly.b[k]) / np.linalg.norm(poly.A[k])).min())


# ----------------------------------------------------------------------------- constructed


@pytest.mark.parametrize("method", ["fast", "naive"])
def test_square_with_extra_redundant_row(method):
    # x + y + 1.2 >= 0: min of x + y on the square is -1, so slack >= 0.2 (redundant), but the
    # box alone allows x + y = -2 (not box-implied, needs an LP or a ray certificate).
    poly = _square([[1.0, 1.0]], [1.2])
    res = redundant_rows(poly) if method == "fast" else redundant_rows_naive(poly)
    assert res.redundant.tolist() == [False, False, False, False, True]
    # y_4 = 0.2 / sqrt(2) (unit row) at the vertex (-0.5, -0.5): the certified lower bound lies
    # in [0, y_4], and equals it when it comes from an LP optimum (naive)
    y4 = 0.2 / np.sqrt(2)
    assert 0.0 <= res.bound[4] <= y4 + 1e-9
    if method == "naive":
        np.testing.assert_allclose(res.bound[4], y4, atol=1e-8)
    verify_redundancy(poly, res)


def test_duplicate_rows_keep_the_last_copy():
    # rows 0, 4, 5 define the same facet x >= -0.5 (5 is a positive multiple); rows 1 and 6 too
    poly = _square([[1.0, 0], [3.0, 0], [-2.0, 0]], [0.5, 1.5, 1.0])
    fast, naive = redundant_rows(poly), redundant_rows_naive(poly)
    expected = [True, True, False, False, True, False, False]
    assert fast.redundant.tolist() == expected
    assert naive.redundant.tolist() == expected
    assert fast.kind[[0, 1, 4]].tolist() == ["duplicate"] * 3
    verify_redundancy(poly, fast)
    verify_redundancy(poly, naive)


def test_parallel_looser_row_before_a_tighter_one():
    # row 4 (x >= -0.7) lies outside row 0's facet (x >= -0.5); row 5 is a tighter copy of row 2
    poly = _square([[1.0, 0], [0, 1.0]], [0.7, 0.4])
    fast, naive = redundant_rows(poly), redundant_rows_naive(poly)
    assert fast.redundant.tolist() == naive.redundant.tolist()
    assert fast.redundant.tolist() == [False, False, True, False, True, False]


def test_zero_rows_are_redundant_and_negative_zero_rows_rejected():
    poly = _square([[0.0, 0.0], [0.0, 0.0]], [0.3, 0.0])
    fast, naive = redundant_rows(poly), redundant_rows_naive(poly)
    assert fast.redundant.tolist() == [False] * 4 + [True, True]
    assert naive.redundant.tolist() == fast.redundant.tolist()
    assert fast.kind[4:].tolist() == ["zero", "zero"]
    empty = _square([[0.0, 0.0]], [-0.1])
    with pytest.raises(ValueError, match="empty"):
        redundant_rows(empty)
    with pytest.raises(ValueError, match="empty"):
        redundant_rows_naive(empty)


def test_row_tangent_at_a_vertex_is_redundant():
    # x + y <= 1 touches the square only at its vertex (0.5, 0.5): y_k = 0 exactly
    poly = _square([[-1.0, -1.0]], [1.0])
    fast, naive = redundant_rows(poly), redundant_rows_naive(poly)
    assert fast.redundant.tolist() == [False] * 4 + [True]
    assert naive.redundant.tolist() == fast.redundant.tolist()
    assert -TOL <= fast.bound[4] <= 1e-12  # y_4 = 0: a lower bound within the tolerance
    verify_redundancy(poly, fast)


def test_row_on_a_box_facet_is_redundant_with_a_box_certificate():
    poly = _square([[1.0, 0.0], [0.0, 1.0]], [1.0, 2.0], half=2.0)  # square = whole box
    res = redundant_rows(poly)
    assert res.redundant.all()  # every row is implied by the box [-1, 1]^2
    assert set(res.kind.tolist()) == {"box"}
    np.testing.assert_allclose(res.bound[:4], 1.0, atol=1e-12)
    assert redundant_rows_naive(poly).redundant.all()


def test_lower_dimensional_region_falls_back_to_naive():
    # x >= 0 and -x >= 0: the segment x = 0, |y| <= 1, cut by y >= -0.5; all three rows needed
    poly = Polytope.from_box(np.array([[1.0, 0], [-1, 0], [0, 1.0]]), np.array([0.0, 0, 0.5]))
    res = redundant_rows(poly)
    assert "fallback" in res.info
    assert res.redundant.tolist() == [False, False, False]
    empty_rows = Polytope.from_box(np.zeros((0, 3)), np.zeros(0))
    assert redundant_rows(empty_rows).redundant.size == 0


# ----------------------------------------------------------------------------- 2-D polygons


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("variant", ["vanilla", "bn", "dropout"])
def test_2d_kept_rows_are_the_polygon_edges(variant, seed):
    poly = _region(2, [10, 10, 10], variant, seed)
    fast = redundant_rows(poly)
    naive = redundant_rows_naive(poly)
    np.testing.assert_array_equal(fast.redundant, naive.redundant)
    assert set(np.flatnonzero(~fast.redundant).tolist()) == _polygon_edges(poly)
    assert 0 < fast.n_redundant < poly.n_rows  # both kinds occur


# ----------------------------------------------------------------------------- MLP regions


CASES = [
    (5, [16, 16], "vanilla", 0),
    (8, [16, 16, 16], "bn", 1),
    (12, [20, 20], "dropout", 2),
    (20, [24, 24, 24], "vanilla", 3),
    (30, [32, 32], "bn", 4),
    (30, [24, 24, 24], "dropout", 5),
]


@pytest.mark.parametrize(("d", "widths", "variant", "seed"), CASES)
def test_fast_equals_naive_and_certificates_hold(d, widths, variant, seed):
    poly = _region(d, widths, variant, seed)
    fast = redundant_rows(poly)
    naive = redundant_rows_naive(poly)
    np.testing.assert_array_equal(fast.redundant, naive.redundant)
    checked = verify_redundancy(poly, fast)
    assert "lp" not in checked and "unverified" not in checked  # all fast rows certified
    assert _check_witnesses(poly, fast) == int((~fast.redundant).sum())
    assert fast.n_lp <= naive.n_lp
    verify_redundancy(poly, naive)


@pytest.mark.parametrize(("d", "widths", "variant", "seed"), CASES[:4])
def test_redundant_rows_survive_sampling(d, widths, variant, seed):
    poly = _region(d, widths, variant, seed)
    res = redundant_rows(poly)
    rng = np.random.default_rng(seed)
    for k in np.flatnonzero(res.redundant)[:6]:
        assert _sampled_min_slack(poly, res, k, 400, rng) >= -TOL
    # the sampler does see violations: aimed at a witness of a non-redundant row, it finds one
    k = np.flatnonzero(~res.redundant)[0]
    assert _sampled_min_slack(poly, res, k, 400, rng, towards=res.witness[k]) < -TOL


def test_copied_rows_and_a_dead_unit_in_a_network_region():
    net = _trained_mlp(8, [16, 16], "vanilla", 11)
    with torch.no_grad():  # unit 0 of layer 2 sees no input: its row is w = 0, b = 0.3
        net[2].weight[0] = 0.0
        net[2].bias[0] = 0.3
    base = linear_region(net, np.random.default_rng(11).uniform(-0.4, 0.4, 8)).polytope
    assert np.all(base.A[16] == 0) and base.b[16] == pytest.approx(0.3)
    ref = redundant_rows_naive(base)
    sel = np.array([1, 5, 20, 30])
    assert (~ref.redundant[sel]).sum() >= 2  # copies of facets: the interesting case
    poly = Polytope(np.vstack([base.A, 2.0 * base.A[sel]]),
                    np.concatenate([base.b, 2.0 * base.b[sel]]), base.lo, base.hi)
    fast, naive = redundant_rows(poly), redundant_rows_naive(poly)
    np.testing.assert_array_equal(fast.redundant, naive.redundant)
    assert fast.kind[16] == "zero" and fast.redundant[16]
    # each copied row is now redundant (its later copy stays); the copies inherit its status
    m = base.n_rows
    assert fast.redundant[sel].all()
    np.testing.assert_array_equal(fast.redundant[m:], ref.redundant[sel])
    others = np.setdiff1d(np.arange(m), sel)
    np.testing.assert_array_equal(fast.redundant[others], ref.redundant[others])
    verify_redundancy(poly, fast)


def test_naive_row_subset_reproduces_each_sequential_step():
    poly = _region(10, [20, 20], "dropout", 7)
    fast = redundant_rows(poly)
    m = poly.n_rows
    sample = np.random.default_rng(0).choice(m, 8, replace=False)
    for k in sample:
        removed = fast.redundant & (np.arange(m) < k)
        one = redundant_rows_naive(poly, rows=[k], removed=removed)
        assert one.redundant[k] == fast.redundant[k]
        assert one.tested.sum() == 1 and one.n_lp == 1


def test_fast_row_subset_and_given_center():
    poly = _region(6, [16, 16], "vanilla", 8)
    full = redundant_rows(poly)
    rows = np.arange(0, poly.n_rows, 2)
    sub = redundant_rows(poly, rows=rows, center=_chebyshev(poly))
    assert not sub.redundant[1::2].any() and sub.kind[1::2].tolist() == [""] * (poly.n_rows // 2)
    ref = redundant_rows_naive(poly, rows=rows)
    np.testing.assert_array_equal(sub.redundant, ref.redundant)
    # without parallel rows, redundancy does not depend on which other rows were removed
    # (a row is redundant iff it defines no facet), so the subset agrees with the full run
    np.testing.assert_array_equal(sub.redundant[rows], full.redundant[rows])
    assert 0 < sub.n_redundant < rows.size


def test_solvers_agree_on_one_region():
    poly = _region(6, [12, 12], "bn", 9)
    ref = redundant_rows_naive(poly, method="highs").redundant
    for method in ("highs-ipm", "clarabel", "ipm"):
        np.testing.assert_array_equal(redundant_rows_naive(poly, method=method).redundant, ref)


@pytest.mark.parametrize(("d", "widths", "variant", "seed"), CASES[3:])
@pytest.mark.parametrize(("reduced_rows", "affine_iters"), [(10, 2), (20, 0)])
def test_reduced_lps_with_constraint_generation(d, widths, variant, seed, reduced_rows,
                                                affine_iters):
    # tiny subsets force several constraint-generation rounds and some full-LP fallbacks
    poly = _region(d, widths, variant, seed)
    res = redundant_rows(poly, walk_steps=3, affine_iters=affine_iters,
                         reduced_rows=reduced_rows)
    np.testing.assert_array_equal(res.redundant, redundant_rows_naive(poly).redundant)
    assert res.info["n_lp"] > res.info.get("n_lp_full", 0)  # reduced LPs were solved
    checked = verify_redundancy(poly, res)
    assert set(checked) <= {"box", "dual", "ray", "witness"}


def test_every_phase_can_be_switched_off():
    poly = _region(12, [20, 20], "dropout", 10)
    ref = redundant_rows(poly)
    lean = redundant_rows(poly, walk_steps=0, affine_iters=0, reduced_rows=0)
    np.testing.assert_array_equal(lean.redundant, ref.redundant)
    assert lean.n_lp >= ref.n_lp


# ----------------------------------------------------------------------------- ray hits


def _hits_float64(rows, hit, X, D, S):
    """Reference first/second hit times of the hit rows and the box, all in float64."""
    R = rows.A[hit] @ D.T
    with np.errstate(divide="ignore", invalid="ignore"):
        T = np.where(R < 0, S / -R, np.inf)
        Tb = np.where(D > 0, (rows.hi - X) / D, np.where(D < 0, (rows.lo - X) / D, np.inf)).T
    return np.vstack([T, Tb])


def test_float32_rates_choose_hits_and_float64_times_them():
    """On a network region the hits chosen by float32 rates are the float64 ones, timed exactly."""
    poly = _region(16, [40, 40], "vanilla", 3)
    rows = _normalise(poly)
    hit = np.flatnonzero(~rows.zero)
    scene = _RayScene(rows, hit, np.zeros(rows.m, dtype=bool))
    x = _chebyshev(poly)
    D = np.random.default_rng(0).standard_normal((300, poly.dim))
    X = np.broadcast_to(x, D.shape)
    S = rows.slack(hit, x)[:, None]
    first, t1, t2, _ = _hits(scene, X, D, S.astype(np.float32))  # as the ray phase calls it
    T = _hits_float64(rows, hit, X, D, np.broadcast_to(S, (hit.size, D.shape[0])))
    labels = np.concatenate([hit, -1 - np.arange(poly.dim)])
    cols = np.arange(D.shape[0])
    i1 = np.argmin(T, axis=0)
    Ts = np.sort(T, axis=0)
    clear = Ts[1] > Ts[0] * (1 + 1e-4)  # float32 cannot misorder these
    assert clear.mean() > 0.9
    np.testing.assert_array_equal(first[clear], labels[i1][clear])
    np.testing.assert_allclose(t1, T[i1, cols], rtol=1e-13)  # float64 times, not float32
    np.testing.assert_allclose(t2[clear], Ts[1][clear], rtol=1e-13)


@pytest.mark.parametrize(("eps", "recorded"), [(5e-10, False), (5e-9, True)])
def test_a_float32_tie_of_two_hits_is_ranked_in_float64(eps, recorded):
    """Two rows whose rates tie in float32: the float64 times rank them, and the second hit
    must come clearly later (t2 > t1 (1 + 1e-9)) before a witness is built.

    Along D = (1, 0.5) from the origin row 0 (rate -1) is hit at 0.5 and row 1 (rate -1 - eps,
    equal to row 0's in float32) at 0.5 / (1 + eps): row 1 first.
    """
    A = np.array([[-1.0, 0.0], [-1.0, -2 * eps], [1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    poly = Polytope.from_box(A, np.full(5, 0.5))
    rows = _normalise(poly)
    hit = np.arange(rows.m)
    scene = _RayScene(rows, hit, np.zeros(rows.m, dtype=bool))
    X, D = np.zeros((1, 2)), np.array([[1.0, 0.5]])
    assert np.float32(rows.A[0] @ D[0]) == np.float32(rows.A[1] @ D[0])  # a float32 tie
    S = rows.slack(hit, X[0])[:, None].astype(np.float32)
    first, t1, t2, _ = _hits(scene, X, D, S)
    t_row1 = rows.slack(np.array([1]), X[0])[0] / -(rows.A[1] @ D[0])
    assert first[0] == 1 and t1[0] == pytest.approx(t_row1, rel=1e-15)
    assert t2[0] == pytest.approx(0.5, rel=1e-15)
    tol = 1e-12  # the rows' gap at the midpoint is about eps / 4
    rec = _Record(rows, np.ones(rows.m, dtype=bool), tol)
    new = _record_rays(rec, scene, X, D, first, t1, t2, tol)
    assert new.tolist() == ([1] if recorded else [])
    if recorded:  # the witness violates row 1 and only row 1
        s = rows.A @ rec.witness[1] + rows.b
        assert s[1] < -tol and np.all(np.delete(s, 1) > 0)
    fast, naive = redundant_rows(poly), redundant_rows_naive(poly)
    np.testing.assert_array_equal(fast.redundant, naive.redundant)
    verify_redundancy(poly, fast)


# ----------------------------------------------------------------------------- verification


def test_verify_rejects_tampered_results():
    poly = _square([[1.0, 1.0]], [1.2])
    res = redundant_rows(poly)
    flipped = res.redundant.copy()
    flipped[4] = False
    kind = res.kind.copy()
    kind[4] = "witness"  # claims non-redundant with a NaN witness
    with pytest.raises(SolverError, match="row 4"):
        verify_redundancy(poly, dataclasses.replace(res, redundant=flipped, kind=kind))
    witness = res.witness.copy()
    witness[0] = 0.0  # the centre satisfies row 0: not a witness
    with pytest.raises(SolverError, match="row 0"):
        verify_redundancy(poly, dataclasses.replace(res, witness=witness))
    mult = dict(res.multipliers)
    idx, lam = mult[4]
    mult[4] = (idx, 0.5 * lam)  # halved multipliers no longer certify y >= 0
    with pytest.raises(SolverError, match="row 4"):
        verify_redundancy(poly, dataclasses.replace(res, multipliers=mult))


def test_result_summaries():
    poly = _square([[1.0, 1.0], [0.0, 0.0]], [1.2, 1.0])
    res = redundant_rows(poly)
    assert res.counts == {"dual": 1, "ray": 4, "zero": 1}
    assert res.n_redundant == 2 and res.kept.tolist() == [True] * 4 + [False, False]
    assert set(res.seconds) >= {"center", "rays", "lp", "total"}


@pytest.mark.parametrize(
    ("kwargs", "err", "match"),
    [
        ({"rows": np.ones(3, dtype=bool)}, ValueError, "shape"),
        ({"rows": [0, 9]}, ValueError, "index"),
        ({"rows": [0.5]}, TypeError, "indices"),
        ({"tol": -1.0}, ValueError, "tol"),
        ({"on_unverified": "ignore"}, ValueError, "on_unverified"),
    ],
)
def test_validation(kwargs, err, match):
    poly = _square([[1.0, 1.0]], [1.2])
    with pytest.raises(err, match=match):
        redundant_rows(poly, **kwargs)
    with pytest.raises(err, match=match):
        redundant_rows_naive(poly, **kwargs)


def test_validation_specific_to_each_method():
    poly = _square([[1.0, 1.0]], [1.2])
    with pytest.raises(ValueError, match="method"):
        redundant_rows_naive(poly, method="simplex")
    with pytest.raises(ValueError, match="overlap"):
        redundant_rows_naive(poly, rows=[0], removed=np.eye(5, dtype=bool)[0])
    with pytest.raises(ValueError, match="center"):
        redundant_rows(poly, center=[0.5, 0.0])  # on the boundary x = 0.5
    with pytest.raises(TypeError, match="Polytope"):
        redundant_rows(np.eye(2))
