"""Tests of lrtools.execution on a real embedded Dask LocalCluster (worker processes on
127.0.0.1): order, determinism across n_jobs, one model per worker, errors, stacking."""

from __future__ import annotations

import os
import time

import numpy as np
import pandas as pd
import pytest
import torch

from lrtools.execution import (
    PointError,
    Split,
    concat_frames,
    map_points,
    map_tasks,
    point_seed,
    run_split,
)
from lrtools.models import build_mlp
from lrtools.walks import logit_jacobian, null_space_directions, walk
from tests.conftest import warm_bn


# Per-point functions live at module level so that worker processes can unpickle them.
def _walk_summary(model, x, *, n_dirs: int, seed) -> dict:
    """A real per-point measurement: exact null-space walks from ``x`` (Section 3.5)."""
    rng = np.random.default_rng(seed)
    E = null_space_directions(logit_jacobian(model, x), n_dirs, rng)
    walks = walk(model, x, E, 0.3)
    return {
        "E": E,
        "breakpoints": [w.breakpoints for w in walks],
        "logits": [w.logits_start for w in walks],
        "threads": torch.get_num_threads(),
    }


def _fail_on_negative_first(model, x) -> float:
    if x[0] < 0:
        raise ValueError(f"negative first coordinate {x[0]:.3f}")
    return float(x[0])


def _pid_and_index(model, x) -> tuple[int, float]:
    return os.getpid(), float(x[0])


_UNPICKLED = 0  # in a worker: how many times a _CountingModel was unpickled there


class _CountingModel:
    def __reduce__(self):
        return _rebuild_counting_model, ()


def _rebuild_counting_model() -> _CountingModel:
    global _UNPICKLED
    _UNPICKLED += 1
    return _CountingModel()


def _unpickle_count(model, x) -> tuple[int, int]:
    return os.getpid(), _UNPICKLED


def _draw(model, x, *, seed) -> float:
    return float(np.random.default_rng(seed).standard_normal())


def _busy_parts(model, x):
    return [(x, k) for k in range(int(x[1]))]


def _busy_part(model, p, *, seed=None):
    """A CPU-bound part: spins 0.25 s, returns its worker's pid, its draw and its number."""
    (x, k), t = p, time.perf_counter()
    while time.perf_counter() - t < 0.25:
        pass
    if x[0] < 0 and k == 1:
        raise ValueError(f"part {k} of a negative point")
    draw = np.nan if seed is None else float(np.random.default_rng(seed).standard_normal())
    return os.getpid(), draw, k


def _busy_finish(model, x, values, *, seed=None):
    return {"pids": [v[0] for v in values], "draws": [v[1] for v in values],
            "order": [v[2] for v in values], "x0": float(x[0]), "finisher": os.getpid()}


def _split_point(model, x, *, seed=None):
    return run_split(_split_point.split, model, x, **({} if seed is None else {"seed": seed}))


_split_point.split = Split(_busy_parts, _busy_part, _busy_finish)


def _bad_split(model, x):
    return 0


_bad_split.split = "not a Split"


@pytest.fixture(scope="module")
def mlp():
    net = build_mlp(12, [16, 12, 8], 4, variant="bn", seed=3)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.Linear):
                m.bias.uniform_(-0.3, 0.3)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # contended OpenMP threads make BatchNorm warm-up slow here
    try:
        return warm_bn(net, (12,))
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def points():
    return np.random.default_rng(0).uniform(-0.8, 0.8, (7, 12))


def test_serial_and_parallel_results_are_identical(mlp, points):
    kw = dict(n_dirs=5, seed=11, progress=False)
    threads = torch.get_num_threads()
    serial = map_points(_walk_summary, mlp, points, n_jobs=1, **kw)
    parallel = map_points(_walk_summary, mlp, points, n_jobs=2, **kw)
    assert len(serial) == len(parallel) == len(points)
    for s, p in zip(serial, parallel, strict=True):
        np.testing.assert_array_equal(s["E"], p["E"])  # bitwise, not within a tolerance
        for a, b in zip(
            s["breakpoints"] + s["logits"], p["breakpoints"] + p["logits"], strict=True
        ):
            np.testing.assert_array_equal(a, b)
        assert s["threads"] == p["threads"] == 1
    assert torch.get_num_threads() == threads  # the serial path restores the caller's setting


def test_order_is_kept_and_work_is_spread_over_workers(points):
    X = np.arange(23, dtype=float)[:, None] * np.ones((1, 3))
    out = map_points(_pid_and_index, None, X, n_jobs=2, progress=False)
    assert [v for _, v in out] == list(range(23))
    pids = {p for p, _ in out}
    assert os.getpid() not in pids
    assert 1 <= len(pids) <= 2


def test_model_is_sent_once_per_worker():
    # 12 tasks: a model pickled with every task would be unpickled up to 12 times.
    out = map_points(
        _unpickle_count, _CountingModel(), np.zeros((12, 2)), n_jobs=2, progress=False
    )
    assert [count for _, count in out] == [1] * 12
    assert 1 <= len({pid for pid, _ in out}) <= 2


def _short_count(model, x) -> tuple[int, int]:
    time.sleep(0.02)
    return os.getpid(), _UNPICKLED


def test_broadcast_model_stays_on_the_embedded_workers():
    """Dask's active memory manager (ReduceReplicas) dropped the broadcast model from a worker
    between tasks, so the next task fetched and unpickled it again (a flake of the test above
    on a loaded machine). With its interval at 10 ms, 98 of these 200 tasks saw a second copy
    before it was switched off in the embedded cluster."""
    import dask
    import distributed  # noqa: F401  (loads its config defaults before they are changed)

    from lrtools.execution import close_client, local_cluster

    with dask.config.set({"distributed.scheduler.active-memory-manager.interval": "10ms"}):
        cluster = local_cluster(2, dashboard=False)
    try:
        out = map_points(_short_count, _CountingModel(), np.zeros((200, 2)),
                         scheduler=cluster.scheduler_address, progress=False)
    finally:
        close_client()
        cluster.close()
    assert [count for _, count in out] == [1] * 200


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_exception_names_the_failing_point(n_jobs):
    X = np.ones((9, 2))
    X[6, 0] = -1.0
    with pytest.raises(PointError, match=r"on point 6: ValueError: negative first") as info:
        map_points(_fail_on_negative_first, None, X, n_jobs=n_jobs, progress=False)
    assert info.value.index == 6
    if n_jobs == 1:
        assert isinstance(info.value.__cause__, ValueError)


def test_seed_gives_per_point_streams_independent_of_jobs_and_chunks():
    X = np.zeros((10, 1))
    a = map_points(_draw, None, X, n_jobs=1, seed=5, progress=False)
    b = map_points(_draw, None, X, n_jobs=2, seed=5, progress=False)
    c = map_points(_draw, None, X[:4], n_jobs=1, seed=5, progress=False)
    d = map_points(_draw, None, X, n_jobs=1, seed=6, progress=False)
    ref = [float(np.random.default_rng(point_seed(5, i)).standard_normal()) for i in range(10)]
    assert a == b == ref
    assert c == ref[:4]
    assert len(set(a)) == 10 and a != d


def test_split_point_runs_its_parts_on_both_workers_with_the_serial_result():
    X = np.array([[0.5, 6.0], [1.5, 2.0]])
    serial = map_points(_split_point, None, X, n_jobs=1, seed=3, progress=False)
    seconds = {}

    def done(j, i, value, sec, host):
        seconds[i] = (value, sec)

    map_tasks(_split_point, [None], [(0, 0, X[0]), (0, 1, X[1])], done, n_jobs=2, seed=3,
              progress=False)  # fmt: skip
    parallel = [seconds[0][0], seconds[1][0]]
    assert [p["order"] for p in parallel] == [list(range(6)), [0, 1]]
    assert [p["draws"] for p in parallel] == [s["draws"] for s in serial]  # the point's seed
    assert np.isfinite(parallel[0]["draws"]).all()
    assert len(set(parallel[0]["pids"])) == 2  # one point's six parts on both workers
    assert os.getpid() not in parallel[0]["pids"] + [parallel[0]["finisher"]]
    assert seconds[0][1] >= 6 * 0.25 and seconds[1][1] >= 2 * 0.25  # parts' seconds counted


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_split_part_error_names_the_point(n_jobs):
    X = np.array([[0.5, 3.0], [-0.5, 3.0]])
    with pytest.raises(PointError, match=r"on point 1: ValueError: part 1 of a negative"):
        map_points(_split_point, None, X, n_jobs=n_jobs, progress=False)
    with pytest.raises(TypeError, match=r"\.split must be an lrtools.execution.Split"):
        map_points(_bad_split, None, X, n_jobs=2, progress=False)


def test_empty_points_and_lambda_in_process():
    assert map_points(_draw, None, [], n_jobs=2, progress=False) == []
    out = map_points(lambda m, x, k: k * x, None, [1, 2, 3], n_jobs=1, k=2, progress=False)
    assert out == [2, 4, 6]


@pytest.mark.parametrize(
    ("kwargs", "err", "match"),
    [
        (dict(n_jobs=0), ValueError, "n_jobs == 0, must be >= 1"),
        (dict(n_jobs=1.5), TypeError, "n_jobs must be an instance"),
        (dict(n_jobs=True), TypeError, "n_jobs must be an instance"),
        (dict(seed=-1), ValueError, "seed == -1"),
    ],
)
def test_invalid_arguments(kwargs, err, match):
    with pytest.raises(err, match=match):
        map_points(_draw, None, np.zeros((2, 1)), progress=False, **kwargs)


def test_invalid_points_and_func():
    with pytest.raises(TypeError, match="points must be a sequence"):
        map_points(_draw, None, (x for x in range(3)), n_jobs=1)
    with pytest.raises(TypeError, match="func must be callable"):
        map_points("not a function", None, [1], n_jobs=1)
    with pytest.raises(TypeError, match="cannot be sent to worker processes"):
        map_points(lambda m, x: x, None, [1, 2], n_jobs=2, progress=False)


def test_concat_frames_adds_point_column():
    frames = [
        pd.DataFrame({"rho": [1.0, 0.5]}),
        pd.DataFrame({"rho": pd.Series([], dtype=float)}),
        pd.DataFrame({"rho": [0.25]}),
    ]
    out = concat_frames(frames)
    assert list(out.columns) == ["point", "rho"]
    assert out["point"].tolist() == [0, 0, 2]
    np.testing.assert_array_equal(out["rho"].to_numpy(), [1.0, 0.5, 0.25])
    assert list(out.index) == [0, 1, 2]
    lab = concat_frames(frames, labels=[10, 20, 30], name="test_index")
    assert lab["test_index"].tolist() == [10, 10, 30]


def test_concat_frames_errors():
    with pytest.raises(TypeError, match="item 1 is dict"):
        concat_frames([pd.DataFrame({"a": [1]}), {"a": 2}])
    with pytest.raises(ValueError, match="one entry per frame"):
        concat_frames([pd.DataFrame({"a": [1]})], labels=[1, 2])
    with pytest.raises(ValueError, match="already has a column 'point'"):
        concat_frames([pd.DataFrame({"point": [1]})])
    assert list(concat_frames([]).columns) == ["point"]


def test_progress_goes_to_the_kernels_original_stderr_not_the_cell(monkeypatch):
    """In a kernel, ipykernel redirects descriptor 2 into the cell and keeps a copy of the
    terminal's descriptor: bars and store lines go to that copy."""
    import sys
    import types

    from lrtools import progress

    read, terminal_fd = os.pipe()

    class CellStream:  # what ipykernel puts in sys.stderr
        _original_stdstream_copy = terminal_fd

        def write(self, text):
            raise AssertionError("progress written into the cell output")

    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    monkeypatch.setattr(sys, "stderr", CellStream())
    monkeypatch.setattr(progress, "_TERMINAL", {})
    bar = progress.bar(range(3), desc="points")
    for _ in bar:
        pass
    bar.close()
    print("[store] done", file=progress.terminal(), flush=True)
    progress.terminal().close()
    os.close(terminal_fd)
    with os.fdopen(read) as fh:
        text = fh.read()
    assert "points" in text and "[store] done" in text
