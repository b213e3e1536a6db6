"""MNIST loading: every IDX file is checked (gzipped by MD5; plain by header, shape, count, labels
and the MD5 of the decompressed canonical file); a fallback to the stand-in names the missing
file in a warning and in ``fallback_reason``."""

from __future__ import annotations

import gzip
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from lrtools.datasets import mnist
from lrtools.datasets.idx import md5
from lrtools.datasets.mnist import MNIST_FILES, load_mnist, mnist_standin
from lrtools.exceptions import DataFallbackWarning, DataUnavailableError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist-t10k"
needs_shared = pytest.mark.skipif(not SHARED.exists(), reason="shared MNIST test set not present")


def _idx(array: np.ndarray, magic_type: int = 0x08) -> bytes:
    header = bytes([0, 0, magic_type, array.ndim]) + np.array(array.shape, ">i4").tobytes()
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def test_standin_has_mnist_shape_and_is_labelled():
    d = mnist_standin(n_shifts=1)
    assert d.standin and "STAND-IN" in d.source and "not MNIST" in d.source
    assert "1,797 bundled" in d.source and f"{len(d.X_train):,} training" in d.source
    assert d.input_shape == (1, 28, 28) and d.n_classes == 10
    assert d.X_train.min() >= -1 and d.X_train.max() <= 1
    assert set(np.unique(d.y_test)) == set(range(10))


def test_offline_without_files_falls_back_with_a_named_warning(tmp_path):
    with pytest.warns(DataFallbackWarning, match=r"train-images-idx3-ubyte\(\.gz\).*not found"):
        d = load_mnist(tmp_path / "empty", download=False)
    assert d.standin and "t10k-labels-idx1-ubyte(.gz)" in d.fallback_reason
    assert str(tmp_path) not in d.fallback_reason and str(tmp_path) not in d.source
    half = d.downsampled(2)
    assert half.fallback_reason == d.fallback_reason


def test_study_loader_can_leave_the_reason_to_the_page(tmp_path, monkeypatch):
    """Chapters show Dataset.fallback_reason in their data notice; a warning printed in a cell
    would also put the package's local path on the page, so they pass warn=False."""
    import warnings

    from lrtools.analyses import study
    from lrtools.datasets import mnist

    def offline(data_dir):
        raise OSError("offline")

    monkeypatch.setenv("LRTOOLS_DATA_DIR", str(tmp_path / "nothing"))
    monkeypatch.setattr(mnist, "_download", offline)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quiet = study.load_dataset("mnist", warn=False)
    with pytest.warns(DataFallbackWarning):
        loud = study.load_dataset("mnist")
    assert quiet.standin and quiet.fallback_reason == loud.fallback_reason
    with pytest.raises(TypeError, match="warn"):
        study.load_dataset("mnist", warn="no")


def test_a_misnamed_fourth_file_is_named(tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    for spec in MNIST_FILES.values():
        (folder / spec.name).write_bytes(b"")  # placeholders for three files
    (folder / "t10k-labels-idx1-ubyte.gz").rename(folder / "t10k-labels.idx1-ubyte.gz")
    with pytest.warns(DataFallbackWarning) as record:
        d = load_mnist(folder, download=False)
    assert "t10k-labels-idx1-ubyte(.gz) not found" in str(record[0].message)
    assert "train-images" not in d.fallback_reason  # only the missing one is named


def test_offline_without_standin_raises_with_instructions(tmp_path):
    with pytest.raises(DataUnavailableError, match="Put the four IDX files"):
        load_mnist(tmp_path / "empty", download=False, allow_standin=False)
    with pytest.raises(TypeError, match="download"):
        load_mnist(tmp_path, download="no")


def test_failed_download_is_the_fallback_reason(tmp_path, monkeypatch):
    def offline(folder):
        raise OSError("network unreachable")

    monkeypatch.setattr(mnist, "_download", offline)
    with pytest.warns(DataFallbackWarning, match="download .* failed .*network unreachable"):
        d = load_mnist(tmp_path / "empty")
    assert "network unreachable" in d.fallback_reason


def _real_folder(tmp_path: Path, monkeypatch, *, plain_test: bool = False) -> Path:
    """The real test set in the test slots, and its decompressed copy in the training slots
    (whose expected count and digest are made the test set's: no training files here)."""
    folder = tmp_path / "mnist"
    folder.mkdir()
    for kind in ("images", "labels"):
        test, train = MNIST_FILES[f"test_{kind}"], MNIST_FILES[f"train_{kind}"]
        src = SHARED / test.name
        with gzip.open(src) as fh:
            raw = fh.read()
        (folder / train.name.removesuffix(".gz")).write_bytes(raw)
        if plain_test:
            (folder / test.name.removesuffix(".gz")).write_bytes(raw)
        else:
            shutil.copy(src, folder / test.name)
        monkeypatch.setitem(MNIST_FILES, f"train_{kind}", replace(
            test, name=train.name))  # fmt: skip
    return folder


@needs_shared
@pytest.mark.parametrize("plain_test", [False, True])
def test_real_files_are_read_and_verified(tmp_path, monkeypatch, plain_test):
    folder = _real_folder(tmp_path, monkeypatch, plain_test=plain_test)
    d = load_mnist(folder, download=False, allow_standin=False)
    assert not d.standin and not d.fallback_reason and d.X_test.shape == (10000, 1, 28, 28)
    assert d.X_test.min() == -1.0 and d.X_test.max() == 1.0
    assert d.source == "MNIST (LeCun et al.), 10,000 training and 10,000 test images."
    assert md5(folder / "t10k-images-idx3-ubyte" if plain_test else
               folder / "t10k-images-idx3-ubyte.gz") in (MNIST_FILES["test_images"].raw_md5,
                                                         MNIST_FILES["test_images"].gz_md5)


@needs_shared
def test_corrupted_gz_is_refused_with_the_file_named(tmp_path, monkeypatch):
    folder = _real_folder(tmp_path, monkeypatch)
    (folder / MNIST_FILES["test_labels"].name).write_bytes(b"\x1f\x8b broken")
    match = "t10k-labels-idx1-ubyte.gz .*MD5 is not the canonical ec29"
    with pytest.raises(DataUnavailableError, match=match):
        load_mnist(folder, download=False)


def _plain_case(folder: Path, case: str) -> str:
    rng = np.random.default_rng(0)
    images = folder / "train-images-idx3-ubyte"
    labels = folder / "train-labels-idx1-ubyte"
    if case == "50 random images, labels of 200":
        images.write_bytes(_idx(rng.integers(0, 256, (50, 28, 28))))
        labels.write_bytes(_idx(np.full(50, 200)))
        return r"train-images-idx3-ubyte is not the canonical .*holds 50 images.*10,000"
    if case == "8x8 images":
        images.write_bytes(_idx(rng.integers(0, 256, (10000, 8, 8))))
        return r"images of 8x8 pixels; MNIST's are 28x28"
    if case == "labels out of range":
        raw = bytearray(labels.read_bytes())
        raw[-1] = 200
        labels.write_bytes(bytes(raw))
        return r"train-labels-idx1-ubyte .*labels span \[0, 200\]"
    if case == "bad magic":
        images.write_bytes(b"\x08\x03" + images.read_bytes()[2:])
        return "not an IDX file"
    if case == "truncated":
        images.write_bytes(images.read_bytes()[:-5])
        return "truncated or corrupted"
    if case == "one pixel changed":
        raw = bytearray(images.read_bytes())
        raw[20000] ^= 0xFF
        images.write_bytes(bytes(raw))
        return "not the canonical 2646ac647ad5339dbf082846283269ea of the decompressed file"
    raise AssertionError(case)


@needs_shared
@pytest.mark.parametrize("case", ["50 random images, labels of 200", "8x8 images",
                                  "labels out of range", "bad magic", "truncated",
                                  "one pixel changed"])  # fmt: skip
def test_invalid_plain_files_are_refused_with_the_file_named(tmp_path, monkeypatch, case):
    folder = _real_folder(tmp_path, monkeypatch)
    match = _plain_case(folder, case)
    for allow in (True, False):  # never silently replaced by the stand-in
        with pytest.raises(DataUnavailableError, match=match):
            load_mnist(folder, download=False, allow_standin=allow)


def test_canonical_digests_of_the_test_files_are_the_shared_ones():
    if not SHARED.exists():
        pytest.skip("shared MNIST test set not present")
    for key in ("test_images", "test_labels"):
        spec = MNIST_FILES[key]
        assert md5(SHARED / spec.name) == spec.gz_md5
        with gzip.open(SHARED / spec.name) as fh:
            import hashlib

            assert hashlib.md5(fh.read()).hexdigest() == spec.raw_md5
