"""Benchmark of the solver core (issue 9) on paper-size regions, with its references and limits.

For each program -- the insphere LP (eq. 5), the margin LP (Section 3.4), eq. 6 (max log p_t)
and redundancy removal (eq. 18) -- on a paper-size MNIST region (784-1024x3-10 MLP trained
briefly on the real t10k digits in ../shared: 3,072 hyperplanes + 1,568 box rows, d = 784) and,
with ``--cnn``, a CIFAR-size Table 3 CNN region (12,512 hyperplanes, d = 3,072), it prints in
one run:

* time and iterations of the fast path, and flops per iteration of its normal matrix;
* the *kernel limit*: iterations x (time of one dsyrk of the rows used + one dpotrf), with
  the dsyrk/dpotrf rates of the same shapes measured in the same run; the achieved fraction
  is ``limit / time``;
* the ratios to cvxpy + Clarabel and to HiGHS-IPM on the same problem, and the agreement of the
  answers;
* with ``--alloc``, the largest fresh allocation of one iteration (tracemalloc peak within the
  iteration) as a share of the normal matrix's size;
* the CPU seconds of whole Table 2 points (eq. 6 for 10 classes and the existence tests, then
  the nearest optima), median over ``--table2-points`` real digits;
* with ``--device cuda`` (or ``cpu``), the same programs with the normal matrix and its
  Cholesky factor on that torch device (a missing CUDA device is reported, not guessed).

Usage::

    python benchmarks/bench_engine.py [--n-regions 3] [--classes 10] [--ref-regions 1]
        [--cnn] [--alloc] [--device cuda] [--skip-reference] [--skip-redundancy] [--threads 1]
        [--table2-points 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

import paper_regions  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from lrtools.exceptions import SolverError  # noqa: E402
from lrtools.regions import activation_patterns, linear_region  # noqa: E402
from lrtools.solvers import maxprob as mp  # noqa: E402
from lrtools.solvers.insphere import insphere_cvxpy, insphere_highs, insphere_ipm  # noqa: E402
from lrtools.solvers.ipm import lp_ipm  # noqa: E402
from lrtools.solvers.redundancy import redundant_rows  # noqa: E402


def _median_time(fn, reps: int = 5) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def kernel_rates(rows: int, n: int) -> dict:
    """Seconds and GFLOP/s of dsyrk (rows x n) and dpotrf (n) on this machine, now."""
    from scipy.linalg import blas, lapack

    rng = np.random.default_rng(0)
    B = rng.standard_normal((rows, n))
    out = np.zeros((n, n), order="F")
    t_syrk = _median_time(lambda: blas.dsyrk(1.0, B.T, beta=0.0, c=out, trans=0, lower=0,
                                             overwrite_c=1))
    K = np.asfortranarray(B.T @ B + n * np.eye(n))
    work = np.empty_like(K)

    def potrf():
        np.copyto(work, K)
        lapack.dpotrf(work, lower=0, overwrite_a=1)

    t_potrf = _median_time(potrf)
    return {"rows": rows, "n": n, "syrk_s": t_syrk, "potrf_s": t_potrf,
            "syrk_gflops": rows * n * n / t_syrk / 1e9,
            "potrf_gflops": n**3 / 3 / t_potrf / 1e9}


def _limit(iters: int, rows_used: float, rates: dict) -> float:
    """Kernel-rate limit of ``iters`` iterations with ``rows_used`` rows in each dsyrk."""
    return iters * (rates["syrk_s"] * rows_used / rates["rows"] + rates["potrf_s"])


def _timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    try:
        out = fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - a benchmark reports every failure and goes on
        return None, time.perf_counter() - t0, f"{type(exc).__name__}: {str(exc)[:160]}"
    return out, time.perf_counter() - t0, ""


def _ratio(ref_s: float | None, fast_s: float) -> str:
    return f"{ref_s / fast_s:6.1f}x" if ref_s else "   n/a"


def _max_alloc_per_iteration(run) -> float:
    """Largest tracemalloc peak within one iteration, in bytes, of ``run(callback)``."""
    peaks = []
    tracemalloc.start()

    def mark(*_):
        cur, peak = tracemalloc.get_traced_memory()
        peaks.append(peak - mark.base)
        tracemalloc.reset_peak()
        mark.base = tracemalloc.get_traced_memory()[0]
        return False

    mark.base = tracemalloc.get_traced_memory()[0]
    try:
        run(mark)
    finally:
        tracemalloc.stop()
    return max(peaks[1:-1] or [0.0])  # the first holds the setup, the last the verification


# ------------------------------------------------------------------------------ programs


def bench_insphere(name, net, regions, args, rates, ref_regions):
    print(f"\n== insphere (eq. 5), {name}: {len(regions)} regions ==")
    fast_times = []
    for i, region in enumerate(regions):
        poly = region.polytope
        res, t, err = _timed(insphere_ipm, poly, threads=args.threads, device=args.device)
        if res is None:
            print(f"  region {i}: FAILED {err}")
            continue
        fast_times.append(t)
        it = res.info["iterations"]
        rows_used = min(res.info.get("n_keep") or np.inf, res.info["n_dense_rows"])
        lim = _limit(it, rows_used, rates)
        pat = activation_patterns(net, res.center.reshape(1, *region.input_shape))[0]
        gflop = (rows_used * rates["n"] ** 2 + rates["n"] ** 3 / 3) / 1e9
        same = bool(np.array_equal(pat, region.pattern))
        print(f"  region {i}: ipm {t:6.2f} s, {it} it, {rows_used} rows/syrk, {gflop:.2f} "
              f"GFLOP/it, kernel limit {lim:5.2f} s ({lim / t:4.0%} of it), r = "
              f"{res.radius:.10g}, certified gap {res.info['certified_gap']:.1e}, centre "
              f"pattern = x*'s: {same}")
        if i < ref_regions and not args.skip_reference:
            for label, fn in (("clarabel", insphere_cvxpy), ("highs-ipm", insphere_highs)):
                ref, tr, err = _timed(fn, poly)
                if ref is None:
                    print(f"    {label:9s}: FAILED after {tr:.1f} s: {err}")
                    continue
                rel = abs(ref.radius - res.radius) / res.radius
                print(f"    {label:9s}: {tr:7.2f} s  ratio {_ratio(tr, t)}  radius rel diff "
                      f"{rel:.1e}")
    if fast_times:
        print(f"  median ipm time {statistics.median(fast_times):.2f} s")
    if args.alloc and regions:
        from lrtools.solvers.insphere import _insphere_lp

        c, G, h, _, _ = _insphere_lp(regions[0].polytope, 0.5)
        n = G.shape[1]
        peak = _max_alloc_per_iteration(
            lambda cb: lp_ipm(c, G, h, threads=args.threads, stop=cb, max_iter=30))
        print(f"  largest fresh allocation in one iteration: {peak / 2**20:.1f} MiB = "
              f"{peak / (8 * n * n):.1%} of the {n} x {n} normal matrix")


def bench_eq6(name, regions, args, rates):
    region = regions[0]
    poly, W, c = region.polytope, region.logit_W, region.logit_b
    print(f"\n== eq. 6 (max log p_t), {name}: {args.classes} classes of region 0 ==")
    x_in, t_in, err = _timed(mp.interior_point, poly, region.x_star)
    print(f"  interior point: {t_in:.2f} s {err}")
    total, out = 0.0, []
    for t in range(args.classes):
        res, dt, err = _timed(mp.max_log_prob_ipm, poly, W, c, t, x_star=region.x_star,
                              x_in=x_in, device=args.device)
        total += dt
        if res is None:
            print(f"  class {t}: FAILED {err}")
            continue
        it = res.info["iterations"]
        lim = _limit(it, min(res.info["n_keep"], rates["rows"]), rates)
        print(f"  class {t}: ipm {dt:6.2f} s, {it} it ({res.info['n_exact_newton']} exact redo), "
              f"kernel limit {lim:5.2f} s ({lim / dt:4.0%}), log p = {res.log_prob:.10g}, "
              f"gap {res.gap:.1e}, min slack {res.min_slack:.1e}")
        out.append(res)
    print(f"  all classes: {total:.1f} s")
    if not args.skip_reference and out:
        t = out[0].target
        ref, tr, err = _timed(mp.max_log_prob_cvxpy, poly, W, c, t, x_star=region.x_star,
                              x_in=x_in)
        if ref is None:
            print(f"    clarabel class {t}: FAILED after {tr:.1f} s: {err}")
        else:
            print(f"    clarabel class {t}: {tr:7.2f} s  ratio {_ratio(tr, out[0].seconds)}  "
                  f"|log p diff| {abs(ref.log_prob - out[0].log_prob):.1e} (gaps {ref.gap:.1e})")
    if args.alloc:
        n = poly.dim
        seen = []
        orig = mp._best_certificate

        def wrapped(*a, **k):
            seen.append(None)
            if wrapped.cb is not None:
                wrapped.cb()
            return orig(*a, **k)

        wrapped.cb = None
        ratios = mp._POLISH_RATIOS
        mp._best_certificate = wrapped

        def run(cb):
            wrapped.cb = cb
            try:  # without polishing the certificate may miss its target: allocations count
                mp.max_log_prob_ipm(poly, W, c, 0, x_star=region.x_star, x_in=x_in)
            except SolverError:
                pass

        try:
            for label in ("with certificate polishing", "Newton step only (no polishing)"):
                peak = _max_alloc_per_iteration(run)
                print(f"  largest fresh allocation in one iteration, {label}: "
                      f"{peak / 2**20:.1f} MiB = {peak / (8 * n * n):.1%} of the {n} x {n} "
                      "Newton matrix")
                mp._POLISH_RATIOS = ()
        finally:
            mp._best_certificate, mp._POLISH_RATIOS = orig, ratios
    return out


def bench_margin(name, regions, args):
    region = regions[0]
    poly, W, c = region.polytope, region.logit_W, region.logit_b
    pred = int(np.argmax(W @ region.x_star + c))
    t = (pred + 1) % W.shape[0]
    print(f"\n== margin LP (Section 3.4), {name}: class {t} of region 0 ==")
    rows = [("ipm", dict(method="ipm")), ("ipm sign-only", dict(method="ipm", sign_only=True))]
    if not args.skip_reference:
        rows.append(("highs-ipm", dict(method="highs-ipm")))
    base = None
    for label, kw in rows:
        res, dt, err = _timed(mp.class_region_exists, poly, W, c, t, x_star=region.x_star, **kw)
        if res is None:
            print(f"  {label:13s}: FAILED after {dt:.1f} s: {err}")
            continue
        base = base or dt
        print(f"  {label:13s}: {dt:7.2f} s  (x{dt / base:5.1f} of ipm)  {res.status}, margin "
              f"{res.margin:.6g}, upper {res.margin_upper:.6g}")


def bench_redundancy(name, regions):
    region = regions[0]
    print(f"\n== redundancy (eq. 18), {name}: region 0 ==")
    res, dt, err = _timed(redundant_rows, region.polytope)
    if res is None:
        print(f"  FAILED after {dt:.1f} s: {err}")
        return
    print(f"  fast: {dt:.1f} s, {res.n_redundant} redundant of {region.polytope.n_rows}, "
          f"{res.n_lp} LPs, phases " + ", ".join(f"{k} {v:.1f}s" for k, v in res.seconds.items()))
    print(f"  certificate kinds: {res.counts}")


def bench_table2(net, args) -> None:
    """CPU seconds of whole Table 2 points (``class_regions_point``), parts and finish apart.

    The parts are eq. 6 for the 10 classes plus their existence tests (witness, eq. 6 dual
    bound, eq. 6 value bound, else the sign-only margin LP), each part rebuilding the region;
    the finish is the nearest optima of :mod:`lrtools.solvers.nearest` and the summary.
    """
    from collections import Counter

    from lrtools.analyses.class_regions import class_regions_point

    split = class_regions_point.split
    pts = paper_regions.mnist_points(args.table2_points + 1)[1:]
    print(f"\n== Table 2 points (class_regions_point), MNIST MLP: t10k "
          f"8001-{8000 + len(pts)}, CPU seconds of this process ==")
    parts_s, totals = [], []
    for k, x in enumerate(pts, start=1):
        c0 = time.process_time()
        values = [split.part(net, q) for q in split.parts(net, x)]
        c1 = time.process_time()
        out = split.finish(net, x, values)
        c2 = time.process_time()
        by = Counter(out["per_class"]["exists_by"])
        parts_s.append(c1 - c0)
        totals.append(c2 - c0)
        print(f"  point {8000 + k}: eq. 6 + existence {c1 - c0:5.1f} s (eq. 6 alone "
              f"{out['per_class']['seconds'].sum():4.1f} s), nearest optima + summary "
              f"{c2 - c1:5.1f} s, whole point {c2 - c0:5.1f} s; existence by {dict(by)}; "
              f"eq. 6 fallbacks {out['fallbacks']}", flush=True)
    print(f"  median over {len(pts)} points: eq. 6 + existence {statistics.median(parts_s):.1f} "
          f"CPU-s, whole point {statistics.median(totals):.1f} CPU-s")


# ------------------------------------------------------------------------------ main


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n-regions", type=int, default=3)
    p.add_argument("--ref-regions", type=int, default=1, help="regions also solved by references")
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default=None, help="None (numpy), cpu or cuda (torch)")
    p.add_argument("--cnn", action="store_true", help="also a CIFAR-size Table 3 CNN region")
    p.add_argument("--skip-mnist", action="store_true", help="only the CNN region (with --cnn)")
    p.add_argument("--alloc", action="store_true", help="measure allocations per iteration")
    p.add_argument("--skip-reference", action="store_true")
    p.add_argument("--skip-redundancy", action="store_true")
    p.add_argument("--table2-points", type=int, default=5, metavar="N",
                   help="whole Table 2 points timed (t10k 8001..8000+N; 0: none)")
    args = p.parse_args()
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            print("--device cuda: no CUDA device visible to torch on this machine; nothing run.")
            return
    print(f"uptime: {os.popen('uptime').read().strip()}")
    print(paper_regions.blas_line())
    print(f"threads per solve: {args.threads}; device: {args.device or 'numpy'}")
    with threadpool_limits(limits=args.threads, user_api="blas"):
        if not args.skip_mnist:
            bench_mnist(args)
        if args.cnn:
            bench_cnn(args)


def bench_mnist(args) -> None:
    """Every program on trained paper-size MNIST regions."""
    t0 = time.perf_counter()
    net = paper_regions.mnist_mlp("vanilla", trained=True)
    regions = [linear_region(net, x) for x in paper_regions.mnist_points(args.n_regions)]
    print(f"MNIST model trained and {len(regions)} regions built in "
          f"{time.perf_counter() - t0:.1f} s ({regions[0].polytope.n_rows} rows, d = 784)")
    rates = kernel_rates(3072, 785)
    rates_eq6 = kernel_rates(3072, 784)
    print(f"kernel rates now: dsyrk 3072 x 785: {rates['syrk_s'] * 1e3:.1f} ms "
          f"({rates['syrk_gflops']:.1f} GFLOP/s); dpotrf 785: {rates['potrf_s'] * 1e3:.1f} ms "
          f"({rates['potrf_gflops']:.1f} GFLOP/s)")
    bench_insphere("MNIST MLP", net, regions, args, rates, args.ref_regions)
    bench_margin("MNIST MLP", regions, args)
    bench_eq6("MNIST MLP", regions, args, rates_eq6)
    if not args.skip_redundancy:
        bench_redundancy("MNIST MLP", regions)
    if args.table2_points:
        bench_table2(net, args)


def bench_cnn(args) -> None:
    """The insphere and one class of eq. 6 on a CIFAR-size Table 3 CNN region."""
    cnn = paper_regions.cifar_cnn("vanilla")
    creg = [linear_region(cnn, x) for x in paper_regions.cifar_points(1)]
    A = creg[0].polytope.A
    nnz = np.diff(A.tocsr().indptr) if hasattr(A, "tocsr") else (A != 0).sum(axis=1)
    n_dense = int(np.sum(nnz > 0.05 * A.shape[1]))
    crates = kernel_rates(max(n_dense, 1), 3073)
    print(f"\nCNN region: {creg[0].polytope.n_rows} rows ({n_dense} dense), d = 3072; "
          f"dsyrk {n_dense} x 3073: {crates['syrk_s']:.2f} s, dpotrf 3073: "
          f"{crates['potrf_s']:.2f} s")
    bench_insphere("CIFAR CNN", cnn, creg, args, crates, args.ref_regions)
    bench_eq6("CIFAR CNN", creg, argparse.Namespace(**{**vars(args), "classes": 1}), crates)


if __name__ == "__main__":
    main()
