"""A CNN is a sparse dense network (Section 2, Appendix E.2): its regions equal the unrolled one's.

For a small CNN with the layer types of Table 3 (3x3 convolutions with stride 2 and no padding,
BatchNorm before and Dropout after each ReLU, Flatten, dense layers), the equivalent dense
network is built independently: each convolution is unrolled into an explicit matrix by index
arithmetic on its kernel (no torch convolution involved), and BatchNorm (eval mode) is folded
into the preceding layer. ``linear_region`` must give the two networks identical rows, patterns
and logit maps. Then the architecture table of the Table 3 CNN is checked against the counts of
Appendix E.2 (15x15x32 + 7x7x64 + 3x3x128 + 1,024 = 12,512 hyperplanes).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lrtools.analyses.architecture import architecture_table, count_hyperplanes
from lrtools.models import build_cnn, build_mlp
from lrtools.regions import activation_patterns, layer_sizes, linear_region, predict
from lrtools.training import ModelSpec
from tests.conftest import warm_bn

SHAPE = (3, 11, 11)  # conv 3x3/2: 11 -> 5 -> 2; hidden units 4*5*5 + 6*2*2 + 8 = 132
VARIANTS = ("vanilla", "bn", "dropout")


# --------------------------------------------------------------------------------------------
# The CNN and its independently unrolled dense twin
# --------------------------------------------------------------------------------------------


def _small_cnn(variant: str) -> nn.Sequential:
    """Table 3's layer types at a small size, with random biases and BN affine parameters."""
    net = build_cnn(3, 11, channels=(4, 6), dense=8, n_classes=5, variant=variant, seed=3)
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():  # zero biases and unit BN scales would hide folding mistakes
        for m in net:
            if isinstance(m, nn.Conv2d | nn.Linear):
                m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=g))
            if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
                m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=g))
                m.bias.copy_(0.3 * torch.randn(m.bias.shape, generator=g))
    return warm_bn(net, SHAPE, seed=5)


def _conv_matrix(conv: nn.Conv2d, in_shape: tuple[int, int, int]) -> tuple[np.ndarray, ...]:
    """Unroll a padding-free strided Conv2d into (W, b, out_shape), by index arithmetic."""
    w = conv.weight.detach().double().numpy()
    bias = conv.bias.detach().double().numpy()
    c_out, c_in, kh, kw = w.shape
    s = conv.stride[0]
    _, H, W = in_shape
    Ho, Wo = (H - kh) // s + 1, (W - kw) // s + 1
    M = np.zeros((c_out * Ho * Wo, c_in * H * W))
    for o in range(c_out):
        for i in range(Ho):
            for j in range(Wo):
                row = (o * Ho + i) * Wo + j  # (C, H, W) order, as Flatten and linear_region use
                for c in range(c_in):
                    for u in range(kh):
                        for v in range(kw):
                            M[row, (c * H + s * i + u) * W + s * j + v] += w[o, c, u, v]
    return M, np.repeat(bias, Ho * Wo), (c_out, Ho, Wo)


def _bn_scale_shift(bn: nn.Module, per_channel: int) -> tuple[np.ndarray, np.ndarray]:
    """Eval-mode BatchNorm as y = s * x + t, repeated over the spatial positions."""
    gamma, beta, mean, var = (
        v.detach().double().numpy() for v in (bn.weight, bn.bias, bn.running_mean, bn.running_var)
    )
    s = gamma / np.sqrt(var + bn.eps)
    t = beta - s * mean
    return np.repeat(s, per_channel), np.repeat(t, per_channel)


def _dense_twin(cnn: nn.Sequential, in_shape: tuple[int, int, int]) -> nn.Sequential:
    """The equivalent float64 fully connected ReLU network on flattened inputs."""
    mats: list[list[np.ndarray]] = []  # [W, b] of each affine layer, BN folded in
    shape: tuple[int, ...] = in_shape
    for m in cnn:
        if isinstance(m, nn.Conv2d):
            W, b, shape = _conv_matrix(m, shape)
            mats.append([W, b])
        elif isinstance(m, nn.Linear):
            mats.append([m.weight.detach().double().numpy(), m.bias.detach().double().numpy()])
        elif isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
            spatial = int(np.prod(shape[1:])) if isinstance(m, nn.BatchNorm2d) else 1
            s, t = _bn_scale_shift(m, spatial)
            mats[-1] = [s[:, None] * mats[-1][0], s * mats[-1][1] + t]
        # ReLU: re-inserted below; Dropout (eval) and Flatten ((C, H, W) order): identities
    layers: list[nn.Module] = []
    for k, (W, b) in enumerate(mats):
        lin = nn.Linear(W.shape[1], W.shape[0]).double()
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(W))
            lin.bias.copy_(torch.from_numpy(b))
        layers += [lin] if k == len(mats) - 1 else [lin, nn.ReLU()]
    return nn.Sequential(*layers).eval()


@pytest.fixture(params=VARIANTS)
def pair(request):
    cnn = _small_cnn(request.param)
    return cnn, _dense_twin(cnn, SHAPE)


def test_unrolled_conv_matches_torch_conv(rng):
    """The reference itself: the unrolled matrix reproduces F.conv2d."""
    conv = build_cnn(3, 11, channels=(4, 6), dense=8, n_classes=5, seed=3)[0].double()
    W, b, out_shape = _conv_matrix(conv, SHAPE)
    x = torch.from_numpy(rng.uniform(-1, 1, (7, *SHAPE)))
    want = F.conv2d(x, conv.weight, conv.bias, stride=2).reshape(7, -1).detach().numpy()
    np.testing.assert_allclose(x.reshape(7, -1).numpy() @ W.T + b, want, rtol=0, atol=1e-12)
    assert out_shape == (4, 5, 5) and (W != 0).sum(axis=1).max() == 27  # 3x3x3 receptive field


def test_dense_twin_computes_the_same_function(pair, rng):
    cnn, dense = pair
    X = rng.uniform(-1, 1, (50, *SHAPE))
    np.testing.assert_allclose(
        predict(dense, X.reshape(50, -1)), predict(cnn, X), rtol=0, atol=1e-10
    )
    np.testing.assert_array_equal(
        activation_patterns(dense, X.reshape(50, -1)), activation_patterns(cnn, X)
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cnn_region_equals_dense_twin_region(pair, seed):
    cnn, dense = pair
    x = np.random.default_rng(seed).uniform(-0.9, 0.9, SHAPE)
    rc, rd = linear_region(cnn, x), linear_region(dense, x.reshape(-1))
    assert rc.polytope.A.shape == (132, 363) == rd.polytope.A.shape
    np.testing.assert_allclose(rc.polytope.A, rd.polytope.A, rtol=0, atol=1e-10)
    np.testing.assert_allclose(rc.polytope.b, rd.polytope.b, rtol=0, atol=1e-10)
    np.testing.assert_array_equal(rc.pattern, rd.pattern)
    np.testing.assert_array_equal(rc.layer, rd.layer)
    np.testing.assert_array_equal(rc.unit, rd.unit)
    np.testing.assert_allclose(rc.logit_W, rd.logit_W, rtol=0, atol=1e-10)
    np.testing.assert_allclose(rc.logit_b, rd.logit_b, rtol=0, atol=1e-10)
    np.testing.assert_array_equal(rc.x_star, rd.x_star)
    assert rc.input_shape == SHAPE and np.bincount(rc.layer).tolist() == [100, 24, 8]
    assert 0 < rc.pattern.sum() < rc.pattern.size  # both active and inactive units


def _ray_exits(region, U: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Step length to each hidden-unit hyperplane along each direction (inf: never crossed)."""
    slack = region.polytope.A @ region.x_star + region.polytope.b
    AU = U @ region.polytope.A.T
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(AU < 0, slack / -AU, np.inf)
    return t, slack


def test_points_inside_keep_pattern_and_affine_logits(pair, rng):
    cnn, _ = pair
    region = linear_region(cnn, rng.uniform(-0.9, 0.9, SHAPE))
    x = region.x_star
    U = rng.standard_normal((300, x.size))
    U /= np.linalg.norm(U, axis=1, keepdims=True)
    t_rows, slack = _ray_exits(region, U)
    assert slack.min() > 0  # x* is strictly inside
    with np.errstate(divide="ignore"):
        t_box = np.where(U > 0, (1 - x) / U, np.where(U < 0, (-1 - x) / U, np.inf)).min(axis=1)
    t = rng.uniform(0.02, 0.98, 300) * np.minimum(t_rows.min(axis=1), t_box)
    pts = x + t[:, None] * U
    assert region.polytope.contains(pts).all()
    assert np.abs(pts - x).max() > 1e-3  # the points explore the region, not only x*
    pats = activation_patterns(cnn, pts.reshape(-1, *SHAPE))
    assert (pats == region.pattern).all()
    np.testing.assert_allclose(
        predict(cnn, pts.reshape(-1, *SHAPE)), region.logits(pts), rtol=0, atol=1e-10
    )


def test_crossing_the_first_hyperplane_flips_exactly_its_unit(pair, rng):
    cnn, _ = pair
    region = linear_region(cnn, rng.uniform(-0.9, 0.9, SHAPE))
    U = rng.standard_normal((20, region.x_star.size))
    t_rows, _ = _ray_exits(region, U)
    for u, t in zip(U, t_rows, strict=True):
        k, (t1, t2) = int(np.argmin(t)), np.sort(t)[:2]
        before = region.x_star + 0.999 * t1 * u
        after = region.x_star + (t1 + min(1e-3 * t1, 0.5 * (t2 - t1))) * u
        pb, pa = activation_patterns(cnn, np.stack([before, after]).reshape(2, *SHAPE))
        assert (pb == region.pattern).all()
        assert np.flatnonzero(pa != region.pattern).tolist() == [k]


# --------------------------------------------------------------------------------------------
# The architecture table (Table 3) and the hyperplane count (Appendix E.2)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_table3_cnn_hyperplanes_and_parameters(variant):
    net = build_cnn(variant=variant)
    t = architecture_table(net, (3, 32, 32))
    relu = t[t.layer == "ReLU"]
    sizes = [15 * 15 * 32, 7 * 7 * 64, 3 * 3 * 128, 1024]
    assert relu.hyperplanes.tolist() == sizes == [7200, 3136, 1152, 1024]
    assert relu.rows.tolist() == ["0-7199", "7200-10335", "10336-11487", "11488-12511"]
    assert int(t.hyperplanes.sum()) == 12512 == count_hyperplanes(net, (3, 32, 32))
    assert layer_sizes(net, (3, 32, 32)) == sizes  # an independent path: pre-activations
    conv = t[t.layer == "Conv"]
    assert conv.parameters.tolist() == [
        f"filters=(3, 3)x{c}; strides=(2, 2)" for c in (32, 64, 128)
    ]
    assert conv.output_shape.tolist() == [(32, 15, 15), (64, 7, 7), (128, 3, 3)]
    assert conv.trainable.tolist() == [3 * 9 * 32 + 32, 32 * 9 * 64 + 64, 64 * 9 * 128 + 128]
    dense = t[t.layer == "Dense"]
    assert dense.parameters.tolist() == ["nodes=1024", "nodes=10"]
    assert dense.activation.tolist() == ["ReLU", "Softmax"]
    assert int(t.trainable.sum()) == sum(p.numel() for p in net.parameters())
    assert t.output_shape.iloc[-1] == (10,) and t.parameters.iloc[0] == "input size=(32, 32)x3"
    n_bn, n_drop = (t.layer == "BatchNorm").sum(), (t.layer == "Dropout").sum()
    assert (n_bn, n_drop) == {"vanilla": (0, 0), "bn": (4, 0), "dropout": (0, 4)}[variant]


@pytest.mark.parametrize(
    ("variant", "act"),
    [("vanilla", "ReLU"), ("bn", "BN, ReLU"), ("dropout", "ReLU, Dropout(0.2)")],
)
def test_compact_table_has_table3_layout(variant, act):
    t = architecture_table(build_cnn(variant=variant), (3, 32, 32), compact=True)
    assert t.layer.tolist() == ["Input", "Conv", "Conv", "Conv", "Flatten", "Dense", "Dense"]
    assert t.activation.tolist() == ["-", act, act, act, "-", act, "Softmax"]
    assert t.hyperplanes.tolist() == [0, 7200, 3136, 1152, 0, 1024, 0]
    assert t.output_shape.tolist()[3:6] == [(128, 3, 3), (1152,), (1024,)]
    full = architecture_table(build_cnn(variant=variant), (3, 32, 32))
    assert t.trainable.sum() == full.trainable.sum()


def test_mlp_counts_3072_hyperplanes():
    mlp = build_mlp(784, [1024, 1024, 1024], 10)
    assert count_hyperplanes(mlp, (784,)) == 3072
    image_mlp = ModelSpec("mlp", (1024, 1024, 1024), "bn").build((1, 28, 28), 10)
    t = architecture_table(image_mlp, (1, 28, 28))
    assert t[t.layer == "ReLU"].hyperplanes.tolist() == [1024] * 3
    assert t.layer.tolist()[:2] == ["Input", "Flatten"] and t.output_shape.iloc[1] == (784,)


def test_count_equals_region_rows_on_small_cnns(small_cnn, rng):
    for net, shape in ((small_cnn, (1, 9, 9)), (_small_cnn("bn"), SHAPE)):
        region = linear_region(net, rng.uniform(-1, 1, shape))
        assert count_hyperplanes(net, shape) == region.polytope.A.shape[0]
        t = architecture_table(net, shape)
        assert t[t.layer == "ReLU"].hyperplanes.tolist() == np.bincount(region.layer).tolist()


@pytest.mark.parametrize(
    ("model", "shape", "error", "match"),
    [
        (build_cnn(), (3, 32), ValueError, "to fit the model"),
        (build_cnn(), (0, 32, 32), ValueError, "positive ints"),
        (build_cnn(), "3x32x32", ValueError, "positive ints"),
        (build_cnn(), None, TypeError, "tuple of ints"),
        (nn.Linear(4, 2), (4,), TypeError, "nn.Sequential"),
        (nn.Sequential(nn.Linear(4, 2), nn.Tanh()), (4,), TypeError, "Tanh"),
    ],
)
def test_bad_inputs_are_explained(model, shape, error, match):
    with pytest.raises(error, match=match):
        architecture_table(model, shape)
