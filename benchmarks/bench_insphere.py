"""Benchmark: exact insphere (eq. 5) with the numpy IPM versus cvxpy + Clarabel (and HiGHS).

MNIST-size regions (784-1024x3-10 MLP, trained briefly on real MNIST, variants vanilla / bn /
dropout in turn; 3,072 hyperplanes + 1,568 box rows) and one CIFAR-size CNN region (Table 3;
12,512 hyperplanes in 3,072 dimensions). For each region it prints the reference time, the IPM
time and their ratio measured in the same run, the radius agreement, the IPM's dual certificate,
and whether the activation pattern at the IPM centre equals that of x*.

Acceptance targets: IPM >= 10x faster than cvxpy + Clarabel on MNIST-size regions, radius equal
to 1e-6 relative; CNN insphere exact (certified) in under 2 minutes.

Usage::

    python benchmarks/bench_insphere.py [--n-regions 3] [--skip-reference] [--skip-highs]
                                        [--skip-cnn] [--cnn-reference] [--threads N]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

import paper_regions  # noqa: E402

from lrtools.exceptions import SolverError  # noqa: E402
from lrtools.regions import activation_patterns, linear_region  # noqa: E402
from lrtools.solvers.insphere import insphere_cvxpy, insphere_highs, insphere_ipm  # noqa: E402

VARIANTS = ("vanilla", "bn", "dropout")


def _rss_gb() -> float:
    """Peak resident set size of this process so far, in GB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _timed(fn, *args, **kwargs):
    """``(result or None, seconds, error message or "")``."""
    t0 = time.perf_counter()
    try:
        out = fn(*args, **kwargs)
    except SolverError as exc:
        return None, time.perf_counter() - t0, str(exc)
    return out, time.perf_counter() - t0, ""


def _pattern_ok(net, region, center) -> bool:
    """Whether the IPM centre has the activation pattern of x* (it is interior to the region)."""
    pat = activation_patterns(net, center.reshape(1, *region.input_shape))[0]
    return bool(np.array_equal(pat, region.pattern))


def _rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-300)


def bench_mnist(n_regions: int, reference: bool, highs: bool) -> None:
    print(f"\n== MNIST-size regions (784-1024x3-10 MLP), {n_regions} region(s) ==")
    header = (f"{'#':>2} {'variant':8} {'rows':>5} {'clarabel_s':>10} {'highs_s':>8} {'ipm_s':>7} "
              f"{'ratio':>6} {'iters':>5} {'radius':>11} {'rel_diff_clar':>13} "
              f"{'rel_diff_highs':>14} {'cert_gap':>9} {'pattern':>7}")
    print(header)
    models, points = {}, paper_regions.mnist_points(n_regions)
    rows = []
    for k in range(n_regions):
        variant = VARIANTS[k % len(VARIANTS)]
        if variant not in models:
            t0 = time.perf_counter()
            models[variant] = paper_regions.mnist_mlp(variant, trained=True)
            print(f"   (trained {variant} MLP in {time.perf_counter() - t0:.1f} s)")
        net = models[variant]
        region = linear_region(net, points[k])
        poly = region.polytope
        ipm, t_ipm, err_ipm = _timed(insphere_ipm, poly)
        clar, t_clar, err_clar = _timed(insphere_cvxpy, poly) if reference else (None, np.nan, "")
        hig, t_hig, err_hig = (_timed(insphere_highs, poly, method="highs-ipm") if highs
                               else (None, np.nan, ""))
        r = ipm.radius if ipm else np.nan
        row = {
            "ipm_ok": ipm is not None,
            "ratio": t_clar / t_ipm if clar and ipm else np.nan,
            "d_clar": _rel(r, clar.radius) if clar and ipm else np.nan,
            "d_highs": _rel(r, hig.radius) if hig and ipm else np.nan,
            "pattern": _pattern_ok(net, region, ipm.center) if ipm else False,
            "clar_ok": clar is not None,
        }
        rows.append(row)
        print(f"{k:>2} {variant:8} {poly.n_rows:>5} {t_clar:>10.2f} {t_hig:>8.2f} {t_ipm:>7.2f} "
              f"{row['ratio']:>6.1f} {ipm.info['iterations'] if ipm else -1:>5} {r:>11.6g} "
              f"{row['d_clar']:>13.2e} {row['d_highs']:>14.2e} "
              f"{ipm.info['certified_gap'] if ipm else np.nan:>9.1e} {str(row['pattern']):>7}")
        for name, err in (("ipm", err_ipm), ("clarabel", err_clar), ("highs", err_hig)):
            if err:
                print(f"   {name} failed: {err}")
    _summary(rows, reference)


def _summary(rows: list[dict], reference: bool) -> None:
    n = len(rows)
    ratios = np.array([r["ratio"] for r in rows])
    print(f"IPM certified (primal + dual check): {sum(r['ipm_ok'] for r in rows)}/{n}; "
          f"centre has x*'s activation pattern: {sum(r['pattern'] for r in rows)}/{n}")
    if reference:
        agree = sum(r["d_clar"] <= 1e-6 for r in rows)
        fast = sum(r["ratio"] >= 10 for r in rows)
        print(f"Clarabel solved: {sum(r['clar_ok'] for r in rows)}/{n}; radius within 1e-6 "
              f"relative: {agree}/{n}; IPM >= 10x faster: {fast}/{n}; ratio median "
              f"{np.nanmedian(ratios):.1f} (min {np.nanmin(ratios):.1f}, max "
              f"{np.nanmax(ratios):.1f})")


def bench_cnn(reference: bool) -> None:
    print("\n== CIFAR-size CNN region (Table 3, vanilla, seeded weights) ==")
    net = paper_regions.cifar_cnn("vanilla")
    x = paper_regions.cifar_points(1)[0]
    rss0 = _rss_gb()
    t0 = time.perf_counter()
    region = linear_region(net, x)
    t_build = time.perf_counter() - t0
    poly = region.polytope
    density = np.count_nonzero(poly.A) / poly.A.size
    print(f"region: {poly.n_rows} rows x {poly.dim} dims, {density:.1%} non-zero; build "
          f"{t_build:.1f} s; peak RSS {rss0:.2f} GB before, {_rss_gb():.2f} GB after the build")
    ipm, t_ipm, err = _timed(insphere_ipm, poly)
    if ipm is None:
        print(f"IPM FAILED after {t_ipm:.1f} s: {err}")
        return
    ok = _pattern_ok(net, region, ipm.center)
    print(f"IPM: {t_ipm:.1f} s, {ipm.info['iterations']} iterations, radius {ipm.radius:.9g}, "
          f"dual bound gap {ipm.info['certified_gap']:.1e}, dense rows {ipm.info['n_dense_rows']}, "
          f"centre pattern == x* pattern: {ok}; under 2 min: {t_ipm < 120}; "
          f"peak RSS {_rss_gb():.2f} GB")
    if reference:
        clar, t_clar, err = _timed(insphere_cvxpy, poly)
        if clar is None:
            print(f"Clarabel FAILED after {t_clar:.1f} s: {err}")
        else:
            print(f"Clarabel: {t_clar:.1f} s, radius {clar.radius:.9g}, relative difference "
                  f"{_rel(ipm.radius, clar.radius):.2e}, ratio {t_clar / t_ipm:.1f}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-regions", type=int, default=3, help="MNIST-size regions (default 3)")
    ap.add_argument("--skip-reference", action="store_true", help="skip cvxpy + Clarabel")
    ap.add_argument("--skip-highs", action="store_true", help="skip HiGHS (interior point)")
    ap.add_argument("--skip-cnn", action="store_true", help="skip the CIFAR-size CNN region")
    ap.add_argument("--cnn-reference", action="store_true", help="also time Clarabel on the CNN")
    ap.add_argument("--threads", type=int, default=None,
                    help="BLAS threads (threadpoolctl); default: leave the BLAS default")
    args = ap.parse_args(argv)
    limit = contextlib.nullcontext()
    if args.threads is not None:
        from threadpoolctl import threadpool_limits

        limit = threadpool_limits(args.threads)
    print(f"os.cpu_count() = {os.cpu_count()}; BLAS threads: {args.threads or 'default'}; "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}. Cores may be "
          "shared with other jobs: timings are noisy, ratios are measured in the same run.")
    with limit:
        if not args.skip_cnn:  # first, so that the peak RSS reflects the CNN region build
            bench_cnn(args.cnn_reference)
        bench_mnist(args.n_regions, not args.skip_reference, not args.skip_highs)


if __name__ == "__main__":
    main()
