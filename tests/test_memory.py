"""peak_memory measures the call in a fresh process."""

from __future__ import annotations

import numpy as np

from lrtools.memory import peak_memory


def _allocate(n_bytes: int) -> float:
    a = np.ones(n_bytes // 8)
    return float(a.sum())


def test_peak_memory_sees_a_large_allocation():
    big = peak_memory(_allocate, 400 * 2**20)
    small = peak_memory(_allocate, 2**20)
    assert big.value == 400 * 2**20 // 8 and small.value == 2**20 // 8
    assert big.extra_bytes >= 350 * 2**20  # the 400 MiB array was resident at the peak
    assert small.extra_bytes < 100 * 2**20
    assert big.peak_bytes >= big.baseline_bytes > 0 and big.seconds >= 0


def test_baseline_is_the_child_not_the_parent():
    """ru_maxrss survives execve; the measurement must not inherit the caller's size."""
    ballast = np.ones(600 * 2**20 // 8)  # the caller holds 600 MiB
    res = peak_memory(_allocate, 2**20)
    assert res.baseline_bytes < 550 * 2**20  # a fresh interpreter with numpy and torch
    assert res.peak_bytes < res.baseline_bytes + 100 * 2**20
    del ballast
