"""Tests of lrtools.analyses.scorecard: coverage, agreement with scipy, verdicts, determinism."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from lrtools.analyses import scorecard as sc
from lrtools.analyses.scorecard import (
    INCONCLUSIVE,
    NOT_REPRODUCED,
    REPRODUCED,
    Claim,
    bootstrap_ci,
    compare,
    scorecard,
    verdict,
)


def test_coverage_of_the_mean_on_normal_data():
    rng = np.random.default_rng(0)
    hits = 0
    for rep in range(200):
        x = rng.normal(1.5, 2.0, 60)
        ci = bootstrap_ci(x, n_boot=400, seed=rep)
        hits += ci.low <= 1.5 <= ci.high
    assert 0.88 <= hits / 200 <= 0.99, hits


def test_coverage_of_an_unpaired_difference():
    rng = np.random.default_rng(1)
    hits = 0
    for rep in range(200):
        a, b = rng.normal(1.0, 1.0, 40), rng.normal(0.3, 2.0, 50)
        ci = compare(a, b, n_boot=400, seed=rep)
        hits += ci.low <= 0.7 <= ci.high
    assert 0.88 <= hits / 200 <= 0.99, hits


def test_lower_level_gives_lower_coverage():
    rng = np.random.default_rng(2)
    hits = 0
    for rep in range(200):
        ci = bootstrap_ci(rng.normal(0.0, 1.0, 40), n_boot=400, level=0.5, seed=rep)
        hits += ci.low <= 0.0 <= ci.high
    assert 0.38 <= hits / 200 <= 0.62, hits


@pytest.mark.parametrize("statistic", [np.mean, np.std])
def test_interval_agrees_with_scipy_percentile_bootstrap(statistic):
    x = np.random.default_rng(3).exponential(2.0, 60)
    ours = bootstrap_ci(x, statistic, n_boot=20000, seed=0)
    ref = stats.bootstrap(
        (x,), statistic, n_resamples=20000, method="percentile", random_state=1
    ).confidence_interval
    se = (ref.high - ref.low) / (2 * 1.96)
    # independent Monte Carlo streams: the end points differ by about 0.03 se
    assert abs(ours.low - ref.low) < 0.15 * se
    assert abs(ours.high - ref.high) < 0.15 * se
    assert ours.estimate == pytest.approx(float(statistic(x)), rel=1e-12)
    assert ours.n == (60,) and ours.n_dropped == (0,)


def test_same_seed_same_interval_and_seed_types():
    x = np.random.default_rng(4).normal(size=30)
    a = bootstrap_ci(x, seed=5)
    assert a == bootstrap_ci(x, seed=5)
    assert a != bootstrap_ci(x, seed=6)
    assert a == bootstrap_ci(x, seed=np.random.default_rng(5))
    assert compare(x, x + 1, seed=2) == compare(x, x + 1, seed=2)


def test_statistic_without_axis_gives_the_vectorised_result(monkeypatch):
    x = np.random.default_rng(5).normal(size=50)
    vec = bootstrap_ci(x, np.median, n_boot=300, seed=1)
    loop = bootstrap_ci(x, lambda v: float(np.median(v)), n_boot=300, seed=1)
    assert (vec.low, vec.high) == (loop.low, loop.high)
    monkeypatch.setattr(sc, "_MAX_CELLS", 7 * 50)  # resample in blocks of 7 rows
    blocked = bootstrap_ci(x, np.median, n_boot=300, seed=1)
    assert (blocked.low, blocked.high) == (vec.low, vec.high)


def test_nan_policy():
    x = np.r_[np.random.default_rng(6).normal(size=20), np.nan, np.nan]
    with pytest.raises(ValueError, match=r"2 NaN value\(s\) out of 22.*nan_policy='omit'"):
        bootstrap_ci(x)
    omit = bootstrap_ci(x, nan_policy="omit", seed=3)
    assert omit.n == (20,) and omit.n_dropped == (2,)
    clean = bootstrap_ci(x[:20], seed=3)
    assert (omit.low, omit.high, omit.estimate) == (clean.low, clean.high, clean.estimate)


def test_paired_comparison_is_sharper_on_correlated_samples():
    rng = np.random.default_rng(7)
    base = rng.normal(0.0, 3.0, 60)
    a, b = base + 0.3 + rng.normal(0, 0.2, 60), base
    paired = compare(a, b, paired=True, seed=0)
    unpaired = compare(a, b, seed=0)
    assert paired.low > 0  # the shift is resolved when points are matched
    assert unpaired.low < 0 < unpaired.high
    assert paired.estimate == pytest.approx(unpaired.estimate, rel=1e-12)
    assert paired.high - paired.low < 0.2 * (unpaired.high - unpaired.low)
    b_nan = b.copy()
    b_nan[[3, 9]] = np.nan
    omit = compare(a, b_nan, paired=True, nan_policy="omit")
    assert omit.n == (58, 58) and omit.n_dropped == (2, 2)


def test_ratio_and_reference_comparisons():
    rng = np.random.default_rng(8)
    a, b = rng.exponential(2.0, 300), rng.exponential(1.0, 300)
    ratio = compare(a, b, kind="ratio", seed=0)
    assert 1 < ratio.low < 2 < ratio.high
    ref = compare(a, 1.0, seed=0)  # mean(a) - 1, only a resampled
    direct = bootstrap_ci(a, seed=0)
    assert ref.n == (300,)
    np.testing.assert_allclose([ref.low, ref.high], [direct.low - 1, direct.high - 1], atol=1e-12)


@pytest.mark.parametrize(
    ("low", "high", "expected", "null", "want"),
    [
        (0.1, 0.3, "greater", 0.0, REPRODUCED),
        (0.1, 0.3, "less", 0.0, NOT_REPRODUCED),
        (-0.3, -0.1, "less", 0.0, REPRODUCED),
        (-0.3, -0.1, "greater", 0.0, NOT_REPRODUCED),
        (-0.1, 0.3, "greater", 0.0, INCONCLUSIVE),
        (0.0, 0.3, "greater", 0.0, INCONCLUSIVE),  # touching no effect is not enough
        (1.2, 1.5, "greater", 1.0, REPRODUCED),
        (0.5, 0.9, "greater", 1.0, NOT_REPRODUCED),
        (0.5, 1.1, "less", 1.0, INCONCLUSIVE),
    ],
)
def test_verdict_rule(low, high, expected, null, want):
    assert verdict(low, high, expected, null=null) == want


def _claims():
    rng = np.random.default_rng(9)
    big, small = rng.normal(1.0, 1.0, 300), rng.normal(0.0, 1.0, 300)
    same1, same2 = rng.normal(0.0, 1.0, 30), rng.normal(0.0, 1.0, 30)
    return [
        Claim("clear, paper's side", big, small, "greater", paper_value="BN > vanilla"),
        Claim("clear, opposite side", big, small, "less", paper_value=0.12),
        Claim("no real difference", same1, same2, "greater", label="mean, A - B"),
        Claim(
            "ratio",
            rng.exponential(2.0, 300),
            rng.exponential(1.0, 300),
            "greater",
            kind="ratio",
            statistic=np.median,
        ),
        Claim("reference", rng.normal(0.9, 0.05, 50), 0.5, "greater"),
    ]


def test_scorecard_table_and_verdicts():
    table = scorecard(_claims(), n_boot=1000)
    assert list(table.columns[:6]) == [
        "claim",
        "statistic",
        "our value",
        "95% CI",
        "paper value",
        "verdict",
    ]
    assert table["verdict"].tolist() == [
        REPRODUCED,
        NOT_REPRODUCED,
        INCONCLUSIVE,
        REPRODUCED,
        REPRODUCED,
    ]
    assert table["statistic"].tolist()[2:] == [
        "mean, A - B",
        "median(a) / median(b)",
        "mean(a) - 0.5",
    ]
    assert table.loc[1, "paper value"] == 0.12
    assert (table["ci_low"] <= table["our value"]).all()
    assert (table["our value"] <= table["ci_high"]).all()
    assert table[["n_a", "n_b"]].values.tolist()[-1] == [50, 0]
    assert (
        table.loc[0, "95% CI"] == f"[{table.loc[0, 'ci_low']:.4g}, {table.loc[0, 'ci_high']:.4g}]"
    )
    # deterministic, and one claim's interval does not depend on the others
    again = scorecard(_claims(), n_boot=1000)
    assert table.equals(again)
    alone = scorecard(_claims()[:1], n_boot=1000)
    assert alone.loc[0, "ci_low"] == table.loc[0, "ci_low"]
    assert "90% CI" in scorecard(_claims()[:1], n_boot=200, level=0.9).columns


def test_errors_are_clear():
    x = np.arange(10.0)
    with pytest.raises(ValueError, match=r"must be 1-D \(one value per test point\)"):
        bootstrap_ci(x.reshape(2, 5))
    with pytest.raises(ValueError, match="at least 2 values"):
        bootstrap_ci([1.0])
    with pytest.raises(ValueError, match="level == 1.0, must be < 1"):
        bootstrap_ci(x, level=1.0)
    with pytest.raises(ValueError, match="n_boot == 0"):
        bootstrap_ci(x, n_boot=0)
    with pytest.raises(TypeError, match="statistic must be callable"):
        bootstrap_ci(x, "mean")
    with pytest.raises(ValueError, match="kind == 'log' is not supported"):
        compare(x, x, kind="log")
    with pytest.raises(ValueError, match="same length"):
        compare(x, x[:5], paired=True)
    with pytest.raises(ValueError, match="needs two samples"):
        compare(x, 1.0, paired=True)
    with pytest.raises(ValueError, match="not finite on"):
        compare(x + 1, np.zeros(10), kind="ratio")
    bad = Claim("bad", x, np.r_[x[:9], np.nan], "greater")
    with pytest.raises(ValueError, match=r"claims\[1\] \('bad'\): b contains 1 NaN"):
        scorecard([_claims()[0], bad], n_boot=100)
    with pytest.raises(ValueError, match=r"claims\[0\].expected == 'more'"):
        scorecard([Claim("c", x, x, "more")], n_boot=100)
    with pytest.raises(TypeError, match="claims must be Claim objects"):
        scorecard([("c", x, x)])
