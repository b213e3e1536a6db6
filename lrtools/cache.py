"""On-disk cache of expensive results, keyed by a hash of every parameter.

A result is stored under ``<root>/<kind>/<key>.<ext>`` where ``key`` is the SHA-256 of the
canonical JSON of its parameters, and a ``.json`` sidecar records those parameters in clear.
Writes are atomic (temporary file, then ``os.replace``), so an interrupted run never leaves a
half-written entry behind. The root is ``$LRTOOLS_CACHE_DIR`` if set, else ``<data_root>/cache``
where the data root is ``$LRTOOLS_DATA_DIR`` or ``data/`` in the repository checkout
(``~/.cache/lrtools`` for an installed package).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from .exceptions import CacheError

__all__ = [
    "data_root",
    "cache_root",
    "canonical",
    "param_key",
    "atomic_write",
    "cached_pickle",
    "cache_path",
]

T = TypeVar("T")


def data_root() -> Path:
    """Folder of local data sets: ``$LRTOOLS_DATA_DIR``, else ``data/`` in the checkout."""
    env = os.environ.get("LRTOOLS_DATA_DIR")
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parents[1]
    if (repo / "pyproject.toml").exists():
        return repo / "data"
    return Path.home() / ".cache" / "lrtools"


def cache_root() -> Path:
    """The cache folder, ``$LRTOOLS_CACHE_DIR`` or ``<data_root>/cache`` (created on demand)."""
    env = os.environ.get("LRTOOLS_CACHE_DIR")
    root = Path(env) if env else data_root() / "cache"
    root.mkdir(parents=True, exist_ok=True)
    return root


def _canonical(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _canonical(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, list | tuple):
        return [_canonical(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return hashlib.sha256(np.ascontiguousarray(obj).tobytes()).hexdigest()
    if isinstance(obj, float | int | str | bool) or obj is None:
        return obj
    raise TypeError(f"cannot build a cache key from {type(obj).__name__}; use plain values.")


def canonical(obj: Any) -> Any:
    """``obj`` as plain JSON values with sorted keys (arrays by their SHA-256): what keys hash."""
    return _canonical(obj)


def param_key(params: dict[str, Any]) -> str:
    """Stable 20-hex-digit key of a parameter dictionary (order-independent)."""
    blob = json.dumps(_canonical(params), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def cache_path(kind: str, params: dict[str, Any], ext: str) -> Path:
    """Path of the entry of ``kind`` for ``params`` (the folder is created)."""
    folder = cache_root() / kind
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{param_key(params)}.{ext}"


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp_path)`` then move the temporary file onto ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_sidecar(path: Path, params: dict[str, Any]) -> None:
    side = path.with_suffix(".json")
    atomic_write(side, lambda p: p.write_text(json.dumps(_canonical(params), indent=1)))


def cached_pickle(
    kind: str, params: dict[str, Any], compute: Callable[[], T], *, refresh: bool = False
) -> T:
    """Return the cached result for ``params``, computing and storing it on a miss.

    Parameters
    ----------
    kind : str
        A folder name grouping one sort of result (e.g. ``"toy-inradius"``).
    params : dict
        Every parameter the result depends on (plain values, arrays are hashed).
    compute : callable
        Produces the result on a miss; it must be picklable.
    refresh : bool, default=False
        Recompute and overwrite even on a hit.

    Raises
    ------
    CacheError
        If an existing entry cannot be read (the message names the file to delete).
    """
    path = cache_path(kind, params, "pkl")
    if path.exists() and not refresh:
        try:
            with open(path, "rb") as fh:
                return pickle.load(fh)
        except Exception as exc:  # any unpickling failure means a corrupted entry
            raise CacheError(
                f"cached result {path} is unreadable ({type(exc).__name__}: {exc}). "
                f"Delete that file (or the folder {path.parent}) and run again to recompute it."
            ) from exc
    result = compute()

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            pickle.dump(result, fh, protocol=pickle.HIGHEST_PROTOCOL)

    atomic_write(path, write)
    _write_sidecar(path, params)
    return result
