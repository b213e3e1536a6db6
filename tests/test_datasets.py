"""Data: the spirals set is seeded, in the box, balanced; the IDX reader reads real MNIST."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from lrtools.datasets import make_spirals, read_idx
from lrtools.datasets.idx import md5

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist-t10k"


def test_spirals_seeded_in_box_and_balanced():
    a, b = make_spirals(500, seed=3), make_spirals(500, seed=3)
    np.testing.assert_array_equal(a.X_train, b.X_train)
    X = np.concatenate([a.X_train, a.X_test])
    y = np.concatenate([a.y_train, a.y_test])
    assert X.shape == (500, 2) and np.abs(X).max() <= 1.0
    assert (y == 0).sum() == 250 and len(a.X_test) == 125
    assert a.fingerprint() == b.fingerprint() != make_spirals(500, seed=4).fingerprint()


def test_spirals_classes_are_rotations():
    d = make_spirals(2000, noise=0.0, seed=0)
    X, y = d.X_train, d.y_train
    r0 = np.sort(np.linalg.norm(X[y == 0], axis=1))
    r1 = np.sort(np.linalg.norm(X[y == 1], axis=1))
    assert abs(r0.max() - r1.max()) < 0.05  # same radii range, opposite phases


@pytest.mark.parametrize("kwargs", [{"n_samples": 2}, {"noise": -1.0}, {"test_fraction": 1.5}])
def test_spirals_bad_parameters(kwargs):
    with pytest.raises(ValueError):
        make_spirals(**{"n_samples": 100, **kwargs})


@pytest.mark.skipif(not SHARED.exists(), reason="shared MNIST test set not present")
def test_idx_reads_real_mnist_test_set():
    sums = dict(line.split()[::-1] for line in (SHARED / "MD5SUMS").read_text().splitlines())
    for name, digest in sums.items():
        assert md5(SHARED / name) == digest
    X = read_idx(SHARED / "t10k-images-idx3-ubyte.gz")
    y = read_idx(SHARED / "t10k-labels-idx1-ubyte.gz")
    assert X.shape == (10000, 28, 28) and X.dtype == np.uint8
    assert y.shape == (10000,) and set(np.unique(y)) == set(range(10))


def test_idx_rejects_truncated_and_foreign_files(tmp_path):
    good = np.arange(12, dtype=np.uint8).reshape(3, 4)
    header = bytes([0, 0, 0x08, 2]) + np.array([3, 4], ">i4").tobytes()
    path = tmp_path / "ok.gz"
    with gzip.open(path, "wb") as fh:
        fh.write(header + good.tobytes())
    np.testing.assert_array_equal(read_idx(path), good)
    (tmp_path / "short").write_bytes(header + good.tobytes()[:-1])
    with pytest.raises(ValueError, match="truncated or corrupted"):
        read_idx(tmp_path / "short")
    (tmp_path / "foreign").write_bytes(b"PK\x03\x04rest")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "foreign")


def _images(n=4, c=3, size=8, seed=0):
    from lrtools.datasets.base import Dataset

    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, (n, c, size, size)).astype(np.float32)
    y = np.arange(n) % 2
    return Dataset("toy", X, y, X[:2].copy(), y[:2].copy(), ("a", "b"), standin=True, source="Toy.")


def test_downsampled_averages_blocks_and_keeps_labels():
    data = _images()
    half = data.downsampled(2)
    assert half.input_shape == (3, 4, 4)
    # one output pixel is the mean of its 2x2 block, computed by hand
    block = data.X_train[1, 2, 2:4, 4:6]
    assert half.X_train[1, 2, 1, 2] == pytest.approx(block.mean(), abs=1e-6)
    assert np.abs(half.X_train).max() <= 1.0
    np.testing.assert_array_equal(half.y_train, data.y_train)
    assert half.standin and "2x2" in half.source
    assert half.fingerprint() != data.fingerprint()
    assert data.downsampled(1) is data


@pytest.mark.parametrize("factor, match", [(3, "must divide"), (0, "positive integer"),
                                           (1.5, "positive integer")])
def test_downsampled_rejects_bad_factors(factor, match):
    with pytest.raises(ValueError, match=match):
        _images().downsampled(factor)


def test_downsampled_needs_images():
    with pytest.raises(ValueError, match="needs images"):
        make_spirals(n_samples=40).downsampled(2)
