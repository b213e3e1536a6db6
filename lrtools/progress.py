"""Progress bars on the terminal, never in a notebook's output.

Inside a Jupyter kernel (``lrbook`` executes the chapters with papermill) ``sys.stderr`` is the
cell's output; the kernel's original stderr, ``sys.__stderr__``, is the terminal that started
``lrbook``. :func:`bar` writes there, so long work shows its progress where it is watched and the
executed notebooks hold no progress-bar frames.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any, TextIO

from tqdm import tqdm

__all__ = ["terminal", "bar"]


def terminal() -> TextIO | None:
    """The terminal's stream: in a Jupyter kernel its original stderr, else ``sys.stderr``."""
    if "ipykernel" in sys.modules:
        return sys.__stderr__
    return sys.stderr


def bar(iterable: Iterable | None = None, *, desc: str = "", disable: bool = False,
        **kwargs: Any) -> tqdm:  # fmt: skip
    """A ``tqdm`` bar on :func:`terminal` (disabled when there is none), not left behind."""
    out = terminal()
    kwargs.setdefault("leave", False)
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, desc=desc, file=out, disable=disable or out is None, **kwargs)
