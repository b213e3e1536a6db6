"""The verdict rules of lrtools.analyses.verdicts (issue 13, item 2): each branch of decide on
hand-built comparisons, the hierarchical bootstrap on synthetic seeds, and the thresholds'
reasons."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lrtools.analyses import scorecard, verdicts
from lrtools.analyses.verdicts import (
    INCONCLUSIVE,
    MIN_POINTS,
    NO_DIFFERENCE,
    NOT_REPRODUCED,
    PRACTICAL_SIZE,
    REPRODUCED,
    SEEDS_DISAGREE,
    Comparison,
    decide,
    hierarchical_compare,
)


def _c(estimate, low, high, *, scale=1.0, per_seed=None, n=20, seeds=1) -> Comparison:
    per_seed = (estimate,) * seeds if per_seed is None else tuple(per_seed)
    return Comparison(estimate, low, high, 0.95, 1000, tuple(range(len(per_seed))), per_seed,
                      (n,) * len(per_seed), (n,) * len(per_seed), scale)  # fmt: skip


# --------------------------------------------------------------------------------------------
# decide: every branch on hand-built comparisons
# --------------------------------------------------------------------------------------------


def test_below_the_minimum_there_is_no_verdict_whatever_the_interval():
    strong = _c(5.0, 4.0, 6.0, n=MIN_POINTS - 1)
    assert decide(strong, "greater") == f"inconclusive: n = {MIN_POINTS - 1}"
    assert verdicts.is_too_few(decide(strong, "greater"))
    assert decide(_c(5.0, 4.0, 6.0, n=MIN_POINTS), "greater") == REPRODUCED
    # the fewest points of any trained model count, on either side
    c = Comparison(5.0, 4.0, 6.0, 0.95, 100, (0, 1), (5.0, 5.0), (50, 50), (50, 3), 1.0)
    assert decide(c, "greater") == "inconclusive: n = 3"
    assert decide(c, "greater", min_points=3) == REPRODUCED


@pytest.mark.parametrize(
    "estimate, low, high, scale",
    [(0.01, -0.1, 0.12, 1.0),    # the interval rules out any effect of practical size
     (0.05, 0.02, 0.3, 1.0),     # an effect is detected, but smaller than the practical size
     (0.0006, 0.0002, 0.001, 0.05),  # +0.0006 in mean |cos| at sd 0.05: d = 0.012
     (0.0, 0.0, 0.0, 0.0)],      # every value equal: exactly no difference
)  # fmt: skip
def test_effects_below_the_practical_size_are_no_difference(estimate, low, high, scale):
    c = _c(estimate, low, high, scale=scale)
    assert decide(c, "greater") == decide(c, "less") == NO_DIFFERENCE


def test_an_interval_across_zero_that_reaches_beyond_the_practical_size_is_inconclusive():
    assert decide(_c(0.1, -0.5, 0.7), "greater") == INCONCLUSIVE
    assert decide(_c(0.5, -0.05, 1.0), "greater") == INCONCLUSIVE


def test_seeds_with_inconsistent_signs_give_no_verdict():
    c = _c(0.6, 0.3, 0.9, per_seed=(1.0, 0.8, -0.1))
    assert decide(c, "greater") == decide(c, "less") == SEEDS_DISAGREE
    assert decide(_c(0.6, 0.3, 0.9, per_seed=(1.0, 0.8, 0.1)), "greater") == REPRODUCED
    assert decide(_c(0.6, 0.3, 0.9, per_seed=(1.0, 0.0)), "greater") == SEEDS_DISAGREE
    # the disagreement is named even when the interval also contains zero
    assert decide(_c(0.4, -0.2, 0.9, per_seed=(1.0, -0.2)), "greater") == SEEDS_DISAGREE


def test_reproduced_and_not_reproduced_follow_the_paper_side():
    assert decide(_c(-0.8, -1.1, -0.5), "less") == REPRODUCED
    assert decide(_c(-0.8, -1.1, -0.5), "greater") == NOT_REPRODUCED
    assert decide(_c(0.8, 0.5, 1.1, seeds=3), "greater") == REPRODUCED
    # the practical size is in pooled SDs: the same numbers at a larger spread are no difference
    assert decide(_c(0.8, 0.5, 1.1, scale=10.0), "greater") == NO_DIFFERENCE
    assert decide(_c(0.8, 0.5, 1.1, scale=10.0), "greater", practical=0.05) == REPRODUCED


def test_bad_arguments_are_explained():
    with pytest.raises(ValueError, match="expected"):
        decide(_c(1, 0.5, 1.5), "bigger")
    with pytest.raises(ValueError, match="no interval"):
        decide(_c(1, np.nan, np.nan), "greater")


# --------------------------------------------------------------------------------------------
# The hierarchical bootstrap
# --------------------------------------------------------------------------------------------


def _series(values_by_seed: dict[int, np.ndarray]) -> pd.Series:
    parts = [pd.Series(v, index=pd.MultiIndex.from_arrays(
        [np.full(len(v), k), np.arange(len(v))], names=["seed", "point"]))
        for k, v in values_by_seed.items()]  # fmt: skip
    return pd.concat(parts)


def test_the_interval_widens_when_seeds_disagree():
    rng = np.random.default_rng(1)
    n = 40
    offsets = {0: 0.8, 1: -0.2, 2: 0.5}  # the effect differs from one trained network to another
    a = _series({k: off + 0.3 * rng.standard_normal(n) for k, off in offsets.items()})
    b = _series({k: 0.3 * rng.standard_normal(n) for k in offsets})
    h = hierarchical_compare(a, b, n_boot=1000, seed=0)
    flat = scorecard.compare(a.to_numpy(), b.to_numpy(), n_boot=1000, seed=0)  # points only
    assert h.estimate == pytest.approx(flat.estimate)
    assert (h.high - h.low) > 2 * (flat.high - flat.low)
    assert flat.low > 0  # the point bootstrap calls it significant ...
    assert h.low < 0 < h.high  # ... the spread of the seeds does not let it
    assert decide(h, "greater") == SEEDS_DISAGREE  # seed 1 shows the opposite sign
    agreeing = Comparison(h.estimate, h.low, h.high, h.level, h.n_boot, h.seeds,
                          tuple(abs(v) for v in h.per_seed), h.n_a, h.n_b, h.scale)  # fmt: skip
    assert decide(agreeing, "greater") == INCONCLUSIVE
    np.testing.assert_allclose(h.per_seed, [np.mean(a[k]) - np.mean(b[k]) for k in offsets])
    assert h.n_a == h.n_b == (n, n, n) and h.seeds == (0, 1, 2)


def test_agreeing_seeds_keep_the_point_interval():
    rng = np.random.default_rng(2)
    n = 60
    a = _series({k: 0.5 + rng.standard_normal(n) for k in range(4)})
    b = _series({k: rng.standard_normal(n) for k in range(4)})
    h = hierarchical_compare(a, b, n_boot=1000, seed=0)
    flat = scorecard.compare(a.to_numpy(), b.to_numpy(), n_boot=1000, seed=0)
    assert 0.6 < (h.high - h.low) / (flat.high - flat.low) < 1.6


def test_one_seed_is_the_point_bootstrap():
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal(25) + 1, rng.standard_normal(30)
    seed = np.random.SeedSequence(4, spawn_key=(2,))
    h = hierarchical_compare(pd.Series(a), pd.Series(b), n_boot=500, seed=seed)
    ref = scorecard.compare(a, b, n_boot=500, seed=np.random.SeedSequence(4, spawn_key=(2,)))
    assert (h.low, h.high, h.estimate) == (ref.low, ref.high, ref.estimate)
    assert h.seeds == (0,) and h.n_min == 25
    pooled_sd = np.sqrt((np.var(a, ddof=1) + np.var(b, ddof=1)) / 2)
    assert h.scale == pytest.approx(pooled_sd) and h.effect == pytest.approx(h.estimate / pooled_sd)


def test_reference_number_and_paired_comparisons():
    rng = np.random.default_rng(5)
    a = _series({k: 0.95 + 0.01 * rng.standard_normal(20) for k in (0, 1)})
    h = hierarchical_compare(a, 0.9, n_boot=300)
    assert h.n_b == () and h.estimate == pytest.approx(a.mean() - 0.9) and h.low > 0
    assert decide(h, "greater") == REPRODUCED
    # paired: a point-level common component cancels; the units are aligned on the index
    common = _series({k: rng.standard_normal(30) for k in (0, 1)})
    x, y = common + 0.1, (common + 0.01 * rng.standard_normal(60)).iloc[::-1]
    paired = hierarchical_compare(x, y, paired=True, n_boot=300)
    unpaired = hierarchical_compare(x, y, n_boot=300)
    assert paired.low > 0.05 and (paired.high - paired.low) < (unpaired.high - unpaired.low) / 5


def test_too_few_values_give_no_interval_and_mismatched_seeds_are_refused():
    h = hierarchical_compare(pd.Series([1.0]), pd.Series([0.0, 1.0]))
    assert np.isnan(h.low) and h.n_min == 1 and decide(h, "greater") == "inconclusive: n = 1"
    with pytest.raises(ValueError, match="same training seeds"):
        hierarchical_compare(_series({0: np.ones(3)}), _series({1: np.ones(3)}))
    with pytest.raises(ValueError, match="non-finite"):
        hierarchical_compare(pd.Series([1.0, np.nan]), pd.Series([0.0, 1.0]))


# --------------------------------------------------------------------------------------------
# The thresholds' reasons
# --------------------------------------------------------------------------------------------


def test_the_percentile_interval_undercovers_small_samples():
    small, enough = verdicts.percentile_coverage(2), verdicts.percentile_coverage(MIN_POINTS)
    assert small < 0.6 < 0.85 < enough < 0.95


def test_the_rules_text_states_both_thresholds():
    text = verdicts.rules_text()
    assert f"{MIN_POINTS} test points" in text and f"{PRACTICAL_SIZE:g} pooled standard" in text
    assert "92%" in text  # overlap of two normals 0.2 SD apart
    for verdict in ("inconclusive: n = k", NO_DIFFERENCE, SEEDS_DISAGREE, INCONCLUSIVE,
                    REPRODUCED, NOT_REPRODUCED):  # fmt: skip
        assert verdict in text
