"""Progress bars on the terminal, never in a notebook's output.

Inside a Jupyter kernel (``lrbook`` executes the chapters with papermill) ``sys.stderr`` is the
cell's output, and ipykernel also redirects file descriptor 2 into the cell (it keeps a copy of
the original descriptor, ``sys.stderr._original_stdstream_copy``, to echo to). That copy is the
terminal that started ``lrbook``: :func:`bar` writes there, so long work shows its progress
where it is watched and the executed notebooks hold no progress-bar frames.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any, TextIO

from tqdm import tqdm

__all__ = ["terminal", "bar"]


_TERMINAL: dict[int, TextIO] = {}


def terminal() -> TextIO | None:
    """The terminal's stream: in a Jupyter kernel the kernel's original stderr (never the
    cell output; None if there is none), else ``sys.stderr``."""
    if "ipykernel" not in sys.modules:
        return sys.stderr
    fd = getattr(sys.stderr, "_original_stdstream_copy", None)
    if fd is None:  # a kernel that does not capture descriptor 2: it is still the terminal
        return sys.__stderr__
    if fd not in _TERMINAL:
        try:
            _TERMINAL[fd] = os.fdopen(os.dup(fd), "w", buffering=1)
        except OSError:
            return None
    return _TERMINAL[fd]


def bar(iterable: Iterable | None = None, *, desc: str = "", disable: bool = False,
        **kwargs: Any) -> tqdm:  # fmt: skip
    """A ``tqdm`` bar on :func:`terminal` (disabled when there is none), not left behind."""
    out = terminal()
    kwargs.setdefault("leave", False)
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, desc=desc, file=out, disable=disable or out is None, **kwargs)
