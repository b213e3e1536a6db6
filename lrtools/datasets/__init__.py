"""Data sources. Every loader returns a :class:`~lrtools.datasets.base.Dataset` in ``[-1, 1]``.

Real data sets are checked before use, and a fallback to an offline stand-in says why in
``Dataset.fallback_reason`` and in a :class:`~lrtools.exceptions.DataFallbackWarning`.
"""

from .base import Dataset, display_path, split_indices
from .cifar import cifar_standin, load_cifar10
from .idx import read_idx
from .mnist import load_mnist, mnist_standin
from .spirals import make_spirals

__all__ = [
    "Dataset",
    "display_path",
    "split_indices",
    "make_spirals",
    "load_mnist",
    "mnist_standin",
    "load_cifar10",
    "cifar_standin",
    "read_idx",
]
