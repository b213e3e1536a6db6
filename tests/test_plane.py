"""Tests of lrtools.plane: the slice plane, its domain, and the convex-polygon primitives."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

from lrtools.plane import (
    Plane,
    chebyshev_centers,
    clip_polygon,
    locate_points,
    polygon_area,
    polygon_areas,
    polygon_centroid,
    polygon_centroids,
    split_polygon,
)

UNIT_SQUARE = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])


def _shoelace(P):
    """Independent signed area (explicit loop)."""
    return 0.5 * sum(
        P[i, 0] * P[(i + 1) % len(P), 1] - P[(i + 1) % len(P), 0] * P[i, 1] for i in range(len(P))
    )


def _same_vertex_set(P, Q, atol=1e-12):
    P, Q = np.asarray(P), np.asarray(Q)
    if P.shape != Q.shape:
        return False
    return all(np.min(np.linalg.norm(Q - p, axis=1)) <= atol for p in P)


# ----------------------------------------------------------------------------------------------
# polygon primitives
# ----------------------------------------------------------------------------------------------
def test_split_square_by_vertical_line():
    pos, neg = split_polygon(UNIT_SQUARE, np.array([1.0, 0.0]), -0.25)  # x >= 0.25
    assert _same_vertex_set(pos, [[0.25, 0], [1, 0], [1, 1], [0.25, 1]])
    assert _same_vertex_set(neg, [[0, 0], [0.25, 0], [0.25, 1], [0, 1]])
    assert _shoelace(pos) == pytest.approx(0.75, abs=1e-15)
    assert _shoelace(neg) == pytest.approx(0.25, abs=1e-15)


def test_split_through_vertices_creates_no_new_vertex():
    pos, neg = split_polygon(UNIT_SQUARE, np.array([-1.0, 1.0]), 0.0)  # y >= x
    assert _same_vertex_set(pos, [[0, 0], [1, 1], [0, 1]])
    assert _same_vertex_set(neg, [[0, 0], [1, 0], [1, 1]])
    assert _shoelace(pos) > 0 and _shoelace(neg) > 0  # counter-clockwise kept


def test_clip_missing_and_containing_lines():
    assert len(clip_polygon(UNIT_SQUARE, np.array([1.0, 0.0]), -2.0)) < 3  # x >= 2: empty
    assert _same_vertex_set(clip_polygon(UNIT_SQUARE, np.array([1.0, 0.0]), 2.0), UNIT_SQUARE)


def test_area_and_centroid_of_a_triangle():
    T = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 6.0]])
    assert polygon_area(T) == pytest.approx(9.0, abs=1e-14)
    assert polygon_area(T[::-1]) == pytest.approx(-9.0, abs=1e-14)
    assert_allclose(polygon_centroid(T), [1.0, 2.0], atol=1e-14)
    many = [T, UNIT_SQUARE + 5.0]
    assert_allclose(polygon_areas(many), [9.0, 1.0], atol=1e-13)
    assert_allclose(polygon_centroids(many), [[1.0, 2.0], [5.5, 5.5]], atol=1e-13)


def test_chebyshev_centres_hand_computed():
    tri = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 3.0]])  # 3-4-5 triangle: inradius 1 at (1, 1)
    tiny = 1e-6 * UNIT_SQUARE
    centers, radii = chebyshev_centers([UNIT_SQUARE, tri, tiny])
    assert_allclose(centers[:2], [[0.5, 0.5], [1.0, 1.0]], atol=1e-7)
    assert_allclose(radii, [0.5, 1.0, 0.5e-6], rtol=1e-6)
    assert np.all(radii > 0)


def test_locate_points_gives_shared_edges_to_one_polygon():
    right = UNIT_SQUARE + [1.0, 0.0]
    st = np.array([[0.5, 0.5], [1.5, 0.2], [1.0, 0.5], [3.0, 3.0]])
    index, depth = locate_points([UNIT_SQUARE, right], st)
    assert index[:2].tolist() == [0, 1]
    assert index[2] in (0, 1) and depth[2] == pytest.approx(0.0, abs=1e-15)
    assert index[3] == -1


# ----------------------------------------------------------------------------------------------
# the plane
# ----------------------------------------------------------------------------------------------
@pytest.fixture
def three_points():
    return np.random.default_rng(0).uniform(-0.6, 0.6, size=(3, 20))


def test_through_basis_origin_and_points(three_points):
    X = three_points
    pl = Plane.through(*X)
    assert_allclose(np.array([[pl.u @ pl.u, pl.u @ pl.v], [pl.v @ pl.u, pl.v @ pl.v]]), np.eye(2),
                    atol=1e-14)
    assert_allclose(pl.origin, X.mean(axis=0), atol=1e-15)
    assert_allclose(pl.to_input(pl.points), X, atol=1e-13)  # the three points lie in the plane
    assert pl.points[0, 1] == pytest.approx(pl.points[1, 1], abs=1e-13)  # x1, x2 share t
    st = np.random.default_rng(1).normal(size=(7, 2))
    assert_allclose(pl.to_plane(pl.to_input(st)), st, atol=1e-13)
    assert np.all(pl.contains(pl.points))


def test_inputs_keep_their_shape():
    X = np.random.default_rng(2).uniform(-0.5, 0.5, size=(3, 1, 8, 8))
    pl = Plane.through(*X)
    assert pl.input_shape == (1, 8, 8)
    assert pl.to_input(pl.points).shape == (3, 1, 8, 8)
    assert pl.to_input(pl.points, flat=True).shape == (3, 64)
    assert pl.to_input(np.zeros((4, 5, 2))).shape == (4, 5, 1, 8, 8)
    assert_allclose(pl.to_plane(X), pl.to_plane(X.reshape(3, 64)), atol=0)
    assert_allclose(pl.to_input(pl.points), X, atol=1e-13)


def test_diagonal_slice_of_the_cube_is_the_regular_hexagon():
    # x + y + z = 0 meets [-1, 1]^3 in the hexagon with vertices the permutations of (1, -1, 0)
    X = np.array([[1.0, -1.0, 0.0], [0.0, 1.0, -1.0], [-1.0, 0.0, 1.0]])
    pl = Plane.through(*X, margin=None)
    assert len(pl.domain) == 6
    assert pl.domain_area == pytest.approx(3.0 * np.sqrt(3.0), rel=1e-13)
    assert _shoelace(pl.domain) == pytest.approx(3.0 * np.sqrt(3.0), rel=1e-13)
    corners = pl.to_input(pl.domain)
    assert_allclose(np.sort(corners, axis=1), np.tile([-1.0, 0.0, 1.0], (6, 1)), atol=1e-13)


@pytest.mark.parametrize("margin", [None, 0.25])
def test_domain_is_the_slice_of_the_box_and_window(three_points, margin):
    pl = Plane.through(*three_points, margin=margin)
    s0, s1, t0, t1 = pl.bounds
    rng = np.random.default_rng(3)
    st = rng.uniform([s0 - 1, t0 - 1], [s1 + 1, t1 + 1], size=(20000, 2))
    x = pl.to_input(st)
    box_slack = np.minimum(x + 1.0, 1.0 - x).min(axis=1)
    slack = box_slack
    if margin is not None:
        lo, hi = pl.points.min(axis=0), pl.points.max(axis=0)
        pad = margin * (hi - lo).max()
        win = np.minimum(st - (lo - pad), (hi + pad) - st).min(axis=1)
        slack = np.minimum(box_slack, win)
    clear = np.abs(slack) > 1e-9
    assert clear.mean() > 0.99
    assert np.array_equal(pl.contains(st)[clear], (slack >= 0)[clear])
    assert (slack >= 0).mean() > 0.05  # the test exercises both sides


def test_explicit_window_and_identity2d():
    pl = Plane.identity2d(window=(-0.5, 0.5, -0.25, 2.0))  # the box cuts the window at t = 1
    assert pl.domain_area == pytest.approx(1.25, abs=1e-14)
    assert pl.bounds == pytest.approx((-0.5, 0.5, -0.25, 1.0), abs=1e-14)
    full = Plane.identity2d()
    assert full.domain_area == pytest.approx(4.0, abs=1e-14) and full.input_shape == (2,)
    assert_allclose(full.to_input([[0.3, -0.7]]), [[0.3, -0.7]], atol=0)


def test_from_directions():
    o = np.array([0.1, 0.2, -0.3])
    pl = Plane.from_directions(o, [1.0, 1.0, 0.0], [1.0, 0.0, 0.0])
    assert_allclose(pl.to_input([[0.0, 0.0]]), [o], atol=0)
    assert_allclose(pl.u, [2**-0.5, 2**-0.5, 0.0], atol=1e-15)
    assert_allclose(pl.v, [2**-0.5, -(2**-0.5), 0.0], atol=1e-15)
    with pytest.raises(ValueError, match="parallel"):
        Plane.from_directions(o, [1.0, 1.0, 0.0], [2.0, 2.0, 0.0])


@pytest.mark.parametrize(
    "points",
    [
        [[0.1, 0.2, 0.3], [0.2, 0.4, 0.6], [0.3, 0.6, 0.9]],  # collinear
        [[0.1, 0.2, 0.3], [0.1, 0.2, 0.3], [0.5, -0.5, 0.0]],  # two coincide
        [[0.0, 0.0, 0.0]] * 3,  # all coincide at the origin
        [[0.5, 0.5, 0.5], [0.5 + 1e-13, 0.5, 0.5], [0.5, 0.5 + 1e-13, 0.5]],  # area ~ 0
    ],
)
def test_collinear_or_coincident_points_raise(points):
    with pytest.raises(ValueError, match=r"collinear \(or coincide\)"):
        Plane.through(*np.array(points))


def test_invalid_arguments_raise(three_points):
    X = three_points
    with pytest.raises(ValueError, match="same shape"):
        Plane.through(X[0], X[1], X[2][:5])
    with pytest.raises(ValueError, match="lo < hi"):
        Plane.through(*X, box=(1.0, -1.0))
    with pytest.raises(ValueError, match="window"):
        Plane.through(*X, window=(1.0, 0.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="empty domain"):
        Plane.through(*X, window=(100.0, 101.0, 100.0, 101.0))
    with pytest.raises(ValueError, match="margin"):
        Plane.through(*X, margin=-1.0)
    pl = Plane.through(*X)
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 2\)"):
        pl.to_input(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="x must have shape"):
        pl.to_plane(np.zeros((4, 19)))


def test_box_none_uses_the_window_alone(three_points):
    pl = Plane.through(*three_points, box=None, margin=0.5)
    lo, hi = pl.points.min(axis=0), pl.points.max(axis=0)
    pad = 0.5 * (hi - lo).max()
    assert pl.box is None
    want = (lo[0] - pad, hi[0] + pad, lo[1] - pad, hi[1] + pad)
    assert pl.bounds == pytest.approx(want, abs=1e-13)
    assert pl.domain_area == pytest.approx(np.prod(hi - lo + 2 * pad), rel=1e-13)
    with pytest.raises(ValueError, match="needs a window"):
        Plane.through(*three_points, box=None, margin=None)
