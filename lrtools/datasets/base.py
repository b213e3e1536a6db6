"""The ``Dataset`` container shared by every data source (spirals, MNIST, CIFAR-10)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

__all__ = ["Dataset", "split_indices", "display_path", "short_error"]


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
        One sentence on where the data came from (shown on the book's pages). It never holds
        an absolute local path, and every count in it is computed from the arrays.
    fallback_reason : str
        Why the stand-in is used instead of the real data set: which file was missing or
        invalid, or why the download failed (shown on the page's data notice); empty for real
        data.
    """

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    classes: tuple[str, ...]
    standin: bool = False
    source: str = ""
    fallback_reason: str = ""

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

    def downsampled(self, factor: int) -> Dataset:
        """The images averaged over ``factor x factor`` pixel blocks (a cheaper input space).

        Not part of the paper: a knob for fast runs (smoke builds, teaching), since the cost of
        every convex program grows with the input dimension ``d``. ``factor=1`` returns ``self``.

        Parameters
        ----------
        factor : int
            Block side; must divide the image height and width.

        Returns
        -------
        Dataset
            Same labels and classes, inputs of shape ``(C, H / factor, W / factor)``, still in
            ``[-1, 1]``; ``source`` says that the images were downsampled.
        """
        if isinstance(factor, bool) or not isinstance(factor, (int, np.integer)) or factor < 1:
            raise ValueError(f"factor must be a positive integer; got {factor!r}.")
        if factor == 1:
            return self
        if len(self.input_shape) != 3:
            raise ValueError(
                f"downsampling needs images of shape (C, H, W); {self.name} has inputs of shape "
                f"{self.input_shape}."
            )
        c, h, w = self.input_shape
        if h % factor or w % factor:
            raise ValueError(
                f"factor {factor} must divide the image size {h}x{w}; use a divisor such as 2."
            )

        def pool(X: np.ndarray) -> np.ndarray:
            n = len(X)
            blocks = X.reshape(n, c, h // factor, factor, w // factor, factor)
            return blocks.mean(axis=(3, 5), dtype=np.float64).astype(X.dtype)

        return replace(
            self,
            X_train=pool(self.X_train),
            X_test=pool(self.X_test),
            source=f"{self.source} Images averaged over {factor}x{factor} pixel blocks "
            f"({h // factor}x{w // factor}; not the paper's input size).",
        )


def split_indices(
    n: int, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Random split of ``range(n)`` into (rest, held-out) with ``round(fraction * n)`` held out."""
    perm = rng.permutation(n)
    k = int(round(fraction * n))
    return np.sort(perm[k:]), np.sort(perm[:k])


def display_path(path: str | Path) -> str:
    """A folder as a page may show it: relative to the data root, never an absolute path."""
    from ..cache import data_root

    path = Path(path)
    try:
        return str(Path("<data root>") / path.resolve().relative_to(data_root().resolve()))
    except ValueError:
        return f".../{path.name}" if path.name else str(path)


def short_error(exc: BaseException, limit: int = 120) -> str:
    """``Type: first line of the message``, cut to ``limit`` characters (for a data notice)."""
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")
    return text if len(text) <= limit else text[: limit - 3] + "..."
