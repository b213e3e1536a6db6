"""Tests of lrtools.walks against dense sampling and hand-built networks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import lrtools.walks as walks_module
from lrtools.models import build_cnn, build_mlp
from lrtools.regions import activation_patterns, linear_region, predict
from lrtools.walks import (
    count_unique_regions,
    first_class_change,
    first_class_changes,
    logit_jacobian,
    null_space_directions,
    surrounding_regions,
    walk,
)
from tests.conftest import with_biases


def _settle_bn(net: nn.Sequential, shape: tuple[int, ...], seed: int = 0) -> nn.Sequential:
    """A few train-mode batches so BatchNorm running statistics are not trivial."""
    g = torch.Generator().manual_seed(seed)
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.rand(64, *shape, generator=g) * 2 - 1)
    return net.eval()


def _unit_rows(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    E = rng.standard_normal((n, d))
    return E / np.linalg.norm(E, axis=1, keepdims=True)


def _mlp(variant: str, seed: int) -> nn.Sequential:
    net = with_biases(build_mlp(6, [12, 12, 12], 4, variant=variant, seed=seed), seed)
    return _settle_bn(net, (6,), seed) if variant == "bn" else net.eval()


def _check_against_sampling(net, w, n_samples: int) -> None:
    """Sampled patterns equal the piece patterns; unsampled pieces are shorter than a step."""
    betas = np.linspace(0.0, w.breakpoints[-1], n_samples)
    sampled = activation_patterns(net, w.points(betas).reshape(n_samples, *w.input_shape))
    piece = w.piece_of(betas)
    near_break = np.min(np.abs(betas[:, None] - w.breakpoints[None, :]), axis=1) < 1e-9
    mismatch = (sampled != w.patterns()[piece]).any(axis=1) & ~near_break
    assert not mismatch.any(), f"{mismatch.sum()} samples disagree with the walk"
    assert len({row.tobytes() for row in sampled}) <= w.n_pieces
    step = betas[1] - betas[0]
    missed = np.setdiff1d(np.arange(w.n_pieces), piece[~near_break])
    assert np.all(np.diff(w.breakpoints)[missed] < step)


@pytest.mark.parametrize("variant", ["vanilla", "bn", "dropout"])
def test_walk_matches_dense_sampling(variant):
    net = _mlp(variant, seed=3)
    rng = np.random.default_rng(0)
    x0 = rng.uniform(-1, 1, 6)
    walks = walk(net, x0, _unit_rows(rng, 3, 6), 2.0)
    assert sum(w.n_pieces for w in walks) >= 15  # the segments really cross many regions
    for w in walks:
        assert w.breakpoints[0] == 0.0 and w.breakpoints[-1] == 2.0
        assert np.all(np.diff(w.breakpoints) > 0)
        _check_against_sampling(net, w, 20_000)


def test_pattern_changes_at_every_breakpoint():
    net = _mlp("vanilla", seed=5)
    rng = np.random.default_rng(1)
    x0 = rng.uniform(-1, 1, 6)
    for w in walk(net, x0, _unit_rows(rng, 4, 6), 1.5):
        lengths = np.diff(w.breakpoints)
        pats = w.patterns()
        for k in range(1, w.n_pieces):
            delta = min(1e-7, 0.25 * lengths[k - 1], 0.25 * lengths[k])
            before, after = activation_patterns(net, w.points(w.breakpoints[k] + [-delta, delta]))
            np.testing.assert_array_equal(before, pats[k - 1])
            np.testing.assert_array_equal(after, pats[k])
            assert (before != after).any()


def test_one_hidden_layer_breakpoints_are_the_hyperplane_crossings():
    net = with_biases(build_mlp(5, [20], 3, seed=2), seed=2).eval()
    with torch.no_grad():  # unit 7 duplicates unit 3: a tie, crossed at one breakpoint
        net[0].weight[7], net[0].bias[7] = net[0].weight[3], net[0].bias[3]
    W, b = net[0].weight.detach().double().numpy(), net[0].bias.detach().double().numpy()
    rng = np.random.default_rng(2)
    x0, e = rng.uniform(-1, 1, 5), _unit_rows(rng, 1, 5)[0]
    eps = 3.0
    roots = -(W @ x0 + b) / (W @ e)
    expected = np.unique(roots[(roots > 0) & (roots < eps)])
    (w,) = walk(net, x0, e[None], eps)
    np.testing.assert_allclose(w.breakpoints[1:-1], expected, rtol=0, atol=1e-12)
    assert w.n_pieces == expected.size + 1


def _hand_net() -> nn.Sequential:
    """x -> (a, b) = (x, -x) -> (a - b, a + b, -a - b) = (x, |x|, -|x|) -> 2 logits."""
    l1, l2, l3 = nn.Linear(1, 2), nn.Linear(2, 3), nn.Linear(3, 2)
    with torch.no_grad():
        l1.weight.copy_(torch.tensor([[1.0], [-1.0]]))
        l2.weight.copy_(torch.tensor([[1.0, -1.0], [1.0, 1.0], [-1.0, -1.0]]))
        l3.weight.copy_(torch.tensor([[1.0, 1.0, 1.0], [-1.0, 0.5, 2.0]]))
        for lin in (l1, l2, l3):
            lin.bias.zero_()
    return nn.Sequential(l1, nn.ReLU(), l2, nn.ReLU(), l3).eval()


def test_ties_across_layers_and_touching_units_are_resolved():
    # at x = 0 every unit is exactly zero: layer 1 swaps, x crosses, |x| and -|x| only touch
    (w,) = walk(_hand_net(), [-0.5], [[1.0]], 1.0)
    np.testing.assert_allclose(w.breakpoints, [0.0, 0.5, 1.0], rtol=0, atol=1e-15)
    np.testing.assert_array_equal(w.patterns(), [[0, 1, 0, 1, 0], [1, 0, 1, 1, 0]])


def test_walk_from_a_vertex_of_a_zero_bias_network_is_one_piece():
    net = build_mlp(4, [10, 10], 3, seed=4).eval()  # zero biases: every unit is 0 at x = 0
    E = _unit_rows(np.random.default_rng(4), 5, 4)
    for w, e in zip(walk(net, np.zeros(4), E, 0.7), E, strict=True):
        assert w.n_pieces == 1  # positively homogeneous: the open ray is in one region
        np.testing.assert_array_equal(w.patterns()[0], activation_patterns(net, 0.3 * e[None])[0])
        assert not np.unpackbits(w.x0_packed).any()  # x0 itself: all units at 0, inactive


@pytest.mark.parametrize("variant", ["bn", "dropout"])
def test_walk_on_small_cnn(variant):
    shape = (2, 9, 9)
    net = build_cnn(2, 9, channels=(3, 4), dense=10, n_classes=3, variant=variant, seed=1)
    net = with_biases(net, seed=1, scale=0.2)
    net = _settle_bn(net, shape) if variant == "bn" else net.eval()
    rng = np.random.default_rng(5)
    x0 = rng.uniform(-1, 1, shape)
    walks = walk(net, x0, _unit_rows(rng, 2, x0.size).reshape(2, *shape), 1.0)
    assert sum(w.n_pieces for w in walks) >= 5
    for w in walks:
        _check_against_sampling(net, w, 5_000)


def test_logits_on_pieces_are_affine_in_beta():
    net = _mlp("vanilla", seed=6)
    rng = np.random.default_rng(6)
    (w,) = walk(net, rng.uniform(-1, 1, 6), _unit_rows(rng, 1, 6), 1.0)
    k = np.arange(w.n_pieces)
    betas = w.breakpoints[:-1] + 0.3 * np.diff(w.breakpoints)
    z = w.logits_start[k] + (betas - w.breakpoints[:-1])[:, None] * w.logits_slope[k]
    np.testing.assert_allclose(z, predict(net, w.points(betas)), rtol=1e-12, atol=1e-12)


def test_null_space_directions():
    rng = np.random.default_rng(7)
    W = rng.standard_normal((10, 50))
    W[9] = W[0] - 2 * W[3]  # rank deficient rows are fine
    E = null_space_directions(W, 20, rng)
    assert E.shape == (20, 50)
    np.testing.assert_allclose(E @ W.T, 0.0, rtol=0, atol=1e-10)
    np.testing.assert_allclose(np.linalg.norm(E, axis=1), 1.0, rtol=0, atol=1e-12)
    assert np.linalg.matrix_rank(E) == 20  # random, not one repeated direction
    with pytest.raises(ValueError, match="full column rank"):
        null_space_directions(rng.standard_normal((6, 4)), 3, rng)


def test_logit_jacobian_matches_linear_region():
    shape = (2, 9, 9)
    net = with_biases(build_cnn(2, 9, channels=(3, 4), dense=10, n_classes=3, seed=2), 2).eval()
    x = np.random.default_rng(10).uniform(-1, 1, shape)
    np.testing.assert_allclose(
        logit_jacobian(net, x), linear_region(net, x).logit_W, rtol=1e-12, atol=1e-13
    )


def test_null_space_walk_keeps_logits_constant_on_first_piece():
    net = _mlp("vanilla", seed=8)
    x0 = np.random.default_rng(8).uniform(-1, 1, 6)
    region = linear_region(net, x0)
    walks = walk(net, x0, null_space_directions(region.logit_W, 3, 8), 0.2)
    for w in walks:
        np.testing.assert_allclose(w.logits_slope[0], 0.0, rtol=0, atol=1e-12)


def test_surrounding_regions_match_linear_region_gradients():
    net = _mlp("vanilla", seed=9)
    rng = np.random.default_rng(9)
    x0 = rng.uniform(-1, 1, 6)
    walks = walk(net, x0, _unit_rows(rng, 4, 6), 1.0)
    sr = surrounding_regions(net, walks)
    sampled = {row.tobytes() for w in walks for row in activation_patterns(net, w.points())}
    sampled.add(activation_patterns(net, x0[None])[0].tobytes())
    assert sr.n_regions == count_unique_regions(walks) == len(sampled) >= 4
    np.testing.assert_allclose(sr.rho[0], 1.0, rtol=0, atol=1e-12)
    for u in range(sr.n_regions):
        ref = linear_region(net, sr.points[u])
        np.testing.assert_array_equal(ref.pattern, np.unpackbits(sr.packed_patterns[u])[:36])
        k1, k2 = np.argsort(-ref.logits(ref.x_star), kind="stable")[:2]
        np.testing.assert_array_equal(sr.top2[u], [k1, k2])
        np.testing.assert_allclose(sr.g[u], ref.logit_W[k1] - ref.logit_W[k2], atol=1e-12)
    g0 = sr.g[0]
    want = sr.g @ g0 / (np.linalg.norm(sr.g, axis=1) * np.linalg.norm(g0))
    np.testing.assert_allclose(sr.rho, want, rtol=1e-12, atol=1e-12)
    fixed = surrounding_regions(net, walks, pair="x_star")
    assert np.all(fixed.top2 == fixed.top2[0])


@pytest.mark.parametrize(
    ("variant", "seed"), [("vanilla", 11), ("bn", 12), ("dropout", 13), ("bn", 20)]
)
def test_first_class_change_is_a_class_change(variant, seed):
    net = _mlp(variant, seed)
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, (200, 6))
    cls = predict(net, X).argmax(1)
    starts, ends = [], []
    for i in range(3):  # pairs of points with different classes, so the class must change
        j = int(np.nonzero(cls != cls[i])[0][0])
        starts.append(X[i])
        ends.append(X[j])
    changes = first_class_changes(net, np.array(starts), np.array(ends))
    for xs, xe, c in zip(starts, ends, changes, strict=True):
        assert c.changed and 0.0 < c.alpha < 1.0
        at = xs + np.array([c.alpha - 1e-6, c.alpha + 1e-6])[:, None] * (xe - xs)
        before, after = predict(net, at).argmax(1)
        assert before == c.start_class == predict(net, xs[None]).argmax()
        assert after != c.start_class
        alphas = np.linspace(0.0, 1.0, 5001)
        sampled = predict(net, xs + alphas[:, None] * (xe - xs)).argmax(1)
        assert np.all(sampled[alphas < c.alpha - 1e-9] == c.start_class)
        np.testing.assert_allclose(alphas[np.argmax(sampled != c.start_class)], c.alpha, atol=2e-4)
        region = linear_region(net, c.region_point)
        np.testing.assert_array_equal(region.pattern, np.unpackbits(c.region_packed)[:36])
        assert region.logits(c.region_point).argmax() == c.start_class
        single = first_class_change(net, xs, xe)
        np.testing.assert_allclose(single.alpha, c.alpha, rtol=0, atol=1e-12)
        assert single.new_class == c.new_class


def _pairs_of_other_class(net, X, n):
    cls = predict(net, X).argmax(1)
    idx = [(i, int(np.nonzero(cls != cls[i])[0][0])) for i in range(n)]
    return np.stack([X[i] for i, _ in idx]), np.stack([X[j] for _, j in idx])


def _same_changes(a, b):
    for u, v in zip(a, b, strict=True):
        assert abs(u.alpha - v.alpha) <= 1e-12 and u.changed == v.changed
        assert (u.start_class, u.new_class, u.n_pieces) == (v.start_class, v.new_class, v.n_pieces)
        np.testing.assert_array_equal(u.region_packed, v.region_packed)


@pytest.mark.parametrize("kind", ["mlp", "bn", "cnn"])
def test_split_walk_equals_the_piece_after_piece_walk(kind, monkeypatch):
    """Sub-segments walked side by side give the sequential walk's answer: alpha* to 1e-12,
    the same classes, region pattern and piece count (a piece cut at a sub-segment start is
    counted once), whether the segments are walked one by one (16 sub-segments each) or
    together, and when every window ends early so that a segment takes several windows."""
    rng = np.random.default_rng(5)
    if kind == "cnn":
        net = with_biases(build_cnn(2, 9, channels=(6, 8), dense=24, n_classes=3, seed=4), 4)
        X = rng.uniform(-3, 3, (200, 2, 9, 9))
    else:
        net = with_biases(build_mlp(6, [40, 40, 40], 4, variant="vanilla" if kind == "mlp"
                                    else "bn", seed=21), 21)
        net = _settle_bn(net, (6,), 21) if kind == "bn" else net
        X = rng.uniform(-3, 3, (200, 6))
    net.eval()
    Xs, Xe = _pairs_of_other_class(net, X, 3)  # the class changes
    Xs = np.concatenate([Xs, X[3:6]])  # and segments that may not change
    Xe = np.concatenate([Xe, X[3:6] + 3.0 * rng.standard_normal(X[3:6].shape)])
    monkeypatch.setattr(walks_module, "MAX_SUBSEGMENTS", 1)
    ref = first_class_changes(net, Xs, Xe)
    assert max(c.n_pieces for c in ref) >= 40 and sum(c.changed for c in ref) >= 3
    monkeypatch.setattr(walks_module, "MAX_SUBSEGMENTS", 16)
    _same_changes(ref, first_class_changes(net, Xs, Xe))
    _same_changes(ref, [first_class_changes(net, Xs[i : i + 1], Xe[i : i + 1])[0]
                        for i in range(len(Xs))])
    window_end = walks_module._window_end
    calls = []

    def early(net_, Xs_, E_, shape, segs, lo, c0):
        calls.append(segs.size)
        return np.minimum(np.maximum(window_end(net_, Xs_, E_, shape, segs, lo, c0), lo[segs]
                                     + 1e-3), np.minimum(lo[segs] + 0.05, 1.0))

    monkeypatch.setattr(walks_module, "_window_end", early)
    _same_changes(ref, first_class_changes(net, Xs, Xe))
    assert len(calls) > 3


def test_first_class_change_without_change():
    net = _mlp("vanilla", seed=14)
    x = np.random.default_rng(14).uniform(-1, 1, 6)
    c = first_class_change(net, x, x + 1e-3)
    assert not c.changed and c.alpha == 1.0 and c.new_class == -1
    assert predict(net, c.point[None]).argmax() == c.start_class


def test_bad_inputs_raise_clear_errors():
    net = _mlp("vanilla", seed=0)
    x0, E = np.zeros(6), np.eye(6)[:2]
    with pytest.raises(ValueError, match="eps"):
        walk(net, x0, E, 0.0)
    with pytest.raises(ValueError, match="eps"):
        walk(net, x0, E, -1.0)
    with pytest.raises(ValueError, match="finite"):
        walk(net, x0, E, float("inf"))
    with pytest.raises(ValueError, match=r"directions must have shape \(n, 6\)"):
        walk(net, x0, np.ones((2, 5)), 0.2)
    with pytest.raises(ValueError, match="zero rows"):
        walk(net, x0, np.zeros((1, 6)), 0.2)
    with pytest.raises(ValueError, match="tol"):
        walk(net, x0, E, 0.2, tol=0.0)
    with pytest.raises(ValueError, match="fit the model"):
        walk(net, np.zeros(5), np.eye(5)[:1], 0.2)
    with pytest.raises(TypeError, match="Walk objects"):
        count_unique_regions([])
    with pytest.raises(ValueError, match="pair"):
        surrounding_regions(net, walk(net, x0, E, 0.2), pair="max")
    with pytest.raises(ValueError, match="x_end must be one input of shape"):
        first_class_change(net, x0, np.zeros(5))
    with pytest.raises(ValueError, match="differ"):
        first_class_change(net, x0, x0)
    with pytest.raises(ValueError, match="2 dimension"):
        null_space_directions(np.ones(5), 2)
