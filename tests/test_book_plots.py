"""Figures people can read: distinct class colours, worded facets, few log ticks, points for
small samples, and Fig. 4 / Fig. 10 on a scale that shows their structure."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.colors as mcolors  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from lrtools import plots  # noqa: E402
from lrtools.analyses.angles import AngleImage  # noqa: E402


def test_ten_classes_get_ten_distinct_colours():
    colours = [mcolors.to_hex(c) for c in plots.class_palette(10)]
    assert len(set(colours)) == 10
    assert plots.lr_label(1e-3) == "1e-3" and plots.lr_label("0.0001") == "1e-4"


def _inradii(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for lr in ("0.001", "0.0001"):
        for kind in ("manifold", "decision", "adversarial"):
            for v in ("vanilla", "bn", "dropout"):
                for p in range(n):
                    rows.append(
                        {
                            "lr": lr,
                            "kind": kind,
                            "variant": v,
                            "point": p,
                            "radius": 10 ** rng.uniform(-3, -1),
                        }
                    )
    return pd.DataFrame(rows)


@pytest.mark.parametrize("n, small", [(3, True), (40, False)])
def test_distributions_facets_and_form(n, small):
    fig = plots.plot_distributions(
        _inradii(n),
        "radius",
        by="variant",
        col="kind",
        row="lr",
        order=["vanilla", "bn", "dropout"],
        xlabel="inradius",
    )
    titles = [ax.get_title() for ax in fig.axes]
    assert "learning rate 1e-3 · manifold regions" in titles
    assert "learning rate 1e-4 · adversarial regions" in titles
    fig.canvas.draw()
    ax = fig.axes[3]  # bottom row: the value axis is labelled there
    has_points = any(len(c.get_offsets()) == n for c in ax.collections if hasattr(c, "get_offsets"))
    assert has_points == small  # every value drawn as a point only when there are few
    labelled = [t for t in ax.get_xticklabels() if t.get_text()]
    assert 2 <= len(labelled) <= 6


def _image(m: int, tilt: float) -> AngleImage:
    rng = np.random.default_rng(1)
    theta = 90 + rng.normal(0, 1, (m, m))
    theta[m // 2 :, m // 2 :] -= tilt  # a deeper layer with more aligned directions
    theta = (theta + theta.T) / 2
    np.fill_diagonal(theta, 0)
    starts = np.array([m // 2])
    return AngleImage(theta, starts.astype(float), starts, np.ones(m, dtype=int), "degrees")


def test_angle_images_use_a_data_driven_range_around_90_degrees():
    images = {("lr 1e-3", "BN"): _image(40, 2.0), ("lr 1e-3", "Dropout"): _image(40, 8.0)}
    lim = plots.angle_color_limit(list(images.values()))
    assert 5 < lim < 15  # set by the data, not 0-180
    fig = plots.plot_angle_images(
        images,
        row_order=["lr 1e-3"],
        col_order=["BN", "Dropout"],
        layer_names=["layer 1", "layer 2"],
    )
    ax = fig.axes[0]
    assert ax.images[0].get_clim() == (-lim, lim)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["layer 1", "layer 2"]


def test_layer_pair_summary_draws_every_region():
    rows = [
        {
            "variant": v,
            "lr": "0.001",
            "point": p,
            "layer_i": i,
            "layer_j": j,
            "mean_abs_cos": 0.1 * (i + j + 1) + (0.05 if v == "dropout" else 0),
        }
        for v in ("vanilla", "bn", "dropout")
        for p in range(3)
        for i in range(2)
        for j in range(i, 2)
    ]
    fig = plots.plot_layer_pairs(
        pd.DataFrame(rows),
        variant_order=["vanilla", "bn", "dropout"],
        layer_names=["conv 1", "dense"],
    )
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == [
        "conv 1 · conv 1",
        "conv 1 · dense",
        "dense · dense",
    ]
    n_points = sum(len(c.get_offsets()) for c in ax.collections if hasattr(c, "get_offsets"))
    assert n_points == len(rows)
