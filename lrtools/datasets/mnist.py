"""MNIST from the standard IDX files, pixels rescaled to [-1, 1] (Section 3.1).

Order of preference:

1. the four IDX files (gzipped or not) in ``data_dir`` (default ``<data root>/mnist``). Each
   file is checked before use: a gzipped file against its canonical MD5; a plain file for its
   IDX header (magic number), its shape (28 x 28 images), the expected count (60,000 training,
   10,000 test), labels 0-9, and the canonical MD5 of the decompressed file. A file that fails
   a check raises :class:`~lrtools.exceptions.DataUnavailableError` naming the file, what is
   wrong and what to do;
2. when ``download=True`` and the network allows, fetch the missing files with pooch
   (verified hashes);
3. otherwise, when ``allow_standin=True``, an **offline stand-in** with MNIST's shape
   (1 x 28 x 28, 10 classes): scikit-learn's bundled 8 x 8 handwritten digits, upsampled to
   28 x 28 and augmented with small shifts. It is flagged ``standin=True``, its
   ``fallback_reason`` names the missing file (or the failed download), and a
   :class:`~lrtools.exceptions.DataFallbackWarning` says the same; its numbers are not MNIST's.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..exceptions import DataFallbackWarning, DataUnavailableError
from .base import Dataset, display_path, short_error, split_indices
from .idx import md5, read_idx

__all__ = ["load_mnist", "mnist_standin", "MNIST_FILES", "MnistFile"]


@dataclass(frozen=True)
class MnistFile:
    """One of the four canonical MNIST files and what it must hold."""

    name: str  # the gzipped file name; the plain file drops ".gz"
    gz_md5: str  # MD5 of the gzipped file
    raw_md5: str  # MD5 of the decompressed file
    count: int  # images or labels it holds
    images: bool  # images (n, 28, 28) or labels (n,)


MNIST_FILES = {
    "train_images": MnistFile("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                              "6bbc9ace898e44ae57da46a324031adb", 60000, True),
    "train_labels": MnistFile("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432",
                              "a25bea736e30d166cdddb491f175f624", 60000, False),
    "test_images": MnistFile("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3",
                             "2646ac647ad5339dbf082846283269ea", 10000, True),
    "test_labels": MnistFile("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c",
                             "27ae3e4e09519cfbb04c329615203637", 10000, False),
}  # fmt: skip
MIRROR = "https://ossci-datasets.s3.amazonaws.com/mnist/"
CLASSES = tuple(str(k) for k in range(10))


def _default_dir() -> Path:
    from ..cache import data_root

    return data_root() / "mnist"


def _find(data_dir: Path, filename: str) -> Path | None:
    for name in (filename, filename.removesuffix(".gz")):
        if (data_dir / name).exists():
            return data_dir / name
    return None


def _download(data_dir: Path) -> None:
    with warnings.catch_warnings():  # pooch imports tqdm.auto, which warns without ipywidgets
        warnings.simplefilter("ignore")
        import pooch
    pooch.get_logger().setLevel("WARNING")
    for spec in MNIST_FILES.values():
        if _find(data_dir, spec.name) is None:
            pooch.retrieve(
                MIRROR + spec.name,
                known_hash=f"md5:{spec.gz_md5}",
                fname=spec.name,
                path=data_dir,
                progressbar=False,
            )


def _invalid(path: Path, why: str) -> DataUnavailableError:
    return DataUnavailableError(
        f"{path} is not the canonical MNIST file ({why}). Delete it and put the original file "
        f"there (or delete it and let lrtools download it)."
    )


def _read_checked(path: Path, spec: MnistFile) -> np.ndarray:
    """Read one IDX file and check it against ``spec``; raise naming the file otherwise."""
    if path.suffix == ".gz" and md5(path) != spec.gz_md5:
        raise _invalid(path, f"its MD5 is not the canonical {spec.gz_md5}")
    try:
        arr = read_idx(path)
    except ValueError as exc:
        raise _invalid(path, str(exc)) from exc
    want = (spec.count, 28, 28) if spec.images else (spec.count,)
    what = "images" if spec.images else "labels"
    if arr.dtype != np.uint8 or arr.ndim != len(want):
        raise _invalid(path, f"it holds {arr.dtype} data of shape {arr.shape}, not uint8 {what}")
    if spec.images and arr.shape[1:] != (28, 28):
        h, w = arr.shape[1:]
        raise _invalid(path, f"it holds images of {h}x{w} pixels; MNIST's are 28x28")
    if arr.shape[0] != spec.count:
        raise _invalid(path, f"it holds {arr.shape[0]:,} {what}; MNIST's file holds "
                             f"{spec.count:,}")  # fmt: skip
    if not spec.images and arr.size and arr.max() > 9:
        raise _invalid(path, f"its labels span [{arr.min()}, {arr.max()}]; MNIST's are 0-9")
    if path.suffix != ".gz" and md5(path) != spec.raw_md5:
        raise _invalid(path, f"its MD5 is not the canonical {spec.raw_md5} of the decompressed "
                             "file")  # fmt: skip
    return arr


def _scale(images: np.ndarray) -> np.ndarray:
    return (images.astype(np.float32) / 127.5 - 1.0).reshape(len(images), 1, 28, 28)


def _missing(data_dir: Path) -> list[str]:
    return [spec.name for spec in MNIST_FILES.values() if _find(data_dir, spec.name) is None]


def _read_real(data_dir: Path) -> Dataset | None:
    """The real data set from ``data_dir``, or None when a file is missing; raises when a file
    is there but is not the canonical one."""
    paths = {k: _find(data_dir, spec.name) for k, spec in MNIST_FILES.items()}
    if any(p is None for p in paths.values()):
        return None
    arrays = {k: _read_checked(paths[k], MNIST_FILES[k]) for k in MNIST_FILES}
    X_train, X_test = _scale(arrays["train_images"]), _scale(arrays["test_images"])
    return Dataset(
        name="mnist",
        X_train=X_train,
        y_train=arrays["train_labels"].astype(np.int64),
        X_test=X_test,
        y_test=arrays["test_labels"].astype(np.int64),
        classes=CLASSES,
        standin=False,
        source=f"MNIST (LeCun et al.), {len(X_train):,} training and {len(X_test):,} test "
        "images.",
    )


def mnist_standin(*, n_shifts: int = 4, test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """Offline stand-in with MNIST's shape: scikit-learn's digits, 28 x 28, in [-1, 1].

    The 1,797 bundled 8 x 8 digits are upsampled (bilinear) to 20 x 20, centred in a 28 x 28
    frame like MNIST's, and each is copied ``n_shifts`` times with random shifts of up to 2
    pixels, giving about ``1797 * (1 + n_shifts)`` images. Train and test come from different
    original digits (no shifted copy of a test digit is in the training set).
    """
    from scipy.ndimage import shift as nd_shift
    from scipy.ndimage import zoom
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    small = digits.images / 16.0  # (n, 8, 8) in [0, 1]
    big = np.clip(zoom(small, (1, 2.5, 2.5), order=1), 0, 1)  # (n, 20, 20)
    frames = np.zeros((len(big), 28, 28))
    frames[:, 4:24, 4:24] = big
    train_idx, test_idx = split_indices(len(frames), test_fraction, rng)

    def augment(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        imgs, labels = [frames[idx]], [digits.target[idx]]
        for _ in range(n_shifts):
            offsets = rng.integers(-2, 3, size=(len(idx), 2))
            shifted = [nd_shift(frames[i], o, order=0) for i, o in zip(idx, offsets, strict=True)]
            imgs.append(np.stack(shifted))
            labels.append(digits.target[idx])
        return np.concatenate(imgs), np.concatenate(labels)

    Xtr, ytr = augment(train_idx)
    Xte, yte = frames[test_idx], digits.target[test_idx]
    to_pm1 = lambda a: (2.0 * a - 1.0).astype(np.float32).reshape(len(a), 1, 28, 28)  # noqa: E731
    return Dataset(
        name="mnist-standin",
        X_train=to_pm1(Xtr),
        y_train=ytr.astype(np.int64),
        X_test=to_pm1(Xte),
        y_test=yte.astype(np.int64),
        classes=CLASSES,
        standin=True,
        source=(
            f"OFFLINE STAND-IN, not MNIST: scikit-learn's {len(digits.images):,} bundled 8x8 "
            f"handwritten digits, upsampled to 28x28 and shift-augmented ({len(Xtr):,} "
            f"training, {len(Xte):,} test images). Numbers computed on it are not comparable "
            "with the paper's."
        ),
    )


def load_mnist(
    data_dir: str | Path | None = None, *, download: bool = True, allow_standin: bool = True
) -> Dataset:
    """MNIST as a :class:`Dataset` of shape (n, 1, 28, 28) in [-1, 1], or the labelled stand-in.

    Parameters
    ----------
    data_dir : path, optional
        Folder of the IDX files (default ``<data root>/mnist``).
    download : bool, default=True
        Try to download missing files with pooch (verified MD5s).
    allow_standin : bool, default=True
        Fall back to :func:`mnist_standin` when the real files are unavailable; the stand-in's
        ``fallback_reason`` names the missing file, and a
        :class:`~lrtools.exceptions.DataFallbackWarning` is issued.

    Raises
    ------
    DataUnavailableError
        If a file is there but is not the canonical MNIST file (the message names it and what
        is wrong), or the files are missing, cannot be downloaded and ``allow_standin`` is
        False.
    """
    if not isinstance(download, bool) or not isinstance(allow_standin, bool):
        raise TypeError("download and allow_standin must be bools (True or False).")
    data_dir = Path(data_dir) if data_dir is not None else _default_dir()
    real = _read_real(data_dir)  # a present but invalid file raises here
    if real is not None:
        return real
    missing = _missing(data_dir)
    where = display_path(data_dir)
    reason = (
        f"MNIST file(s) {', '.join(m.removesuffix('.gz') + '(.gz)' for m in missing)} not found "
        f"in {where}"
    )
    if download:
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
            _download(data_dir)
        except Exception as exc:  # offline, DNS failure, HTTP error, hash mismatch
            reason += f", and the download from {MIRROR} failed ({short_error(exc)})"
        else:
            real = _read_real(data_dir)
            if real is not None:
                return real
    if not allow_standin:
        raise DataUnavailableError(
            f"MNIST is not available: {reason}. Put the four IDX files "
            f"{[spec.name for spec in MNIST_FILES.values()]} (gzipped or not) in {data_dir}, "
            "or pass download=True on a machine with network access."
        )
    reason += "."
    warnings.warn(f"{reason} Using the offline stand-in, not MNIST.", DataFallbackWarning,
                  stacklevel=2)  # fmt: skip
    return replace(mnist_standin(), fallback_reason=reason)
