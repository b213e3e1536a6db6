"""Benchmark: the most probable point of each class in MNIST-size regions (eq. 6, Section 3.4).

For each region (784-1024x3-10 MLP trained briefly on real MNIST, one per variant, built around
real MNIST test images), every class ``t`` is solved by the fast interior-point path
(:func:`lrtools.solvers.maxprob.max_log_prob_ipm`) and, for ``--ref-classes`` of them, by the
cvxpy + Clarabel reference (~35-70 s per class on 2 cores). Both answers are verified (feasible
point, certified gap). Printed per class: times, their ratio (same run), the two values and
their difference, certified gaps, the predicted class at x^t, distortion and active
constraints; then success counts, the paper's "number of classes" (Table 2) and eq. (8).

Timings on shared machines are noisy. Oversubscribed BLAS threads slow the fast path down a
lot (a 784 x 784 Cholesky went from 5 ms to 500 ms with 2 busy cores); ``--blas-threads 1``
limits OpenBLAS for both solvers (Clarabel's own threads are not affected).

Usage::

    python benchmarks/bench_maxprob.py                 # 3 regions, reference on 2 classes each
    python benchmarks/bench_maxprob.py --ref-classes 10 --blas-threads 1
    python benchmarks/bench_maxprob.py --margin-lp highs-ipm   # also the exact margin LP
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import warnings
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from paper_regions import mnist_mlp, mnist_points  # noqa: E402

from lrtools.exceptions import SolverError  # noqa: E402
from lrtools.regions import linear_region  # noqa: E402
from lrtools.solvers.maxprob import (  # noqa: E402
    class_region_exists,
    interior_point,
    max_log_prob_cvxpy,
    max_log_prob_ipm,
)


def _blas_limit(n: int | None):
    if n is None:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=n, user_api="blas")


def _regions(variants: list[str], n_points: int):
    """One trained network per variant, and the regions of the first ``n_points`` images."""
    X = mnist_points(n_points)
    for v in variants:
        t0 = time.perf_counter()
        net = mnist_mlp(v, trained=True)
        print(f"trained {v} MLP in {time.perf_counter() - t0:.1f} s", flush=True)
        for k in range(n_points):
            yield f"{v}/img{k}", net, linear_region(net, X[k])


def _solve(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs), None
    except SolverError as exc:
        return None, str(exc)


def _bench_region(name, region, args, totals):
    poly, W, c, xs = region.polytope, region.logit_W, region.logit_b, region.x_star
    pred = int(np.argmax(region.logits(xs)))
    x_in = interior_point(poly, xs)
    print(f"\n== {name}: {poly.n_rows} rows + {2 * poly.dim} box rows, x* predicted {pred}")
    print(
        "  t  it  fast_s  ref_s  ratio    log p (fast)    log p (ref)    diff     gap_f    gap_r"
        "  pred  dist   act(rows+box)  margin-LP"
    )
    reached, dists = 0, []
    for t in range(W.shape[0]):
        fast, err_f = _solve(max_log_prob_ipm, poly, W, c, t, x_star=xs, x_in=x_in)
        ref, err_r = (None, None)
        if t < args.ref_classes:
            ref, err_r = _solve(max_log_prob_cvxpy, poly, W, c, t, x_star=xs, x_in=x_in)
            totals["ref_tried"] += 1
            totals["ref_ok"] += ref is not None
            totals["ref_status"][ref.status if ref else "failed"] += 1
        totals["fast_tried"] += 1
        totals["fast_ok"] += fast is not None
        lp = ""
        if args.margin_lp:
            res, err = _solve(class_region_exists, poly, W, c, t, x_star=xs, method=args.margin_lp)
            lp = f"{res.status} {res.margin:+.3f} ({res.seconds:.0f}s)" if res else f"FAIL {err}"
        print(_row(t, fast, ref, err_r, lp), flush=True)
        for err, who in ((err_f, "fast"), (err_r, "ref")):
            if err:
                print(f"     {who} failed: {err}")
        if fast is not None:
            reached += fast.reaches_class
            dists.append(fast.distortion)
            if ref is not None:
                totals["ratios"].append(ref.seconds / fast.seconds)
                totals["diffs"].append(fast.log_prob - ref.log_prob)
            totals["fast_s"].append(fast.seconds)
    print(
        f"  classes reached (paper's criterion): {reached};  distortion (eq. 8): {max(dists):.2f}"
    )


def _row(t, fast, ref, err_r, lp):
    f = fast
    cols = [f"{t:3d}", f"{f.info['iterations']:3d}" if f else "  -"]
    cols.append(f"{f.seconds:7.2f}" if f else "   FAIL")
    cols.append(f"{ref.seconds:6.1f}" if ref else ("  FAIL" if err_r else "   ---"))
    cols.append(f"{ref.seconds / f.seconds:6.1f}" if (ref and f) else "   ---")
    cols.append(f"{f.log_prob:15.9f}" if f else " " * 15)
    cols.append(f"{ref.log_prob:15.9f}" if ref else " " * 15)
    cols.append(f"{f.log_prob - ref.log_prob:+8.1e}" if (ref and f) else " " * 8)
    cols.append(f"{f.gap:8.1e}" if f else " " * 8)
    cols.append(f"{ref.gap:8.1e}" if ref else " " * 8)
    if f:
        act = f"{f.n_active_rows:5d}+{f.n_active_box:<4d}"
        cols.append(f"{f.predicted:5d} {f.distortion:5.2f}  {act}")
    return " ".join(cols) + "     " + lp


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--variants", default="vanilla,bn,dropout")
    ap.add_argument("--points", type=int, default=1, help="regions (images) per variant")
    ap.add_argument("--ref-classes", type=int, default=2, help="classes timed with Clarabel")
    ap.add_argument("--blas-threads", type=int, default=None)
    ap.add_argument("--margin-lp", default=None, help="also run the margin LP with this method")
    args = ap.parse_args()
    print(f"os.cpu_count() = {os.cpu_count()}; BLAS threads limit = {args.blas_threads}")
    print("timings are wall-clock on a possibly shared machine: treat them as noisy")
    totals = {k: 0 for k in ("fast_tried", "fast_ok", "ref_tried", "ref_ok")}
    totals.update(ratios=[], diffs=[], fast_s=[], ref_status=Counter())
    warnings.filterwarnings("ignore", message="Solution may be inaccurate")  # status is counted
    with _blas_limit(args.blas_threads):
        for name, _, region in _regions(args.variants.split(","), args.points):
            _bench_region(name, region, args, totals)
    print("\n== summary")
    print(
        f"fast path: {totals['fast_ok']}/{totals['fast_tried']} verified; median "
        f"{np.median(totals['fast_s']):.2f} s per class"
    )
    print(
        f"reference: {totals['ref_ok']}/{totals['ref_tried']} verified; "
        f"statuses {dict(totals['ref_status'])}"
    )
    if totals["ratios"]:
        r, d = np.array(totals["ratios"]), np.abs(totals["diffs"])
        print(
            f"speed-up (reference / fast, same run): median {np.median(r):.1f}x, "
            f"min {r.min():.1f}x over {r.size} classes"
        )
        print(f"|log p fast - log p ref|: max {d.max():.1e}")


if __name__ == "__main__":
    main()
