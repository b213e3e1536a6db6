"""Peak memory of one computation, measured in a fresh worker process.

``tracemalloc`` misses torch's allocations and the kernel's own peak includes everything that ran
before; a fresh process started with ``spawn`` gives an honest number: its peak resident set
size during the call, next to its size before the call (interpreter, numpy, torch and the
unpickled arguments). On Linux the peak is the process's ``VmHWM`` (``/proc/self/status``),
reset just before the call; ``ru_maxrss`` is not used there because it survives ``execve`` and so
starts at the parent's size.
"""

from __future__ import annotations

import multiprocessing as mp
import resource
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["PeakMemory", "peak_memory"]


@dataclass(frozen=True)
class PeakMemory:
    """Result of :func:`peak_memory`.

    Attributes
    ----------
    value : object
        What the function returned.
    peak_bytes : int
        Peak resident set size of the worker process, call included.
    baseline_bytes : int
        Resident set size of the worker just before the call.
    seconds : float
        Wall time of the call.
    """

    value: Any
    peak_bytes: int
    baseline_bytes: int
    seconds: float

    @property
    def extra_bytes(self) -> int:
        """``peak_bytes - baseline_bytes``: what the call itself needed at most."""
        return max(self.peak_bytes - self.baseline_bytes, 0)


_STATUS = Path("/proc/self/status")


def _status_bytes(field: str) -> int | None:
    """A ``/proc/self/status`` memory field (``VmRSS``, ``VmHWM``) in bytes; None if absent."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024  # reported in kB
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    """Reset ``VmHWM`` to the current RSS (Linux >= 4.0); False if not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _maxrss_bytes() -> int:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)  # Linux reports KiB


def _measured(func: Callable, args: tuple, kwargs: dict) -> tuple[Any, int, int, float]:
    import torch

    torch.set_num_threads(1)
    use_hwm = _status_bytes("VmRSS") is not None and _reset_peak()
    before = _status_bytes("VmRSS") if use_hwm else _maxrss_bytes()
    t0 = time.perf_counter()
    value = func(*args, **kwargs)
    seconds = time.perf_counter() - t0
    peak = _status_bytes("VmHWM") if use_hwm else _maxrss_bytes()
    return value, max(peak, before), before, seconds


def peak_memory(func: Callable[..., Any], *args: Any, **kwargs: Any) -> PeakMemory:
    """Run ``func(*args, **kwargs)`` in a fresh process and report its peak memory.

    Parameters
    ----------
    func : callable
        A picklable (module-level) function; its arguments and result must be picklable.
    *args, **kwargs
        Its arguments.

    Returns
    -------
    PeakMemory
    """
    with ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn")) as pool:
        value, peak, before, seconds = pool.submit(_measured, func, args, kwargs).result()
    return PeakMemory(value, peak, before, seconds)
