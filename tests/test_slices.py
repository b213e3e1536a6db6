"""Tests of lrtools.slices: the exact partition of a plane into linear regions (Fig. 1, 2, 8).

References are independent of the partition code: activation patterns and logits of the model
on dense grids (lrtools.regions forward passes), brute-force point-in-polygon tests written
here, the H-representation of lrtools.regions.linear_region, and a hand-computed one-unit net.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose
from torch import nn

from lrtools.models import build_mlp
from lrtools.plane import Plane
from lrtools.regions import activation_patterns, linear_region, predict
from lrtools.slices import PlanePartition, partition_plane, region_points

EDGE = 1e-9  # grid points closer than this to a polygon edge are not compared


# ----------------------------------------------------------------------------------------------
# helpers (independent of lrtools.plane)
# ----------------------------------------------------------------------------------------------
def _depth(P, X):
    """Signed distance of points X (n, 2) inside CCW polygon P via cross products."""
    out = np.full(len(X), np.inf)
    for i in range(len(P)):
        a, b = P[i], P[(i + 1) % len(P)]
        e = b - a
        out = np.minimum(out, (e[0] * (X[:, 1] - a[1]) - e[1] * (X[:, 0] - a[0])) / np.hypot(*e))
    return out


def _depth_in(cells, idx, st):
    """Depth of each point st[j] in polygon cells[idx[j]]."""
    depth = np.empty(len(st))
    order = np.argsort(idx, kind="stable")
    bounds = np.searchsorted(idx[order], np.arange(len(cells) + 1))
    for i in range(len(cells)):
        sel = order[bounds[i] : bounds[i + 1]]
        depth[sel] = _depth(cells[i].vertices, st[sel])
    return depth


def _shoelace(P):
    x, y = P[:, 0], P[:, 1]
    return 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))


def _grid(plane, n):
    s0, s1, t0, t1 = plane.bounds
    S, T = np.meshgrid(np.linspace(s0, s1, n), np.linspace(t0, t1, n))
    st = np.column_stack([S.ravel(), T.ravel()])
    return st[_depth(plane.domain, st) > EDGE]


def _randomize(net, seed):
    """Generic weights: random biases and BN statistics (default init makes lines concurrent)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Linear | nn.Conv2d):
                m.bias.uniform_(-0.5, 0.5, generator=g)
            elif isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
                m.running_mean.uniform_(-0.3, 0.3, generator=g)
                m.running_var.uniform_(0.5, 2.0, generator=g)
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.uniform_(-0.3, 0.3, generator=g)
    return net


def _bn_warmup(net, shape, seed=0):
    """Non-trivial BatchNorm running statistics from a few random batches (then eval mode)."""
    g = torch.Generator().manual_seed(seed)
    net.train()
    with torch.no_grad():
        for _ in range(5):
            net(torch.randn((64, *shape), generator=g))
    return net.eval()


def _balance(net, shape):
    """Shift the last bias so that both classes win somewhere (a decision boundary exists)."""
    X = np.random.default_rng(0).uniform(-1, 1, size=(2000, *shape))
    z = predict(net, X)
    with torch.no_grad():
        net[-1].bias[0] -= float(np.median(z[:, 0] - z[:, 1]))
    return net


def _toy(kind):
    if kind == "bn-default-init":  # untrained BN: first-layer lines meet at one point (slivers)
        net = _bn_warmup(build_mlp(2, [10, 10, 10], 2, variant="bn", seed=0), (2,))
    elif kind == "vanilla-zero-bias":  # positively homogeneous: every line passes through 0
        net = build_mlp(2, [10, 10, 10], 2, seed=0)
    else:
        net = _randomize(build_mlp(2, [10, 10, 10], 2, variant=kind, seed=1), seed=2)
    return _balance(net, (2,))


def _cnn():
    torch.manual_seed(0)  # initial weights
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, stride=2), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.2),
        nn.Conv2d(4, 6, 3), nn.BatchNorm2d(6), nn.ReLU(), nn.Flatten(),
        nn.Linear(6, 12), nn.BatchNorm1d(12), nn.ReLU(), nn.Dropout(0.2), nn.Linear(12, 3),
    )  # fmt: skip
    return _randomize(net, seed=3)


def _check_against_grid(net, part, n):
    """(a)+(c): every grid point lies in a cell with its pattern and a piece with its class."""
    plane = part.plane
    st = _grid(plane, n)
    idx = part.locate(st)
    assert np.all(idx >= 0), "a grid point inside the domain is in no cell"
    depth = _depth_in(part.cells, idx, st)
    assert depth.min() >= -1e-12, "locate returned a cell that does not contain the point"
    clear = depth > EDGE
    assert clear.mean() > 0.97
    X = plane.to_input(st)
    pats = activation_patterns(net, X)[:, : sum(part.layer_sizes)]
    assert np.array_equal(part.patterns[idx[clear]], pats[clear])
    assert part.n_regions >= len(np.unique(pats, axis=0))
    if part.full_depth:
        z = predict(net, X)
        top2 = np.sort(z, axis=1)[:, -2:]
        decided = (top2[:, 1] - top2[:, 0]) > 1e-9 * (1 + np.abs(z).max(axis=1))
        labels = part.classify(st)
        assert np.all(labels >= 0)
        assert np.array_equal(labels[decided], z.argmax(axis=1)[decided])
        assert decided.mean() > 0.99


def _check_tiling(part, n_samples=3000, seed=0):
    """(b): areas add up to the domain's, polygons are CCW, and they do not overlap."""
    plane = part.plane
    areas = np.array([_shoelace(c.vertices) for c in part.cells])
    assert np.all(areas > 0)
    assert_allclose(areas, part.areas, rtol=1e-12, atol=1e-15)
    assert_allclose(areas.sum(), plane.domain_area, rtol=1e-9)
    rng = np.random.default_rng(seed)
    s0, s1, t0, t1 = plane.bounds
    st = rng.uniform([s0, t0], [s1, t1], size=(n_samples, 2))
    st = st[_depth(plane.domain, st) > EDGE]
    depths = np.stack([_depth(c.vertices, st) for c in part.cells])  # (n_cells, n)
    inside = depths > EDGE
    near = (np.abs(depths) <= EDGE).any(axis=0)
    assert np.all(inside.sum(axis=0)[~near] == 1)
    assert near.mean() < 0.01
    if part.full_depth:
        piece_area = sum(_shoelace(p.vertices) for p in part.class_pieces)
        assert_allclose(piece_area + part.class_sliver_area, plane.domain_area, rtol=1e-9)
        pdepth = np.stack([_depth(p.vertices, st) for p in part.class_pieces])
        pnear = (np.abs(pdepth) <= EDGE).any(axis=0)
        assert np.all((pdepth > EDGE).sum(axis=0)[~pnear] == 1)


# ----------------------------------------------------------------------------------------------
# fixtures
# ----------------------------------------------------------------------------------------------
TOY_KINDS = ["vanilla", "bn", "dropout", "bn-default-init", "vanilla-zero-bias"]


@pytest.fixture(scope="module", params=TOY_KINDS)
def toy(request):
    net = _toy(request.param)
    return request.param, net, partition_plane(net, Plane.identity2d())


@pytest.fixture(scope="module")
def mlp20():
    net = _randomize(build_mlp(20, [16, 16, 16], 4, variant="bn", seed=4), seed=5)
    X = np.random.default_rng(6).uniform(-0.8, 0.8, size=(3, 20))
    return net, partition_plane(net, Plane.through(*X, margin=0.5))


@pytest.fixture(scope="module")
def cnn():
    net = _cnn()
    X = np.random.default_rng(7).uniform(-0.8, 0.8, size=(3, 1, 8, 8))
    return net, partition_plane(net, Plane.through(*X, margin=1.0))


# ----------------------------------------------------------------------------------------------
# hand-computed case
# ----------------------------------------------------------------------------------------------
def _one_unit_net():
    """h = x + y - 0.5; logits z = (relu(h), 0.25)."""
    net = nn.Sequential(nn.Linear(2, 1), nn.ReLU(), nn.Linear(1, 2))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 1.0]]))
        net[0].bias.fill_(-0.5)
        net[2].weight.copy_(torch.tensor([[1.0], [0.0]]))
        net[2].bias.copy_(torch.tensor([0.0, 0.25]))
    return net


def _vertex_set(P):
    return sorted(map(tuple, np.round(P, 12)))


def test_one_unit_splits_the_square_into_known_polygons():
    part = partition_plane(_one_unit_net(), Plane.identity2d())
    assert part.n_regions == 2 and part.n_slivers == 0
    by_pattern = {bool(c.pattern[0]): c for c in part.cells}
    tri, pent = by_pattern[True], by_pattern[False]
    assert _vertex_set(tri.vertices) == _vertex_set(np.array([[1, -0.5], [1, 1], [-0.5, 1]]))
    assert _vertex_set(pent.vertices) == _vertex_set(
        np.array([[-1, -1], [1, -1], [1, -0.5], [-0.5, 1], [-1, 1]])
    )
    assert tri.area == pytest.approx(1.125, abs=1e-14) and _shoelace(tri.vertices) > 0
    assert pent.area == pytest.approx(2.875, abs=1e-14) and _shoelace(pent.vertices) > 0
    assert tri.activation_rate == 1.0 and pent.activation_rate == 0.0
    # class 0 wins where x + y > 0.75: the triangle (1, -0.25), (1, 1), (-0.25, 1)
    win0 = [p for p in part.class_pieces if p.label == 0]
    assert len(win0) == 1
    assert _vertex_set(win0[0].vertices) == _vertex_set(
        np.array([[1, -0.25], [1, 1], [-0.25, 1]])
    )
    area1 = sum(_shoelace(p.vertices) for p in part.class_pieces if p.label == 1)
    assert area1 == pytest.approx(4.0 - 0.78125, abs=1e-14)
    seg = part.decision_boundary()
    assert seg.shape == (1, 2, 2)
    assert _vertex_set(seg[0]) == _vertex_set(np.array([[1, -0.25], [-0.25, 1]]))
    assert_allclose(tri.logit_map, [[-0.5, 0.25], [1, 0], [1, 0]], atol=1e-15)


# ----------------------------------------------------------------------------------------------
# (a)-(c) toy nets 2-[10,10,10]-2 on the input plane (Fig. 8)
# ----------------------------------------------------------------------------------------------
def test_toy_partition_matches_grid(toy):
    _, net, part = toy
    assert part.n_regions > 20
    _check_against_grid(net, part, 300)


def test_toy_cells_tile_the_square(toy):
    kind, _, part = toy
    _check_tiling(part)
    if kind in ("vanilla", "bn", "dropout"):
        assert part.n_slivers == 0  # generic weights: no cut is ever skipped
    assert part.sliver_area <= part.n_slivers * part.min_area * part.plane.domain_area


def test_patterns_are_unique_and_indexed(toy):
    _, net, part = toy
    pats = part.patterns
    assert len(np.unique(pats, axis=0)) == part.n_regions
    for i in range(0, part.n_regions, 7):
        assert part.cell_of_pattern(pats[i]) == i
    missing = ~pats[0]
    if part.cell_of_pattern(missing) != -1:  # the complement is a real pattern of another cell
        assert part.cell_of_pattern(missing) != 0
    assert part.locate([[5.0, 5.0]])[0] == -1


def test_frame_matches_model(toy):
    _, net, part = toy
    df = part.to_frame()
    assert len(df) == part.n_regions and df["verified"].all()
    cen = df[["centroid_s", "centroid_t"]].to_numpy()
    assert np.array_equal(df["label"], predict(net, part.plane.to_input(cen)).argmax(axis=1))
    ctr = df[["center_s", "center_t"]].to_numpy()
    rate = activation_patterns(net, part.plane.to_input(ctr)).mean(axis=1)
    assert_allclose(df["activation_rate"], rate, atol=1e-15)
    assert np.all(df["inradius"] > 0)
    assert_allclose(df["area"].sum(), 4.0, rtol=1e-9)


def test_decision_boundary_is_where_logits_tie(toy):
    _, net, part = toy
    seg = part.decision_boundary()
    assert len(seg) > 0
    mid = seg.mean(axis=1)
    z = np.sort(predict(net, part.plane.to_input(mid)), axis=1)
    assert_allclose(z[:, -1], z[:, -2], atol=1e-9 * (1 + np.abs(z).max()))


# ----------------------------------------------------------------------------------------------
# (d) planes through three inputs: 20-D MLP and a 1x8x8 CNN with BN and dropout
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["mlp20", "cnn"])
def test_plane_through_three_inputs(which, request):
    net, part = request.getfixturevalue(which)
    assert part.n_regions > 20 and part.n_slivers == 0
    _check_against_grid(net, part, 150)
    _check_tiling(part, n_samples=1500)


@pytest.mark.parametrize("which", ["mlp20", "cnn"])
def test_region_points_build_regions_containing_their_cells(which, request):
    net, part = request.getfixturevalue(which)
    pts = region_points(part)
    assert pts.shape == (part.n_regions, *part.plane.input_shape)
    assert_allclose(region_points(part, which="centroid", flat=True),
                    part.plane.to_input(part.to_frame()[["centroid_s", "centroid_t"]].to_numpy(),
                                        flat=True))  # fmt: skip
    for i in range(0, part.n_regions, max(1, part.n_regions // 12)):
        region = linear_region(net, pts[i])
        assert np.array_equal(region.pattern, part.cells[i].pattern)
        corners = part.plane.to_input(part.cells[i].vertices, flat=True)
        assert np.all(region.polytope.contains(corners, tol=1e-9))
        assert_allclose(part.cells[i].logits(part.cells[i].vertices),
                        region.logits(corners), rtol=1e-9, atol=1e-9)  # fmt: skip


# ----------------------------------------------------------------------------------------------
# (e) depth-wise exclusion (Fig. 2)
# ----------------------------------------------------------------------------------------------
def test_depthwise_partitions_are_nested():
    net = _toy("bn")
    parts = [partition_plane(net, Plane.identity2d(), max_layers=k) for k in (1, 2, 3)]
    counts = [p.n_regions for p in parts]
    assert counts[0] < counts[1] < counts[2]
    assert not parts[0].full_depth and parts[0].class_pieces == []
    assert parts[0].cells[0].logit_map is None
    with pytest.raises(ValueError, match="full-depth"):
        parts[0].classify([[0.0, 0.0]])
    for coarse, fine in zip(parts[:-1], parts[1:], strict=True):
        n_prefix = sum(coarse.layer_sizes)
        children = np.zeros(coarse.n_regions)
        for cell in fine.cells:
            parent = coarse.cell_of_pattern(cell.pattern[:n_prefix])
            assert parent >= 0
            assert _depth(coarse.cells[parent].vertices, cell.center[None])[0] > 0
            children[parent] += cell.area
        assert_allclose(children, coarse.areas, rtol=1e-9, atol=1e-15)
    _check_against_grid(net, parts[0], 200)


def test_layer_patterns_split_the_pattern(toy):
    _, _, part = toy
    cell = part.cells[0]
    assert [len(p) for p in cell.layer_patterns] == [10, 10, 10]
    assert np.array_equal(np.concatenate(cell.layer_patterns), cell.pattern)


@pytest.mark.parametrize("min_area", [0.0, 1e-6])
def test_sliver_threshold_is_recorded_and_tiling_stays_exact(min_area):
    net = _toy("bn-default-init")  # near-concurrent lines: tiny cells exist
    part = partition_plane(net, Plane.identity2d(), min_area=min_area)
    amin = min_area * part.plane.domain_area
    _check_tiling(part, n_samples=1000)
    assert all(c.verified for c in part.cells)
    assert np.all(part.areas > amin)
    assert 0.0 <= part.sliver_area <= part.n_slivers * amin
    if min_area > 0:
        assert part.n_slivers > 0  # this net does have cells below 1e-6 of the square
        finer = partition_plane(net, Plane.identity2d(), min_area=0.0)
        assert finer.n_regions > part.n_regions


# ----------------------------------------------------------------------------------------------
# (f) validation
# ----------------------------------------------------------------------------------------------
def test_invalid_arguments_raise():
    net = build_mlp(2, [4, 4], 2, seed=0)
    plane = Plane.identity2d()
    with pytest.raises(ValueError, match="max_layers"):
        partition_plane(net, plane, max_layers=0)
    with pytest.raises(ValueError, match="max_layers"):
        partition_plane(net, plane, max_layers=3)
    with pytest.raises(TypeError, match="max_layers"):
        partition_plane(net, plane, max_layers=1.0)
    with pytest.raises(TypeError, match="Plane"):
        partition_plane(net, np.eye(2))
    with pytest.raises(ValueError, match="to fit the model"):
        partition_plane(build_mlp(3, [4], 2), plane)
    with pytest.raises(ValueError, match="no ReLU"):
        partition_plane(nn.Sequential(nn.Linear(2, 2)), plane)
    with pytest.raises(ValueError, match="tol"):
        partition_plane(net, plane, tol=-1.0)
    with pytest.raises(TypeError, match="partition"):
        region_points(plane)
    assert isinstance(partition_plane(net, plane), PlanePartition)
