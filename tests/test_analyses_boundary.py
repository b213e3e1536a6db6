"""Tests of lrtools.analyses.boundary: targets, decision / adversarial regions, inradii."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from lrtools.analyses import boundary
from lrtools.analyses.boundary import (
    DecisionTargets,
    adversarial_points,
    class_means,
    decision_points,
    decision_targets,
    region_inradii,
)
from lrtools.exceptions import LRToolsError
from lrtools.models import build_mlp
from lrtools.regions import activation_patterns, linear_region, predict
from lrtools.solvers.insphere import insphere


def _blobs(n: int, d: int = 6, k: int = 3, seed: int = 0):
    """Three Gaussian blobs in [-1, 1]^6, labels 0..2."""
    rng = np.random.default_rng(seed)
    centers = rng.uniform(-0.6, 0.6, (k, d))
    y = rng.integers(k, size=n)
    return np.clip(centers[y] + 0.25 * rng.standard_normal((n, d)), -1, 1), y


def _trained_mlp(variant: str, X, y, seed: int = 0):
    """A 6-16-16-3 MLP trained for 150 full-batch Adam steps (float32), then in eval mode."""
    net = build_mlp(6, [16, 16], 3, variant=variant, seed=seed)
    torch.manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    Xt, yt = torch.tensor(X, dtype=torch.float32), torch.tensor(y)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny batches: contended OpenMP threads only slow this down
    try:
        net.train()
        for _ in range(150):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(Xt), yt).backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    return net.eval()


@pytest.fixture(scope="module")
def data():
    return _blobs(300)


@pytest.fixture(scope="module", params=["vanilla", "bn", "dropout"])
def trained(request, data):
    X, y = data
    return _trained_mlp(request.param, X, y)


def _check_region_points(net, X, targets, bp, *, h: float = 1e-6):
    """Every recorded class change is a class change and its region holds the boundary."""
    table, shape = bp.table, X.shape[1:]
    start = predict(net, X).argmax(1)
    np.testing.assert_array_equal(table["start_class"], start)
    changed = table["changed"].to_numpy(bool)
    assert len(bp.region_points) == changed.sum()
    np.testing.assert_array_equal(table["region_row"][changed], np.arange(changed.sum()))
    assert np.all(table["region_row"][~changed] == -1)
    for i in np.flatnonzero(changed):
        row = table.iloc[i]
        x, t = X[i].reshape(-1), targets[i].reshape(-1)
        a = row["alpha"]
        assert 0.0 <= row["region_alpha"] < a <= 1.0
        # the crossing is a class change within 1e-6 along the segment
        pair = np.stack([x + (a - h) * (t - x), x + (a + h) * (t - x)])
        before, after = predict(net, pair.reshape(2, *shape))
        assert before.argmax() == row["start_class"]
        assert after.argmax() != row["start_class"]
        # independent reference: first class change on a fine grid of the segment
        grid = np.linspace(0.0, 1.0, 4001)
        cls = predict(net, (x + grid[:, None] * (t - x)).reshape(-1, *shape)).argmax(1)
        first = grid[np.argmax(cls != row["start_class"])]
        assert abs(first - a) <= 1.0 / 4000 + 1e-9
        # the region point keeps the class, lies strictly inside its own region, and that
        # region's affine logits tie start and new class at x_alpha* (it holds the boundary)
        rp = bp.region_points[row["region_row"]]
        np.testing.assert_allclose(rp.reshape(-1), x + row["region_alpha"] * (t - x), atol=1e-12)
        assert predict(net, rp[None]).argmax() == row["start_class"]
        region = linear_region(net, rp)
        slack = region.polytope.slack(rp.reshape(-1))
        moving = region.polytope.row_norms > 0  # rows with w_i = 0 are constant (e.g. 0 >= 0)
        assert slack[moving].min() > 0 and slack.min() >= 0
        np.testing.assert_array_equal(region.pattern, activation_patterns(net, rp[None])[0])
        z = region.logits(x + a * (t - x))  # the region's affine map, on flat inputs
        scale = 1.0 + np.abs(z).max()
        assert abs(z[row["start_class"]] - z[row["new_class"]]) <= 1e-8 * scale
        assert z.max() - z[row["start_class"]] <= 1e-8 * scale


# --------------------------------------------------------------------------------------------
# Targets
# --------------------------------------------------------------------------------------------


def test_class_means_match_a_loop(data):
    X, y = data
    means = class_means(X, y, 3)
    for k in range(3):
        np.testing.assert_allclose(means[k], X[y == k].mean(axis=0), rtol=0, atol=1e-14)
    with pytest.raises(ValueError, match=r"classes \[3\] have no point"):
        class_means(X, y, 4)


def test_decision_targets_class_mean_random_other_class(data):
    X, y = data
    means = class_means(X, y, 3)
    t = decision_targets(X, y, means=means, seed=5)
    assert isinstance(t, DecisionTargets) and t.mode == "class_mean" and t.other == "random"
    assert np.all(t.target_class != y) and np.all(t.source_index == -1)
    np.testing.assert_array_equal(t.points, means[t.target_class])
    for k in range(3):  # uniform over the two other classes
        other = t.target_class[y == k]
        for j in set(range(3)) - {k}:
            assert 0.3 < np.mean(other == j) < 0.7
    # seeded per point: the same choices in a chunk with global indices, new ones for a new seed
    part = decision_targets(X[100:], y[100:], means=means, seed=5, index=np.arange(100, 300))
    np.testing.assert_array_equal(part.target_class, t.target_class[100:])
    assert np.any(decision_targets(X, y, means=means, seed=6).target_class != t.target_class)


def test_decision_targets_runner_up_and_random_other(data, trained):
    X, y = data
    t = decision_targets(X, y, other="runner_up", model=trained)
    z = predict(trained, X)
    for i in range(len(X)):
        order = [k for k in np.argsort(-z[i], kind="stable") if k != y[i]]
        assert t.target_class[i] == order[0]
    r = decision_targets(X, y, mode="random_other", seed=1)
    assert np.all(y[r.source_index] == r.target_class) and np.all(r.target_class != y)
    np.testing.assert_array_equal(r.points, X[r.source_index])
    assert len(np.unique(r.source_index)) > 100  # really drawn, not one point per class


# --------------------------------------------------------------------------------------------
# Decision and adversarial regions
# --------------------------------------------------------------------------------------------


def test_decision_points_are_exact_class_changes(data, trained):
    X, y = data
    X, y = X[:12], y[:12]
    t = decision_targets(X, y, means=class_means(*data, 3), seed=0)
    bp = decision_points(trained, X, y, t)
    np.testing.assert_array_equal(bp.table["target_class"], t.target_class)
    np.testing.assert_array_equal(bp.table["target_pred"], predict(trained, t.points).argmax(1))
    assert bp.table["changed"].sum() >= 9  # trained net, targets of other classes
    _check_region_points(trained, X, t.points, bp)


def test_unchanged_and_zero_length_segments_are_excluded(data, trained):
    X, y = data
    X = X[:4]
    T = predict(trained, X)  # targets: one real target, a tiny step, the point itself
    other = np.flatnonzero(T.argmax(1) != T[0].argmax())
    targets = np.stack([X[other[0]], X[1] + 1e-9, X[2], X[other[0]]])
    bp = decision_points(trained, X, y[:4], targets)
    tab = bp.table
    assert list(tab["changed"]) == [True, False, False, tab["changed"][3]]
    assert tab["status"][1].startswith("skipped: class never changes")
    assert tab["status"][2].startswith("skipped: target equals the point")
    assert tab["alpha"][1] == 1.0 and np.isnan(tab["alpha"][2])
    assert len(bp.region_points) == tab["changed"].sum()
    _check_region_points(trained, X, targets, bp)


def test_a_failed_walk_is_recorded_not_raised(data, monkeypatch):
    X, y = data
    net = _trained_mlp("vanilla", X, y)
    real = boundary.first_class_changes
    bad = X[1].copy()

    def flaky(model, Xs, Xe, **kw):  # the batch and point 1's own walk fail verification
        if len(Xs) > 1 or np.array_equal(Xs[0], bad):
            raise LRToolsError("class-change verification failed (simulated)")
        return real(model, Xs, Xe, **kw)

    monkeypatch.setattr(boundary, "first_class_changes", flaky)
    t = decision_targets(X[:3], y[:3], means=class_means(X, y, 3))
    bp = decision_points(net, X[:3], y[:3], t)
    assert bp.table["status"][1] == "failed: class-change verification failed (simulated)"
    assert bp.table["region_row"][1] == -1 and not bp.table["changed"][1]
    assert list(bp.table["status"][[0, 2]]) == ["ok", "ok"] and len(bp.region_points) == 2


def test_decision_points_on_a_cnn(small_cnn):
    rng = np.random.default_rng(3)
    X = np.clip(rng.uniform(-0.8, 0.8, (40, 1, 9, 9)), -1, 1)
    cls = predict(small_cnn, X).argmax(1)
    starts = [i for i in range(40) if np.any(cls != cls[i])][:5]
    targets = np.stack([X[np.flatnonzero(cls != cls[i])[0]] for i in starts])
    bp = decision_points(small_cnn, X[starts], cls[starts], targets)
    assert bp.table["changed"].all() and bp.region_points.shape == (5, 1, 9, 9)
    _check_region_points(small_cnn, X[starts], targets, bp)


def test_adversarial_points(data, trained):
    X, y = data
    X, y = X[:10], y[:10]
    eps = 0.4
    ap = adversarial_points(trained, X, y, eps=eps, step_size=0.05, steps=20, seed=3)
    adv, tab = ap.targets, ap.table
    assert np.all(np.abs(adv - X) <= eps + 1e-12) and np.all(np.abs(adv) <= 1.0)
    np.testing.assert_allclose(tab["linf"], np.abs(adv - X).max(1), rtol=0, atol=0)
    np.testing.assert_array_equal(tab["pgd_success"], predict(trained, adv).argmax(1) != y)
    assert tab["pgd_success"].mean() >= 0.5
    _check_region_points(trained, X, adv, ap)
    # seeded per point: two chunks with global indices give the same examples
    kw = {"eps": eps, "step_size": 0.05, "steps": 20, "seed": 3}
    a = adversarial_points(trained, X[:4], y[:4], index=np.arange(4), **kw).targets
    b = adversarial_points(trained, X[4:], y[4:], index=np.arange(4, 10), **kw).targets
    np.testing.assert_array_equal(np.concatenate([a, b]), adv)


def test_region_inradii_matches_independent_solves(data, trained):
    X, y = data
    X, y = X[:4], y[:4]
    kw = {"eps": 0.4, "step_size": 0.05, "steps": 20, "seed": 1}
    means = class_means(*data, 3)
    df = region_inradii(trained, X, y, means=means, n_jobs=1, progress=False, **kw)
    assert list(df["kind"].value_counts().sort_index()) == [4, 4, 4]
    t = decision_targets(X, y, means=means, seed=1)
    ends = {"decision": t.points, "adversarial": adversarial_points(trained, X, y, **kw).targets}
    bps = {
        "decision": decision_points(trained, X, y, t),
        "adversarial": adversarial_points(trained, X, y, **kw),
    }
    for _, row in df.iterrows():
        i = row["point"]
        if row["kind"] == "manifold":
            region = linear_region(trained, X[i])
            assert region.polytope.slack(X[i]).min() > 0  # contains its test point
        else:
            tab = bps[row["kind"]].table
            # batched walks (here) and per-point walks (region_inradii) agree to rounding
            np.testing.assert_allclose(row["alpha"], tab["alpha"][i], rtol=0, atol=1e-12)
            if not row["changed"]:
                assert np.isnan(row["radius"]) and row["status"].startswith("skipped")
                continue
            x, e = X[i], ends[row["kind"]][i]
            region = linear_region(trained, x + row["region_alpha"] * (e - x))
        ref = insphere(region.polytope, method="highs").radius
        np.testing.assert_allclose(row["radius"], ref, rtol=1e-6, atol=1e-9)
        assert row["pattern_ok"] and row["n_rows"] == 32
    assert df["label"].dtype == "Int64" and df["changed"].dtype == "boolean"
    assert list(df["kind"]) == ["manifold"] * 4 + ["decision"] * 4 + ["adversarial"] * 4


def test_region_inradii_is_the_same_in_two_processes(data):
    X, y = data
    net = _trained_mlp("bn", X, y, seed=3)
    kw = {"eps": 0.4, "step_size": 0.05, "steps": 10, "seed": 2, "progress": False}
    means = class_means(X, y, 3)
    serial = region_inradii(net, X[:3], y[:3], means=means, n_jobs=1, **kw)
    parallel = region_inradii(net, X[:3], y[:3], means=means, n_jobs=2, **kw)
    pd.testing.assert_frame_equal(
        serial.drop(columns="seconds"), parallel.drop(columns="seconds"), check_exact=True
    )
    only = region_inradii(net, X[:3], y[:3], kinds="adversarial", n_jobs=1, **kw)
    assert list(only.columns) == list(serial.columns)
    pd.testing.assert_frame_equal(
        only.drop(columns="seconds"),
        serial[serial["kind"] == "adversarial"].reset_index(drop=True).drop(columns="seconds"),
        check_exact=True,
    )


# --------------------------------------------------------------------------------------------
# Bad inputs
# --------------------------------------------------------------------------------------------


def test_bad_inputs_raise_clear_errors(data, trained):
    X, y = data
    with pytest.raises(ValueError, match="same length"):
        decision_targets(X, y[:-1])
    with pytest.raises(ValueError, match="class indices >= 0"):
        class_means(X, -y, 3)
    with pytest.raises(ValueError, match="mode == 'mean'"):
        decision_targets(X, y, mode="mean")
    with pytest.raises(ValueError, match="needs the model"):
        decision_targets(X, y, other="runner_up")
    with pytest.raises(ValueError, match="class 2 has no point"):
        decision_targets(X[y < 2], y[y < 2], mode="random_other", n_classes=3)
    with pytest.raises(ValueError, match="means must have shape"):
        decision_targets(X, y, means=np.zeros((3, 5)))
    with pytest.raises(ValueError, match="shape \\(n, \\*input_shape\\)"):
        decision_points(trained, X[0], y[:1], X[1])
    with pytest.raises(ValueError, match="targets must have the shape of X"):
        decision_points(trained, X[:3], y[:3], X[:2])
    with pytest.raises(ValueError, match="eps == 0.0, must be > 0"):
        adversarial_points(trained, X[:2], y[:2], eps=0.0)
    with pytest.raises(TypeError, match="eps must be an instance"):
        adversarial_points(trained, X[:2], y[:2], eps="0.3")
    with pytest.raises(ValueError, match="kinds == 'boundary'"):
        region_inradii(trained, X[:2], y[:2], kinds=("manifold", "boundary"))
    with pytest.raises(ValueError, match="at least one"):
        region_inradii(trained, X[:2], y[:2], kinds=())
    with pytest.raises(ValueError, match="index must have one entry per point"):
        adversarial_points(trained, X[:2], y[:2], index=[0])
    with pytest.raises(ValueError, match="index must hold indices >= 0"):
        decision_targets(X[:2], y[:2], n_classes=3, index=[0, -1])
    with pytest.raises(ValueError, match="targets must have the shape of X"):
        region_inradii(trained, X[:3], y[:3], kinds="decision", targets=X[:2], n_jobs=1)
