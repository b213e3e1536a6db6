"""Architecture specs and weights of "Your network" (lrtools.netspec)."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from lrtools._forward import SUPPORTED_LAYERS, ReLUNetwork, layer_infos
from lrtools.datasets import make_spirals
from lrtools.exceptions import LRToolsError
from lrtools.netspec import (
    LAYER_NAMES,
    SpecError,
    check_fits,
    load_spec,
    load_weights,
    parse_spec,
    run_key,
    train_spec,
    user_model,
    weights_digest,
)
from lrtools.training import TrainConfig

from .conftest import warm_bn

ROOT = Path(__file__).resolve().parents[1]

MLP = {
    "name": "tiny MLP",
    "input_shape": [1, 6, 6],
    "layers": ["flatten", {"linear": 12}, "relu", {"dropout": 0.1}, {"linear": 8}, "batchnorm",
               "relu", {"linear": 3}],
}  # fmt: skip
CNN = {
    "input_shape": [2, 11, 11],
    "layers": [
        {"conv2d": {"out_channels": 4, "kernel_size": 3, "stride": 2}},
        "batchnorm",
        "relu",
        {"Conv2d": {"out_channels": 5, "kernel_size": [2, 3], "padding": 1}},
        "ReLU",
        "flatten",
        {"linear": 4},
    ],
}


def _random_weights(model: nn.Module, input_shape, seed: int) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return warm_bn(model, input_shape, seed)


# -- parsing ---------------------------------------------------------------------------------


def test_layer_names_are_exactly_the_layer_rule():
    """The spec's names map onto SUPPORTED_LAYERS, no more, no fewer (one place decides)."""
    spec = parse_spec({"input_shape": [4], "layers": [
        {"linear": 6}, "batchnorm", "relu", "dropout", "identity", {"linear": 5}, "relu",
        {"linear": 2}]})  # fmt: skip
    img = parse_spec(CNN)
    built = {type(m) for s in (spec, img) for m in s.build()} | {nn.Flatten}
    assert set(LAYER_NAMES) == {"linear", "conv2d", "batchnorm", "dropout", "flatten",
                                "identity", "relu"}  # fmt: skip
    assert built == set(SUPPORTED_LAYERS)


def test_good_specs_build_the_described_network():
    spec = parse_spec(MLP)
    model = spec.build()
    assert isinstance(model, nn.Sequential) and spec.n_classes == 3 and spec.n_hidden_layers == 2
    assert [type(m) for m in model] == [nn.Flatten, nn.Linear, nn.ReLU, nn.Dropout, nn.Linear,
                                        nn.BatchNorm1d, nn.ReLU, nn.Linear]  # fmt: skip
    assert model[1].in_features == 36 and model[4].in_features == 12
    assert model[3].p == pytest.approx(0.1)
    cnn = parse_spec(CNN)
    m = cnn.build()
    assert isinstance(m[1], nn.BatchNorm2d) and m[3].kernel_size == (2, 3)
    # the shapes the spec inferred are those of torch's own forward pass
    assert [i.output_shape for i in layer_infos(m, cnn.input_shape)] == list(cnn.output_shapes)
    out = m(torch.zeros(2, *cnn.input_shape))
    assert out.shape == (2, 4)
    assert ReLUNetwork(m).n_hidden_layers == 2
    assert run_key(spec) == ("bn", 0.0, 0) and run_key(cnn, 1e-3, 2) == ("bn", 1e-3, 2)


def test_shipped_example_specs_parse():
    for name in ("example_mlp", "example_cnn"):
        spec = load_spec(ROOT / "params" / "specs" / f"{name}.yaml")
        assert spec.n_classes == 10
        assert len(spec.layer_table()) == len(spec.layers)


def test_spec_from_yaml_text_and_the_round_trip_of_to_dict():
    text = "input_shape: [2]\nlayers: [{linear: 5}, relu, {linear: 2}]\n"
    spec = load_spec(text)
    assert spec.output_shapes == ((5,), (5,), (2,))
    assert parse_spec(spec.to_dict()) == spec


@pytest.mark.parametrize(
    "layers, words",
    [
        (
            ["flatten", {"maxpool2d": 2}, {"linear": 3}],
            ["'maxpool2d' is not a layer", "linear", "conv2d", "ReLU"],
        ),
        (["flatten", {"linear": 8}, "tanh", {"linear": 3}], ["'tanh' is not a layer"]),
        (
            ["flatten", {"linear": {"in_features": 30, "out_features": 8}}, "relu", {"linear": 3}],
            ["in_features=30", "gives 36"],
        ),
        ([{"linear": 8}, "relu", {"linear": 3}], ["needs a vector input", "(1, 6, 6)", "flatten"]),
        (
            ["flatten", {"conv2d": {"out_channels": 2, "kernel_size": 3}}, "relu", {"linear": 3}],
            ["needs an image input", "(36,)"],
        ),
        (
            [{"conv2d": {"out_channels": 2, "kernel_size": 7}}, "relu", "flatten", {"linear": 3}],
            ["7x7 kernel", "6x6 image"],
        ),
        ([{"conv2d": {"out_channels": 2}}, "relu"], ["needs ['kernel_size']"]),
        (
            ["flatten", {"linear": {"out": 8}}, "relu", {"linear": 3}],
            ["unknown argument", "out_features"],
        ),
        (["flatten", {"linear": 0}, "relu", {"linear": 3}], ["positive integer"]),
        (["flatten", {"linear": 8}, {"relu": 3}, {"linear": 3}], ["takes no size"]),
        (["flatten", {"linear": 8}, {"dropout": 1.5}, "relu", {"linear": 3}], ["[0, 1)"]),
        (["flatten", {"linear": 8}, {"linear": 3}], ["no relu layer"]),
        (
            [{"conv2d": {"out_channels": 2, "kernel_size": 3}}, "relu"],
            ["output has shape", "(2, 4, 4)"],
        ),
        (["flatten", {"linear": 8}, "relu", {"linear": 1}], ["at least 2 logits"]),
    ],
)
def test_bad_specs_say_what_is_wrong(layers, words):
    with pytest.raises(SpecError) as info:
        parse_spec({"input_shape": [1, 6, 6], "layers": layers})
    assert isinstance(info.value, LRToolsError) and isinstance(info.value, ValueError)
    for w in words:
        assert w in str(info.value)


@pytest.mark.parametrize(
    "spec, words",
    [
        ([1, 2], ["must be a mapping"]),
        ({"layers": ["relu"]}, ["no 'input_shape'"]),
        ({"input_shape": [1, 6, 6]}, ["no 'layers'"]),
        ({"input_shape": [6, 6], "layers": ["relu"]}, ["[channels, height, width]"]),
        ({"input_shape": [2], "layers": []}, ["non-empty list"]),
        (
            {"input_shape": [2], "layers": [{"linear": 3}, "relu", {"linear": 2}], "widths": 3},
            ["unknown key(s) ['widths']"],
        ),
        (
            {"input_shape": [2], "n_classes": 3, "layers": [{"linear": 3}, "relu", {"linear": 2}]},
            ["n_classes: 3", "2 outputs"],
        ),
        ({"input_shape": [2], "layers": [{"linear": 3, "relu": None}]}, ["one-key mapping"]),
    ],
)
def test_malformed_specs(spec, words):
    with pytest.raises(SpecError) as info:
        parse_spec(spec)
    for w in words:
        assert w in str(info.value)


def test_missing_spec_file_and_bad_yaml(tmp_path):
    with pytest.raises(SpecError, match="does not exist"):
        load_spec(tmp_path / "nope.yaml")
    with pytest.raises(SpecError, match="does not exist"):
        load_spec("nope.yml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("input_shape: [2\nlayers: [relu]\n")
    with pytest.raises(SpecError, match=r"not valid YAML.*line"):
        load_spec(bad)


# -- weights ---------------------------------------------------------------------------------


@pytest.mark.parametrize("desc", [MLP, CNN])
def test_saved_state_dict_round_trip_gives_identical_predictions(desc, tmp_path):
    spec = parse_spec(desc)
    trained = _random_weights(spec.build(seed=1), spec.input_shape, seed=3)
    path = tmp_path / "w.pt"
    torch.save(trained.state_dict(), path)
    fresh = spec.build(seed=2)
    X = torch.rand((16, *spec.input_shape)) * 2 - 1
    with torch.no_grad():
        assert not torch.equal(fresh(X), trained(X))  # different weights before loading
        loaded = load_weights(fresh, path)
        assert loaded is fresh and not loaded.training
        assert torch.equal(loaded(X), trained(X))
    assert weights_digest(loaded) == weights_digest(trained)
    assert weights_digest(loaded) != weights_digest(spec.build(seed=2))


def test_missing_batchnorm_counter_is_accepted(tmp_path):
    spec = parse_spec(MLP)
    sd = _random_weights(spec.build(), spec.input_shape, 0).state_dict()
    sd = {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    torch.save(sd, tmp_path / "w.pt")
    load_weights(spec.build(), tmp_path / "w.pt")


class _Payload:
    """An object whose unpickling would create a file: the proof of arbitrary code."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_a_pickled_object_is_refused_and_never_executed(tmp_path):
    spec = parse_spec(MLP)
    marker = tmp_path / "was-unpickled"
    sd = dict(spec.build().state_dict())
    sd["extra"] = _Payload(str(marker))
    path = tmp_path / "evil.pt"
    torch.save(sd, path)
    with pytest.raises(SpecError) as info:
        load_weights(spec.build(), path)
    assert "weights_only=True" in str(info.value) and "never unpickles" in str(info.value)
    assert "torch.save(model.state_dict(), path)" in str(info.value)
    assert not marker.exists()


def test_a_whole_saved_model_is_refused(tmp_path):
    spec = parse_spec(MLP)
    torch.save(spec.build(), tmp_path / "model.pt")
    with pytest.raises(SpecError, match="not a plain state_dict"):
        load_weights(spec.build(), tmp_path / "model.pt")


@pytest.mark.parametrize(
    "content, words",
    [
        (b"not a torch file at all", ["cannot be read by torch.load"]),
        (None, ["does not exist"]),
    ],
)
def test_unreadable_weights_files(tmp_path, content, words):
    path = tmp_path / "w.pt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(SpecError) as info:
        load_weights(parse_spec(MLP).build(), path)
    for w in words:
        assert w in str(info.value)


def test_non_mappings_and_checkpoints_are_not_state_dicts(tmp_path):
    spec = parse_spec(MLP)
    torch.save([torch.zeros(2)], tmp_path / "list.pt")
    with pytest.raises(SpecError, match="holds a list, not a state_dict"):
        load_weights(spec.build(), tmp_path / "list.pt")
    torch.save({"state_dict": spec.build().state_dict(), "epoch": 3}, tmp_path / "ckpt.pt")
    with pytest.raises(SpecError, match="save its 'state_dict' entry alone"):
        load_weights(spec.build(), tmp_path / "ckpt.pt")
    assert zipfile.is_zipfile(tmp_path / "ckpt.pt")  # a real torch file, refused for its content


def test_wrong_keys_list_missing_and_unexpected(tmp_path):
    spec = parse_spec(MLP)
    other = parse_spec({**MLP, "layers": ["flatten", {"linear": 12}, "relu", {"linear": 3}]})
    torch.save(other.build().state_dict(), tmp_path / "w.pt")
    with pytest.raises(SpecError) as info:
        load_weights(spec.build(), tmp_path / "w.pt")
    msg = str(info.value)
    assert "Missing (expected by the spec)" in msg and "'4.weight'" in msg
    assert "Unexpected (in the file, not in the spec): ['3.bias', '3.weight']" in msg
    assert "one index per spec layer" in msg


def test_prefixed_keys_get_the_strip_hint(tmp_path):
    spec = parse_spec(MLP)
    sd = {f"module.{k}": v for k, v in spec.build().state_dict().items()}
    torch.save(sd, tmp_path / "w.pt")
    with pytest.raises(SpecError, match=r"starts with 'module\.'.*removeprefix"):
        load_weights(spec.build(), tmp_path / "w.pt")


def test_wrong_shapes_name_expected_and_got(tmp_path):
    spec = parse_spec(MLP)
    wider = parse_spec(
        {
            **MLP,
            "layers": [
                "flatten",
                {"linear": 13},
                "relu",
                {"dropout": 0.1},
                {"linear": 8},
                "batchnorm",
                "relu",
                {"linear": 3},
            ],
        }
    )
    torch.save(wider.build().state_dict(), tmp_path / "w.pt")  # fmt: skip
    with pytest.raises(SpecError) as info:
        load_weights(spec.build(), tmp_path / "w.pt")
    msg = str(info.value)
    assert "'1.weight': expected (12, 36), got (13, 36)" in msg
    assert "'4.weight': expected (8, 12), got (8, 13)" in msg


def test_non_finite_weights_are_refused(tmp_path):
    spec = parse_spec(MLP)
    sd = spec.build().state_dict()
    sd["1.weight"][0, 0] = float("nan")
    torch.save(sd, tmp_path / "w.pt")
    with pytest.raises(SpecError, match="finite"):
        load_weights(spec.build(), tmp_path / "w.pt")


# -- the network on a data set -------------------------------------------------------------


SPIRAL = {"input_shape": [2], "layers": [{"linear": 8}, "relu", {"linear": 8}, "relu",
                                         {"linear": 2}]}  # fmt: skip


def test_spec_must_fit_the_data():
    data = make_spirals(200)
    check_fits(parse_spec(SPIRAL), data)
    with pytest.raises(SpecError, match=r"input_shape \(1, 6, 6\).*\(2,\)"):
        check_fits(parse_spec(MLP), data)
    five = parse_spec({**SPIRAL, "layers": [{"linear": 8}, "relu", {"linear": 5}]})
    with pytest.raises(SpecError, match="5 logits.*2 classes"):
        check_fits(five, data)


def test_user_model_and_train_spec(tmp_path):
    data = make_spirals(300)
    spec = parse_spec(SPIRAL)
    cfg = TrainConfig(lr=1e-2, max_epochs=3, patience=2, batch_size=64)
    tm = train_spec(spec, data, cfg, progress=False)
    assert not tm.from_cache and len(tm.history) >= 1
    X = data.X_test.astype(np.float32)
    expected = (tm.model(torch.as_tensor(X)).argmax(1).numpy() == data.y_test).mean()
    assert tm.test_accuracy == pytest.approx(expected)
    again = train_spec(spec, data, cfg, progress=False)
    assert again.from_cache and again.cache_id == tm.cache_id
    with torch.no_grad():
        assert torch.equal(again.model(torch.as_tensor(X)), tm.model(torch.as_tensor(X)))
    path = tmp_path / "w.pt"
    torch.save(tm.model.state_dict(), path)
    user = user_model(spec, path, data)
    assert user.test_accuracy == pytest.approx(tm.test_accuracy)
    # the identity follows the weights' values, not the file name
    torch.save(spec.build(seed=5).state_dict(), tmp_path / "w2.pt")
    assert user_model(spec, tmp_path / "w2.pt", data).cache_id != user.cache_id
    assert user_model(spec, path, data).cache_id == user.cache_id
