"""Training seeds in the study layer (issue 13, item 1): runs are (variant, lr, seed), every
variant is trained once per seed, every per-point table carries ``seed``, labels stay the
paper's names, accuracies average over seeds; and the Fig. 5 / Fig. 11 point is the first one
the models *classify* as the class (item 5)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from lrtools.analyses import boundary, study
from lrtools.datasets.base import Dataset
from lrtools.models import build_mlp
from lrtools.training import TrainedModel
from tests.conftest import with_biases

N_CLASSES = 3


def _data(n: int = 60) -> Dataset:
    rng = np.random.default_rng(0)
    y = np.arange(n) % N_CLASSES
    X = (rng.uniform(-0.5, 0.5, (n, 4))).astype(np.float32)
    return Dataset("toy", X, y, X, y, ("a", "b", "c"))


def _fake(model=None, acc: float = 0.5, key: str = "k") -> TrainedModel:
    return TrainedModel(model, pd.DataFrame(), acc, False, f"/nowhere/models/{key}.pt")


def test_seeds_default_to_the_seed_and_runs_carry_them():
    one = study.StudyConfig(data="spirals", widths=(4,), variants=("vanilla", "bn"),
                            lrs=(1e-3,), seed=7)  # fmt: skip
    assert one.seeds == (7,) and one.first_seed == 7
    assert one.runs == [("vanilla", 1e-3, 7), ("bn", 1e-3, 7)]
    two = study.StudyConfig(data="spirals", widths=(4,), variants=("vanilla", "bn"),
                            lrs=(1e-3, 1e-4), seeds=[3, 1])  # fmt: skip
    assert two.seeds == (3, 1) and two.first_seed == 3 and len(two.runs) == 2 * 2 * 2
    assert two.runs[:2] == [("vanilla", 1e-3, 3), ("vanilla", 1e-3, 1)]  # lr, variant, seed
    assert two.runs_of() == [r for r in two.runs if r[2] == 3] and len(two.runs_of(1)) == 4
    assert one.name(("bn", 1e-3, 7)) == "BN"  # one seed: the paper's name alone
    assert two.name(("bn", 1e-4, 1)) == "BN-S seed 1"
    with pytest.raises(ValueError, match="not among the training seeds"):
        two.runs_of(5)
    with pytest.raises(ValueError, match=r"\(variant, learning rate, seed\)"):
        two.name(("bn", 1e-4))


@pytest.mark.parametrize(
    "seeds, error, match",
    [([], ValueError, "seeds is empty"),
     ([0, 0], ValueError, "repeat a seed"),
     ([0, -1], TypeError, "non-negative ints"),
     ([0, 1.0], TypeError, "non-negative ints"),
     ([True], TypeError, "non-negative ints"),
     ("01", TypeError, "list of ints")],
)  # fmt: skip
def test_bad_seeds_are_explained(seeds, error, match):
    with pytest.raises(error, match=match):
        study.StudyConfig(data="spirals", seeds=seeds)


def test_every_variant_is_trained_once_per_seed_with_that_seed(monkeypatch):
    calls = []

    def fake_fit(spec, data, train, progress=True):
        calls.append((spec.variant, train.lr, spec.init_seed, train.seed))
        return _fake(key=f"{spec.variant}{train.lr}{train.seed}")

    monkeypatch.setattr(study, "fit", fake_fit)
    cfg = study.StudyConfig(data="spirals", widths=(4,), variants=("vanilla", "dropout"),
                            lrs=(1e-3,), seeds=(0, 5))  # fmt: skip
    models = study.train_models(cfg, _data())
    assert list(models) == cfg.runs
    assert sorted(calls) == sorted([(v, 1e-3, s, s) for v in ("vanilla", "dropout")
                                    for s in (0, 5)])  # fmt: skip


def test_per_point_tables_carry_the_seed(monkeypatch):
    data = _data()
    cfg = study.StudyConfig(data="spirals", widths=(8,), variants=("vanilla", "bn"), lrs=(1e-3,),
                            seeds=(0, 1))  # fmt: skip
    models = {run: _fake(with_biases(build_mlp(4, [8], N_CLASSES, seed=k), k, scale=1.0),
                         key=f"m{k}") for k, run in enumerate(cfg.runs)}  # fmt: skip
    measured = []

    def fake_inradii_point(model, task, **kwargs):  # one stored task per (model, point)
        measured.append(model)
        rank = [id(tm.model) for tm in models.values()].index(id(model))
        return pd.DataFrame({"kind": ["manifold"], "point": [0], "radius": [float(1 + rank)]})

    monkeypatch.setattr(boundary, "inradii_point", fake_inradii_point)
    idx = np.array([2, 9, 30])
    table = study.inradius_tables(cfg, models, data, idx, n_jobs=1)  # in this process
    assert len(measured) == 4 * 3 and len({id(m) for m in measured}) == 4
    assert len(table) == 4 * 3
    assert set(zip(table["variant"], table["seed"], strict=True)) == {
        ("vanilla", 0), ("vanilla", 1), ("bn", 0), ("bn", 1)}  # fmt: skip
    assert table["seed"].dtype.kind == "i"
    # one label per trained network; the paper's name alone with one seed
    assert set(table["model"]) == {"Vanilla seed 0", "Vanilla seed 1", "BN seed 0", "BN seed 1"}
    assert (table.groupby("model").size() == len(idx)).all()
    # each (variant, seed) has its own model's values
    per_run = table.groupby(["variant", "seed"])["radius"].nunique()
    assert (per_run == 1).all()
    assert table.groupby(["variant", "seed"])["radius"].first().nunique() == 4


def test_accuracy_table_averages_over_seeds():
    cfg = study.StudyConfig(data="spirals", widths=(4,), variants=("vanilla", "bn"),
                            lrs=(1e-3, 1e-4), seeds=(0, 1))  # fmt: skip
    acc = {("vanilla", 1e-3, 0): 0.90, ("vanilla", 1e-3, 1): 0.94, ("bn", 1e-3, 0): 0.80,
           ("bn", 1e-3, 1): 0.81, ("vanilla", 1e-4, 0): 0.5, ("vanilla", 1e-4, 1): 0.7,
           ("bn", 1e-4, 0): 0.6, ("bn", 1e-4, 1): 0.6}  # fmt: skip
    models = {run: _fake(acc=a) for run, a in acc.items()}
    table = study.accuracy_table(cfg, models)
    assert list(table.index) == [1e-3, 1e-4] and list(table.columns) == ["vanilla", "bn"]
    np.testing.assert_allclose(table.to_numpy(), [[92.0, 80.5], [60.0, 60.0]])
    assert (table.attrs["n_seeds"].to_numpy() == 2).all()
    assert len(table.attrs["per_seed"]) == 8


def _argmax_net(columns: list[int]) -> nn.Sequential:
    """Logits = the input coordinates ``columns`` (class k scores x[columns[k]])."""
    lin = nn.Linear(4, N_CLASSES)
    with torch.no_grad():
        lin.weight.zero_()
        lin.bias.zero_()
        for k, c in enumerate(columns):
            lin.weight[k, c] = 1.0
    return nn.Sequential(lin)


def test_the_fig5_point_is_the_first_one_classified_as_the_class():
    X = np.zeros((6, 4), np.float32)
    X[:, 3] = 0.5  # coordinate 3 wins for every point, except:
    X[2, 0] = X[4, 0] = X[5, 1] = 1.0
    X[1, 2] = 1.0
    y = np.array([0, 0, 0, 0, 0, 0])  # every point is *labelled* 0
    data = Dataset("toy", X, y, X, y, ("a", "b", "c"))
    # model A: classes 0, 1, 2 score x0, x3, x2; model B: x0, x3, x1
    a = _fake(_argmax_net([0, 3, 2]))
    b = _fake(_argmax_net([0, 3, 1]))
    # class 0: both predict it for points 2 and 4 (x0 = 1 beats x3 = 0.5)
    assert study.first_classified(data, {"a": a, "b": b}, 0) == (2, 2)
    # class 2: A predicts it for point 1 only (x2 = 1), B for point 5 only (x1 = 1): no point
    # has both votes, so the first with the most (one of two) is returned
    assert study.first_classified(data, {"a": a, "b": b}, 2) == (1, 1)
    assert study.first_classified(data, {"b": b}, 2) == (5, 1)
    # labelled vs classified: the labelled rule takes point 0, the classified one point 2
    assert 0 in study.select_points_with(data, 0, 0)
    assert list(study.select_points_with(data, 0, 0, models={"a": a, "b": b})) == [2]
    # scanning in chunks does not change the answer
    assert study.first_classified(data, {"a": a, "b": b}, 0, chunk=1) == (2, 2)
    with pytest.raises(ValueError, match="no model classifies"):
        study.first_classified(data, {"a": _fake(_argmax_net([3, 3, 3]))}, 1)


def test_likely_reasons_count_the_seeds_of_the_runs():
    from lrtools.report import likely_reasons

    data = _data()
    one = {("vanilla", 1e-3, 0): _fake()}
    two = {("vanilla", 1e-3, 0): _fake(), ("vanilla", 1e-3, 1): _fake()}
    reason = "one training seed, so the spread between seeds is not measured"
    assert reason in likely_reasons(data, one)
    assert reason not in likely_reasons(data, two)
    assert reason in likely_reasons(data, two, n_seeds=1)  # an explicit count wins


def test_models_trained_on_two_workers_are_those_trained_here(tmp_path, monkeypatch):
    """``train_models(n_jobs=2)`` trains the uncached models in two worker processes (real
    Dask workers on 127.0.0.1) and writes them to the cache: the weights are bit for bit those
    of training in this process, and every model is then a cache hit."""
    cfg = study.StudyConfig(data="spirals", widths=(8, 8), variants=("vanilla", "bn"),
                            lrs=(1e-2,), seeds=[0, 1], max_epochs=3, patience=3)  # fmt: skip
    data = _data(90)
    monkeypatch.setenv("LRTOOLS_CACHE_DIR", str(tmp_path / "here"))
    here = study.train_models(cfg, data, n_jobs=1, progress=False)
    monkeypatch.setenv("LRTOOLS_CACHE_DIR", str(tmp_path / "workers"))
    there = study.train_models(cfg, data, n_jobs=2, progress=False)
    assert list(there) == list(here) == cfg.runs
    for run in cfg.runs:
        assert not here[run].from_cache and there[run].from_cache  # trained by the workers
        a, b = here[run].model.state_dict(), there[run].model.state_dict()
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), run
        pd.testing.assert_frame_equal(here[run].history.drop(columns="seconds"),
                                      there[run].history.drop(columns="seconds"))
    again = study.train_models(cfg, data, n_jobs=2, progress=False)
    assert all(again[run].from_cache for run in cfg.runs)
