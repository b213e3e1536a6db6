"""MNIST loading: real IDX files are verified; offline, a labelled stand-in of MNIST's shape."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

from lrtools.datasets.mnist import MNIST_FILES, load_mnist, mnist_standin
from lrtools.exceptions import DataUnavailableError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist-t10k"


def test_standin_has_mnist_shape_and_is_labelled():
    d = mnist_standin(n_shifts=1)
    assert d.standin and "STAND-IN" in d.source and "not MNIST" in d.source
    assert d.input_shape == (1, 28, 28) and d.n_classes == 10
    assert d.X_train.min() >= -1 and d.X_train.max() <= 1
    assert set(np.unique(d.y_test)) == set(range(10))


def test_offline_without_files_falls_back_to_standin(tmp_path):
    d = load_mnist(tmp_path / "empty", download=False)
    assert d.standin


def test_offline_without_standin_raises_with_instructions(tmp_path):
    with pytest.raises(DataUnavailableError, match="put the four IDX files there"):
        load_mnist(tmp_path / "empty", download=False, allow_standin=False)


@pytest.mark.skipif(not SHARED.exists(), reason="shared MNIST test set not present")
def test_real_files_are_read_and_verified(tmp_path):
    """Using the real test set in place of the (unavailable) training files checks the reader."""
    folder = tmp_path / "mnist"
    folder.mkdir()
    for key, (name, _) in MNIST_FILES.items():
        src = SHARED / name.replace("train", "t10k")
        # uncompressed copies for the 'train' slots (their MD5 is not checked), real gz for test
        if key.startswith("train"):
            with gzip.open(src) as fh:
                (folder / name.removesuffix(".gz")).write_bytes(fh.read())
        else:
            shutil.copy(src, folder / name)
    d = load_mnist(folder, download=False, allow_standin=False)
    assert not d.standin and d.X_test.shape == (10000, 1, 28, 28)
    assert d.X_test.min() == -1.0 and d.X_test.max() == 1.0
    # a corrupted gz is refused with a clear message
    (folder / MNIST_FILES["test_labels"][0]).write_bytes(b"\x1f\x8b broken")
    with pytest.raises(DataUnavailableError, match="canonical MD5"):
        load_mnist(folder, download=False)
