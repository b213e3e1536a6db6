"""The small contracts of the study layer: one decision-target rule (``pool=``), one model-label
table, float learning rates in tables, and the TrainedModel cache id."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lrtools.analyses import boundary, study
from lrtools.analyses.boundary import class_means, decision_targets
from lrtools.datasets.base import Dataset
from lrtools.models import VARIANT_LABELS, build_mlp, model_name
from lrtools.plots import MODEL_LABELS
from lrtools.regions import predict
from lrtools.training import TrainedModel
from tests.conftest import with_biases

N_CLASSES = 5


def _data(seed: int = 0, n: int = 120) -> Dataset:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % N_CLASSES
    X = (rng.uniform(-0.5, 0.5, (n, 4)) + 0.1 * y[:, None]).astype(np.float32)
    return Dataset("toy", X, y, X, y, tuple(str(k) for k in range(N_CLASSES)))


# --------------------------------------------------------------------------------------------
# decision targets
# --------------------------------------------------------------------------------------------


def test_pool_targets_come_from_the_pool_and_do_not_depend_on_the_selection():
    data = _data()
    pool = (data.X_test, data.y_test)
    idx = np.array([3, 17, 40, 41, 99])
    X, y = data.X_test[idx].astype(np.float64), data.y_test[idx]
    t = decision_targets(X, y, mode="random_other", pool=pool, index=idx, seed=4)
    assert (t.target_class != y).all()
    np.testing.assert_array_equal(data.y_test[t.source_index], t.target_class)
    np.testing.assert_array_equal(t.points, data.X_test[t.source_index].astype(np.float64))
    # point 40's target is the same when it is selected with other points
    alone = decision_targets(X[2:3], y[2:3], mode="random_other", pool=pool, index=idx[2:3],
                             seed=4)  # fmt: skip
    np.testing.assert_array_equal(alone.points[0], t.points[2])
    # the draw is the per-point seed of the test index (decision 2): class, then pool row
    rng = np.random.default_rng(boundary.point_seed(4, 40))
    k = int(rng.integers(N_CLASSES - 1))
    other = k + (k >= y[2])
    rows = np.flatnonzero(data.y_test == other)
    assert t.source_index[2] == rows[rng.integers(rows.size)]


def test_class_mean_targets_are_the_pools_class_means():
    data = _data()
    X, y = data.X_test[:7].astype(np.float64), data.y_test[:7]
    t = decision_targets(X, y, pool=(data.X_test, data.y_test), n_classes=N_CLASSES, seed=1)
    means = class_means(data.X_test.astype(np.float64), data.y_test, N_CLASSES)
    np.testing.assert_allclose(t.points, means[t.target_class])
    assert (t.source_index == -1).all() and (t.target_class != y).all()


def test_runner_up_targets_follow_the_model():
    data = _data()
    net = with_biases(build_mlp(4, [8], N_CLASSES, seed=0), 0, scale=1.0)
    X, y = data.X_test[:20].astype(np.float64), data.y_test[:20]
    for mode in ("class_mean", "random_other"):
        t = decision_targets(X, y, mode=mode, other="runner_up", model=net,
                             pool=(data.X_test, data.y_test))  # fmt: skip
        z = predict(net, X)
        z[np.arange(len(y)), y] = -np.inf
        np.testing.assert_array_equal(t.target_class, z.argmax(1))


@pytest.mark.parametrize(
    "pool, match",
    [
        (np.zeros((3, 4)), "pool must be a pair"),
        ((np.zeros((3, 5)), np.zeros(3, dtype=int)), r"pool points must have shape"),
        ((np.zeros((3, 4)), np.zeros(2, dtype=int)), "one label per point"),
        ((np.zeros((3, 4)), -np.ones(3, dtype=int)), ">= 0"),
        ((np.zeros((3, 4)), np.full(3, 9)), "pool labels must be < n_classes"),
    ],
)
def test_bad_pools_are_explained(pool, match):
    with pytest.raises((TypeError, ValueError), match=match):
        decision_targets(np.zeros((2, 4)), np.array([0, 1]), mode="random_other", pool=pool,
                         n_classes=N_CLASSES)  # fmt: skip


def test_study_uses_the_one_rule_and_honours_other(monkeypatch):
    """inradius_tables draws its targets with decision_targets per model: ``other`` counts."""
    assert not hasattr(study, "random_other_targets")
    data = _data()
    cfg = study.StudyConfig(data="spirals", arch="mlp", widths=(8,), variants=("vanilla", "bn"),
                            lrs=(1e-3,))  # fmt: skip
    models = {
        run: TrainedModel(with_biases(build_mlp(4, [8], N_CLASSES, seed=k), k, scale=1.0),
                          pd.DataFrame(), 0.0, False, f"/nowhere/models/key{k}.pt")
        for k, run in enumerate(cfg.runs)
    }  # fmt: skip
    seen = []

    def fake_region_inradii(model, X, y, *, targets, index, **kwargs):
        seen.append((model, int(index[0]), targets))
        return pd.DataFrame({"kind": ["decision"], "point": [0], "radius": [1.0]})

    monkeypatch.setattr(boundary, "region_inradii", fake_region_inradii)
    idx = np.array([1, 5, 8, 30])
    table = study.inradius_tables(cfg, models, data, idx, target_mode="random_other",
                                  other="runner_up", n_jobs=1)  # fmt: skip
    assert len(seen) == 2 * len(idx)  # one stored task per (model, point)
    for k, tm in enumerate(models.values()):
        mine = seen[k * len(idx) : (k + 1) * len(idx)]
        assert all(model is tm.model and t.other == "runner_up" for model, _, t in mine)
        assert [g for _, g, _ in mine] == idx.tolist()
        z = predict(tm.model, data.X_test[idx])
        z[np.arange(len(idx)), data.y_test[idx]] = -np.inf
        np.testing.assert_array_equal([t.target_class[0] for _, _, t in mine], z.argmax(1))
    assert table["lr"].dtype == np.float64 and (table["lr"] == 1e-3).all()
    assert set(table["model"]) == {"Vanilla", "BN"}


# --------------------------------------------------------------------------------------------
# labels, learning rates, cache ids
# --------------------------------------------------------------------------------------------


def test_one_label_table():
    assert MODEL_LABELS is VARIANT_LABELS
    assert study.model_name is model_name
    lrs = (1e-3, 1e-4)
    assert [model_name(v, lr, lrs) for v, lr in [("bn", 1e-3), ("dropout", 1e-4)]] == [
        "BN-L", "Dropout-S"]  # fmt: skip
    assert model_name("vanilla", 3e-4, (1e-3, 3e-4, 1e-4)) == "Vanilla-0.0003"
    assert model_name("vanilla", 1e-3, (1e-3,)) == "Vanilla"
    with pytest.raises(ValueError, match="variant"):
        model_name("resnet", 1e-3)


def test_accuracy_table_has_float_learning_rates():
    cfg = study.StudyConfig(data="spirals", arch="mlp", widths=(4,), lrs=(1e-3, 1e-4))
    models = {run: TrainedModel(None, pd.DataFrame(), 0.5, False, "k.pt") for run in cfg.runs}
    table = study.accuracy_table(cfg, models)
    assert list(table.index) == [1e-3, 1e-4] and table.index.dtype == np.float64


def test_cache_id_is_the_model_key():
    tm = TrainedModel(None, pd.DataFrame(), 0.5, False, "/data/cache/models/0123abcd.pt")
    assert tm.cache_id == "0123abcd"
