"""Paper-size regions for the benchmarks (issue 3): MNIST MLP and CIFAR CNN.

``mnist_mlp(variant, trained=...)`` builds the 784-1024-1024-1024-10 MLP of Section 3.1; with
``trained=True`` it is trained for a few epochs on part of the real MNIST test set in
``../shared/data/mnist-t10k`` (the training set is not available on these machines), so its
regions have the structure of a trained network. ``cifar_cnn(variant)`` is the Table 3 CNN,
seeded (Xavier) weights. ``region_points(...)`` returns points to build regions around.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_info

from lrtools.datasets.idx import read_idx
from lrtools.models import build_cnn, build_mlp

SHARED_MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist-t10k"


def blas_line() -> str:
    """The BLAS library and kernels this process uses, for the benchmarks' headers.

    The kernels set the speed of every solver here (the normal matrix's dsyrk and dpotrf):
    OpenBLAS picks them from the CPU unless ``OPENBLAS_CORETYPE`` names them, so a benchmark
    states which ones it ran.
    """
    libs = [f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture', '?')} kernels)"
            for i in threadpool_info() if i.get("user_api") == "blas"]
    pinned = os.environ.get("OPENBLAS_CORETYPE")
    return (f"BLAS: {', '.join(libs) or 'none found'}; OPENBLAS_CORETYPE="
            f"{pinned if pinned is not None else '(unset: chosen from the CPU)'}")


def mnist_test_images(n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Real MNIST test images as (n, 784) float64 in [-1, 1] and labels, from ../shared."""
    X = read_idx(SHARED_MNIST / "t10k-images-idx3-ubyte.gz").reshape(-1, 784)
    y = read_idx(SHARED_MNIST / "t10k-labels-idx1-ubyte.gz").astype(np.int64)
    X = X.astype(np.float64) / 127.5 - 1.0
    return (X[:n], y[:n]) if n else (X, y)


def mnist_mlp(variant: str = "vanilla", *, trained: bool = True, epochs: int = 2, seed: int = 0):
    """The paper's MNIST MLP; trained briefly on 8,000 real test images when ``trained``."""
    net = build_mlp(784, [1024, 1024, 1024], 10, variant=variant, seed=seed)
    if trained:
        X, y = mnist_test_images(8000)
        Xt, yt = torch.tensor(X, dtype=torch.float32), torch.tensor(y)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        g = torch.Generator().manual_seed(seed)
        net.train()
        for _ in range(epochs):
            for idx in torch.randperm(len(Xt), generator=g).split(256):
                opt.zero_grad()
                torch.nn.functional.cross_entropy(net(Xt[idx]), yt[idx]).backward()
                opt.step()
    return net.eval()


def mnist_points(n: int) -> np.ndarray:
    """``n`` real MNIST test images not used for training above (indices 8000+), shape (n, 784)."""
    X, _ = mnist_test_images()
    return X[8000 : 8000 + n]


def cifar_cnn(variant: str = "vanilla", seed: int = 0):
    """The Table 3 CNN with seeded Xavier weights (BN running stats from random inputs)."""
    net = build_cnn(variant=variant, seed=seed)
    if variant == "bn":
        net.train()
        with torch.no_grad():
            net(torch.rand(512, 3, 32, 32) * 2 - 1)
    return net.eval()


def cifar_points(n: int, seed: int = 0) -> np.ndarray:
    """``n`` smooth random images in [-1, 1] with CIFAR's shape (3, 32, 32)."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(-1, 1, (n, 3, 8, 8))
    return np.clip(
        np.kron(base, np.ones((1, 1, 4, 4))) + 0.1 * rng.standard_normal((n, 3, 32, 32)), -1, 1
    )
