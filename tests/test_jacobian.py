"""The column-compressed region rows (lrtools._jacobian) against the plain identity push.

The plain push (``compress=False``) is itself checked against a dense twin with unrolled
convolutions in test_cnn_regions.py; here the compressed rows must equal it on conv geometries
of every kind the layer rule admits (strides, padding, dilation, groups, BatchNorm), and the
plan's patterns must cover every nonzero that the plain push finds.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from lrtools._forward import ReLUNetwork
from lrtools._jacobian import _plan, region_rows
from lrtools.models import build_cnn
from lrtools.regions import linear_region


def _seeded(net: nn.Sequential, seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):  # running statistics away from the defaults
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return net.eval()


def _nets():
    yield "table3", build_cnn(channels=(2, 3, 4), dense=6, seed=1), (3, 32, 32)
    yield "table3-bn", _seeded(build_cnn(channels=(2, 3, 4), dense=6, variant="bn", seed=2),
                               2), (3, 32, 32)
    # 16 px: the third layer's 15 x 15 pixels would need 225 colours, so two layers compress
    yield "table3-16px", build_cnn(image_size=16, channels=(4, 6, 8), dense=12, seed=1), (3, 16, 16)
    yield "padded", nn.Sequential(
        nn.Conv2d(2, 5, 3, padding=1), nn.ReLU(), nn.Conv2d(5, 4, 3, stride=2, padding=1),
        nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 7), nn.ReLU(), nn.Linear(7, 3)), (2, 12, 12)
    yield "dilated-groups", nn.Sequential(
        nn.Conv2d(2, 6, 3, dilation=2), nn.BatchNorm2d(6), nn.ReLU(),
        nn.Conv2d(6, 4, 2, stride=2, groups=2), nn.ReLU(), nn.Flatten(),
        nn.Linear(4 * 5 * 5, 3)), (2, 14, 14)
    yield "conv-only", nn.Sequential(
        nn.Conv2d(1, 3, 3, stride=2), nn.ReLU(), nn.Conv2d(3, 2, 3, stride=2), nn.ReLU(),
        nn.Flatten(), nn.Linear(2 * 3 * 3, 4)), (1, 15, 15)


NETS = {name: (net, shape) for name, net, shape in _nets()}


@pytest.mark.parametrize("name", list(NETS))
@pytest.mark.parametrize("seed", [0, 1])
def test_compressed_rows_equal_the_identity_push(name, seed):
    net, shape = NETS[name]
    torch.manual_seed(seed)
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.uniform_(m.weight, -0.5, 0.5)
            nn.init.uniform_(m.bias, -0.3, 0.3)
    rn = ReLUNetwork(net)
    plan = _plan(rn, shape)
    assert plan is not None, "this geometry should be compressed"
    assert plan.n_colours * 2 <= shape[1] * shape[2]
    assert plan.n_local == (2 if name == "table3-16px" else 3 if "table3" in name else 2)
    x = torch.from_numpy(np.random.default_rng(seed).uniform(-1, 1, shape))
    A, h, J, z = region_rows(rn, x)
    A0, h0, J0, z0 = region_rows(rn, x, compress=False)
    assert A.shape == A0.shape
    assert [a.size for a in h] == rn.layer_sizes(shape)
    np.testing.assert_array_equal(np.concatenate(h), np.concatenate(h0))  # values: uncompressed
    scale = np.abs(A0).max()
    np.testing.assert_allclose(A, A0, rtol=0, atol=1e-13 * scale)
    np.testing.assert_allclose(J, J0, rtol=0, atol=1e-13 * np.abs(J0).max())
    np.testing.assert_array_equal(z, z0)
    # a compressed entry is one term of a sum whose other terms are zero: same zeros
    np.testing.assert_array_equal(A == 0, A0 == 0)


@pytest.mark.parametrize("name", list(NETS))
def test_patterns_cover_the_nonzeros_and_colours_separate_them(name):
    net, shape = NETS[name]
    rn = ReLUNetwork(net)
    plan = _plan(rn, shape)
    x = torch.from_numpy(np.random.default_rng(3).uniform(-1, 1, shape))
    A0 = region_rows(rn, x, compress=False)[0]
    C0, n_pix = shape[0], shape[1] * shape[2]
    sizes = rn.layer_sizes(shape)
    start = 0
    for layer, (q, p) in enumerate(plan.pairs):
        block = A0[start : start + sizes[layer]]
        hw = int(q.max()) + 1 if q.size else 1
        C_l = sizes[layer] // hw
        pattern = np.zeros((hw, n_pix), dtype=bool)
        pattern[q, p] = True
        nz = (block.reshape(C_l, hw, C0, n_pix) != 0).any(axis=(0, 2))
        assert not (nz & ~pattern).any(), f"layer {layer}: a nonzero outside the pattern"
        for pos in range(hw):  # no position sees two pixels of one colour
            colours = plan.colour[pattern[pos]]
            assert len(np.unique(colours)) == colours.size
        start += sizes[layer]


def test_no_compression_where_it_does_not_pay():
    # a 7x7 kernel on an 8x8 image: every unit sees nearly every pixel
    net = nn.Sequential(nn.Conv2d(1, 2, 7), nn.ReLU(), nn.Flatten(), nn.Linear(8, 2)).eval()
    assert _plan(ReLUNetwork(net), (1, 8, 8)) is None
    reflect = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect"), nn.ReLU(),
                            nn.Flatten(), nn.Linear(2 * 12 * 12, 2)).eval()
    assert _plan(ReLUNetwork(reflect), (1, 12, 12)) is None  # wraps: the patterns do not hold
    x = np.random.default_rng(0).uniform(-1, 1, (1, 12, 12))
    r = linear_region(reflect, x)
    assert r.polytope.contains(r.x_star)


def test_linear_region_of_a_compressed_cnn_keeps_its_pattern_inside():
    net, shape = NETS["table3-bn"]
    rng = np.random.default_rng(4)
    x = rng.uniform(-1, 1, shape)
    r = linear_region(net, x)
    rn = ReLUNetwork(net)
    pre0 = np.concatenate([t.numpy().ravel() for t in rn.preactivations(
        torch.from_numpy(x)[None])])
    # points of the region, by small steps from x*: same pattern, affine logits
    for _ in range(5):
        y = x.ravel() + 1e-4 * rng.standard_normal(x.size)
        if not r.polytope.contains(y):
            continue
        pre = np.concatenate([t.numpy().ravel() for t in rn.preactivations(
            torch.from_numpy(y.reshape(shape))[None])])
        np.testing.assert_array_equal(pre > 0, pre0 > 0)
        np.testing.assert_allclose(r.logits(y), rn.forward(
            torch.from_numpy(y.reshape(shape))[None]).numpy()[0], atol=1e-10)


def test_push_from_a_later_segment_refuses_masks():
    net, shape = NETS["conv-only"]
    rn = ReLUNetwork(net)
    v = torch.zeros((1, 3, 7, 7), dtype=torch.float64)
    with pytest.raises(ValueError, match="start"):
        rn.push(v, start=1, masks=torch.zeros((1, 10), dtype=torch.bool))
