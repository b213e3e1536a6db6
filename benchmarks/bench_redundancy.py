"""Benchmark: redundancy removal (eq. 18, Appendix C) on an MNIST-size region.

One region of the paper's 784-1024x3-10 MLP, trained briefly on real MNIST
(``paper_regions.mnist_mlp(variant, trained=True)``): 3,072 hyperplanes + 1,568 box rows.

1. The output-sensitive method :func:`lrtools.solvers.redundancy.redundant_rows` removes every
   redundant hyperplane (sequential removal, natural order); printed: time per phase, counts of
   redundant rows by layer and by certificate kind, LP count, and an independent re-check of all
   certificates (:func:`verify_redundancy`).
2. The paper's method (one cold LP per row, :func:`redundant_rows_naive`) is timed on a random
   sample of rows and extrapolated to the 3,072 hyperplane rows and to all 4,640 rows the paper
   tests. Each sampled row's LP is exactly the one sequential removal solves for it
   (``removed=`` the rows the fast run removed before it), so the naive answers cross-check the
   fast answer row for row. A few rows the fast method found redundant are cross-checked too
   (not used for the timing).

Target: the fast method under 5 minutes on 2 cores.

Usage::

    python benchmarks/bench_redundancy.py [--variant vanilla|bn|dropout] [--n-sample 6]
        [--n-redundant-check 3] [--naive-method highs-ipm] [--threads 1] [--seed 0]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

import paper_regions  # noqa: E402

from lrtools.regions import linear_region  # noqa: E402
from lrtools.solvers.redundancy import (  # noqa: E402
    redundant_rows,
    redundant_rows_naive,
    verify_redundancy,
)


def _fast(poly, region):
    t0 = time.perf_counter()
    res = redundant_rows(poly, on_unverified="record")
    total = time.perf_counter() - t0
    print(f"fast method: {total:.1f} s  (phases: "
          + ", ".join(f"{k} {v:.1f} s" for k, v in res.seconds.items() if k != "total") + ")")
    info = {k: v for k, v in res.info.items() if k.startswith("n_")}
    print(f"  redundant rows: {res.n_redundant} of {poly.n_rows}; LPs solved: {res.n_lp}; "
          f"Chebyshev radius {res.info['radius']:.4g}")
    print(f"  phase counts: {info}")
    print(f"  certificate kinds: {res.counts}")
    for layer in range(region.n_layers):
        on = region.layer == layer
        kinds = {str(k): int(n) for k, n in zip(*np.unique(res.kind[on & res.redundant],
                                                           return_counts=True), strict=True)}
        print(f"  layer {layer + 1}: {int(res.redundant[on].sum()):4d} redundant of "
              f"{int(on.sum())}  {kinds}")
    t0 = time.perf_counter()
    checked = verify_redundancy(poly, res)
    print(f"  verify_redundancy: {checked} ({time.perf_counter() - t0:.1f} s)")
    return res, total


def _naive_rows(poly, fast, rows, method):
    """Naive LP for each row with exactly the constraint set sequential removal uses for it."""
    m = poly.n_rows
    out = []
    for k in rows:
        removed = fast.redundant & (np.arange(m) < k)
        t0 = time.perf_counter()
        r = redundant_rows_naive(poly, rows=[k], removed=removed, method=method,
                                 on_unverified="record")
        sec = time.perf_counter() - t0
        out.append((int(k), bool(r.redundant[k]), str(r.kind[k]), float(r.bound[k]), sec))
        says = {True: "redundant", False: "kept"}
        print(f"    row {k:4d}: naive {says[bool(r.redundant[k])]:9s} ({r.kind[k]}, "
              f"y = {r.bound[k]:+.4g})  fast {says[bool(fast.redundant[k])]:9s} "
              f"({fast.kind[k]})  {sec:.1f} s", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variant", default="vanilla", choices=("vanilla", "bn", "dropout"))
    ap.add_argument("--n-sample", type=int, default=6, help="random rows timed with naive LPs")
    ap.add_argument("--n-redundant-check", type=int, default=3,
                    help="extra rows found redundant by the fast method, cross-checked naively")
    ap.add_argument("--naive-method", default="highs-ipm",
                    choices=("highs", "highs-ipm", "highs-ds", "clarabel", "ipm"))
    ap.add_argument("--threads", type=int, default=1,
                    help="BLAS threads (threadpoolctl); 1 avoids oversubscription on shared cores")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    limit = contextlib.nullcontext()
    if args.threads:
        from threadpoolctl import threadpool_limits

        limit = threadpool_limits(args.threads)
    print(f"os.cpu_count() = {os.cpu_count()}; BLAS threads: {args.threads or 'default'}; "
          f"load average {os.getloadavg()[0]:.1f} (timings are noisy on shared cores)")
    with limit:
        t0 = time.perf_counter()
        net = paper_regions.mnist_mlp(args.variant, trained=True)
        x = paper_regions.mnist_points(1)[0]
        region = linear_region(net, x)
        poly = region.polytope
        print(f"MNIST MLP ({args.variant}, trained): region with {poly.n_rows} hyperplanes + "
              f"{2 * poly.dim} box rows in {poly.dim} dims (built in "
              f"{time.perf_counter() - t0:.1f} s)")
        fast, t_fast = _fast(poly, region)

        rng = np.random.default_rng(args.seed)
        sample = np.sort(rng.choice(poly.n_rows, args.n_sample, replace=False))
        print(f"naive method ({args.naive_method}, one cold LP per row) on {sample.size} "
              "random rows:")
        timed = _naive_rows(poly, fast, sample, args.naive_method)
        red = np.setdiff1d(np.flatnonzero(fast.redundant), sample)
        extra = rng.choice(red, min(args.n_redundant_check, red.size), replace=False)
        checks = timed
        if extra.size:
            print(f"  cross-check of {extra.size} rows the fast method found redundant "
                  "(not timed into the extrapolation):")
            checks = timed + _naive_rows(poly, fast, np.sort(extra), args.naive_method)

    per_row = float(np.mean([t[4] for t in timed]))
    n_box = 2 * poly.dim
    agree = sum(t[1] == fast.redundant[t[0]] for t in checks)
    unverified = sum(t[2] == "unverified" for t in checks)
    print("summary")
    print(f"  fast method (all {poly.n_rows} rows):            {t_fast:8.1f} s")
    print(f"  naive, mean per row:                       {per_row:8.1f} s")
    print(f"  naive extrapolated to {poly.n_rows} rows:          {per_row * poly.n_rows:8.0f} s "
          f"= {per_row * poly.n_rows / 3600:.2f} h;  ratio naive / fast = "
          f"{per_row * poly.n_rows / t_fast:.0f}x")
    t_all = per_row * (poly.n_rows + n_box)
    print(f"  naive extrapolated to {poly.n_rows + n_box} rows (with box): "
          f"{t_all:8.0f} s = {t_all / 3600:.2f} h")
    print(f"  agreement fast vs naive on checked rows:  {agree}/{len(checks)} "
          f"(naive unverified: {unverified})")
    print(f"  fast rows without exact certificate:       "
          f"{int(np.isin(fast.kind, ('lp', 'unverified')).sum())}")


if __name__ == "__main__":
    main()
