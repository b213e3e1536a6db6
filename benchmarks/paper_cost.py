"""Projected cost of the paper profile (params/paper.yaml) from per-point costs measured now.

For each chapter it runs the library's own per-point measurement on a few points of a
paper-size model (the 784-1024x3-10 MLP trained briefly on the real t10k digits in
../shared, and the Table 3 CNN with seeded weights on CIFAR-shaped inputs), records the CPU
seconds of this process per point (``time.process_time``: robust to other jobs on the machine)
and prints

    hours = CPU-s per point x n_points (params/paper.yaml) x models / 3600 / workers

on 2 cores (2 workers, one thread each) and on N workers. MNIST chapters have 6 models (3
variants x 2 learning rates), CIFAR chapters 3. Per-point work follows the chapters: Fig. 3 is
``region_inradii`` (manifold, decision and adversarial inspheres, walks, PGD); Table 2 is
``class_regions_point`` (eq. 6 for 10 classes plus the margin LPs); Fig. 4/10 is
``region_angle_stats`` per point, as ``study.angle_tables`` runs it (plus, once per model,
``region_angle_image``, the downsampled image of the first point's region, and
``nonredundant_region``: redundancy removal of one region); the surrounding chapters are
``surrounding_point``; Fig. 9 (CIFAR inspheres) and Table 4 (CIFAR decision) are measured
like their MNIST counterparts, Table 4 as the chapter's whole per-point task
``class_regions_point`` (eq. 6 for 10 classes, the existence tests and the nearest optima).
The claims chapters reuse the cached measurements of these chapters and are not counted.
Model training is not counted. Every model counts once: with ``seeds`` of length k in the
profile the hours are k times these.

Usage::

    python benchmarks/paper_cost.py [--points 2] [--workers 16] [--skip-cnn]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

sys.path.insert(0, str(Path(__file__).parent))

import paper_regions  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from lrtools.analyses.angles import region_angle_image, region_angle_stats  # noqa: E402
from lrtools.analyses.boundary import class_means, region_inradii  # noqa: E402
from lrtools.analyses.class_regions import class_regions_point  # noqa: E402
from lrtools.analyses.nonredundant import nonredundant_region  # noqa: E402
from lrtools.analyses.surrounding import surrounding_point  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MODELS = {"mnist": 6, "cifar": 3}


def _cpu(fn, *args, **kwargs) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of ``fn(*args, **kwargs)``."""
    c0, w0 = time.process_time(), time.perf_counter()
    fn(*args, **kwargs)
    return time.process_time() - c0, time.perf_counter() - w0


def _per_point(fn, points) -> tuple[float, float]:
    cpu, wall = zip(*(_cpu(fn, x) for x in points), strict=True)
    return float(np.median(cpu)), float(np.median(wall))


def measure_mnist(n: int):
    """Yields ``(chapter, (CPU-s, wall-s) per point)`` as each is measured."""
    net = paper_regions.mnist_mlp("vanilla", trained=True)
    X_all, y_all = paper_regions.mnist_test_images()
    X, y = X_all[8000 : 8000 + n], y_all[8000 : 8000 + n]  # not used for training
    means = class_means(X_all, y_all, 10)  # Section 3.2: class means of the test set
    t = _cpu(region_inradii, net, X, y, means=means, n_jobs=1, progress=False)
    yield "mnist_inspheres", (t[0] / n, t[1] / n)
    yield "mnist_decision", _per_point(lambda x: class_regions_point(net, x), X)
    yield "mnist_angles", _per_point(lambda x: region_angle_stats(net, x), X)
    yield "mnist_angles_image", _per_point(lambda x: region_angle_image(net, x), X[:1])
    yield "mnist_surrounding", _per_point(lambda x: surrounding_point(net, x), X)
    yield "mnist_angles_nonredundant", _per_point(lambda x: nonredundant_region(x, net), X[:1])


def measure_cifar(n: int):
    """Yields ``(chapter, (CPU-s, wall-s) per point)`` as each is measured."""
    net = paper_regions.cifar_cnn("vanilla")
    X = paper_regions.cifar_points(n)
    y = np.argmax(net(torch.tensor(X, dtype=torch.float32)).detach().numpy(), axis=1)
    # decision targets need a pool of every class: stand-in class means (the cost is the same)
    means = paper_regions.cifar_points(10, seed=1)
    t = _cpu(region_inradii, net, X, y, means=means, n_jobs=1, progress=False)
    yield "cifar_inspheres", (t[0] / n, t[1] / n)
    yield "cifar_decision", _per_point(lambda x: class_regions_point(net, x), X[:1])
    yield "cifar_angles", _per_point(lambda x: region_angle_stats(net, x), X[:1])
    yield "cifar_angles_image", _per_point(lambda x: region_angle_image(net, x), X[:1])
    yield "cifar_surrounding", _per_point(lambda x: surrounding_point(net, x), X[:1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--points", type=int, default=2, help="MNIST points per chapter")
    p.add_argument("--workers", type=int, default=16)
    p.add_argument("--skip-cnn", action="store_true")
    args = p.parse_args()
    paper = yaml.safe_load((ROOT / "params" / "paper.yaml").read_text())
    profile = paper["notebooks"]
    print(f"uptime: {os.popen('uptime').read().strip()}")
    print(paper_regions.blas_line())
    print(f"{'chapter':26s} {'CPU-s/pt':>9s} {'wall-s/pt':>9s} {'points':>7s} {'models':>6s} "
          f"{'h on 2 cores':>12s} {'h on ' + str(args.workers):>9s}", flush=True)
    total2 = totalN = 0.0
    done = set()
    sources = [measure_mnist(args.points)]
    if not args.skip_cnn:
        sources.append(measure_cifar(1))
    with threadpool_limits(limits=1, user_api="blas"):
        for source in sources:
            for chapter, (cpu, wall) in source:
                # once per model: Fig. 4 without redundant rows (the notebook's `point`) and
                # the angle image of Fig. 4 / 10 (the first point)
                once = chapter.endswith(("nonredundant", "image"))
                n_points = 1 if once else int(profile[chapter]["n_points"])
                models = MODELS[chapter.split("_")[0]]
                cpu_h = cpu * n_points * models / 3600
                total2, totalN = total2 + cpu_h / 2, totalN + cpu_h / args.workers
                done.add(chapter)
                print(f"{chapter:26s} {cpu:9.2f} {wall:9.2f} {n_points:7d} {models:6d} "
                      f"{cpu_h / 2:12.1f} {cpu_h / args.workers:9.1f}", flush=True)
    print(f"{'total':26s} {'':9s} {'':9s} {'':7s} {'':6s} {total2:12.1f} {totalN:9.1f}")
    seeds = len(paper.get("shared", {}).get("seeds", [0]))
    if seeds > 1:
        print(f"{'total x ' + str(seeds) + ' seeds (profile)':26s} {'':9s} {'':9s} {'':7s} "
              f"{'':6s} {seeds * total2:12.1f} {seeds * totalN:9.1f}")
    missing = [c for c in profile if c not in done and "claims" not in c and c != "toy_spirals"]
    if missing:
        print(f"not measured: {', '.join(missing)}")
    print("claims chapters reuse the measurements above; training and toy_spirals not counted.")
    print(f"uptime: {os.popen('uptime').read().strip()}")


if __name__ == "__main__":
    main()
