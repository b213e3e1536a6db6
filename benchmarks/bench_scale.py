"""Scaling of per-point work on Dask: points per second with 1 and 2 local workers, per-task
overhead, serial fraction and an Amdahl projection of the paper profile.

Run from the repository root (it starts its own LocalClusters on 127.0.0.1)::

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 python benchmarks/bench_scale.py [--points 16]

Measurements
------------
* cheap: one Fig. 6 point (:func:`lrtools.analyses.surrounding.surrounding_point`, eqs.
  10-13 of Zhang & Wu, ICLR 2020, 100 directions) on the paper's MNIST MLP (784-[1024]*3-10,
  random weights);
* expensive: one Table 2 point (``class_regions.class_regions_point``: eq. 6 for every class,
  margin LPs and nearest optima; on Dask five part tasks of two classes and a finishing task,
  ``lrtools.execution.Split``), on a 196-32x3-10 MLP by default, or with ``--paper-table2 N``
  on N real MNIST test points of the paper's MLP trained briefly on the real t10k digits
  (``paper_regions.mnist_mlp``; 20-75 s per point);
* overhead: a task that does nothing, so its wall time per task is the execution's cost.

The serial reference is the same function called in this process. Every path is warmed up
first (the workers import the measuring code on their first task). The serial fraction ``f``
comes from the measured 2-worker speedup ``S2`` (Amdahl: ``S2 = 1 / (f + (1 - f) / 2)``) and
projects the wall time of ``--cpu-hours`` of per-point work on 8, 32 and 128 workers. The
machine may be loaded by other processes: the script prints ``os.getloadavg()``.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from lrtools import execution
from lrtools._threads import one_torch_thread
from lrtools.analyses.class_regions import class_regions_point
from lrtools.analyses.surrounding import surrounding_point
from lrtools.models import build_mlp


def noop(model, x):
    """The empty task: its time is the execution's per-task cost."""
    return 0


def _net(d: int, widths: list[int], seed: int = 0) -> torch.nn.Module:
    net = build_mlp(d, widths, 10, seed=seed)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.Linear):
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
    return net.eval()


def _serial(func, net, X, **kw) -> float:
    with one_torch_thread():
        func(net, X[0], **kw, **({"seed": execution.point_seed(0, 0)} if "n_directions" in kw
                                 else {}))  # warm up (imports, caches) as the workers do
        t = time.perf_counter()
        for i, x in enumerate(X):
            func(net, x, **kw, **({"seed": execution.point_seed(0, i)} if "n_directions" in kw
                                  else {}))
        return (time.perf_counter() - t) / len(X)


def _dask(func, net, X, workers: int, seeded: int | None = None, **kw) -> tuple[float, float,
                                                                             float]:
    """(wall seconds per point on ``workers`` local workers, cluster start seconds, task
    seconds per point: the compute time the workers report, parts and finish included).

    The cluster is the book's own embedded one (:func:`lrtools.execution.local_cluster`: one
    thread per worker, no statistical profiler), started afresh for each measurement.
    """
    t = time.perf_counter()
    cluster = execution.local_cluster(workers, dashboard=False)
    start = time.perf_counter() - t
    addr = cluster.scheduler_address
    try:
        # warm up: every worker imports the measuring code (cvxpy, torch, ...) before timing
        execution.map_points(func, net, X[: 2 * workers], scheduler=addr, seed=seeded,
                             progress=False, **kw)  # fmt: skip
        busy: list[float] = []
        t = time.perf_counter()
        execution.map_tasks(func, [net], [(0, i, x) for i, x in enumerate(X)],
                            lambda j, i, v, sec, host: busy.append(sec), scheduler=addr,
                            seed=seeded, progress=False, kwargs=kw)  # fmt: skip
        return (time.perf_counter() - t) / len(X), start, sum(busy) / len(X)
    finally:
        execution.close_client()
        cluster.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--points", type=int, default=16)
    ap.add_argument("--width", type=int, default=1024, help="hidden width of the Fig. 6 MLP")
    ap.add_argument("--paper-table2", type=int, default=0, metavar="N",
                    help="Table 2 on N real MNIST points of the trained paper-size MLP")
    ap.add_argument("--skip-cheap", action="store_true", help="skip the Fig. 6 measurement")
    ap.add_argument("--cpu-hours", type=float, default=230.0,
                    help="per-point CPU-hours of the paper profile (issue 10's estimate)")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print(f"load average (1, 5, 15 min): {os.getloadavg()}; cores: {os.cpu_count()}")
    mnist = _net(784, [args.width] * 3)
    X = rng.uniform(-0.9, 0.9, (args.points, 784))
    small = _net(196, [32, 32, 32])
    Xs = rng.uniform(-0.9, 0.9, (max(4, args.points // 2), 196))

    n_over = 200
    t1, start, _ = _dask(noop, None, np.zeros((n_over, 1)), 1)
    t2, _, _ = _dask(noop, None, np.zeros((n_over, 1)), 2)
    print(f"cluster start: {start:.2f} s; per-task overhead: {1e3 * t1:.2f} ms (1 worker), "
          f"{1e3 * t2:.2f} ms per task of wall time (2 workers), {n_over} empty tasks")

    cases = [] if args.skip_cheap else [
        ("Fig. 6 point (surrounding, 100 dirs)", surrounding_point, mnist, X,
         dict(n_directions=100, eps=0.2), 0),
    ]  # fmt: skip
    if args.paper_table2:
        import sys
        from pathlib import Path

        sys.path.insert(0, str(Path(__file__).parent))
        import paper_regions

        paper = paper_regions.mnist_mlp("vanilla")
        pts = list(paper_regions.mnist_points(args.paper_table2 + 1)[1:])
        cases.append(("Table 2 point (paper MLP, real digits: eq. 6, margin LPs, nearest)",
                      class_regions_point, paper, pts, dict(method="auto"), None))
    else:
        cases.append(("Table 2 point (eq. 6, 10 classes)", class_regions_point, small,
                      list(Xs), dict(method="auto"), None))
    speedups = []
    for name, func, net, pts, kw, seeded in cases:
        serial = _serial(func, net, pts, **kw)
        one, _, busy1 = _dask(func, net, pts, 1, seeded=seeded, **kw)
        two, _, busy2 = _dask(func, net, pts, 2, seeded=seeded, **kw)
        speedups.append(one / two)
        print(f"{name}: serial {serial:.3f} s/point; {1 / one:.2f} points/s on 1 worker, "
              f"{1 / two:.2f} on 2 ({one:.2f} / {two:.2f} s of wall time per point); speedup "
              f"{one / two:.3f}x; overhead {100 * t1 / serial:.1f}% "
              f"of a point")  # fmt: skip
        print(f"  compute per point: {busy1:.3f} s on 1 worker, {busy2:.3f} s on 2 (slowdown "
              f"{busy2 / busy1:.2f}x from sharing the machine); workers busy "
              f"{100 * busy1 / one:.0f}% of the wall time on 1, {100 * busy2 / (2 * two):.0f}% "
              f"on 2")  # fmt: skip
    s2 = speedups[-1]
    load = os.getloadavg()[0]
    if s2 <= 1:
        print(f"2 workers were not faster than 1 ({s2:.2f}x) with a load of {load:.1f} on "
              f"{os.cpu_count()} cores: the machine is oversubscribed and the projection below "
              "(f clamped to 1) says nothing about the code; rerun on an idle machine.")
    f = min(max(2 / s2 - 1, 0.0), 1.0)
    print(f"serial fraction from the Table 2 speedup {s2:.2f}x: f = {f:.3f}")
    for n in (8, 32, 128):
        s = 1 / (f + (1 - f) / n)
        print(f"  {n:>3} workers: speedup {s:6.1f}x, paper profile ({args.cpu_hours:.0f} "
              f"CPU-h) in {args.cpu_hours / s:7.1f} h")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
