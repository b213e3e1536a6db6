"""Tests of lrtools.analyses.surrounding against dense sampling and plain torch autograd."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from lrtools._threads import one_torch_thread
from lrtools.analyses.surrounding import surrounding_point, surrounding_table
from lrtools.execution import point_seed
from lrtools.models import build_cnn, build_mlp
from lrtools.regions import activation_patterns
from tests.conftest import with_biases

EPS = 0.4


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """One torch thread (contended OpenMP threads are much slower on this shared machine)."""
    with one_torch_thread():
        yield



def _model64(model: nn.Module) -> nn.Module:
    return copy.deepcopy(model).double().eval()


def _x(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-0.6, 0.6, shape)


@pytest.fixture
def mlp(small_mlp):
    return with_biases(small_mlp, 4)


@pytest.fixture
def cnn(small_cnn):
    return with_biases(small_cnn, 5, scale=0.1)


def _check_dense(model, x, res, n_samples: int = 2001) -> int:
    """Dense patterns are walk patterns; patterns missed by sampling have only short pieces."""
    walks = res["walks"]
    betas = np.linspace(0.0, EPS, n_samples)
    step = betas[1]
    dense = set()
    for w in walks:
        pts = w.points(betas).reshape(n_samples, *x.shape)
        near = np.min(np.abs(betas[:, None] - w.breakpoints[None, :]), axis=1) < 1e-9
        near[0] = False  # beta = 0 is x itself, whose own pattern counts
        pats = activation_patterns(model, pts)[~near]
        dense.update(np.packbits(p).tobytes() for p in pats)
    longest: dict[bytes, float] = {walks[0].x0_packed.tobytes(): np.inf}
    for w in walks:
        for row, length in zip(w.packed_patterns, np.diff(w.breakpoints), strict=True):
            key = row.tobytes()
            longest[key] = max(longest.get(key, 0.0), length)
    assert dense <= set(longest), "sampling met a pattern the walks missed"
    missed = set(longest) - dense
    assert all(longest[k] < step for k in missed), "a piece longer than the step was not sampled"
    assert res["n_unique_regions"] == len(longest)
    assert res["n_unique_regions"] - len(dense) == len(missed)
    return len(dense)


def test_counts_match_dense_sampling_mlp(mlp):
    x = _x((12,))
    res = surrounding_point(mlp, x, n_directions=8, eps=EPS, seed=1, return_walks=True)
    n_dense = _check_dense(mlp, x, res)
    assert n_dense >= 3  # the walks do leave x's region (the check is not vacuous)
    assert res["n_pieces_total"] == sum(w.n_pieces for w in res["walks"])


def test_counts_match_dense_sampling_cnn(cnn):
    x = _x((1, 9, 9), seed=1)
    res = surrounding_point(cnn, x, n_directions=6, eps=EPS, seed=2, return_walks=True)
    n_dense = _check_dense(cnn, x, res)
    assert n_dense >= 2


def _reference_rho(model, x, res) -> np.ndarray:
    """eq. (13) by plain autograd on a float64 copy, at each region's representative point."""
    net = _model64(model)
    E = np.stack([w.direction for w in res["walks"]])
    pts = [
        x.reshape(-1) + (0.0 if j < 0 else b) * (0.0 if j < 0 else E[j])
        for j, b in zip(res["walk_index"], res["beta"], strict=True)
    ]
    gs = []
    for p in pts:
        xt = torch.tensor(p.reshape(1, *x.shape), requires_grad=True)
        z = net(xt)[0]
        k1, k2 = torch.topk(z.detach(), 2).indices.tolist()
        (g,) = torch.autograd.grad(z[k1] - z[k2], xt)
        gs.append(g.reshape(-1).numpy())
    G = np.stack(gs)
    return G @ G[0] / (np.linalg.norm(G, axis=1) * np.linalg.norm(G[0]))


def test_rho_matches_autograd_and_is_a_cosine_mlp(mlp):
    _check_rho(mlp, _x((12,), seed=2))


def test_rho_matches_autograd_and_is_a_cosine_cnn(cnn):
    _check_rho(cnn, _x((1, 9, 9), seed=0))


def _check_rho(model, x):
    res = surrounding_point(model, x, n_directions=5, eps=EPS, seed=3, return_walks=True)
    rho = res["rho"]
    assert rho.shape == (res["n_unique_regions"],)
    assert np.isfinite(rho).all() and np.all(np.abs(rho) <= 1 + 1e-12)
    np.testing.assert_allclose(rho[0], 1.0, rtol=0, atol=1e-12)
    assert res["walk_index"][0] == -1 and res["beta"][0] == 0.0
    np.testing.assert_allclose(rho, _reference_rho(model, x, res), rtol=0, atol=1e-9)


def test_vanishing_decision_direction_gives_nan_rho():
    net = build_cnn(1, 9, channels=(3, 4), dense=6, n_classes=3, seed=2)
    net = with_biases(net, 5, scale=0.1)
    x = _x((1, 9, 9), seed=2)
    assert not activation_patterns(net, x[None])[0, -6:].any()  # dense layer dead at x: J = 0
    counts, rho = surrounding_table(net, x[None], n_directions=4, eps=EPS, n_jobs=1, progress=False)
    assert counts.loc[0, "n_unique_regions"] > 1
    assert np.isnan(rho["rho"]).all()
    assert counts.loc[0, "n_nan_rho"] == len(rho)
    assert np.isnan(counts.loc[0, ["min_rho", "median_rho", "mean_rho"]].astype(float)).all()


def test_directions_are_unit_and_in_the_jacobian_null_space(small_cnn):
    model = with_biases(small_cnn, 6, scale=0.1)
    x = _x((1, 9, 9), seed=3)
    res = surrounding_point(model, x, n_directions=7, eps=0.1, seed=4, return_walks=True)
    xt = torch.tensor(x[None])
    J = torch.autograd.functional.jacobian(_model64(model), xt).reshape(3, -1).numpy()
    E = np.stack([w.direction for w in res["walks"]])
    assert E.shape == (7, 81)
    np.testing.assert_allclose(np.linalg.norm(E, axis=1), 1.0, rtol=0, atol=1e-12)
    assert np.abs(J @ E.T).max() <= 1e-10 * np.linalg.norm(J, 2)
    # the logits are constant on the first piece of each walk (eq. 12)
    assert np.abs(np.stack([w.logits_slope[0] for w in res["walks"]])).max() <= 1e-10


def test_seed_controls_directions(mlp):
    x = _x((12,), seed=4)
    a = surrounding_point(mlp, x, n_directions=3, eps=0.1, seed=7, return_walks=True)
    b = surrounding_point(mlp, x, n_directions=3, eps=0.1, seed=7, return_walks=True)
    c = surrounding_point(mlp, x, n_directions=3, eps=0.1, seed=8, return_walks=True)
    da, db, dc = (np.stack([w.direction for w in r["walks"]]) for r in (a, b, c))
    np.testing.assert_array_equal(da, db)
    assert not np.allclose(da, dc)


def test_table_rows_equal_points_and_do_not_depend_on_n_jobs(mlp):
    X = np.stack([_x((12,), seed=s) for s in range(3)])
    kw = dict(n_directions=6, eps=EPS, seed=9, progress=False)
    counts, rho = surrounding_table(mlp, X, n_jobs=1, **kw)
    counts2, rho2 = surrounding_table(mlp, X, n_jobs=2, **kw)
    assert counts.equals(counts2) and rho.equals(rho2)
    assert list(counts.columns[:3]) == ["point", "n_unique_regions", "n_pieces_total"]
    assert list(rho.columns) == ["point", "region", "walk_index", "beta", "rho"]
    for i in range(3):
        ref = surrounding_point(mlp, X[i], n_directions=6, eps=EPS, seed=point_seed(9, i))
        row = counts.iloc[i]
        assert row["n_unique_regions"] == ref["n_unique_regions"]
        assert row["n_pieces_total"] == ref["n_pieces_total"]
        sur = rho.loc[rho["point"] == i, "rho"].to_numpy()
        np.testing.assert_array_equal(sur, ref["rho"][1:])  # own region excluded
        if sur.size:
            assert row["min_rho"] == sur.min()
            assert row["median_rho"] == np.median(sur)
        else:
            assert np.isnan(row["min_rho"])
    assert len(rho) == (counts["n_unique_regions"] - 1).sum() > 0


@pytest.mark.parametrize(
    ("kwargs", "err", "match"),
    [
        (dict(X=np.zeros(12)), ValueError, r"X must have shape \(n, \*input_shape\)"),
        (dict(eps=0.0), ValueError, "eps == 0.0, must be > 0"),
        (dict(eps=np.inf), ValueError, "eps == inf, must be finite"),
        (dict(n_directions=0), ValueError, "n_directions == 0"),
        (dict(seed=-2), ValueError, "seed == -2"),
        (dict(pair="top"), ValueError, "pair == 'top' is not supported"),
        (dict(n_jobs=0), ValueError, "n_jobs == 0"),
    ],
)
def test_table_validation(kwargs, err, match):
    mlp = with_biases(build_mlp(12, [8], 3, seed=0), 0)
    args = dict(X=np.zeros((2, 12)), n_directions=2, eps=0.1, n_jobs=1, progress=False)
    args.update(kwargs)
    with pytest.raises(err, match=match):
        surrounding_table(mlp, **args)


def test_point_validation():
    mlp = with_biases(build_mlp(12, [8], 3, seed=0), 0)
    with pytest.raises(TypeError, match="seed must be an instance"):
        surrounding_point(mlp, np.zeros(12), seed=1.5)
    with pytest.raises(ValueError, match="x must be one input"):
        surrounding_point(mlp, 0.5)
    # 2 inputs, 3 logits: the Jacobian (3, 2) has full column rank, no null space (eq. 10)
    net = with_biases(build_mlp(2, [8], 3, seed=0), 0, scale=1.0)
    with pytest.raises(ValueError, match=r"null space is \{0\}"):
        surrounding_point(net, [0.5, 0.3])
