"""Regions (eq. 1-4, 7): membership by sampling, facets, logits map, BN/dropout folding, CNNs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from lrtools.regions import activation_patterns, linear_region, predict


def _inside_samples(region, rng, n=400):
    """Points of the region: x* plus small random steps, kept if they satisfy every row."""
    d = region.x_star.size
    steps = rng.standard_normal((n, d)) * rng.uniform(1e-6, 1e-1, (n, 1))
    pts = region.x_star + steps
    keep = region.polytope.contains(pts, tol=-1e-12)  # strictly inside
    return pts[keep]


def test_points_inside_keep_pattern_and_logits(small_mlp, rng):
    x = rng.uniform(-0.8, 0.8, 12)
    region = linear_region(small_mlp, x)
    pts = _inside_samples(region, rng)
    assert len(pts) > 20
    pats = activation_patterns(small_mlp, pts)
    assert (pats == region.pattern).all()
    np.testing.assert_allclose(predict(small_mlp, pts), region.logits(pts), rtol=1e-10, atol=1e-10)


def test_points_outside_change_pattern(small_mlp, rng):
    x = rng.uniform(-0.8, 0.8, 12)
    region = linear_region(small_mlp, x)
    pts = x + rng.standard_normal((2000, 12)) * 0.5
    pts = pts[np.all(np.abs(pts) <= 1, axis=1)]
    outside = ~region.polytope.contains(pts, tol=1e-12)
    assert outside.any()
    pats = activation_patterns(small_mlp, pts[outside])
    assert not (pats == region.pattern).all(axis=1).any()


def test_crossing_a_facet_flips_exactly_that_unit(small_mlp, rng):
    x = rng.uniform(-0.8, 0.8, 12)
    region = linear_region(small_mlp, x)
    A, b = region.polytope.A, region.polytope.b
    norms = np.linalg.norm(A, axis=1)
    dist = np.where(norms > 0, (A @ x + b) / np.where(norms > 0, norms, 1), np.inf)
    k = int(np.argmin(dist))  # the nearest hyperplane is a facet (nothing closer along its normal)
    step = dist[k] * A[k] / norms[k]
    before = x - 0.999 * step
    after = x - 1.001 * step
    assert (activation_patterns(small_mlp, before[None])[0] == region.pattern).all()
    flipped = activation_patterns(small_mlp, after[None])[0] != region.pattern
    assert flipped[k]


def test_rows_are_signed_gradients(small_mlp, rng):
    """Row i equals sgn(h_i) * grad h_i(x*) computed by autograd (eq. 2-3)."""
    x = rng.uniform(-0.8, 0.8, 12)
    region = linear_region(small_mlp, x)
    net = small_mlp.double().eval()
    xt = torch.tensor(x, requires_grad=True)
    pre = []
    h = xt[None]
    for m in net:
        if isinstance(m, nn.ReLU):
            pre.append(h[0])
        h = m(h)
    pre = torch.cat(pre)
    grads = torch.stack(
        [torch.autograd.grad(pre[i], xt, retain_graph=True)[0] for i in range(len(pre))]
    ).numpy()
    sign = np.where(pre.detach().numpy() > 0, 1.0, -1.0)
    np.testing.assert_allclose(region.polytope.A, sign[:, None] * grads, atol=1e-12)
    np.testing.assert_allclose(
        region.polytope.A @ x + region.polytope.b, np.abs(pre.detach().numpy()), atol=1e-12
    )
    small_mlp.float()


def test_bn_and_dropout_equal_folded_affine_network(rng):
    """A BN/dropout model in eval mode has the region of its folded plain network."""
    from lrtools.models import build_mlp
    from tests.conftest import warm_bn

    for variant in ("bn", "dropout"):
        net = warm_bn(build_mlp(6, [8, 8], 3, variant=variant, seed=3), (6,))
        layers, folded = list(net), []
        i = 0
        while i < len(layers):
            m = layers[i]
            if isinstance(m, nn.Linear):
                W, c = m.weight.detach().double(), m.bias.detach().double()
                if i + 1 < len(layers) and isinstance(layers[i + 1], nn.BatchNorm1d):
                    bn = layers[i + 1]
                    s = bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps)
                    W = s[:, None] * W
                    c = s * (c - bn.running_mean.double()) + bn.bias.detach().double()
                    i += 1
                lin = nn.Linear(W.shape[1], W.shape[0]).double()
                lin.weight.data, lin.bias.data = W.clone(), c.clone()
                folded.append(lin)
            elif isinstance(m, nn.ReLU):
                folded.append(nn.ReLU())
            i += 1
        plain = nn.Sequential(*folded)
        x = rng.uniform(-0.8, 0.8, 6)
        r1, r2 = linear_region(net, x), linear_region(plain, x)
        np.testing.assert_array_equal(r1.pattern, r2.pattern)
        np.testing.assert_allclose(r1.polytope.A, r2.polytope.A, atol=1e-12)
        np.testing.assert_allclose(r1.polytope.b, r2.polytope.b, atol=1e-12)
        np.testing.assert_allclose(r1.logit_W, r2.logit_W, atol=1e-12)


def test_region_ignores_training_mode_and_leaves_model_untouched(rng):
    from lrtools.models import build_mlp

    net = build_mlp(5, [7, 7], 2, variant="dropout", seed=0)
    net.train()
    x = rng.uniform(-1, 1, 5)
    r1 = linear_region(net, x)
    assert net.training  # not switched to eval
    r2 = linear_region(net.eval(), x)
    np.testing.assert_array_equal(r1.polytope.A, r2.polytope.A)


def test_cnn_region_equals_unrolled_dense_network(small_cnn, rng):
    """Conv layers unrolled to dense matrices give the same rows (CNN = sparse MLP, Section 2.1)."""
    x = rng.uniform(-0.9, 0.9, (1, 9, 9))
    region = linear_region(small_cnn, x)
    # unroll every affine block numerically (columns = responses to basis inputs)
    pts = _inside_samples(region, rng, n=300)
    pats = activation_patterns(small_cnn, pts.reshape(-1, 1, 9, 9))
    assert len(pts) > 10 and (pats == region.pattern).all()
    np.testing.assert_allclose(
        predict(small_cnn, pts.reshape(-1, 1, 9, 9)), region.logits(pts), atol=1e-10
    )
    assert region.polytope.A.shape == (3 * 4 * 4 + 4 * 1 * 1 + 6, 81)


def test_up_to_layer_is_a_superset(small_mlp, rng):
    region = linear_region(small_mlp, rng.uniform(-0.5, 0.5, 12))
    sizes = [region.up_to_layer(k).n_rows for k in range(1, 4)]
    assert sizes == [16, 28, 36]


@pytest.mark.parametrize(
    "bad, match",
    [
        (nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)), "Tanh is not supported"),
        (nn.Linear(3, 2), "must be a torch.nn.Sequential"),
    ],
)
def test_unsupported_models_are_rejected(bad, match):
    with pytest.raises(TypeError, match=match):
        linear_region(bad, np.zeros(3))


def test_wrong_input_shape_is_explained():
    from lrtools.models import build_mlp

    with pytest.raises(ValueError, match="to fit the model"):
        linear_region(build_mlp(4, [3], 2), np.zeros(5))
