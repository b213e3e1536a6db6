"""Reader of the IDX format (MNIST's file format), gzipped or not, with numpy only."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np

__all__ = ["read_idx", "md5"]

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def md5(path: str | Path) -> str:
    """Hex MD5 digest of a file."""
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (``.gz`` or plain) into an array of its stored shape and dtype.

    Raises
    ------
    ValueError
        If the file is not gzip data although named ``.gz``, is truncated, or its header is not
        an IDX header.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile, a truncated gzip stream
        raise ValueError(f"{path} cannot be decompressed ({exc}); re-download it.") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES or raw[3] == 0:
        raise ValueError(f"{path} is not an IDX file (bad magic number); re-download it.")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise ValueError(f"{path} is truncated: its header is incomplete; re-download it.")
    dims = np.frombuffer(raw, dtype=">i4", count=ndim, offset=4).astype(int)
    if np.any(dims < 0):
        raise ValueError(f"{path} has a corrupted header (negative dimensions); re-download it.")
    dtype = np.dtype(_DTYPES[raw[2]])
    offset = 4 + 4 * ndim
    n = int(np.prod(dims))
    if len(raw) - offset != n * dtype.itemsize:
        raise ValueError(
            f"{path} is truncated or corrupted: header says {tuple(dims)} but the file has "
            f"{len(raw) - offset} data bytes; delete it and download it again."
        )
    return np.frombuffer(raw, dtype=dtype, count=n, offset=offset).reshape(dims)
