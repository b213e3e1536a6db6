"""Benchmark: the nearest optimum of eq. (6) (lrtools.solvers.nearest) at paper size.

For each region (a 784-1024x3-10 MLP trained briefly on real MNIST, and the Table 3 CNN with
seeded Xavier weights, 12,512 hyperplanes in 3,072 dimensions) and each class it solves eq. (6)
with :func:`lrtools.solvers.maxprob.max_log_prob`, then the nearest optimum, and prints: the
solver's distortion ``||x^t - x*||``, the nearest-optimum distance, its certified lower bound,
iterations and seconds; with ``--reference`` also cvxpy + Clarabel's distance and time for the
same program and the ratio of times. It ends with the flop floor of one iteration (the
``A^T D A`` product and the ``d x d`` Cholesky) at the measured BLAS rate.

Usage::

    python benchmarks/bench_nearest.py [--classes 10] [--skip-cnn] [--reference] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

import paper_regions  # noqa: E402

from lrtools.regions import linear_region  # noqa: E402
from lrtools.solvers.maxprob import interior_point, max_log_prob  # noqa: E402
from lrtools.solvers.nearest import nearest_optimum, nearest_optimum_cvxpy  # noqa: E402


def _gflops() -> float:
    """Measured dense GEMM rate (GFLOP/s) on this machine."""
    a = np.random.default_rng(0).standard_normal((1500, 1500))
    a @ a
    t0 = time.perf_counter()
    a @ a
    return 2 * 1500**3 / (time.perf_counter() - t0) / 1e9


def _run(name: str, region, classes: int, reference: bool) -> None:
    poly, W, c, xs = region.polytope, region.logit_W, region.logit_b, region.x_star
    nnz = np.count_nonzero(poly.A, axis=1)
    dense_rows = int(np.sum(nnz > 0.05 * poly.dim))
    print(f"\n== {name}: {poly.n_rows} rows ({dense_rows} dense) x {poly.dim} dims")
    x_in = interior_point(poly, xs)
    times = []
    for t in range(classes):
        t0 = time.perf_counter()
        opt = max_log_prob(poly, W, c, t, x_star=xs, x_in=x_in)
        t_opt = time.perf_counter() - t0
        t0 = time.perf_counter()
        near = nearest_optimum(poly, W, c, t, xs, opt.x, opt.log_prob, opt.gap, x_in=x_in)
        t_near = time.perf_counter() - t0
        times.append(t_near)
        line = (f"class {t}: eq.6 {t_opt:6.1f}s  ||x^t-x*|| {opt.distortion:8.4f}  nearest "
                f"{near.distance:8.4f} (lower bound {near.lower_bound:8.4f}, "
                f"{near.iterations} it, {t_near:6.1f}s)  ||x^t - nearest|| "
                f"{np.linalg.norm(opt.x - near.x):7.3f}")
        if reference:
            t0 = time.perf_counter()
            try:
                _, dref = nearest_optimum_cvxpy(poly, W, c, t, xs, opt.x, opt.log_prob, opt.gap)
                t_ref = time.perf_counter() - t0
                line += f"  clarabel {dref:8.4f} in {t_ref:6.1f}s (ratio {t_ref / t_near:.1f}x)"
            except Exception as exc:  # the reference may fail; say so
                line += f"  clarabel failed after {time.perf_counter() - t0:.1f}s: {exc}"
        print(line, flush=True)
    m, d = dense_rows, poly.dim
    floor = (m * d * d + d**3 / 3) / (_gflops() * 1e9)
    print(f"{name}: nearest optimum median {np.median(times):.2f}s per class; one iteration's "
          f"flop floor (syrk + Cholesky) {floor * 1e3:.0f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--skip-cnn", action="store_true")
    ap.add_argument("--skip-mlp", action="store_true")
    ap.add_argument("--reference", action="store_true", help="also cvxpy + Clarabel (slow)")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    print("load:", os.getloadavg())
    if not args.skip_mlp:
        net = paper_regions.mnist_mlp("vanilla")
        _run("MNIST MLP (trained 2 epochs)", linear_region(net, paper_regions.mnist_points(1)[0]),
             args.classes, args.reference)
    if not args.skip_cnn:
        net = paper_regions.cifar_cnn("vanilla")
        _run("CIFAR CNN (Xavier)", linear_region(net, paper_regions.cifar_points(1)[0]),
             args.classes, args.reference)
    print("load:", os.getloadavg())


if __name__ == "__main__":
    main()
