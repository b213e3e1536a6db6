"""MNIST from the standard IDX files, pixels rescaled to [-1, 1] (Section 3.1).

Order of preference:

1. the four IDX files (gzipped or not) in ``data_dir`` (default ``data/mnist``), checked
   against their canonical MD5 sums;
2. when ``download=True`` and the network allows, fetch them with pooch (verified hashes);
3. otherwise, when ``allow_standin=True``, an **offline stand-in** with MNIST's shape
   (1 x 28 x 28, 10 classes): scikit-learn's bundled 8 x 8 handwritten digits, upsampled to
   28 x 28 and augmented with small shifts. It is flagged ``standin=True`` and every page that
   uses it must say so; its numbers are not MNIST's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..exceptions import DataUnavailableError
from .base import Dataset, split_indices
from .idx import md5, read_idx

__all__ = ["load_mnist", "mnist_standin", "MNIST_FILES"]

MNIST_FILES = {
    "train_images": ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    "train_labels": ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
    "test_images": ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
    "test_labels": ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
}
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
    import warnings

    with warnings.catch_warnings():  # pooch imports tqdm.auto, which warns without ipywidgets
        warnings.simplefilter("ignore")
        import pooch
    pooch.get_logger().setLevel("WARNING")
    for filename, digest in MNIST_FILES.values():
        pooch.retrieve(
            MIRROR + filename,
            known_hash=f"md5:{digest}",
            fname=filename,
            path=data_dir,
            progressbar=False,
        )


def _scale(images: np.ndarray) -> np.ndarray:
    return (images.astype(np.float32) / 127.5 - 1.0).reshape(len(images), 1, 28, 28)


def _read_real(data_dir: Path) -> Dataset | None:
    paths = {k: _find(data_dir, f) for k, (f, _) in MNIST_FILES.items()}
    if any(p is None for p in paths.values()):
        return None
    for key, path in paths.items():
        if path.suffix == ".gz" and md5(path) != MNIST_FILES[key][1]:
            raise DataUnavailableError(
                f"{path} does not have the canonical MD5 {MNIST_FILES[key][1]}; it is corrupted "
                "or not MNIST. Delete it and download it again."
            )
    return Dataset(
        name="mnist",
        X_train=_scale(read_idx(paths["train_images"])),
        y_train=read_idx(paths["train_labels"]).astype(np.int64),
        X_test=_scale(read_idx(paths["test_images"])),
        y_test=read_idx(paths["test_labels"]).astype(np.int64),
        classes=CLASSES,
        standin=False,
        source=f"MNIST (LeCun et al.), 60,000 training and 10,000 test images, from {data_dir}.",
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
            "OFFLINE STAND-IN, not MNIST: scikit-learn's 1,797 bundled 8x8 handwritten digits, "
            f"upsampled to 28x28 and shift-augmented ({len(Xtr)} training, {len(Xte)} test "
            "images). Numbers computed on it are not comparable with the paper's."
        ),
    )


def load_mnist(
    data_dir: str | Path | None = None, *, download: bool = True, allow_standin: bool = True
) -> Dataset:
    """MNIST as a :class:`Dataset` of shape (n, 1, 28, 28) in [-1, 1], or the labelled stand-in.

    Parameters
    ----------
    data_dir : path, optional
        Folder of the IDX files (default ``data/mnist`` next to the cache).
    download : bool, default=True
        Try to download missing files with pooch (verified MD5s).
    allow_standin : bool, default=True
        Fall back to :func:`mnist_standin` when the real files are unavailable.

    Raises
    ------
    DataUnavailableError
        If the files are missing, cannot be downloaded and ``allow_standin`` is False, or a file
        is corrupted.
    """
    data_dir = Path(data_dir) if data_dir is not None else _default_dir()
    real = _read_real(data_dir)
    if real is None and download:
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
            _download(data_dir)
            real = _read_real(data_dir)
        except Exception as exc:  # offline, DNS failure, HTTP error, hash mismatch
            if not allow_standin:
                raise DataUnavailableError(
                    f"MNIST is not in {data_dir} and could not be downloaded ({exc}). Put the "
                    f"four IDX files {[f for f, _ in MNIST_FILES.values()]} there, or allow the "
                    "stand-in."
                ) from exc
    if real is not None:
        return real
    if not allow_standin:
        raise DataUnavailableError(
            f"MNIST is not in {data_dir}; put the four IDX files there or pass download=True."
        )
    return mnist_standin()
