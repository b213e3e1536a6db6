"""End to end on real MNIST (issue 4): train a small MLP on part of the shared test set, take
5 other test points, and check every measurement of the MNIST chapter on them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lrtools.analyses.boundary import adversarial_points, class_means, decision_points
from lrtools.analyses.surrounding import surrounding_point
from lrtools.datasets.base import Dataset
from lrtools.datasets.idx import read_idx
from lrtools.regions import activation_patterns, linear_region, predict
from lrtools.solvers.insphere import insphere
from lrtools.training import ModelSpec, TrainConfig, fit

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist-t10k"
pytestmark = pytest.mark.skipif(not SHARED.exists(), reason="shared MNIST test set not present")


@pytest.fixture(scope="module")
def mnist_model():
    X = read_idx(SHARED / "t10k-images-idx3-ubyte.gz").astype(np.float32) / 127.5 - 1.0
    y = read_idx(SHARED / "t10k-labels-idx1-ubyte.gz").astype(np.int64)
    X = X.reshape(-1, 1, 28, 28)
    data = Dataset("mnist-t10k-part", X[:3000], y[:3000], X[3000:], y[3000:],
                   tuple(str(k) for k in range(10)))
    tm = fit(ModelSpec("mlp", (48, 48, 48), "bn"), data,
             TrainConfig(lr=1e-3, max_epochs=10, patience=3), use_cache=False,
             progress=False)
    assert tm.test_accuracy > 0.85  # a real MNIST model, not noise
    pick = np.arange(3000, 3005) - 3000
    return tm.model, data, data.X_test[pick].astype(np.float64), data.y_test[pick]


def _contains(model, x, point):
    region = linear_region(model, x)
    return region, bool(region.polytope.contains(point.reshape(-1), tol=1e-9))


def test_manifold_regions_contain_their_points_and_inspheres_verify(mnist_model):
    model, _, X, _ = mnist_model
    for x in X:
        region, inside = _contains(model, x, x)
        assert inside
        res = insphere(region.polytope)
        assert res.radius > 0
        centre = res.center.reshape(1, 1, 28, 28)
        assert (activation_patterns(model, centre)[0] == region.pattern).all()


def test_decision_points_are_at_a_class_change(mnist_model):
    model, data, X, y = mnist_model
    means = class_means(data.X_test.astype(np.float64), data.y_test, 10)
    targets = means[(y + 1) % 10]
    bp = decision_points(model, X, y, targets)
    changed = bp.table[bp.table["changed"]]
    assert len(changed) >= 3
    for _, row in changed.iterrows():
        i = int(row["point"])
        a = float(row["alpha"])
        seg = lambda t, i=i: ((1 - t) * X[i] + t * targets[i])[None]  # noqa: E731
        start = predict(model, X[i][None]).argmax(1)[0]
        assert predict(model, seg(a - 1e-6)).argmax(1)[0] == start
        assert predict(model, seg(a + 1e-6)).argmax(1)[0] != start
        p = bp.region_points[int(row["region_row"])]
        _, inside = _contains(model, p, p)
        assert inside and predict(model, p[None]).argmax(1)[0] == start


def test_adversarial_regions_contain_their_points(mnist_model):
    model, _, X, y = mnist_model
    bp = adversarial_points(model, X, y, eps=0.6, step_size=0.02, steps=20)
    assert np.all(bp.table["linf"] <= 0.6 + 1e-9)
    for p in bp.region_points:
        _, inside = _contains(model, p, p)
        assert inside


def test_walk_region_counts_match_dense_sampling(mnist_model):
    model, _, X, _ = mnist_model
    res = surrounding_point(model, X[0], n_directions=4, eps=0.2, seed=0, return_walks=True)
    for w in res["walks"]:
        betas = np.linspace(0, w.breakpoints[-1], 4001)
        pts = w.points(betas).reshape(-1, 1, 28, 28)
        sampled = {p.tobytes() for p in np.packbits(activation_patterns(model, pts), axis=1)}
        lengths = np.diff(w.breakpoints)
        step = betas[1] - betas[0]
        # the walk finds every sampled region; it finds more only where sampling skipped
        assert len(sampled) <= w.n_pieces
        assert w.n_pieces - len(sampled) <= int(np.sum(lengths < step))


def test_most_probable_points_lie_in_the_region(mnist_model):
    from lrtools.solvers.maxprob import max_log_prob_all

    model, _, X, _ = mnist_model
    region = linear_region(model, X[0])
    table = max_log_prob_all(region.polytope, region.logit_W, region.logit_b, x_star=region.x_star)
    for res in table.results:
        assert region.polytope.contains(res.x, tol=0.0)  # never slightly outside
        assert res.gap <= 1e-6 * (1 + abs(res.log_prob))
    assert table.n_classes_reached >= 1  # x*'s own class is always reached
