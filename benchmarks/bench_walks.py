"""Benchmark of exact walks (Section 3.5, Fig. 6) and first class changes (Section 3.2, Fig. 3).

MNIST MLP (784-1024x3-10, trained briefly on real MNIST): per test point, 100 unit directions in
the null space of the logit Jacobian (eq. 10), walks of length eps = 0.2 (eq. 11), unique regions
and the cosine similarities of their decision directions (eq. 13). CIFAR CNN (Table 3): the same
with 20 directions. Then the exact first class change from test points towards the mean image of
another class. Wall-clock timings on a shared machine are noisy.

Run: ``.venv/bin/python benchmarks/bench_walks.py [--points 3] [--threads 1]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))

import paper_regions as pr  # noqa: E402

from lrtools.regions import logit_jacobian, null_space_directions  # noqa: E402
from lrtools.walks import (  # noqa: E402
    count_unique_regions,
    first_class_changes,
    surrounding_regions,
    walk,
)


def _timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def surrounding(model, points, n_dirs: int, eps: float, label: str) -> None:
    """Walk ``n_dirs`` null-space directions from each point; print counts and timings."""
    rng = np.random.default_rng(0)
    print(f"\n{label}: {n_dirs} null-space directions, eps={eps}")
    print(" point  t_jac  t_walk  t_g    pieces/dir(mean,max)  unique  rho(min,median)")
    for i, x in enumerate(points):
        J, t_jac = _timed(logit_jacobian, model, x)
        E = null_space_directions(J, n_dirs, rng)
        walks, t_walk = _timed(walk, model, x, E.reshape(n_dirs, *x.shape), eps)
        sr, t_g = _timed(surrounding_regions, model, walks)
        pieces = np.array([w.n_pieces for w in walks])
        assert count_unique_regions(walks) == sr.n_regions
        rho = sr.rho_surrounding
        rho_txt = f"{np.nanmin(rho):.3f}, {np.nanmedian(rho):.3f}" if rho.size else "-"
        print(
            f" {i:5d}  {t_jac:5.2f}  {t_walk:6.2f}  {t_g:5.2f}  "
            f"{pieces.mean():8.1f}, {pieces.max():4d}          {sr.n_regions:6d}  {rho_txt}"
        )


def class_changes(model, n: int) -> None:
    """Exact first class change from MNIST test points towards another class's mean image."""
    X, y = pr.mnist_test_images()
    means = np.stack([X[:8000][y[:8000] == c].mean(0) for c in range(10)])
    starts = pr.mnist_points(n)
    labels = y[8000 : 8000 + n]
    targets = means[(labels + 1) % 10]
    out, t = _timed(first_class_changes, model, starts, targets)
    alphas = np.array([c.alpha for c in out])
    pieces = np.array([c.n_pieces for c in out])
    print(f"\nfirst_class_changes (MNIST MLP, {n} test points -> mean of the next class, batched)")
    n_changed = sum(c.changed for c in out)
    print(f"  total {t:.2f} s = {t / n * 1e3:.0f} ms/point; changed {n_changed}/{n}")
    print(f"  alpha* median {np.median(alphas):.4f}, pieces walked median {np.median(pieces):.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=3, help="test points per model")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads; on an oversubscribed machine 1 is far faster (the walk "
        "is many small elementwise ops, which stall when OpenMP threads compete for cores)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"os.cpu_count() = {os.cpu_count()}, torch threads = {torch.get_num_threads()}")
    print("(shared machine: timings are noisy)")
    for variant in ("vanilla", "bn"):
        model, t_train = _timed(pr.mnist_mlp, variant, trained=True)
        print(f"\nMNIST MLP ({variant}) trained in {t_train:.1f} s")
        surrounding(model, pr.mnist_points(args.points), 100, 0.2, f"MNIST MLP {variant}")
        if variant == "vanilla":
            class_changes(model, 20)
    cnn = pr.cifar_cnn("vanilla")
    surrounding(cnn, pr.cifar_points(args.points), 20, 0.2, "CIFAR CNN vanilla (seeded)")


if __name__ == "__main__":
    main()
