"""CIFAR-10 from the standard python pickle batches, pixels rescaled to [-1, 1] (Appendix E.1).

Order of preference:

1. the seven files of ``cifar-10-batches-py/`` (``data_batch_1`` ... ``data_batch_5``,
   ``test_batch``, ``batches.meta``) in ``data_dir`` (default
   ``<data_root>/cifar-10-batches-py``), checked against their canonical MD5 sums;
2. a local ``cifar-10-python.tar.gz`` next to that folder (in the data root for the default
   folder), checked against its canonical MD5 and extracted with ``pooch.Untar``;
3. when ``download=True`` and the network allows, that archive fetched with pooch (verified
   hash), then extracted;
4. otherwise, when ``allow_standin=True``, an **offline stand-in** with CIFAR-10's shape
   (3 x 32 x 32, 10 classes, the CIFAR class names): procedurally generated class-conditional
   images (:func:`cifar_standin`). It is flagged ``standin=True``, its ``fallback_reason``
   names the missing files (or the failed download), a
   :class:`~lrtools.exceptions.DataFallbackWarning` says the same, and every page that uses it
   must say so; its numbers are not CIFAR-10's.

The paper trains the CNN of Table 3 on CIFAR-10 "without data augmentation", with "pixel values
rescaled to [-1, 1]" (Appendix E.1); :func:`load_cifar10` returns exactly that input.
"""

from __future__ import annotations

import pickle
import shutil
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np

from .._validation import check_scalar
from ..exceptions import DataFallbackWarning, DataUnavailableError
from .base import Dataset, display_path, short_error
from .idx import md5

__all__ = ["load_cifar10", "cifar_standin", "CIFAR_FILES", "CLASSES"]

FOLDER = "cifar-10-batches-py"
ARCHIVE = "cifar-10-python.tar.gz"
ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"
URL = "https://www.cs.toronto.edu/~kriz/" + ARCHIVE
TRAIN_BATCHES = tuple(f"data_batch_{k}" for k in range(1, 6))
# canonical MD5 sums of the extracted files (the same as torchvision's)
CIFAR_FILES = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
}
CLASSES = (
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
)


# --------------------------------------------------------------------------------------------
# The real data: pickle batches, archive, download
# --------------------------------------------------------------------------------------------


def _default_dir() -> Path:
    from ..cache import data_root

    return data_root() / FOLDER


def _corrupted(path: Path, why: str) -> DataUnavailableError:
    return DataUnavailableError(
        f"{path} is corrupted or not a CIFAR-10 file ({why}). Delete it (or the whole folder "
        f"{path.parent}) and download or extract {ARCHIVE} again."
    )


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            obj = pickle.load(fh, encoding="bytes")
    except Exception as exc:  # truncated file, garbage bytes, wrong protocol...
        raise _corrupted(path, f"cannot unpickle it: {type(exc).__name__}: {exc}") from exc
    if not isinstance(obj, dict):
        raise _corrupted(path, f"it holds a {type(obj).__name__}, not a dict")
    return obj


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch: images (n, 3, 32, 32) float32 in [-1, 1] and labels (n,) int64."""
    obj = _unpickle(path)
    if b"data" not in obj or b"labels" not in obj:
        raise _corrupted(path, f"keys {sorted(obj)} lack b'data' or b'labels'")
    data, labels = np.asarray(obj[b"data"]), np.asarray(obj[b"labels"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise _corrupted(path, f"data is {data.dtype} of shape {data.shape}, not uint8 (n, 3072)")
    if labels.shape != (len(data),) or not np.issubdtype(labels.dtype, np.integer):
        raise _corrupted(path, f"{labels.shape[0]} labels for {len(data)} images")
    if labels.size and (labels.min() < 0 or labels.max() >= len(CLASSES)):
        raise _corrupted(path, f"labels span [{labels.min()}, {labels.max()}], not [0, 9]")
    # rows are 1024 red, 1024 green, 1024 blue values, each a row-major 32 x 32 image
    images = data.reshape(-1, 3, 32, 32).astype(np.float32) / np.float32(127.5) - np.float32(1)
    return images, labels.astype(np.int64)


def _read_classes(path: Path) -> tuple[str, ...]:
    obj = _unpickle(path)
    names = obj.get(b"label_names")
    if not isinstance(names, list) or len(names) != len(CLASSES):
        raise _corrupted(path, "b'label_names' is not a list of 10 class names")
    return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)


def _read_real(data_dir: Path) -> Dataset | None:
    """The real data set from ``data_dir``, or None when a file is missing."""
    paths = {name: data_dir / name for name in CIFAR_FILES}
    if not all(p.is_file() for p in paths.values()):
        return None
    for name, path in paths.items():
        if md5(path) != CIFAR_FILES[name]:
            raise _corrupted(path, f"its MD5 is not the canonical {CIFAR_FILES[name]}")
    train = [_read_batch(paths[name]) for name in TRAIN_BATCHES]
    X_test, y_test = _read_batch(paths["test_batch"])
    X_train = np.concatenate([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    return Dataset(
        name="cifar10",
        X_train=X_train,
        y_train=y_train,
        X_test=X_test,
        y_test=y_test,
        classes=_read_classes(paths["batches.meta"]),
        standin=False,
        source=(
            f"CIFAR-10 (Krizhevsky, 2009), {len(X_train):,} training and {len(X_test):,} test "
            "images."
        ),
    )


def _pooch():
    import warnings

    with warnings.catch_warnings():  # pooch imports tqdm.auto, which warns without ipywidgets
        warnings.simplefilter("ignore")
        import pooch
    pooch.get_logger().setLevel("WARNING")
    return pooch


def _download(archive: Path) -> None:
    """Fetch the archive with pooch; pooch checks the MD5 and refuses a mismatch."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    _pooch().retrieve(
        URL,
        known_hash=f"md5:{ARCHIVE_MD5}",
        fname=archive.name,
        path=archive.parent,
        progressbar=False,
    )


def _extract(archive: Path, data_dir: Path) -> None:
    """Verify ``archive`` and move its ``cifar-10-batches-py/`` files into ``data_dir``."""
    if md5(archive) != ARCHIVE_MD5:
        raise DataUnavailableError(
            f"{archive} does not have the canonical MD5 {ARCHIVE_MD5}; it is corrupted, "
            "incomplete or not CIFAR-10. Delete it and download it again from " + URL
        )
    staging = archive.parent / f".{archive.name}.untar"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        _pooch().Untar(extract_dir=str(staging))(str(archive), "download", None)
        data_dir.mkdir(parents=True, exist_ok=True)
        for name in CIFAR_FILES:
            src = staging / FOLDER / name
            if not src.is_file():
                raise DataUnavailableError(
                    f"{archive} has no {FOLDER}/{name}; it is not the CIFAR-10 python archive. "
                    "Delete it and download it again from " + URL
                )
            shutil.move(str(src), data_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def load_cifar10(
    data_dir: str | Path | None = None, *, download: bool = True, allow_standin: bool = True
) -> Dataset:
    """CIFAR-10 as a :class:`Dataset` of shape (n, 3, 32, 32) in [-1, 1], or the stand-in.

    Parameters
    ----------
    data_dir : path, optional
        The folder of the extracted pickle batches (default
        ``lrtools.cache.data_root() / "cifar-10-batches-py"``). A ``cifar-10-python.tar.gz``
        in its parent folder is verified and extracted into it.
    download : bool, default=True
        Download the archive with pooch (verified MD5) when neither the batches nor the
        archive are on disk.
    allow_standin : bool, default=True
        Fall back to :func:`cifar_standin` when the real data are unavailable.

    Returns
    -------
    Dataset
        50,000 training and 10,000 test images, pixels ``x / 127.5 - 1`` (Appendix E.1), class
        names from ``batches.meta``; or the stand-in, flagged ``standin=True``.

    Raises
    ------
    DataUnavailableError
        If a batch or the archive is corrupted (the message names the file to delete), or the
        data are missing, cannot be downloaded and ``allow_standin`` is False.

    Examples
    --------
    >>> data = load_cifar10(download=False)  # doctest: +SKIP
    >>> data.input_shape, data.classes[:2]  # doctest: +SKIP
    ((3, 32, 32), ('airplane', 'automobile'))
    """
    if not isinstance(download, bool) or not isinstance(allow_standin, bool):
        raise TypeError("download and allow_standin must be bools (True or False).")
    data_dir = Path(data_dir) if data_dir is not None else _default_dir()
    archive = data_dir.parent / ARCHIVE
    missing = [name for name in CIFAR_FILES if not (data_dir / name).is_file()]
    reason = (
        f"CIFAR-10 file(s) {', '.join(missing)} not found in {display_path(data_dir)}, and no "
        f"{ARCHIVE} beside it"
    )
    real = _read_real(data_dir)
    if real is None and archive.is_file():
        _extract(archive, data_dir)  # a local archive needs no network; corrupted -> raise
        real = _read_real(data_dir)
    elif real is None and download:
        try:
            _download(archive)
        except Exception as exc:  # offline, DNS failure, HTTP error, hash mismatch
            reason += f"; the download from {URL} failed ({short_error(exc)})"
            if not allow_standin:
                raise DataUnavailableError(
                    f"CIFAR-10 is not in {data_dir} and {URL} could not be downloaded ({exc}). "
                    f"Put {ARCHIVE} in {archive.parent} or its extracted files in {data_dir}, "
                    "or allow the stand-in."
                ) from exc
        else:
            _extract(archive, data_dir)
            real = _read_real(data_dir)
    if real is not None:
        return real
    if not allow_standin:
        raise DataUnavailableError(
            f"CIFAR-10 is not in {data_dir}; put the extracted {FOLDER} files there or {ARCHIVE} "
            f"in {archive.parent}, or pass download=True."
        )
    reason += "."
    warnings.warn(f"{reason} Using the offline stand-in, not CIFAR-10.", DataFallbackWarning,
                  stacklevel=2)  # fmt: skip
    return replace(cifar_standin(), fallback_reason=reason)


# --------------------------------------------------------------------------------------------
# The offline stand-in
# --------------------------------------------------------------------------------------------

# scenes: (top colour, bottom colour) of the background gradient, RGB in [0, 1]
_SCENES = np.array(
    [
        [(0.45, 0.65, 0.90), (0.80, 0.88, 0.98)],  # 0 sky
        [(0.35, 0.55, 0.80), (0.10, 0.28, 0.50)],  # 1 water
        [(0.60, 0.75, 0.85), (0.28, 0.50, 0.20)],  # 2 grass under a sky
        [(0.62, 0.62, 0.66), (0.33, 0.33, 0.35)],  # 3 road
        [(0.72, 0.62, 0.52), (0.42, 0.34, 0.30)],  # 4 indoor
    ],
    dtype=np.float32,
)
# per class: scene, RGB colour, size, aspect, angle (deg), angle jitter (deg), superellipse
# exponent, texture orientation (deg, relative to the object's axis; -1 = spots), frequency
_CLASS_TABLE = np.array(
    [
        [0, 0.85, 0.85, 0.88, 0.45, 3.2, 0, 25, 2.0, 0, 1.0],  # airplane
        [3, 0.80, 0.18, 0.15, 0.50, 2.0, 0, 8, 4.0, 90, 2.0],  # automobile
        [0, 0.55, 0.40, 0.25, 0.30, 1.6, 0, 30, 2.0, 45, 3.0],  # bird
        [4, 0.80, 0.55, 0.28, 0.45, 1.3, 0, 20, 2.0, 60, 3.0],  # cat
        [2, 0.60, 0.42, 0.22, 0.45, 1.8, 90, 15, 2.0, 0, 1.5],  # deer
        [4, 0.62, 0.47, 0.32, 0.50, 1.5, 0, 20, 2.0, 120, 2.0],  # dog
        [2, 0.32, 0.58, 0.22, 0.35, 1.2, 0, 40, 1.6, -1, 3.0],  # frog
        [2, 0.42, 0.27, 0.16, 0.55, 2.2, 0, 12, 2.5, 90, 1.0],  # horse
        [1, 0.88, 0.88, 0.90, 0.50, 3.0, 0, 6, 5.0, 90, 2.5],  # ship
        [3, 0.22, 0.36, 0.72, 0.55, 1.6, 0, 8, 6.0, 0, 2.0],  # truck
    ],
    dtype=np.float32,
)
_GRID = (np.arange(32, dtype=np.float32) + 0.5) / 16.0 - 1.0  # pixel centres in [-1, 1]


def _col(a: np.ndarray) -> np.ndarray:
    """A per-image value of shape (n,) as float32 of shape (n, 1, 1), to broadcast on pixels."""
    return np.asarray(a, dtype=np.float32)[:, None, None]


def _background(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A gradient between the scene's two colours (a random other scene 35% of the time)."""
    n = len(t)
    scene = np.where(rng.random(n) < 0.35, rng.integers(0, len(_SCENES), n), t[:, 0].astype(int))
    top, bottom = (
        (_SCENES[scene, j] + rng.normal(0, 0.08, (n, 3))).astype(np.float32) for j in (0, 1)
    )
    tilt = rng.normal(0, 0.3, n)
    yy, xx = _GRID[None, :, None], _GRID[None, None, :]
    g = np.clip(0.5 + 0.5 * (_col(np.cos(tilt)) * yy + _col(np.sin(tilt)) * xx), 0, 1)
    return top[:, :, None, None] * (1 - g[:, None]) + bottom[:, :, None, None] * g[:, None]


def _object(t: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Soft mask (n, 32, 32) and fill (n, 3, 32, 32) of a textured, rotated superellipse."""
    n = len(t)
    yy, xx = _GRID[None, :, None], _GRID[None, None, :]
    cx, cy = _col(rng.uniform(-0.4, 0.4, n)), _col(rng.uniform(-0.4, 0.4, n))
    size = t[:, 4] * rng.uniform(0.7, 1.3, n)
    aspect = t[:, 5] * np.exp(rng.normal(0, 0.3, n))
    a, b = _col(size * np.sqrt(aspect)), _col(size / np.sqrt(aspect))
    ang = np.deg2rad(t[:, 6] + rng.normal(0, 1, n) * t[:, 7])
    cos, sin = _col(np.cos(ang)), _col(np.sin(ang))
    u = cos * (xx - cx) + sin * (yy - cy)  # coordinates along and across the object's axis
    v = -sin * (xx - cx) + cos * (yy - cy)
    p = _col(t[:, 8])
    r = (np.abs(u / a) ** p + np.abs(v / b) ** p) ** (1 / p)
    mask = 1.0 / (1.0 + np.exp(np.clip((r - 1.0) * 12.0, -30, 30)))
    # fill: the jittered class colour modulated by an oriented grating (or spots)
    freq = _col(t[:, 10] * rng.uniform(0.8, 1.25, n)) * np.float32(2 * np.pi)
    phi = np.deg2rad(t[:, 9] + rng.normal(0, 25, n))
    phase = _col(rng.uniform(0, 2 * np.pi, n))
    grating = np.sin(freq * (_col(np.cos(phi)) * u + _col(np.sin(phi)) * v) + phase)
    spots = np.sin(freq * u + phase) * np.sin(freq * v)
    tex = np.where(_col(t[:, 9]) < 0, spots, grating)
    colour = (t[:, 1:4] + rng.normal(0, 0.16, (n, 3))).astype(np.float32)
    return mask, colour[:, :, None, None] * (1.0 + 0.25 * tex[:, None])


def _clutter_and_noise(img: np.ndarray, rng: np.random.Generator, noise: float) -> np.ndarray:
    """A random blob in half of the images, contrast and brightness jitter, pixel noise."""
    n = len(img)
    yy, xx = _GRID[None, :, None], _GRID[None, None, :]
    bx, by, br = rng.uniform(-1, 1, n), rng.uniform(-1, 1, n), rng.uniform(0.1, 0.3, n)
    blob = ((xx - _col(bx)) ** 2 + (yy - _col(by)) ** 2 < _col(br) ** 2) & (rng.random(n) < 0.5)[
        :, None, None
    ]
    img = np.where(blob[:, None], rng.random((n, 3), dtype=np.float32)[:, :, None, None], img)
    img = (img - 0.5) * _col(rng.uniform(0.7, 1.2, n))[:, None] + 0.5
    img = img + _col(rng.normal(0, 0.08, n))[:, None]
    return img + np.float32(noise) * rng.standard_normal(img.shape, dtype=np.float32)


def _render(labels: np.ndarray, rng: np.random.Generator, noise: float) -> np.ndarray:
    """Images (n, 3, 32, 32) in [0, 1] of the given classes (vectorised over the batch)."""
    t = _CLASS_TABLE[labels]
    img = _background(t, rng)
    mask, fill = _object(t, rng)
    img = img * (1 - mask[:, None]) + fill * mask[:, None]
    return np.clip(_clutter_and_noise(img, rng, noise), 0, 1).astype(np.float32)


def _generate(n: int, rng: np.random.Generator, noise: float) -> tuple[np.ndarray, np.ndarray]:
    labels = rng.permutation(np.arange(n) % len(CLASSES)).astype(np.int64)  # balanced classes
    X = np.empty((n, 3, 32, 32), dtype=np.float32)
    for i in range(0, n, 1024):  # chunks bound the memory of the float intermediates
        X[i : i + 1024] = _render(labels[i : i + 1024], rng, noise) * 2.0 - 1.0
    return X, labels


def cifar_standin(
    *, n_train: int = 20000, n_test: int = 2000, noise: float = 0.15, seed: int = 0
) -> Dataset:
    """Offline stand-in with CIFAR-10's shape: procedural 3 x 32 x 32 images of 10 classes.

    Each class (named like CIFAR-10's) has a scene (a two-colour background gradient: sky,
    water, grass, road or indoor), an object colour, size, aspect ratio, orientation and
    superellipse shape (round to boxy), and a texture (an oriented grating or spots). Every
    image draws its object's position, scale, aspect, orientation, colour, texture phase and
    frequency at random around its class's values, swaps the scene for a random one 35% of the
    time, adds a random clutter blob to half of the images, jitters contrast and brightness, and
    adds pixel noise. Classes overlap by design (cat/dog, automobile/truck, deer/horse,
    airplane/ship/bird share scenes, colours or shapes), so a CNN learns them well above chance
    but not perfectly.

    Parameters
    ----------
    n_train, n_test : int, default=20000, 2000
        Numbers of training and test images (classes balanced to within one image).
    noise : float, default=0.1
        Standard deviation of the Gaussian pixel noise, on the [0, 1] scale before rescaling.
    seed : int, default=0
        Seed of everything random; the same arguments give bit-identical arrays.

    Returns
    -------
    Dataset
        Images (n, 3, 32, 32) float32 in [-1, 1], labels int64, ``standin=True``.

    Examples
    --------
    >>> d = cifar_standin(n_train=100, n_test=20)
    >>> d.input_shape, d.standin, d.classes[0]
    ((3, 32, 32), True, 'airplane')
    """
    check_scalar(n_train, "n_train", int, min_val=1)
    check_scalar(n_test, "n_test", int, min_val=1)
    check_scalar(noise, "noise", min_val=0.0)
    check_scalar(seed, "seed", int, min_val=0)
    rng = np.random.default_rng(seed)
    X_train, y_train = _generate(n_train, rng, noise)
    X_test, y_test = _generate(n_test, rng, noise)
    return Dataset(
        name="cifar10-standin",
        X_train=X_train,
        y_train=y_train,
        X_test=X_test,
        y_test=y_test,
        classes=CLASSES,
        standin=True,
        source=(
            "OFFLINE STAND-IN, not CIFAR-10: procedurally generated 32x32 colour images of 10 "
            "classes named like CIFAR-10's (class-specific scenes, colours, shapes and textures "
            f"with random position, scale and noise; {n_train:,} training, {n_test:,} test "
            "images). Numbers computed on it are not comparable with the paper's."
        ),
    )
