"""Data sources. Every loader returns a :class:`~lrtools.datasets.base.Dataset` in ``[-1, 1]``."""

from .base import Dataset, split_indices
from .idx import read_idx
from .spirals import make_spirals

__all__ = ["Dataset", "make_spirals", "read_idx", "split_indices"]
