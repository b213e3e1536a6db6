r"""Verdicts a reader can trust: a hierarchical bootstrap over seeds and points, and the rule
that turns its interval into a verdict (issue 13).

A claim of the paper compares a statistic :math:`s` (usually the mean) of per-point values of
two models, e.g. the log10 inradius (eq. 5) of BN and vanilla manifold regions (Fig. 3). The
paper's claims are about training techniques, not about one trained network, so a run trains
every model once per seed and measures the same test points on each; the values of one side
then have two levels: seeds, and test points within a seed.

* :func:`hierarchical_compare` - the percentile interval of :math:`s(a) - s(b)` under the
  two-level bootstrap: draw the seeds with replacement, then the points within each drawn
  seed [2]_. With one seed it is the point bootstrap of
  :func:`lrtools.analyses.scorecard.compare`. When the seeds disagree, the seed level adds
  their spread to the interval, which resampling the points alone (what a one-seed run can
  do) never sees.
* :func:`decide` - the verdict: too few points, no difference of practical size, seeds that
  disagree in sign, an interval across zero, or the claim reproduced / not reproduced.

Thresholds
----------
:data:`MIN_POINTS` (10 points per trained model) and :data:`PRACTICAL_SIZE` (0.2 pooled
standard deviations) are stated on every claims page by :func:`rules_text`, with the reasons:

* **10 points.** A percentile-bootstrap interval is only as good as the sample's picture of
  its own distribution. With :math:`n` values a resample takes at most
  :math:`\binom{2n-1}{n}` distinct values (3 for :math:`n = 2`), and the 95% interval of a mean
  covers the truth markedly less often than 95% below about ten values
  (:func:`percentile_coverage` measures it: on normal data about 0.51 at :math:`n = 2`, 0.83 at
  :math:`n = 5`, 0.89 at :math:`n = 10`, 0.92 at :math:`n = 20`). Below 10 points the
  page gives the numbers but no verdict.
* **0.2 standard deviations.** Cohen's "small" effect [3]_. Two normal distributions whose
  means are 0.2 pooled SD apart overlap by 92% (:math:`2\Phi(-d/2)`); a shift that small is
  invisible in the paper's histograms and violins (Fig. 3, 4, 6), so the paper cannot have
  meant one. Without this floor, a few hundred points make a difference of +0.0006 in mean
  :math:`|\cos|` "significant".

References
----------
.. [1] X. Zhang and D. Wu, "Empirical Studies on the Properties of Linear Regions in Deep
   Neural Networks", ICLR 2020.
.. [2] A. C. Davison and D. V. Hinkley, "Bootstrap Methods and their Application", Cambridge
   University Press, 1997, Section 3.8 (resampling hierarchical data: the clusters first, then
   within each).
.. [3] J. Cohen, "Statistical Power Analysis for the Behavioral Sciences", 2nd ed., 1988,
   Section 2.2.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

import numpy as np
import pandas as pd

from .._validation import check_choice, check_scalar
from .scorecard import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, compare, percentile_interval

__all__ = [
    "MIN_POINTS",
    "PRACTICAL_SIZE",
    "NO_DIFFERENCE",
    "SEEDS_DISAGREE",
    "REPRODUCED",
    "NOT_REPRODUCED",
    "INCONCLUSIVE",
    "too_few",
    "is_too_few",
    "Comparison",
    "hierarchical_compare",
    "decide",
    "percentile_coverage",
    "rules_text",
]

#: Fewest test points per trained model before a claim gets a verdict.
MIN_POINTS = 10
#: Smallest effect, in pooled standard deviations of the per-point values, that counts as a
#: difference (Cohen's "small" effect).
PRACTICAL_SIZE = 0.2

NO_DIFFERENCE = "no difference"
SEEDS_DISAGREE = "inconclusive: seeds disagree"


def too_few(n: int) -> str:
    """The verdict of a claim with ``n`` points per model, below the minimum."""
    return f"inconclusive: n = {int(n)}"


def is_too_few(verdict: str) -> bool:
    """Whether ``verdict`` is one of :func:`too_few`'s."""
    return isinstance(verdict, str) and verdict.startswith("inconclusive: n = ")


@dataclass(frozen=True)
class Comparison:
    r""":math:`s(a) - s(b)` with its hierarchical-bootstrap interval and what is behind it.

    Attributes
    ----------
    estimate : float
        The statistic of all of ``a``'s values minus that of ``b``'s (or minus the reference).
    low, high : float
        The percentile interval (NaN when a side has fewer than 2 values in some seed).
    level : float
    n_boot : int
    seeds : tuple
        The seeds, in order.
    per_seed : tuple of float
        :math:`s(a_k) - s(b_k)` of every seed :math:`k`.
    n_a, n_b : tuple of int
        Values per seed of each side (``n_b`` empty for a reference number).
    scale : float
        The pooled standard deviation of the per-point values,
        :math:`\sqrt{(\mathrm{var}(a) + \mathrm{var}(b)) / 2}` (``var(a)`` alone against a
        reference), the unit of :data:`PRACTICAL_SIZE`.
    """

    estimate: float
    low: float
    high: float
    level: float
    n_boot: int
    seeds: tuple
    per_seed: tuple[float, ...]
    n_a: tuple[int, ...]
    n_b: tuple[int, ...]
    scale: float

    @property
    def n_min(self) -> int:
        """Fewest points of one trained model (the minimum-sample rule's n)."""
        return int(min((*self.n_a, *self.n_b), default=0))

    @property
    def effect(self) -> float:
        """The estimate in pooled standard deviations (0 when both are 0)."""
        return _standardise(self.estimate, self.scale)


def _standardise(x: float, scale: float) -> float:
    if scale > 0:
        return float(x) / scale
    return 0.0 if x == 0 else float(np.copysign(np.inf, x))


def _by_seed(values: Any, name: str) -> dict:
    """``{seed: 1-D float array}`` from a Series indexed by (seed, unit), or by unit only."""
    if isinstance(values, pd.Series):
        if isinstance(values.index, pd.MultiIndex) and "seed" in values.index.names:
            groups = values.groupby(level="seed", sort=True)
            out = {k: g.to_numpy(np.float64) for k, g in groups}
        else:
            out = {0: values.to_numpy(np.float64)}
    else:
        out = {0: np.asarray(values, dtype=np.float64)}
    for k, v in out.items():
        if v.ndim != 1:
            raise ValueError(f"{name} must be 1-D per seed; seed {k} has shape {v.shape}.")
        if not np.all(np.isfinite(v)):
            raise ValueError(
                f"{name} has {int((~np.isfinite(v)).sum())} non-finite value(s) in seed {k}; "
                "drop the failed measurements first (they are counted by the caller)."
            )
    return out


def _aligned(a: pd.Series, b: pd.Series) -> tuple[pd.Series, pd.Series]:
    common = a.index.intersection(b.index)
    return a.loc[common].sort_index(), b.loc[common].sort_index()


def hierarchical_compare(
    a: pd.Series | Sequence[float],
    b: pd.Series | Sequence[float] | float,
    statistic: Callable[..., Any] = np.mean,
    *,
    paired: bool = False,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int | np.random.SeedSequence = 0,
) -> Comparison:
    r"""Percentile interval of :math:`s(a) - s(b)` by resampling seeds, then points in a seed.

    Parameters
    ----------
    a : pandas.Series or array-like
        Per-point values of the first model, indexed by ``(seed, unit)`` (a MultiIndex with a
        level named ``seed``), or by unit alone / a plain array (one seed).
    b : pandas.Series, array-like or float
        The second model's values, indexed like ``a``, or a reference number.
    statistic : callable, default=numpy.mean
        The statistic :math:`s` of a 1-D array (over the pooled points of a resample).
    paired : bool, default=False
        ``a`` and ``b`` are measured on the same units: they are aligned on the index and the
        same points are drawn on both sides.
    n_boot, level
        Resamples and nominal coverage.
    seed : int or numpy.random.SeedSequence, default=0
        Seed of the resampling.

    Returns
    -------
    Comparison

    Notes
    -----
    Resample :math:`r` draws :math:`K` seeds :math:`k_1^*, \dots, k_K^*` from the :math:`K`
    seeds with replacement (the same draw for both sides: the models of one seed share its
    initialisation and its test points), then, within each drawn seed, its :math:`n_k` points
    with replacement (the same indices on both sides when ``paired``, independently
    otherwise), and computes

    .. math::

        \hat\Delta^{*r} = s\bigl(\textstyle\bigcup_j a^*_{k_j}\bigr)
                        - s\bigl(\textstyle\bigcup_j b^*_{k_j}\bigr).

    The interval is :math:`[\hat\Delta^*_{(\alpha/2)}, \hat\Delta^*_{(1-\alpha/2)}]`. With one
    seed this is :func:`lrtools.analyses.scorecard.compare` (the same random stream). With
    fewer than 2 values in some seed the interval is NaN (nothing to resample).
    """
    check_scalar(n_boot, "n_boot", Integral, min_val=1)
    check_scalar(level, "level", Real, min_val=0.0, max_val=1.0, include_min=False,
                 include_max=False)  # fmt: skip
    if not callable(statistic):
        raise TypeError(f"statistic must be callable, e.g. np.mean; got {statistic!r}.")
    reference = isinstance(b, Real)
    if paired:
        if reference or not (isinstance(a, pd.Series) and isinstance(b, pd.Series)):
            raise ValueError("paired=True needs two pandas Series indexed by their units.")
        a, b = _aligned(a, b)
    sa = _by_seed(a, "a")
    sb = {} if reference else _by_seed(b, "b")
    if not reference and set(sa) != set(sb):
        raise ValueError(
            f"a and b must come from the same training seeds; a has {sorted(sa)}, b has "
            f"{sorted(sb)}. Train both models with the same seeds."
        )
    seeds = tuple(sorted(sa))
    ref = float(b) if reference else None

    def s(x: np.ndarray) -> float:
        return float(statistic(x)) if x.size else np.nan

    def side_b(k):
        return ref if reference else s(sb[k])

    pooled_a = np.concatenate([sa[k] for k in seeds])
    pooled_b = None if reference else np.concatenate([sb[k] for k in seeds])
    estimate = s(pooled_a) - (ref if reference else s(pooled_b))
    per_seed = tuple(s(sa[k]) - side_b(k) for k in seeds)
    var = [np.var(pooled_a, ddof=1) if pooled_a.size > 1 else 0.0]
    if not reference:
        var.append(np.var(pooled_b, ddof=1) if pooled_b.size > 1 else 0.0)
    scale = float(np.sqrt(np.mean(var)))
    n_a = tuple(int(sa[k].size) for k in seeds)
    n_b = () if reference else tuple(int(sb[k].size) for k in seeds)
    low = high = np.nan
    if min((*n_a, *n_b)) >= 2:
        low, high = _interval(sa, sb, ref, seeds, statistic, paired, int(n_boot),
                              float(level), seed)  # fmt: skip
    return Comparison(float(estimate), low, high, float(level), int(n_boot), seeds, per_seed,
                      n_a, n_b, scale)  # fmt: skip


def _interval(sa, sb, ref, seeds, statistic, paired, n_boot, level, seed) -> tuple[float, float]:
    if len(seeds) == 1:  # the point bootstrap, exactly as before seeds existed
        (k,) = seeds
        res = compare(sa[k], ref if ref is not None else sb[k], statistic, paired=paired,
                      n_boot=n_boot, level=level, seed=seed)  # fmt: skip
        return res.low, res.high
    rng = np.random.default_rng(seed)
    K = len(seeds)
    draws = rng.integers(0, K, size=(n_boot, K))
    boots = np.empty(n_boot)
    for r in range(n_boot):
        parts_a, parts_b = [], []
        for j in draws[r]:
            k = seeds[j]
            ia = rng.integers(0, sa[k].size, sa[k].size)
            parts_a.append(sa[k][ia])
            if ref is None:
                ib = ia if paired else rng.integers(0, sb[k].size, sb[k].size)
                parts_b.append(sb[k][ib])
        sa_r = float(statistic(np.concatenate(parts_a)))
        boots[r] = sa_r - (ref if ref is not None else float(statistic(np.concatenate(parts_b))))
    return percentile_interval(boots, level)


def decide(
    comparison: Comparison,
    expected: str,
    *,
    min_points: int = MIN_POINTS,
    practical: float = PRACTICAL_SIZE,
) -> str:
    r"""The verdict of a directional claim on its :class:`Comparison`.

    Parameters
    ----------
    comparison : Comparison
        From :func:`hierarchical_compare`.
    expected : {"greater", "less"}
        The paper's side of :math:`s(a) - s(b)`.
    min_points : int, default=MIN_POINTS
        Fewest points per trained model for a verdict.
    practical : float, default=PRACTICAL_SIZE
        Smallest effect that counts, in pooled standard deviations (:attr:`Comparison.scale`).

    Returns
    -------
    str
        In this order, with :math:`d` the estimate and :math:`[d_L, d_H]` the interval, both in
        pooled standard deviations, and :math:`\delta` = ``practical``:

        1. ``"inconclusive: n = k"`` when some trained model has ``k < min_points`` points;
        2. ``"no difference"`` when :math:`[d_L, d_H]` lies inside :math:`(-\delta, \delta)`
           (no effect of practical size is compatible with the data), or when
           :math:`|d| < \delta` and the interval excludes 0 (an effect is detected, but it is
           smaller than the practical size);
        3. ``"inconclusive: seeds disagree"`` when there are several seeds and their
           estimates do not all have the sign of the pooled one (with two seeds the interval
           then contains 0 as well: a quarter of the resamples hold only the dissenting seed);
        4. ``"inconclusive at this sample size"`` when the interval contains 0;
        5. ``"reproduced"`` when the interval lies on the paper's side of 0, else
           ``"not reproduced"``.
    """
    check_choice(expected, "expected", ("greater", "less"))
    check_scalar(min_points, "min_points", Integral, min_val=2)
    check_scalar(practical, "practical", Real, min_val=0.0)
    c = comparison
    if c.n_min < min_points:
        return too_few(c.n_min)
    if not (np.isfinite(c.low) and np.isfinite(c.high)):
        raise ValueError("the comparison has no interval; it needs >= 2 points per seed.")
    d = c.effect
    d_low, d_high = _standardise(c.low, c.scale), _standardise(c.high, c.scale)
    excludes_zero = c.low > 0 or c.high < 0
    if (-practical < d_low and d_high < practical) or (abs(d) < practical and excludes_zero):
        return NO_DIFFERENCE
    sign = np.sign(c.estimate)
    if len(c.per_seed) > 1 and not all(np.sign(v) == sign for v in c.per_seed):
        return SEEDS_DISAGREE
    if not excludes_zero:
        return INCONCLUSIVE
    return REPRODUCED if (c.low > 0) == (expected == "greater") else NOT_REPRODUCED


def percentile_coverage(
    n: int, *, n_sim: int = 2000, n_boot: int = 500, level: float = 0.95, seed: int = 0
) -> float:
    """Share of ``n_sim`` normal samples of size ``n`` whose percentile-bootstrap interval of
    the mean covers the true mean (the reason for :data:`MIN_POINTS`)."""
    check_scalar(n, "n", Integral, min_val=2)
    rng = np.random.default_rng(seed)
    alpha, covered = 1.0 - level, 0
    for start in range(0, n_sim, 100):  # blocks bound the memory (100 x n_boot x n values)
        x = rng.standard_normal((min(100, n_sim - start), n))
        idx = rng.integers(0, n, size=(x.shape[0], n_boot, n))
        means = x[np.arange(x.shape[0])[:, None, None], idx].mean(-1)
        low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2], axis=1)
        covered += int(np.sum((low <= 0) & (0 <= high)))
    return covered / n_sim


def rules_text(*, min_points: int = MIN_POINTS, practical: float = PRACTICAL_SIZE,
               level: float = 0.95) -> str:  # fmt: skip
    """The verdict rules and their two thresholds, for a claims page (Markdown)."""
    overlap = 200 * _normal_cdf(-practical / 2)
    pct = f"{100 * level:g}%"
    cover = {n: 100 * percentile_coverage(n, level=level) for n in (2, 5, min_points)}
    return (
        "**How a verdict is reached.** Every claim compares a statistic of per-point values of "
        f"two models. Its {pct} interval comes from a hierarchical bootstrap: resample the "
        "training seeds, then the test points within each drawn seed, so the spread between "
        "seeds widens the interval. The verdict follows these rules, in order:\n\n"
        f"1. **inconclusive: n = k** - a trained model has fewer than **{min_points} test "
        "points**. With few values a percentile-bootstrap interval covers the truth much less "
        f"often than it says: for the mean of normal data, the nominal {pct} interval covers "
        f"it {cover[2]:.0f}% of the time with 2 values, {cover[5]:.0f}% with 5 and "
        f"{cover[min_points]:.0f}% with {min_points} (simulated), so below {min_points} the "
        "page shows the numbers without a verdict.\n"
        f"2. **no difference** - the effect is smaller than **{practical:g} pooled standard "
        "deviations** of the per-point values (Cohen's \"small\" effect), and the interval "
        f"rules out a larger one or excludes zero. Two distributions {practical:g} SD apart "
        f"overlap by {overlap:.0f}%; such a shift is invisible in the paper's histograms, so "
        "it cannot be what the paper describes, however many points make it significant.\n"
        "3. **inconclusive: seeds disagree** - with several seeds, the seeds' own estimates do "
        "not all have the sign of the pooled one: the effect belongs to some trained networks, "
        "not to the training technique.\n"
        "4. **inconclusive at this sample size** - the interval contains zero.\n"
        "5. **reproduced** / **not reproduced** - the interval lies on the paper's side of zero, "
        "or on the other side.\n\n"
        "Each rule is a two-sided test at the stated level, with no correction for testing "
        "many claims: expect about one claim in twenty to be decided by chance."
    )


def _normal_cdf(x: float) -> float:
    from math import erf, sqrt

    return 0.5 * (1.0 + erf(x / sqrt(2.0)))
