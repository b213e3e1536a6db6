"""The ``Dataset`` container shared by every data source (spirals, MNIST, CIFAR-10)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

__all__ = ["Dataset", "split_indices"]


@dataclass(frozen=True, eq=False)
class Dataset:
    """A classification data set with inputs in ``[-1, 1]``.

    Attributes
    ----------
    name : str
        Short name, e.g. ``"spirals"`` or ``"mnist"``.
    X_train, X_test : ndarray of shape (n, *input_shape), float32
    y_train, y_test : ndarray of shape (n,), int64
    classes : tuple of str
        Class names, index = label.
    standin : bool
        True when this is an offline stand-in rather than the real data set; every page that
        shows results computed on it must say so.
    source : str
        One sentence on where the data came from (shown on the book's pages).
    """

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    classes: tuple[str, ...]
    standin: bool = False
    source: str = ""

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input."""
        return tuple(self.X_train.shape[1:])

    @property
    def n_classes(self) -> int:
        """Number of classes ``M``."""
        return len(self.classes)

    def fingerprint(self) -> str:
        """SHA-256 of the arrays (a cache key component: same data -> same key)."""
        h = hashlib.sha256()
        for a in (self.X_train, self.y_train, self.X_test, self.y_test):
            a = np.ascontiguousarray(a)
            h.update(str(a.shape).encode())
            h.update(str(a.dtype).encode())
            h.update(a.tobytes())
        return h.hexdigest()[:16]


def split_indices(
    n: int, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Random split of ``range(n)`` into (rest, held-out) with ``round(fraction * n)`` held out."""
    perm = rng.permutation(n)
    k = int(round(fraction * n))
    return np.sort(perm[k:]), np.sort(perm[:k])
