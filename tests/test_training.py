"""Training: seeded, early-stopped, cached by parameters; corrupted caches are explained."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lrtools.cache import cached_pickle, param_key
from lrtools.datasets import make_spirals
from lrtools.exceptions import CacheError
from lrtools.training import ModelSpec, TrainConfig, fit

DATA = make_spirals(300, noise=0.02, turns=0.75, seed=0)
CFG = TrainConfig(lr=1e-2, batch_size=32, max_epochs=15, patience=5, seed=0)


def _weights(model):
    return torch.cat([p.detach().flatten() for p in model.state_dict().values()]).numpy()


def test_rerun_with_same_parameters_reuses_cache():
    spec = ModelSpec("mlp", (8, 8), "bn")
    first = fit(spec, DATA, CFG, progress=False)
    second = fit(spec, DATA, CFG, progress=False)
    assert not first.from_cache and second.from_cache
    np.testing.assert_array_equal(_weights(first.model), _weights(second.model))
    assert first.test_accuracy == second.test_accuracy
    assert first.history.equals(second.history)


def test_training_is_deterministic_without_cache():
    spec = ModelSpec("mlp", (8, 8), "dropout")
    a = fit(spec, DATA, CFG, use_cache=False, progress=False)
    b = fit(spec, DATA, CFG, use_cache=False, progress=False)
    np.testing.assert_array_equal(_weights(a.model), _weights(b.model))


def test_changing_any_parameter_retrains():
    spec = ModelSpec("mlp", (8, 8), "vanilla")
    a = fit(spec, DATA, CFG, progress=False)
    b = fit(spec, DATA, TrainConfig(**{**CFG.__dict__, "lr": 5e-3}), progress=False)
    c = fit(ModelSpec("mlp", (8, 8), "vanilla", init_seed=1), DATA, CFG, progress=False)
    assert not b.from_cache and not c.from_cache
    assert len({a.key_path, b.key_path, c.key_path}) == 3


def test_training_learns_the_spirals():
    easy = make_spirals(400, noise=0.0, turns=0.5, seed=1)
    res = fit(
        ModelSpec("mlp", (16, 16), "vanilla"),
        easy,
        TrainConfig(lr=1e-2, batch_size=32, max_epochs=60, patience=20),
        progress=False,
    )
    assert res.test_accuracy > 0.9
    assert res.model.training is False


def test_corrupted_model_cache_names_the_file():
    spec = ModelSpec("mlp", (4,), "vanilla")
    path = Path(fit(spec, DATA, CFG, progress=False).key_path)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CacheError, match="Delete that file"):
        fit(spec, DATA, CFG, progress=False)


def test_cached_pickle_roundtrip_and_corruption(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return {"x": np.arange(3)}

    params = {"a": 1, "b": [1, 2], "arr": np.ones(2)}
    r1 = cached_pickle("unit", params, compute)
    r2 = cached_pickle("unit", dict(reversed(list(params.items()))), compute)
    assert len(calls) == 1 and (r1["x"] == r2["x"]).all()
    assert param_key(params) != param_key({**params, "a": 2})
    from lrtools.cache import cache_path

    cache_path("unit", params, "pkl").write_bytes(b"\x80garbage")
    with pytest.raises(CacheError, match="Delete that file"):
        cached_pickle("unit", params, compute)


def test_no_temporary_files_left_after_failure():
    from lrtools.cache import cache_root

    def boom():
        raise RuntimeError("compute failed")

    with pytest.raises(RuntimeError):
        cached_pickle("unit-fail", {"k": 1}, boom)
    folder = cache_root() / "unit-fail"
    assert not any(folder.glob("*")) if folder.exists() else True


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"variant": "batchnorm"}, "variant == 'batchnorm' is not supported"),
        ({"arch": "rnn"}, "arch == 'rnn' is not supported"),
    ],
)
def test_bad_model_spec(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ModelSpec(**{"arch": "mlp", "widths": (4,), **kwargs})


def test_bad_train_config():
    with pytest.raises(ValueError, match="optimizer == 'adagrad'"):
        TrainConfig(optimizer="adagrad")
    with pytest.raises(ValueError, match="lr == 0.0, must be > 0.0"):
        TrainConfig(lr=0.0)
