"""One torch thread for a block of work: the one thread rule of training and of the workers.

Training and per-point measurements run with one torch thread wherever they run (this process
or a Dask worker), so their results do not depend on where they ran or on the machine's cores.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["one_torch_thread"]


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run torch with one thread, restoring the caller's setting afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
