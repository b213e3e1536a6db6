"""Table 2 per point: the class-split parallel path equals the one-point function; the
nearest-optimum distortion beside eq. (8)."""

from __future__ import annotations

import numpy as np
import pytest

from lrtools.analyses.class_regions import class_region_table, class_regions_point
from lrtools.models import build_mlp
from lrtools.regions import linear_region


def test_split_by_class_equals_whole_point():
    net = build_mlp(20, [12, 12], 4, seed=1).eval()
    X = np.random.default_rng(0).uniform(-0.5, 0.5, (1, 20))
    per_point, per_class, xt = class_region_table(net, X, n_jobs=2, progress=False)
    whole = class_regions_point(net, X[0])
    assert sorted(per_class["class"]) == [0, 1, 2, 3]  # every class, once
    for key in ("n_reached", "n_exists", "disagree", "label", "n_failed"):
        assert per_point.loc[0, key] == whole[key]
    assert per_point.loc[0, "distortion"] == whole["distortion"]
    # the per-point nearest-optimum maximum is exact whatever the split (each chunk bounds its
    # own classes), up to the solver's certified gap
    np.testing.assert_allclose(per_point.loc[0, "distortion_nearest"],
                               whole["distortion_nearest"], rtol=1e-5)
    np.testing.assert_array_equal(xt[0], whole["xt"])
    # each x^t lies in the region of the point; the count is the paper's criterion
    poly = linear_region(net, X[0]).polytope
    assert all(poly.contains(x, tol=0.0) for x in xt[0])
    assert per_point.loc[0, "n_reached"] == int(
        (per_class["predicted"] == per_class["class"]).sum()
    )
    assert per_point.loc[0, "n_exists"] >= per_point.loc[0, "n_reached"]


def test_skipping_the_exact_test_keeps_the_paper_count():
    net = build_mlp(20, [12, 12], 4, seed=1).eval()
    X = np.random.default_rng(1).uniform(-0.5, 0.5, (2, 20))
    exact = class_region_table(net, X, n_jobs=1, progress=False)
    quick = class_region_table(net, X, n_jobs=1, progress=False, exact=False)
    for key in ("n_reached", "distortion", "label"):
        np.testing.assert_array_equal(quick[0][key], exact[0][key])
    pc = quick[1]
    reached = pc["reached"].to_numpy(bool)
    assert (pc.loc[reached, "exists_by"] == "witness").all()  # witnesses are free
    assert pc.loc[~reached, "exists_lp"].isna().all()  # the LP was not run
    if (~reached).any():
        assert quick[0]["n_exists"].isna().all() and quick[0]["disagree"].isna().all()
    assert (~reached).any()


def test_nearest_optimum_columns():
    """``nearest="max"`` gives the same per-point maximum as solving every class, with fewer
    solves; the nearest distortion never exceeds eq. (8)'s; "off" computes nothing."""
    net = build_mlp(20, [12, 12], 4, seed=1).eval()
    X = np.random.default_rng(2).uniform(-0.5, 0.5, (2, 20))
    full_p, full_c, _ = class_region_table(net, X, n_jobs=1, progress=False, exact=False,
                                           nearest="all")
    max_p, max_c, _ = class_region_table(net, X, n_jobs=1, progress=False, exact=False)
    off_p, off_c, _ = class_region_table(net, X, n_jobs=1, progress=False, exact=False,
                                         nearest="off")
    assert (full_c["nearest_status"] == "optimal").all()
    np.testing.assert_allclose(max_p["distortion_nearest"], full_p["distortion_nearest"],
                               rtol=1e-5)
    assert (max_p["nearest_solves"] <= full_p["nearest_solves"]).all()
    assert (full_p["nearest_solves"] == 4).all() and (max_p["n_nearest_failed"] == 0).all()
    # ||x^t_hat - x*|| <= ||x^t - x*|| per class (x^t is feasible for the nearest program),
    # and the certified lower bound is below the distance
    assert (full_c["distortion_nearest"] <= full_c["distortion"] + 1e-9).all()
    assert (full_c["nearest_lower"] <= full_c["distortion_nearest"]).all()
    assert (full_p["distortion_nearest"] <= full_p["distortion"] + 1e-9).all()
    # a class skipped by the bound, or whose solve stopped at a point that near x*, could not
    # have held the maximum: its nearest distance is at most that bound, which is verified
    bounded = max_c[max_c["nearest_status"] == "bounded"]
    for _, row in bounded.iterrows():
        peak = max_p.loc[row["point"], "distortion_nearest"]
        assert row["nearest_upper"] <= peak + 1e-9
        assert row["nearest_upper"] <= row["distortion"] + 1e-9
        full_row = full_c[(full_c["point"] == row["point"]) & (full_c["class"] == row["class"])]
        assert full_row["distortion_nearest"].item() <= row["nearest_upper"] + 1e-9
    solved = max_c["nearest_status"] == "optimal"
    np.testing.assert_allclose(max_c.loc[solved, "nearest_upper"],
                               max_c.loc[solved, "distortion_nearest"])
    assert off_p["distortion_nearest"].isna().all()
    assert (off_c["nearest_status"] == "off").all() and (off_p["nearest_solves"] == 0).all()


def test_nearest_max_stops_solves_that_cannot_hold_the_maximum():
    """A solve that meets a feasible point no farther from x* than the maximum so far stops
    there (status "bounded", iterations > 0): the maximum is that of every class solved."""
    net = build_mlp(60, [16, 16], 5, seed=1).eval()
    X = np.random.default_rng(2).uniform(-0.5, 0.5, (2, 60))
    full_p, full_c, _ = class_region_table(net, X, n_jobs=1, progress=False, exact=False,
                                           nearest="all")
    max_p, max_c, _ = class_region_table(net, X, n_jobs=1, progress=False, exact=False)
    np.testing.assert_allclose(max_p["distortion_nearest"], full_p["distortion_nearest"],
                               rtol=1e-5)
    stopped = max_c[(max_c["nearest_status"] == "bounded") & (max_c["nearest_iterations"] > 0)]
    assert len(stopped) >= 1
    for _, row in stopped.iterrows():
        full_row = full_c[(full_c["point"] == row["point"]) & (full_c["class"] == row["class"])]
        assert full_row["distortion_nearest"].item() <= row["nearest_upper"] + 1e-9
        assert row["nearest_upper"] <= max_p.loc[row["point"], "distortion_nearest"] + 1e-9
        assert row["nearest_iterations"] < full_row["nearest_iterations"].item()
    assert max_c["nearest_iterations"].sum() < full_c["nearest_iterations"].sum()


def test_nearest_failure_is_recorded_not_used(monkeypatch):
    import lrtools.analyses.class_regions as cr
    from lrtools.exceptions import SolverError

    def fail(*args, **kwargs):
        raise SolverError("forced failure")

    monkeypatch.setattr(cr, "nearest_optimum", fail)
    net = build_mlp(20, [12, 12], 4, seed=1).eval()
    X = np.random.default_rng(2).uniform(-0.5, 0.5, (1, 20))
    pp, pc, _ = class_region_table(net, X, n_jobs=1, progress=False, exact=False)
    assert np.isnan(pp.loc[0, "distortion_nearest"]) and pp.loc[0, "n_nearest_failed"] >= 1
    assert (pc.loc[pc["nearest_status"] == "failed", "nearest_error"] == "forced failure").all()
    assert np.isfinite(pp.loc[0, "distortion"])  # eq. (8) itself is unaffected


def test_bad_nearest_mode():
    net = build_mlp(20, [12, 12], 4, seed=1).eval()
    with pytest.raises(ValueError, match="nearest == 'some' is not supported"):
        class_region_table(net, np.zeros((1, 20)), n_jobs=1, progress=False, nearest="some")


def test_nearest_comparison_does_not_average_failures_away():
    import pandas as pd

    from lrtools.analyses.class_regions import nearest_comparison, nearest_note

    points = pd.DataFrame({
        "model": ["a", "a", "b", "b"],
        "distortion": [10.0, 12.0, 8.0, 9.0],
        "distortion_nearest": [7.0, 9.0, 6.0, np.nan],
        "xt_to_nearest": [5.0, 6.5, 3.0, 2.0],
        "nearest_solves": [1, 2, 1, 1],
        "n_nearest_failed": [0, 0, 0, 1],
        "nearest_seconds": [1.0, 2.0, 1.0, 1.0],
        "seconds": [4.0, 4.0, 4.0, 4.0],
    })
    cmp = nearest_comparison(points)
    assert cmp.loc["a", "distortion_nearest"] == 8.0 and cmp.loc["a", "mean_difference"] == 3.0
    assert np.isnan(cmp.loc["b", "distortion_nearest"]) and cmp.loc["b", "nearest_failed"] == 1
    assert cmp.loc["a", "max_xt_to_nearest"] == 6.5
    note = nearest_note(cmp, dim=784, n_classes=10)
    assert "6.50" in note and "774" in note and "**1**" in note


def test_a_point_region_is_reused_only_for_the_same_weights_and_point():
    """The parts of one point share its region in a process; a model changed in place (its
    weights or a BN buffer) or another point builds a new, correct one, and the shared
    region cannot be written to."""
    import torch

    from lrtools.analyses import class_regions as cr

    net = build_mlp(20, [12, 12], 4, seed=1, variant="bn").eval()
    x = np.random.default_rng(2).uniform(-0.5, 0.5, 20)
    first = cr._region(net, x)
    assert cr._region(net, x.copy()) is first  # same weights, same bytes: reused
    with pytest.raises(ValueError, match="read-only"):
        first.polytope.A[0, 0] = 1.0
    changes = [lambda: net[0].weight.data.mul_(1.5),  # .data: no autograd version bump
               lambda: [m for m in net.modules() if hasattr(m, "running_mean")][0]
               .running_mean.add_(0.25)]
    for change in changes:
        before = cr._region(net, x)
        with torch.no_grad():
            change()
        after = cr._region(net, x)
        assert after is not before
        fresh = linear_region(net, x)
        np.testing.assert_array_equal(after.polytope.A, fresh.polytope.A)
        np.testing.assert_array_equal(after.logit_b, fresh.logit_b)
    other = x + 1e-12
    assert cr._region(net, other) is not cr._region(net, x)
