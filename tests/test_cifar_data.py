"""CIFAR-10 loading (Appendix E.1): pickle batches verified and rescaled; a labelled stand-in."""

from __future__ import annotations

import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from lrtools.datasets import cifar
from lrtools.datasets.cifar import CLASSES, cifar_standin, load_cifar10
from lrtools.datasets.idx import md5
from lrtools.exceptions import DataFallbackWarning, DataUnavailableError
from lrtools.training import ModelSpec, TrainConfig, fit

CIFAR_NAMES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]
SMALL = cifar_standin(n_train=3000, n_test=1000, seed=0)


# --------------------------------------------------------------------------------------------
# The stand-in
# --------------------------------------------------------------------------------------------


def test_standin_has_cifar_shape_names_and_label():
    d = cifar_standin(n_train=205, n_test=31, seed=3)
    assert d.standin and d.source.startswith("OFFLINE STAND-IN, not CIFAR-10: ")
    assert d.X_train.shape == (205, 3, 32, 32) and d.X_test.shape == (31, 3, 32, 32)
    assert d.X_train.dtype == np.float32 and d.y_train.dtype == np.int64
    assert list(d.classes) == CIFAR_NAMES and d.n_classes == 10
    for X in (d.X_train, d.X_test):
        assert X.min() >= -1.0 and X.max() <= 1.0 and np.isfinite(X).all()
    # classes balanced to within one image, and every label in [0, 9]
    counts = np.bincount(d.y_train, minlength=10)
    assert counts.sum() == 205 and counts.max() - counts.min() <= 1
    assert set(np.unique(d.y_test)) <= set(range(10))


def test_standin_uses_the_whole_range_and_is_not_constant():
    X = SMALL.X_train
    assert X.min() == -1.0 and X.max() == 1.0  # clipped noise reaches both ends
    assert X.reshape(len(X), -1).std(axis=1).min() > 0.05  # no blank images


def test_standin_is_deterministic_per_seed():
    a = cifar_standin(n_train=64, n_test=16, seed=7)
    b = cifar_standin(n_train=64, n_test=16, seed=7)
    c = cifar_standin(n_train=64, n_test=16, seed=8)
    for name in ("X_train", "y_train", "X_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()
    assert not np.array_equal(a.X_train, c.X_train)


def test_standin_is_learnable_by_a_small_cnn():
    """A tiny Table-3-style CNN, 3 epochs on 2,700 images: far above chance, far below perfect."""
    spec = ModelSpec("cnn", (8, 16, 32), "vanilla", dense=64)
    cfg = TrainConfig(batch_size=64, max_epochs=3, patience=3, seed=0)
    trained = fit(spec, SMALL, cfg, use_cache=False, progress=False)
    assert 0.35 < trained.test_accuracy < 0.95


def test_standin_is_not_separable_by_mean_colour():
    """The class is not just the image's average colour (scenes and colours overlap)."""
    f = lambda X: X.mean(axis=(2, 3))  # noqa: E731
    clf = LogisticRegression(max_iter=1000).fit(f(SMALL.X_train), SMALL.y_train)
    assert clf.score(f(SMALL.X_test), SMALL.y_test) < 0.6


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"n_train": 0}, ValueError),
        ({"n_test": 2.5}, TypeError),
        ({"noise": -0.1}, ValueError),
        ({"seed": -1}, ValueError),
    ],
)
def test_standin_validates_arguments(kwargs, error):
    with pytest.raises(error, match=next(iter(kwargs))):
        cifar_standin(**kwargs)


# --------------------------------------------------------------------------------------------
# The real format: a fake cifar-10-batches-py folder in the real pickle layout
# --------------------------------------------------------------------------------------------


def _write_batch(path: Path, data: np.ndarray, labels: list[int]) -> None:
    blob = {
        b"batch_label": b"fake batch",
        b"labels": labels,
        b"data": data,
        b"filenames": [f"img_{i}.png".encode() for i in range(len(labels))],
    }
    with open(path, "wb") as fh:
        pickle.dump(blob, fh, protocol=2)


def _fake_folder(folder: Path, rng: np.random.Generator) -> dict[str, tuple[np.ndarray, list]]:
    """Five train batches of 4 images, a test batch of 3, and batches.meta (real layout)."""
    folder.mkdir(parents=True)
    batches = {}
    for name, n in [(f"data_batch_{k}", 4) for k in range(1, 6)] + [("test_batch", 3)]:
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        data[0, 0], data[0, 1] = 0, 255  # the two ends of the pixel range
        labels = [int(v) for v in rng.integers(0, 10, n)]
        _write_batch(folder / name, data, labels)
        batches[name] = (data, labels)
    meta = {b"num_cases_per_batch": 10000, b"label_names": [c.encode() for c in CIFAR_NAMES]}
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump(meta, fh, protocol=2)
    return batches


def _trust(monkeypatch, folder: Path) -> None:
    """Make the fake files' MD5 sums the 'canonical' ones, as the real files' are."""
    sums = {name: md5(folder / name) for name in cifar.CIFAR_FILES}
    monkeypatch.setattr(cifar, "CIFAR_FILES", sums)


def _expected_images(data: np.ndarray) -> np.ndarray:
    """Row = 1024 red, 1024 green, 1024 blue values, each a row-major 32x32 image."""
    n = len(data)
    out = np.empty((n, 3, 32, 32), dtype=np.float64)
    for k in range(n):
        for c in range(3):
            for i in range(32):
                out[k, c, i] = data[k, c * 1024 + i * 32 : c * 1024 + i * 32 + 32]
    return out / 127.5 - 1.0


def test_fake_batches_are_read_in_order_and_rescaled(tmp_path, monkeypatch, rng):
    folder = tmp_path / "cifar-10-batches-py"
    batches = _fake_folder(folder, rng)
    _trust(monkeypatch, folder)
    d = load_cifar10(folder, download=False, allow_standin=False)
    assert not d.standin and d.name == "cifar10" and "CIFAR-10" in d.source
    assert "20 training and 3 test images" in d.source and str(tmp_path) not in d.source
    assert d.fallback_reason == ""
    assert d.X_train.shape == (20, 3, 32, 32) and d.X_test.shape == (3, 3, 32, 32)
    assert d.X_train.dtype == np.float32 and d.y_train.dtype == np.int64
    assert d.classes == tuple(CIFAR_NAMES)
    train = [batches[f"data_batch_{k}"] for k in range(1, 6)]
    want_X = _expected_images(np.concatenate([x for x, _ in train]))
    np.testing.assert_allclose(d.X_train, want_X, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(d.y_train, sum((y for _, y in train), []))
    np.testing.assert_allclose(d.X_test, _expected_images(batches["test_batch"][0]), atol=1e-6)
    np.testing.assert_array_equal(d.y_test, batches["test_batch"][1])
    assert d.X_test[0, 0, 0, 0] == -1.0 and d.X_test[0, 0, 0, 1] == 1.0  # 0 -> -1, 255 -> 1


def test_files_with_wrong_md5_are_refused(tmp_path, rng):
    folder = tmp_path / "cifar-10-batches-py"
    _fake_folder(folder, rng)
    with pytest.raises(DataUnavailableError, match="data_batch_1.*canonical.*Delete it"):
        load_cifar10(folder, download=False)


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:100])


def _garbage(path: Path) -> None:
    path.write_bytes(b"not a pickle at all")


def _bad_shape(path: Path) -> None:
    _write_batch(path, np.zeros((4, 100), dtype=np.uint8), [0, 1, 2, 3])


def _bad_labels(path: Path) -> None:
    _write_batch(path, np.zeros((4, 3072), dtype=np.uint8), [0, 1, 2, 10])


@pytest.mark.parametrize("corrupt", [_truncate, _garbage, _bad_shape, _bad_labels])
def test_corrupted_batch_names_the_file_to_delete(tmp_path, monkeypatch, rng, corrupt):
    folder = tmp_path / "cifar-10-batches-py"
    _fake_folder(folder, rng)
    corrupt(folder / "data_batch_3")
    _trust(monkeypatch, folder)  # even with a matching checksum the content is checked
    with pytest.raises(DataUnavailableError) as info:
        load_cifar10(folder, download=False)
    msg = str(info.value)
    assert str(folder / "data_batch_3") in msg and "Delete it" in msg


def _archive(tmp_path: Path, rng: np.random.Generator) -> tuple[Path, Path]:
    """A cifar-10-python.tar.gz holding a fake cifar-10-batches-py/ folder."""
    src = tmp_path / "src" / "cifar-10-batches-py"
    _fake_folder(src, rng)
    root = tmp_path / "root"
    root.mkdir()
    archive = root / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src, arcname="cifar-10-batches-py")
    return archive, src


def test_local_archive_is_verified_and_extracted(tmp_path, monkeypatch, rng):
    archive, src = _archive(tmp_path, rng)
    _trust(monkeypatch, src)
    monkeypatch.setattr(cifar, "ARCHIVE_MD5", md5(archive))
    target = archive.parent / "my-cifar"  # any folder name: the files go into it
    d = load_cifar10(target, download=False, allow_standin=False)
    assert not d.standin and d.X_train.shape == (20, 3, 32, 32)
    assert sorted(p.name for p in target.iterdir()) == sorted(cifar.CIFAR_FILES)
    assert sorted(p.name for p in archive.parent.iterdir()) == sorted([archive.name, target.name])


def test_local_archive_with_wrong_md5_is_refused(tmp_path, rng):
    archive, _ = _archive(tmp_path, rng)
    with pytest.raises(DataUnavailableError, match="cifar-10-python.tar.gz.*canonical MD5"):
        load_cifar10(archive.parent / "cifar-10-batches-py", download=False)


# --------------------------------------------------------------------------------------------
# Offline: fall back to the stand-in, or explain
# --------------------------------------------------------------------------------------------


@pytest.fixture
def small_standin(monkeypatch):
    """Replace the default-size stand-in by a small one, recording the calls."""
    calls = []

    def fake(**kwargs):
        calls.append(kwargs)
        return cifar_standin(n_train=50, n_test=10)

    monkeypatch.setattr(cifar, "cifar_standin", fake)
    return calls


def test_offline_without_files_falls_back_to_standin(tmp_path, small_standin):
    with pytest.warns(DataFallbackWarning, match="CIFAR-10 file.*not found"):
        d = load_cifar10(tmp_path / "empty", download=False)
    assert d.standin and d.input_shape == (3, 32, 32) and len(small_standin) == 1
    assert "batches.meta" in d.fallback_reason and str(tmp_path) not in d.fallback_reason


def test_fallback_names_only_the_missing_files(tmp_path, small_standin):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in cifar.CIFAR_FILES:
        if name != "data_batch_3":
            (folder / name).write_bytes(b"")
    with pytest.warns(DataFallbackWarning, match=r"file\(s\) data_batch_3 not found"):
        d = load_cifar10(folder, download=False)
    assert "data_batch_3" in d.fallback_reason and "data_batch_1" not in d.fallback_reason


def test_failed_download_falls_back_or_explains(tmp_path, monkeypatch, small_standin):
    def offline(archive):
        raise OSError("network unreachable")

    monkeypatch.setattr(cifar, "_download", offline)
    with pytest.warns(DataFallbackWarning):
        d = load_cifar10(tmp_path / "empty")
    assert d.standin and "network unreachable" in d.fallback_reason
    with pytest.raises(DataUnavailableError, match="could not be downloaded.*network unreachable"):
        load_cifar10(tmp_path / "empty", allow_standin=False)


def test_offline_without_standin_raises_with_instructions(tmp_path):
    with pytest.raises(DataUnavailableError, match="put the extracted cifar-10-batches-py"):
        load_cifar10(tmp_path / "empty", download=False, allow_standin=False)


def test_default_folder_is_under_the_data_root(tmp_path, monkeypatch, small_standin):
    monkeypatch.setenv("LRTOOLS_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(DataUnavailableError, match=str(tmp_path / "data" / "cifar-10-batches")):
        load_cifar10(download=False, allow_standin=False)


def test_load_validates_flags(tmp_path):
    with pytest.raises(TypeError, match="download"):
        load_cifar10(tmp_path, download="yes")


def test_class_names_constant_matches_cifar():
    assert list(CLASSES) == CIFAR_NAMES
