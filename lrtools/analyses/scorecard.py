r"""Bootstrap confidence intervals and the claims scorecard of the MNIST and CIFAR chapters.

The paper's findings (Introduction, items 1-4; Sections 3.2-3.5; Appendix E of [1]) compare a
statistic of per-point measurements between models ("BN makes smaller regions", "BN slightly
reduces the relevance", ...). With a few hundred test points instead of 1000, each such
comparison is reported with a percentile-bootstrap interval and a verdict:

* :func:`bootstrap_ci` - interval of a statistic of one sample of per-point values;
* :func:`compare` - interval of the difference (or ratio) of a statistic between two samples,
  unpaired or paired, or between one sample and a reference number;
* :class:`Claim` and :func:`scorecard` - one row per claim: our value, its interval, the
  paper's value and the verdict.

Values must be one per test point (the independent unit of the resampling). For quantities with
several values per point (the :math:`\rho` of every surrounding region, Fig. 6(b)), summarise
per point first (e.g. ``median_rho`` of :func:`lrtools.analyses.surrounding.surrounding_table`).

References
----------
.. [1] X. Zhang and D. Wu, "Empirical Studies on the Properties of Linear Regions in Deep
   Neural Networks", ICLR 2020.
.. [2] B. Efron and R. J. Tibshirani, "An Introduction to the Bootstrap", Chapman & Hall,
   1993, Chapter 13 (percentile intervals).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

import numpy as np
import pandas as pd

from .._validation import check_choice, check_scalar

__all__ = [
    "BootstrapCI",
    "bootstrap_ci",
    "compare",
    "Claim",
    "scorecard",
    "verdict",
    "REPRODUCED",
    "NOT_REPRODUCED",
    "INCONCLUSIVE",
    "percentile_interval",
]

_MAX_CELLS = 4_000_000  # resampled values held at once (n_boot rows x n columns)

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
INCONCLUSIVE = "inconclusive at this sample size"


@dataclass(frozen=True)
class BootstrapCI:
    """A statistic and its percentile-bootstrap interval.

    Attributes
    ----------
    estimate : float
        The statistic on the data as given (for :func:`compare`: of ``a`` minus, or over, that
        of ``b``).
    low, high : float
        The interval's end points.
    level : float
        Its nominal coverage.
    n_boot : int
        Bootstrap resamples.
    n : tuple of int
        Values used per sample (one entry, or two for :func:`compare` with two samples).
    n_dropped : tuple of int
        NaN values dropped per sample (``nan_policy="omit"``).
    """

    estimate: float
    low: float
    high: float
    level: float
    n_boot: int
    n: tuple[int, ...]
    n_dropped: tuple[int, ...]


# --------------------------------------------------------------------------------------------
# Resampling
# --------------------------------------------------------------------------------------------


def _clean(values: Any, name: str, nan_policy: str) -> tuple[np.ndarray, int]:
    """1-D float array with NaNs rejected or dropped, and the number dropped."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"{name} must be array-like of numbers; got {type(values).__name__}."
        ) from exc
    if arr.ndim != 1:
        raise ValueError(
            f"{name} must be 1-D (one value per test point); got shape {arr.shape}. "
            "Summarise several values per point first, or use .ravel()."
        )
    nan = np.isnan(arr)
    if nan.any() and nan_policy == "raise":
        raise ValueError(
            f"{name} contains {int(nan.sum())} NaN value(s) out of {arr.size}; drop them or pass "
            "nan_policy='omit' (the count dropped is reported in n_dropped)."
        )
    arr = arr[~nan]
    if np.isinf(arr).any():
        raise ValueError(f"{name} contains infinite values; remove them.")
    if arr.size < 2:
        raise ValueError(f"{name} needs at least 2 values to resample; got {arr.size}.")
    return arr, int(nan.sum())


def _apply(statistic: Callable, samples: np.ndarray) -> np.ndarray:
    """``statistic`` of every row of ``samples`` (vectorised through ``axis=-1`` if possible)."""
    try:
        out = np.asarray(statistic(samples, axis=-1), dtype=np.float64)
        if out.shape == samples.shape[:1]:
            return out
    except TypeError:
        pass
    return np.array([float(statistic(row)) for row in samples])


def _boot_stats(values: np.ndarray, statistic: Callable, idx_rows: np.ndarray) -> np.ndarray:
    """Statistic of ``values[idx]`` for each row of indices, in memory-bounded blocks."""
    block = max(1, _MAX_CELLS // values.size)
    return np.concatenate(
        [_apply(statistic, values[idx_rows[s : s + block]]) for s in range(0, len(idx_rows), block)]
    )


def _indices(rng: np.random.Generator, n: int, n_boot: int) -> np.ndarray:
    return rng.integers(0, n, size=(n_boot, n))


def percentile_interval(boots: np.ndarray, level: float) -> tuple[float, float]:
    """The percentile interval at ``level`` of bootstrap statistics ``boots`` (every resample's
    statistic must be finite, else ValueError); the one interval rule of the scorecards."""
    if not np.all(np.isfinite(boots)):
        raise ValueError(
            f"the statistic is not finite on {int((~np.isfinite(boots)).sum())} resample(s) "
            "(e.g. a ratio over a zero); choose another statistic or kind='difference'."
        )
    alpha = 1.0 - level
    low, high = np.quantile(boots, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def _check_resampling(statistic: Callable, n_boot: int, level: float, nan_policy: str) -> None:
    if not callable(statistic):
        raise TypeError(f"statistic must be callable, e.g. np.mean; got {statistic!r}.")
    check_scalar(n_boot, "n_boot", Integral, min_val=1)
    check_scalar(
        level, "level", Real, min_val=0.0, max_val=1.0, include_min=False, include_max=False
    )
    check_choice(nan_policy, "nan_policy", ("raise", "omit"))


def bootstrap_ci(
    values,
    statistic: Callable[..., Any] = np.mean,
    *,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int | np.random.SeedSequence | np.random.Generator = 0,
    nan_policy: str = "raise",
) -> BootstrapCI:
    r"""Percentile-bootstrap interval of a statistic of per-point values.

    Parameters
    ----------
    values : array-like of shape (n,)
        One value per test point, ``n >= 2``.
    statistic : callable, default=numpy.mean
        Maps a 1-D array to a number; if it accepts ``axis=-1`` (as numpy reductions do) all
        resamples are evaluated at once.
    n_boot : int, default=2000
        Number of resamples :math:`B`.
    level : float, default=0.95
        Nominal coverage :math:`1 - \alpha`.
    seed : int, numpy.random.SeedSequence or numpy.random.Generator, default=0
        Seed of the resampling; the same seed gives the same interval.
    nan_policy : {"raise", "omit"}, default="raise"
        NaN values (e.g. a failed solve) raise a ``ValueError``, or are dropped and counted in
        ``n_dropped``.

    Returns
    -------
    BootstrapCI

    Notes
    -----
    With :math:`\hat\theta^{*1}, \dots, \hat\theta^{*B}` the statistic on :math:`B` resamples
    of the :math:`n` values drawn with replacement, the interval is [2]_

    .. math::

        \bigl[\hat\theta^{*}_{(\alpha/2)},\ \hat\theta^{*}_{(1-\alpha/2)}\bigr],

    the empirical quantiles of the resampled statistics.
    """
    _check_resampling(statistic, n_boot, level, nan_policy)
    x, dropped = _clean(values, "values", nan_policy)
    rng = np.random.default_rng(seed)
    boots = _boot_stats(x, statistic, _indices(rng, x.size, int(n_boot)))
    low, high = percentile_interval(boots, float(level))
    return BootstrapCI(
        float(statistic(x)), low, high, float(level), int(n_boot), (x.size,), (dropped,)
    )


def _combine(sa, sb, kind: str):
    if kind == "difference":
        return sa - sb
    with np.errstate(divide="ignore", invalid="ignore"):  # a zero is reported by _interval
        return sa / sb


def compare(
    a,
    b,
    statistic: Callable[..., Any] = np.mean,
    *,
    kind: str = "difference",
    paired: bool = False,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int | np.random.SeedSequence | np.random.Generator = 0,
    nan_policy: str = "raise",
) -> BootstrapCI:
    r"""Bootstrap interval of :math:`s(a) - s(b)` or :math:`s(a) / s(b)` for a statistic :math:`s`.

    Parameters
    ----------
    a : array-like of shape (n_a,)
        Per-point values of the first model.
    b : array-like of shape (n_b,), or float
        Per-point values of the second model, or a reference number (then only ``a`` is
        resampled: e.g. "the median :math:`\rho` exceeds 0.5").
    statistic : callable, default=numpy.mean
        As in :func:`bootstrap_ci`.
    kind : {"difference", "ratio"}, default="difference"
        Compare by :math:`s(a) - s(b)` (no effect: 0) or :math:`s(a) / s(b)` (no effect: 1;
        meaningful for positive statistics).
    paired : bool, default=False
        Resample the same indices in ``a`` and ``b`` (both measured on the same test points, in
        the same order; ``n_a == n_b``). Unpaired resampling draws each sample independently.
    n_boot, level, seed, nan_policy
        As in :func:`bootstrap_ci`. With ``paired`` and ``nan_policy="omit"`` a point is dropped
        from both samples when either value is NaN.

    Returns
    -------
    BootstrapCI
        ``estimate`` is :math:`s(a) - s(b)` (or the ratio) on the data as given.

    Notes
    -----
    The percentile interval of the combined statistic over resamples
    :math:`(a^{*b}, b^{*b})`, :math:`b = 1, \dots, B`:

    .. math::

        \hat\Delta^{*b} = s(a^{*b}) - s(b^{*b})
        \quad\text{or}\quad s(a^{*b}) / s(b^{*b}).
    """
    _check_resampling(statistic, n_boot, level, nan_policy)
    check_choice(kind, "kind", ("difference", "ratio"))
    if not isinstance(paired, bool):
        raise TypeError(f"paired must be a bool; got {type(paired).__name__}.")
    rng = np.random.default_rng(seed)
    if isinstance(b, Real):
        if paired:
            raise ValueError("paired=True needs two samples; b is a reference number.")
        return _compare_reference(
            a, float(b), statistic, kind, int(n_boot), float(level), rng, nan_policy
        )
    if paired:
        return _compare_paired(a, b, statistic, kind, int(n_boot), float(level), rng, nan_policy)
    xa, da = _clean(a, "a", nan_policy)
    xb, db = _clean(b, "b", nan_policy)
    sa = _boot_stats(xa, statistic, _indices(rng, xa.size, int(n_boot)))
    sb = _boot_stats(xb, statistic, _indices(rng, xb.size, int(n_boot)))
    low, high = percentile_interval(_combine(sa, sb, kind), float(level))
    est = float(_combine(statistic(xa), statistic(xb), kind))
    return BootstrapCI(est, low, high, float(level), int(n_boot), (xa.size, xb.size), (da, db))


def _compare_reference(a, ref, statistic, kind, n_boot, level, rng, nan_policy) -> BootstrapCI:
    if not np.isfinite(ref) or (kind == "ratio" and ref == 0):
        raise ValueError(f"the reference value b == {ref} must be finite (and non-zero for ratio).")
    xa, da = _clean(a, "a", nan_policy)
    sa = _boot_stats(xa, statistic, _indices(rng, xa.size, n_boot))
    low, high = percentile_interval(_combine(sa, ref, kind), level)
    est = float(_combine(statistic(xa), ref, kind))
    return BootstrapCI(est, low, high, level, n_boot, (xa.size,), (da,))


def _compare_paired(a, b, statistic, kind, n_boot, level, rng, nan_policy) -> BootstrapCI:
    ra, rb = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if ra.shape != rb.shape or ra.ndim != 1:
        raise ValueError(
            f"paired samples must be 1-D of the same length (same test points); got shapes "
            f"{ra.shape} and {rb.shape}. Use paired=False for different points."
        )
    keep = ~(np.isnan(ra) | np.isnan(rb)) if nan_policy == "omit" else np.ones(ra.size, bool)
    xa, _ = _clean(ra[keep], "a", nan_policy)
    xb, _ = _clean(rb[keep], "b", nan_policy)
    idx = _indices(rng, xa.size, n_boot)
    boots = _combine(_boot_stats(xa, statistic, idx), _boot_stats(xb, statistic, idx), kind)
    low, high = percentile_interval(boots, level)
    est = float(_combine(statistic(xa), statistic(xb), kind))
    dropped = int((~keep).sum())
    return BootstrapCI(est, low, high, level, n_boot, (xa.size, xb.size), (dropped, dropped))


# --------------------------------------------------------------------------------------------
# Claims and verdicts
# --------------------------------------------------------------------------------------------


def verdict(low: float, high: float, expected: str, *, null: float = 0.0) -> str:
    """Verdict of an interval for a directional claim (the rule of :func:`scorecard`).

    Parameters
    ----------
    low, high : float
        The interval of the tested difference (or ratio).
    expected : {"greater", "less"}
        The paper's side: the tested quantity is above (``"greater"``) or below ``null``.
    null : float, default=0.0
        No effect: 0 for a difference, 1 for a ratio.

    Returns
    -------
    str
        ``"reproduced"`` if ``[low, high]`` lies strictly on the paper's side of ``null``,
        ``"not reproduced"`` if strictly on the opposite side, else
        ``"inconclusive at this sample size"`` (the interval contains or touches ``null``).
    """
    check_choice(expected, "expected", ("greater", "less"))
    if low > high:
        raise ValueError(f"low == {low} exceeds high == {high}; pass the interval in order.")
    above, below = low > null, high < null
    if above or below:
        return REPRODUCED if above == (expected == "greater") else NOT_REPRODUCED
    return INCONCLUSIVE


@dataclass(frozen=True, eq=False)
class Claim:
    r"""One directional claim of the paper, tested on per-point values.

    The claim holds in the paper's direction when :math:`s(a) - s(b)` (or :math:`s(a)/s(b)`)
    is above (``expected="greater"``) or below (``"less"``) no effect.

    Attributes
    ----------
    claim : str
        The claim in words, with its source, e.g. "BN gives smaller regions (finding 1, Fig. 3)".
    a : array-like of shape (n_a,)
        Per-point values of the first model (e.g. BN inradii).
    b : array-like of shape (n_b,), or float
        Per-point values of the second model (e.g. vanilla inradii), or a reference number.
    expected : {"greater", "less"}
        The paper's side of the comparison.
    paper_value : str or float, default=""
        What the paper reports (a number from a table, or a direction read off a figure).
    statistic : callable, default=numpy.mean
        The statistic :math:`s` of per-point values.
    label : str, default=""
        How the tested quantity is shown, e.g. "median inradius, BN / vanilla"; by default
        built from the statistic's name and ``kind``.
    kind : {"difference", "ratio"}, default="difference"
        Difference or ratio of the statistic.
    paired : bool, default=False
        Whether ``a`` and ``b`` were measured on the same test points (resampled jointly).
    nan_policy : {"raise", "omit"}, default="raise"
        As in :func:`bootstrap_ci`.
    """

    claim: str
    a: Any
    b: Any
    expected: str
    paper_value: str | float = ""
    statistic: Callable[..., Any] = np.mean
    label: str = ""
    kind: str = "difference"
    paired: bool = False
    nan_policy: str = "raise"

    def describe(self) -> str:
        """The label of the tested quantity."""
        if self.label:
            return self.label
        name = getattr(self.statistic, "__name__", "statistic")
        op = "-" if self.kind == "difference" else "/"
        rhs = f"{float(self.b):g}" if isinstance(self.b, Real) else f"{name}(b)"
        return f"{name}(a) {op} {rhs}"


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def scorecard(
    claims: Sequence[Claim],
    *,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
    keys: Sequence[int] | None = None,
) -> pd.DataFrame:
    r"""Test every claim by a bootstrap interval and give it a verdict.

    Parameters
    ----------
    claims : sequence of Claim
        The claims of a chapter.
    n_boot : int, default=2000
        Resamples per claim.
    level : float, default=0.95
        Nominal coverage of the intervals.
    seed : int, default=0
        Claim ``i`` resamples with ``SeedSequence(seed, spawn_key=(keys[i],))``: independent
        streams, the same for a claim whatever the others.
    keys : sequence of int, optional
        The stream of each claim (default ``0, 1, ...``): a catalogue passes each claim's
        position in the catalogue, so leaving a claim out does not change the others' intervals.

    Returns
    -------
    pandas.DataFrame
        One row per claim with columns ``claim``, ``statistic`` (the tested quantity),
        ``our value`` (its estimate), ``95% CI`` (the interval as text; the percentage follows
        ``level``), ``paper value``, ``verdict``, then ``ci_low``, ``ci_high``, ``n_a``,
        ``n_b`` (values used, 0 for a reference number) and ``n_dropped`` (NaNs omitted).

    Notes
    -----
    Verdict rule: with :math:`[L, H]` the interval of the tested difference (no effect 0) or
    ratio (no effect 1),

    * ``"reproduced"`` when :math:`[L, H]` lies entirely on the paper's side of no effect;
    * ``"not reproduced"`` when it lies entirely on the opposite side;
    * ``"inconclusive at this sample size"`` otherwise (it contains or touches no effect).

    The rule is a two-sided test at level :math:`1 - \text{level}` per claim, with no
    correction for testing several claims.
    """
    claims = list(claims)
    bad = [i for i, c in enumerate(claims) if not isinstance(c, Claim)]
    if bad:
        raise TypeError(f"claims must be Claim objects; item {bad[0]} is {type(claims[bad[0]])}.")
    check_scalar(seed, "seed", Integral, min_val=0)
    _check_resampling(np.mean, n_boot, level, "raise")
    keys = list(range(len(claims))) if keys is None else [int(k) for k in keys]
    if len(keys) != len(claims) or len(set(keys)) != len(keys):
        raise ValueError(f"keys must hold {len(claims)} distinct ints, one per claim; got {keys}.")
    pairs = enumerate(zip(claims, keys, strict=True))
    rows = [_row(c, i, k, n_boot, level, seed) for i, (c, k) in pairs]
    columns = [
        "claim",
        "statistic",
        "our value",
        f"{100 * level:g}% CI",
        "paper value",
        "verdict",
        "ci_low",
        "ci_high",
        "n_a",
        "n_b",
        "n_dropped",
    ]
    return pd.DataFrame(rows, columns=columns)


def _row(c: Claim, i: int, key: int, n_boot: int, level: float, seed: int) -> list:
    check_choice(c.expected, f"claims[{i}].expected", ("greater", "less"))
    try:
        res = compare(
            c.a,
            c.b,
            c.statistic,
            kind=c.kind,
            paired=c.paired,
            n_boot=n_boot,
            level=level,
            seed=np.random.SeedSequence(seed, spawn_key=(key,)),
            nan_policy=c.nan_policy,
        )
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"claims[{i}] ({c.claim!r}): {exc}") from exc
    null = 0.0 if c.kind == "difference" else 1.0
    n_b = res.n[1] if len(res.n) == 2 else 0
    return [
        c.claim,
        c.describe(),
        res.estimate,
        f"[{_fmt(res.low)}, {_fmt(res.high)}]",
        c.paper_value,
        verdict(res.low, res.high, c.expected, null=null),
        res.low,
        res.high,
        res.n[0],
        n_b,
        res.n_dropped[0] if c.paired else sum(res.n_dropped),
    ]
