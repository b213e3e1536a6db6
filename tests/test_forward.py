"""The one layer rule (lrtools._forward): rejection of what cannot be represented exactly, the
input contract of every public function, and agreement of regions, walks and slices, which all
use the one frozen-mask push kernel."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from lrtools._forward import ReLUNetwork, input_spec, layer_infos, leaf_layers
from lrtools.analyses.architecture import architecture_table, count_hyperplanes
from lrtools.attacks import pgd
from lrtools.exceptions import InputShapeError, LRToolsError, UnsupportedModelError
from lrtools.models import build_cnn, build_mlp
from lrtools.plane import Plane
from lrtools.regions import (
    activation_patterns,
    layer_sizes,
    linear_region,
    logit_jacobian,
    preactivations,
    predict,
)
from lrtools.slices import partition_plane
from lrtools.training import accuracy
from lrtools.walks import first_class_change, first_class_changes, walk
from tests.conftest import warm_bn, with_biases

# --------------------------------------------------------------------------------------------
# Models that cannot be represented exactly are rejected when the network is built
# --------------------------------------------------------------------------------------------


class Residual(nn.Sequential):
    """x + f(x): a Sequential subclass whose forward is not the chain of its layers."""

    def forward(self, x):
        return x + super().forward(x)


class Chain(nn.Sequential):
    """A Sequential subclass that keeps Sequential's forward: a plain chain."""


class ScaledLinear(nn.Linear):
    def forward(self, x):
        return 2 * super().forward(x)


def _residual_net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(4, 6), nn.ReLU(), Residual(nn.Linear(6, 6), nn.ReLU()), nn.Linear(6, 2)
    ).eval()


def _no_running_stats(dim: int) -> nn.Sequential:
    torch.manual_seed(0)
    if dim == 1:
        return nn.Sequential(
            nn.Linear(4, 6), nn.BatchNorm1d(6, track_running_stats=False), nn.ReLU(),
            nn.Linear(6, 2),
        ).eval()  # fmt: skip
    return nn.Sequential(
        nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2, track_running_stats=False), nn.ReLU(),
        nn.Flatten(), nn.Linear(2 * 3 * 3, 2),
    ).eval()  # fmt: skip


def _hooked() -> nn.Sequential:
    net = build_mlp(4, [6], 2, seed=0)
    net[0].register_forward_hook(lambda m, i, o: 2 * o)
    return net


@pytest.mark.parametrize(
    "make, shape, match",
    [
        (_residual_net, (4,), r"layer '2' \(Residual\) is an nn.Sequential subclass"),
        (lambda: Residual(nn.Linear(4, 2), nn.ReLU()), (4,), "Residual, an nn.Sequential sub"),
        (lambda: _no_running_stats(1), (4,), r"layer '1' \(BatchNorm1d\) has no running stat"),
        (lambda: _no_running_stats(2), (1, 5, 5), r"'1' \(BatchNorm2d\) has no running stat"),
        (lambda: nn.Sequential(ScaledLinear(4, 3), nn.ReLU()), (4,), "overrides forward"),
        (_hooked, (4,), "forward hooks"),
        (lambda: nn.Sequential(nn.Flatten(0), nn.Linear(4, 2), nn.ReLU()), (4,), "Flatten"),
        (lambda: nn.Sequential(nn.Linear(4, 3), nn.Tanh()), (4,), "Tanh is not supported"),
        (lambda: nn.Linear(4, 2), (4,), "must be a torch.nn.Sequential"),
    ],
)
def test_unrepresentable_models_are_rejected_when_the_network_is_built(make, shape, match):
    model, x = make(), np.zeros(shape)
    calls = [
        lambda: linear_region(model, x),
        lambda: predict(model, x[None]),
        lambda: walk(model, x, np.ones((1, x.size)), 0.1),
        lambda: logit_jacobian(model, x),
        lambda: architecture_table(model, shape),
    ]
    for call in calls:
        with pytest.raises(UnsupportedModelError, match=match) as info:
            call()
        assert isinstance(info.value, TypeError) and isinstance(info.value, LRToolsError)


def test_the_residual_block_is_not_silently_flattened():
    """What the flattened chain would compute differs from the model: it must not be used."""
    net = _residual_net()
    x = torch.rand(1, 4, dtype=torch.float32)
    chain = nn.Sequential(*leaf_layers(nn.Sequential(*[net[0], net[1], *net[2], net[3]])))
    assert not torch.allclose(net(x), chain(x))  # a real difference, so rejection matters
    with pytest.raises(UnsupportedModelError):
        ReLUNetwork(net)


def test_plain_sequential_subclasses_and_nesting_are_accepted(rng):
    torch.manual_seed(1)
    net = Chain(nn.Linear(3, 5), nn.ReLU(), nn.Sequential(nn.Linear(5, 4), nn.ReLU()),
                nn.Linear(4, 2)).eval()  # fmt: skip
    x = rng.uniform(-1, 1, 3)
    region = linear_region(net, x)
    assert region.polytope.n_rows == 9
    with torch.no_grad():
        z = net(torch.tensor(x[None], dtype=torch.float32)).double().numpy()
    np.testing.assert_allclose(region.logits(x[None]), z, atol=1e-5)


# --------------------------------------------------------------------------------------------
# The input contract
# --------------------------------------------------------------------------------------------


def test_input_spec_is_read_from_the_first_layers():
    assert input_spec(build_mlp(7, [3], 2)).describe() == "(7,)"
    assert input_spec(build_cnn(3, 9, channels=(2,), dense=4)).describe() == "(3, H, W)"
    flat = nn.Sequential(nn.Flatten(), nn.Linear(12, 3), nn.ReLU(), nn.Linear(3, 2))
    spec = input_spec(flat)
    assert spec.kind == "any" and spec.size == 12
    assert spec.point(np.zeros((1, 3, 4))).shape == (1, 3, 4)  # any shape of 12 values
    assert spec.batch(np.zeros((5, 3, 4))).shape == (5, 3, 4)


MLP = with_biases(build_mlp(6, [5, 4], 3, variant="bn", seed=0), 0)
CNN = with_biases(build_cnn(1, 7, channels=(2,), dense=4, n_classes=3, seed=0), 0)


@pytest.mark.parametrize(
    "model, point, bad_points, bad_batches",
    [
        (MLP, np.zeros(6), [np.zeros((2, 6)), np.zeros(5), np.zeros((2, 3)), np.zeros(())],
         [np.zeros(6), np.zeros((2, 5)), np.zeros((2, 6, 1))]),
        (CNN, np.zeros((1, 7, 7)), [np.zeros((2, 1, 7, 7)), np.zeros((7, 7)), np.zeros((2, 7, 7))],
         [np.zeros((1, 7, 7)), np.zeros((3, 2, 7, 7)), np.zeros((3, 49))]),
    ],
)  # fmt: skip
def test_no_public_function_accepts_a_wrongly_shaped_input(model, point, bad_points, bad_batches):
    batch = point[None].repeat(2, axis=0)
    good_point = [
        lambda x: linear_region(model, x),
        lambda x: logit_jacobian(model, x),
        lambda x: walk(model, x, np.ones((1, x.size)), 0.1),
        lambda x: first_class_change(model, x, x + 0.5),
    ]
    good_batch = [
        lambda X: predict(model, X),
        lambda X: preactivations(model, X),
        lambda X: activation_patterns(model, X),
        lambda X: first_class_changes(model, X, X + 0.5),
        lambda X: pgd(model, X, np.zeros(len(X), dtype=int), steps=1),
        lambda X: accuracy(model, X, np.zeros(len(X), dtype=int)),
    ]
    for call in good_point:
        call(point)
        call(point[None])  # (1, *input_shape) is one input too
        for bad in bad_points:
            with pytest.raises(ValueError, match="to fit the model") as info:
                call(bad)
            assert isinstance(info.value, InputShapeError)
            assert str(bad.shape).replace(",)", ")") in str(info.value).replace(",)", ")")
    for call in good_batch:
        call(batch)
        for bad in bad_batches:
            with pytest.raises(ValueError, match="to fit the model"):
                call(bad)


def test_the_two_silent_answers_of_the_review_now_raise():
    mlp = build_mlp(784, [16, 16], 10, seed=0)
    with pytest.raises(ValueError, match=r"It is a batch of 2 inputs: pass one of them"):
        linear_region(mlp, np.zeros((2, 784)))  # was a 1,568-dimensional region
    with pytest.raises(ValueError, match=r"single input: use X\[None\]"):
        predict(mlp, np.zeros(784))  # was logits of shape (10, 1)
    assert predict(mlp, np.zeros((1, 784))).shape == (1, 10)


def test_shapes_of_one_input_and_of_a_plane_are_checked():
    cnn = build_cnn(3, 9, channels=(2,), dense=4)
    assert layer_sizes(cnn, (3, 9, 9)) == [2 * 4 * 4, 4]
    with pytest.raises(ValueError, match="input_shape must be the shape of one input"):
        layer_sizes(cnn, (9, 9))
    with pytest.raises(ValueError, match=r"\(3, 8, 8\) do not fit the model.*mat1 and mat2"):
        count_hyperplanes(cnn, (3, 8, 8))  # H, W too small for the dense layer
    with pytest.raises(ValueError, match="plane.input_shape must be the shape of one input"):
        partition_plane(build_mlp(3, [4], 2), Plane.identity2d())


# --------------------------------------------------------------------------------------------
# One push kernel: regions' rows, walks' slopes and slices' maps agree
# --------------------------------------------------------------------------------------------


def _random_net(kind: str, variant: str, seed: int) -> tuple[nn.Sequential, tuple[int, ...]]:
    if kind == "mlp":
        net, shape = build_mlp(5, [9, 7, 6], 4, variant=variant, seed=seed), (5,)
    else:
        net = build_cnn(2, 7, channels=(3, 4), dense=5, n_classes=4, variant=variant, seed=seed)
        shape = (2, 7, 7)
    g = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():  # random BN affine parameters, so folding errors would show
        for info, m in zip(layer_infos(net, shape), leaf_layers(net), strict=True):
            if info.kind == "batchnorm":
                m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=g))
                m.bias.copy_(0.3 * torch.randn(m.bias.shape, generator=g))
    return warm_bn(with_biases(net, seed), shape, seed=seed), shape


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
@pytest.mark.parametrize("variant", ["vanilla", "bn", "dropout"])
@pytest.mark.parametrize("seed", [0, 1])
def test_regions_walks_and_slices_agree(kind, variant, seed):
    net, shape = _random_net(kind, variant, seed)
    rng = np.random.default_rng(seed)
    x0 = rng.uniform(-0.8, 0.8, shape)
    region = linear_region(net, x0)
    A, b, J, c = region.polytope.A, region.polytope.b, region.logit_W, region.logit_b
    d = x0.size
    # the region against the model's own forward pass: values, pattern and logits at x0
    np.testing.assert_array_equal(activation_patterns(net, x0[None])[0], region.pattern)
    np.testing.assert_allclose(predict(net, x0[None])[0], J @ x0.ravel() + c, atol=1e-10)
    np.testing.assert_allclose(A @ x0.ravel() + b, np.abs(region.preact), atol=1e-10)
    np.testing.assert_allclose(logit_jacobian(net, x0), J, atol=1e-12)

    # walks: the first piece from x0 is x0's region, its logit slope is J e, and it ends where
    # the first row of the region reaches zero
    E = rng.standard_normal((4, d))
    E /= np.linalg.norm(E, axis=1, keepdims=True)
    for w, e in zip(walk(net, x0, E, 5.0), E, strict=True):
        np.testing.assert_array_equal(w.patterns()[0], region.pattern)
        np.testing.assert_allclose(w.logits_start[0], J @ x0.ravel() + c, atol=1e-10)
        np.testing.assert_allclose(w.logits_slope[0], J @ e, atol=1e-10)
        Ae = A @ e
        with np.errstate(divide="ignore"):
            t = np.where(Ae < 0, (A @ x0.ravel() + b) / -Ae, np.inf)
        np.testing.assert_allclose(w.breakpoints[1], min(t.min(), 5.0), rtol=1e-9)

    # slices: on the plane x0 + s u + t v the cell of (0, 0) carries the logit map
    # [z(x0), J u, J v] and lies inside the region
    u, v = E[0], E[1]
    plane = Plane.from_directions(x0, u.reshape(shape), v.reshape(shape), box=None,
                                  window=(-0.05, 0.05, -0.05, 0.05))  # fmt: skip
    part = partition_plane(net, plane)
    cell = part.cells[part.locate(np.zeros((1, 2)))[0]]
    np.testing.assert_array_equal(cell.pattern, region.pattern)
    Q = np.column_stack([plane.u, plane.v])  # orthonormalised (u, v)
    np.testing.assert_allclose(cell.logit_map[0], J @ plane.origin + c, atol=1e-10)
    np.testing.assert_allclose(cell.logit_map[1:], (J @ Q).T, atol=1e-10)
    verts = plane.to_input(cell.vertices, flat=True)
    assert (verts @ A.T + b).min() >= -1e-9 * (1 + np.abs(b).max())
