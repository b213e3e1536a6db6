"""Table 2 per point: the class-split parallel path equals the one-point function."""

from __future__ import annotations

import numpy as np

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
