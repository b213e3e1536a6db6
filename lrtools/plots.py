"""Figures of the book: tables and partitions in, matplotlib figures out (no heavy computing).

Every function returns the ``Figure`` so notebooks can ``glue`` it; axes carry labels and units,
panels carry model names, and colour bars say what the colour means. Conventions shared by all
figures, so that a reader learns them once:

- one colour per training technique (:data:`MODEL_COLORS`: vanilla, BN, dropout), the same in
  every figure;
- one categorical palette for classes (:func:`class_palette`: ten distinct colours), the same
  in Fig. 1, 7 and 8;
- with few values per group (fewer than :data:`FEW` points) distributions are drawn as box
  plots with every point shown, not as histograms of three values;
- facet titles in words ("learning rate 1e-3 · manifold regions"), log axes with at most a
  handful of labelled ticks;
- sizes chosen to stay legible when a page is 500 px wide (the book's CSS lets a figure scroll
  rather than shrink below that).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.collections import PolyCollection

from .models import VARIANT_LABELS as MODEL_LABELS  # the one label table

__all__ = [
    "set_style",
    "MODEL_LABELS",
    "MODEL_COLORS",
    "FEW",
    "class_palette",
    "lr_label",
    "plot_dataset_2d",
    "plot_partitions",
    "plot_distributions",
    "plot_depthwise_exclusion",
    "angle_color_limit",
    "plot_angle_images",
    "plot_layer_pairs",
    "plot_surrounding",
    "plot_xt_images",
]

_CB = sns.color_palette("colorblind")
#: One colour per technique, by label, in every figure.
MODEL_COLORS = {"Vanilla": _CB[0], "BN": _CB[1], "Dropout": _CB[2]}
#: Below this many values per group, distributions are box plots with the points drawn.
FEW = 25


def set_style() -> None:
    """Seaborn's whitegrid style with fonts that stay readable on a narrow page."""
    sns.set_theme(context="notebook", style="whitegrid", font_scale=1.0)
    mpl.rcParams.update(
        {
            "figure.dpi": 110,
            "savefig.bbox": "tight",
            "axes.titleweight": "bold",
            "axes.titlesize": 11,
            "axes.labelsize": 10,
            "xtick.labelsize": 9,
            "ytick.labelsize": 9,
            "legend.fontsize": 9,
        }
    )


def class_palette(n: int) -> list:
    """``n`` distinct class colours: matplotlib's tab10 up to ten classes, else husl."""
    if n <= 10:
        return sns.color_palette("tab10", n)
    return sns.color_palette("husl", n)


def lr_label(lr) -> str:
    """A learning rate as the paper writes it: ``1e-3``."""
    v = float(lr)
    mant, exp = f"{v:.0e}".split("e")
    return f"{mant}e{int(exp)}" if float(mant) * 10 ** int(exp) == v else f"{v:g}"


def _model_label(m) -> str:
    return MODEL_LABELS.get(m, m)


def _model_colors(labels: Sequence[str]) -> dict:
    extra = iter(sns.color_palette("colorblind")[3:])
    return {lab: MODEL_COLORS.get(lab) or next(extra) for lab in labels}


def _box_with_points(
    ax,
    data: pd.DataFrame,
    *,
    x: str,
    y: str,
    order,
    hue: str,
    hue_order,
    palette,
    dodge: bool = False,
) -> None:
    """A box plot (quartiles, no fliers) with every value drawn over it as a point."""
    common = dict(x=x, y=y, order=order, hue=hue, hue_order=hue_order, palette=palette, ax=ax)
    sns.boxplot(data, **common, fliersize=0, width=0.55, legend=dodge, boxprops={"alpha": 0.45})
    sns.stripplot(
        data,
        **common,
        dodge=dodge,
        size=4,
        jitter=0.15,
        legend=False,
        edgecolor="0.2",
        linewidth=0.4,
    )


def _log_axis(ax, values, axis: str = "x") -> None:
    """Log scale with a few labelled ticks: decades when the data span them, else 1-2-5."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v) & (v > 0)]
    (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
    target = ax.xaxis if axis == "x" else ax.yaxis
    if not len(v):
        return
    lo, hi = float(v.min()), float(v.max())
    decades = np.log10(hi) - np.log10(lo)
    if decades >= 1.5:
        step = max(1, int(np.ceil(decades / 4)))
        target.set_major_locator(mpl.ticker.LogLocator(base=10.0**step, numticks=6))
        target.set_major_formatter(mpl.ticker.LogFormatterSciNotation())
    else:
        ticks = [
            m * 10.0**e
            for e in range(int(np.floor(np.log10(lo))) - 1, int(np.ceil(np.log10(hi))) + 1)
            for m in (1, 2, 5)
        ]
        ticks = [t for t in ticks if lo / 1.5 <= t <= hi * 1.5] or [lo, hi]
        while len(ticks) > 5:
            ticks = ticks[::2]
        target.set_major_locator(mpl.ticker.FixedLocator(ticks))
        target.set_major_formatter(mpl.ticker.FuncFormatter(lambda t, _: f"{t:.2g}"))
    target.set_minor_formatter(mpl.ticker.NullFormatter())


def plot_dataset_2d(
    X: np.ndarray, y: np.ndarray, class_names: Sequence[str], *, title: str = ""
) -> plt.Figure:
    """Scatter plot of a 2-D labelled data set (Fig. 7), in the class colours of Fig. 8."""
    fig, ax = plt.subplots(figsize=(4.6, 4.4))
    palette = class_palette(len(class_names))
    for k, name in enumerate(class_names):
        sel = y == k
        ax.scatter(X[sel, 0], X[sel, 1], s=6, color=palette[k], label=f"{name} ({sel.sum()})")
    ax.set(xlim=(-1, 1), ylim=(-1, 1), xlabel="$x_1$", ylabel="$x_2$", aspect="equal", title=title)
    ax.legend(loc="upper right", fontsize=8, frameon=True)
    return fig


def _draw_cells(ax, polys, values, cmap, norm, edgecolor, linewidth):
    coll = PolyCollection(
        polys,
        array=np.asarray(values, float),
        cmap=cmap,
        norm=norm,
        edgecolors=edgecolor,
        linewidths=linewidth,
    )
    ax.add_collection(coll)
    return coll


def plot_partitions(
    partitions: Mapping[str, object],
    *,
    class_names: Sequence[str],
    points: Mapping[str, np.ndarray] | None = None,
    axis_labels: tuple[str, str] = ("$x_1$", "$x_2$"),
    suptitle: str = "",
) -> plt.Figure:
    """Linear regions (top row) and classification regions (bottom row) of several models.

    Parameters
    ----------
    partitions : mapping of model name -> PlanePartition
        Exact partitions from :func:`lrtools.slices.partition_plane`.
    class_names : sequence of str
        Names of the classes, for the legend of the bottom row.
    points : mapping of label -> ndarray of shape (n, 2), optional
        Points in plane coordinates to overlay (e.g. the three images of Fig. 1).
    axis_labels : tuple of str
        Labels of the plane's two coordinates.

    Notes
    -----
    Top row: every linear region is a polygon filled by its activation rate (fraction of active
    hidden units; one shared colour scale), transition boundaries in gray - as in Fig. 1 and
    Fig. 8 of the paper. Bottom row: the exact classification regions in the class colours of
    :func:`class_palette`; the decision boundary is where the colours meet.
    """
    names = list(partitions)
    fig, axes = plt.subplots(
        2, len(names), figsize=(3.3 * len(names) + 1.0, 7.4), squeeze=False, constrained_layout=True
    )
    rates = np.concatenate([[c.activation_rate for c in p.cells] for p in partitions.values()])
    norm = mpl.colors.Normalize(vmin=float(rates.min()), vmax=float(rates.max()))
    cmap = sns.color_palette("viridis", as_cmap=True)
    palette = class_palette(len(class_names))
    ccmap = mpl.colors.ListedColormap(palette)
    cnorm = mpl.colors.BoundaryNorm(np.arange(len(class_names) + 1) - 0.5, len(class_names))
    for j, name in enumerate(names):
        part = partitions[name]
        label = _model_label(name)
        top, bottom = axes[0, j], axes[1, j]
        coll = _draw_cells(
            top,
            [c.vertices for c in part.cells],
            [c.activation_rate for c in part.cells],
            cmap,
            norm,
            "0.45",
            0.35,
        )
        top.set_title(f"{label}: {part.n_regions:,} linear regions", fontsize=10)
        pieces = part.class_pieces
        _draw_cells(
            bottom, [v for v, _ in pieces], [lab for _, lab in pieces], ccmap, cnorm, "face", 0.2
        )
        bottom.set_title(f"{label}: classification regions", fontsize=10)
        for ax in (top, bottom):
            dom = np.vstack([c.vertices for c in part.cells])
            ax.set_xlim(dom[:, 0].min(), dom[:, 0].max())
            ax.set_ylim(dom[:, 1].min(), dom[:, 1].max())
            ax.set_aspect("equal")
            ax.set_xlabel(axis_labels[0])
            ax.set_ylabel(axis_labels[1] if j == 0 else "")
            ax.grid(False)
            for k, (plabel, pts) in enumerate((points or {}).items()):
                ax.scatter(
                    pts[:, 0],
                    pts[:, 1],
                    s=40,
                    marker="*^os"[k % 4],
                    color="white",
                    edgecolor="black",
                    linewidth=0.8,
                    zorder=5,
                    label=plabel,
                )
    fig.colorbar(
        coll,
        ax=axes[0, :].tolist(),
        shrink=0.9,
        pad=0.01,
        label="activation rate\n(share of active units)",
    )
    handles = [mpl.patches.Patch(color=palette[k], label=n) for k, n in enumerate(class_names)]
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncol=min(len(handles), 5),
        fontsize=9,
        title="classification region of class",
        frameon=False,
    )
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def _facet_title(row_name, row_value, col_name, col_value) -> str:
    def one(name, value):
        if name is None:
            return ""
        if name == "lr":
            return f"learning rate {lr_label(value)}"
        if name == "kind":
            return f"{value} regions"
        return f"{name.replace('_', ' ')} {value}"

    return " · ".join(t for t in (one(row_name, row_value), one(col_name, col_value)) if t)


def _levels(df: pd.DataFrame, col: str | None, order=None) -> list:
    if col is None:
        return [None]
    present = list(pd.unique(df[col]))
    if order is not None:
        return [v for v in order if v in present]
    return present


KIND_ORDER = ["manifold", "decision", "adversarial"]


def plot_distributions(
    df: pd.DataFrame,
    value: str,
    *,
    by: str = "model",
    col: str | None = None,
    row: str | None = None,
    log: bool = True,
    xlabel: str = "",
    order: Sequence[str] | None = None,
    height: float = 2.8,
    few: int = FEW,
) -> plt.Figure:
    """Distributions of ``value`` per model in a grid of facets, as in Fig. 3, 6 and 9.

    With at least ``few`` values per model and facet the panels are density histograms with
    shared bins (the paper's form); with fewer, box plots with every value drawn as a point,
    since a histogram of a handful of values shows nothing.

    Parameters
    ----------
    df : pandas.DataFrame
        Long table, one row per measurement.
    value : str
        Column to plot (e.g. ``"radius"``).
    by : str, default="model"
        Column mapped to colour (technique names or labels).
    col, row : str, optional
        Columns that split the figure into a grid (e.g. ``"kind"`` and ``"lr"``).
    log : bool, default=True
        Log-scaled value axis (inradii span orders of magnitude).
    order : sequence of str, optional
        Order of the ``by`` levels.
    few : int, default=FEW
        Threshold between the two forms.
    """
    data = df[np.isfinite(df[value].astype(float))].copy()
    if log:
        data = data[data[value] > 0]
    data[by] = data[by].map(_model_label)
    hue_order = [_model_label(m) for m in (order or pd.unique(df[by]))]
    hue_order = [h for h in hue_order if h in set(data[by])] or hue_order
    colors = _model_colors(hue_order)
    cols = _levels(data, col, KIND_ORDER if col == "kind" else None)
    rows = _levels(data, row)
    sizes = data.groupby([c for c in (row, col, by) if c]).size()
    small = bool(len(sizes) == 0 or sizes.max() < few)
    fig, axes = plt.subplots(
        len(rows),
        len(cols),
        figsize=(3.3 * len(cols) + 0.6, height * len(rows) + 0.6),
        squeeze=False,
        sharex=True,
        constrained_layout=True,
    )
    values_all = data[value].to_numpy(float)
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            ax = axes[i, j]
            sel = data
            if row:
                sel = sel[sel[row] == r]
            if col:
                sel = sel[sel[col] == c]
            if sel.empty:
                ax.text(0.5, 0.5, "no values", ha="center", va="center", transform=ax.transAxes)
            elif small:
                _box_with_points(
                    ax,
                    sel,
                    x=value,
                    y=by,
                    order=hue_order,
                    hue=by,
                    hue_order=hue_order,
                    palette=colors,
                )
                ax.set_ylabel("")
            else:
                bins = np.histogram_bin_edges(np.log10(values_all) if log else values_all, bins=30)
                sns.histplot(
                    sel,
                    x=value,
                    hue=by,
                    hue_order=hue_order,
                    palette=colors,
                    stat="density",
                    common_norm=False,
                    element="step",
                    fill=False,
                    bins=10**bins if log else bins,
                    ax=ax,
                    legend=(i == 0 and j == 0),
                )
                ax.set_ylabel("density" if j == 0 else "")
            ax.set_title(_facet_title(row, r, col, c), fontsize=10)
            ax.set_xlabel(xlabel or value if i == len(rows) - 1 else "")
            if small and j > 0:
                ax.set_yticklabels([])
    if log:
        for ax in axes.ravel():
            _log_axis(ax, values_all, "x")
    if small:
        n = int(sizes.max()) if len(sizes) else 0
        fig.text(
            0.99,
            0.005,
            f"box: quartiles; points: every value (at most {n} per model)",
            ha="right",
            va="bottom",
            fontsize=8,
            color="0.35",
        )
    return fig


def plot_depthwise_exclusion(
    partitions: Sequence[object],
    x_star_st: np.ndarray,
    *,
    axis_labels: tuple[str, str] = ("$s$", "$t$"),
    title: str = "",
) -> plt.Figure:
    """Fig. 2: the region of ``x*`` after hidden layer 1, 2, ..., L on one 2-D slice.

    Parameters
    ----------
    partitions : sequence of PlanePartition
        ``partition_plane(model, plane, max_layers=l)`` for l = 1..L.
    x_star_st : ndarray of shape (2,)
        Plane coordinates of ``x*``.

    Notes
    -----
    Panel l draws the cells of the first l layers (gray edges) and fills the cell of ``x*``:
    each layer's hyperplanes cut the polytope left by the preceding layers (Section 2.1).
    """
    x_star_st = np.asarray(x_star_st, float).reshape(1, 2)
    fig, axes = plt.subplots(
        1,
        len(partitions),
        figsize=(3.4 * len(partitions), 3.6),
        squeeze=False,
        constrained_layout=True,
    )
    colors = sns.color_palette("rocket", len(partitions) + 1)
    for ell, (ax, part) in enumerate(zip(axes[0], partitions, strict=True)):
        polys = [c.vertices for c in part.cells]
        ax.add_collection(
            PolyCollection(polys, facecolors="none", edgecolors="0.6", linewidths=0.4)
        )
        k = int(part.locate(x_star_st)[0])
        if k >= 0:
            ax.add_collection(
                PolyCollection(
                    [polys[k]],
                    facecolors=[colors[ell + 1]],
                    edgecolors="black",
                    linewidths=1.0,
                    alpha=0.85,
                )
            )
        ax.scatter(*x_star_st.T, marker="*", s=90, color="white", edgecolor="black", zorder=5)
        verts = np.vstack(polys)
        ax.set(
            xlim=(verts[:, 0].min(), verts[:, 0].max()),
            ylim=(verts[:, 1].min(), verts[:, 1].max()),
            aspect="equal",
            xlabel=axis_labels[0],
            ylabel=axis_labels[1],
        )
        ax.grid(False)
        ax.set_title(
            f"$S_{ell + 1}$: after hidden layer {ell + 1}\n({part.n_regions} cells)", fontsize=10
        )
    if title:
        fig.suptitle(title)
    return fig


def _lr_match(series: pd.Series, lr) -> pd.Series:
    """Rows whose learning rate is ``lr`` (tables hold it as a float or as text like "0.001")."""
    return np.isclose(series.astype(float), float(lr), rtol=1e-9, atol=0.0)


def _layer_ticks(ax, img, layer_names: Sequence[str] | None) -> None:
    """Name each layer at the middle of its block; thin lines at the boundaries."""
    size = img.image.shape[0]
    edges = np.concatenate([[0.0], np.asarray(img.boundaries, float), [float(size)]]) - 0.5
    mids = (edges[:-1] + edges[1:]) / 2
    names = list(layer_names or [f"layer {k + 1}" for k in range(len(mids))])[: len(mids)]
    names += [f"layer {k + 1}" for k in range(len(names), len(mids))]
    ax.set_xticks(mids, names, fontsize=8, rotation=90)  # narrow blocks: upright labels clash
    ax.set_yticks(mids, names, fontsize=8)
    ax.tick_params(length=0)
    for b in np.asarray(img.boundaries, float):
        ax.axhline(b - 0.5, color="black", lw=0.7)
        ax.axvline(b - 0.5, color="black", lw=0.7)


def angle_color_limit(images: Sequence[object], quantile: float = 0.99) -> float:
    """Half-range of the colour scale of :func:`plot_angle_images`, in degrees from 90.

    The ``quantile`` of :math:`|\\theta - 90^\\circ|` over every off-diagonal pixel of every
    panel (at least 0.5 degrees): one shared, data-driven range, so panels compare.
    """
    devs = []
    for img in images:
        a = np.asarray(img.image, float)
        off = ~np.eye(a.shape[0], dtype=bool)
        d = np.abs(a[off] - 90.0)
        devs.append(d[np.isfinite(d)])
    allv = np.concatenate(devs) if devs else np.zeros(1)
    return float(max(np.quantile(allv, quantile) if allv.size else 0.0, 0.5))


def plot_angle_images(
    images: Mapping[tuple[str, str], object],
    *,
    row_order: Sequence[str],
    col_order: Sequence[str],
    layer_names: Sequence[str] | None = None,
    title: str = "",
) -> plt.Figure:
    """Fig. 4 / Fig. 10: hyperplane angles as deviation from 90 degrees, one panel per model.

    Nearly every pair of hyperplanes of a high-dimensional region is close to orthogonal, so on
    the paper's 0-180 degree scale the matrices look uniform. The colour here is
    :math:`\\theta_{ij} - 90^\\circ` on a symmetric range set by the data
    (:func:`angle_color_limit`, shared by all panels): blue where directions are more
    parallel than orthogonal, red where more anti-parallel, white at exactly 90 degrees.

    Parameters
    ----------
    images : mapping of (row label, column label) -> AngleImage
        From :func:`lrtools.analyses.angles.downsampled_angle_image` (degrees).
    row_order, col_order : sequence of str
        Panel layout (e.g. learning rates by rows, techniques by columns, as in Fig. 4).
    layer_names : sequence of str, optional
        Names of the hidden layers for the axes (default "layer 1", "layer 2", ...).
    """
    lim = angle_color_limit(list(images.values()))
    fig, axes = plt.subplots(
        len(row_order),
        len(col_order),
        squeeze=False,
        figsize=(3.0 * len(col_order) + 1.3, 3.1 * len(row_order) + 0.3),
        constrained_layout=True,
    )
    cmap = sns.color_palette("vlag", as_cmap=True).with_extremes(bad="0.85")
    im = None
    for i, r in enumerate(row_order):
        for j, c in enumerate(col_order):
            ax = axes[i, j]
            ax.grid(False)
            if (r, c) not in images:
                ax.set_axis_off()
                continue
            img = images[(r, c)]
            im = ax.imshow(
                np.asarray(img.image, float) - 90.0,
                cmap=cmap,
                vmin=-lim,
                vmax=lim,
                interpolation="nearest",
            )
            _layer_ticks(ax, img, layer_names)
            if i < len(row_order) - 1:
                ax.set_xticklabels([])
            if j > 0:
                ax.set_yticklabels([])
            n = int(np.asarray(img.cell_rows).sum())
            ax.set_title(f"{c} · {r}\n{n:,} hyperplanes", fontsize=10)
    if im is not None:
        cb = fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.85)
        cb.set_label(
            f"angle − 90° (degrees; range ±{lim:.2g}° from the data)\n"
            "blue: more parallel · red: more anti-parallel",
            fontsize=9,
        )
    if title:
        fig.suptitle(title)
    return fig


def plot_layer_pairs(
    stats: pd.DataFrame,
    *,
    variant_order: Sequence[str],
    lr_order: Sequence | None = None,
    layer_names: Sequence[str] | None = None,
    value: str = "mean_abs_cos",
) -> plt.Figure:
    """Per-layer-pair summaries beside Fig. 4 / Fig. 10: mean |cos| per region, per model.

    Parameters
    ----------
    stats : DataFrame
        Rows of :func:`lrtools.analyses.angles.layer_pair_mean_angles` for several regions,
        with columns ``variant``, ``lr``, ``point``, ``layer_i``, ``layer_j`` and ``value``.
    variant_order : sequence of str
        Techniques, in colour order.
    lr_order : sequence, optional
        Learning rates, one panel each (default: those in ``stats``).
    layer_names : sequence of str, optional
        Names of the layers (default "1", "2", ...).

    Notes
    -----
    One point per region (test point) and layer pair, a bar for the mean over regions; 0 means
    orthogonal directions. The paper reads its Fig. 4 as "BN makes the directions orthogonal,
    dropout the opposite" and "more consistent as the layer goes deeper": the bars put numbers
    on both readings.
    """
    df = stats.copy()
    names = list(layer_names) if layer_names else None

    def lname(k):
        return names[int(k)] if names and int(k) < len(names) else str(int(k) + 1)

    df["pair"] = [
        f"{lname(a)} · {lname(b)}" for a, b in zip(df["layer_i"], df["layer_j"], strict=True)
    ]
    pair_order = list(
        dict.fromkeys(
            f"{lname(a)} · {lname(b)}"
            for a, b in sorted(set(zip(df["layer_i"], df["layer_j"], strict=True)))
        )
    )
    df["technique"] = df["variant"].map(_model_label)
    hue_order = [_model_label(v) for v in variant_order if v in set(df["variant"])]
    colors = _model_colors(hue_order)
    lrs = (
        list(lr_order)
        if lr_order is not None
        else sorted(set(df["lr"].astype(float)), reverse=True)
    )
    # one row per learning rate, so that the panels keep a legible width on a narrow page
    fig, axes = plt.subplots(
        len(lrs),
        1,
        figsize=(min(10.0, max(5.0, 0.9 * len(pair_order) + 1.0)), 2.9 * len(lrs) + 0.5),
        squeeze=False,
        sharey=True,
        sharex=True,
        constrained_layout=True,
    )
    for k, lr in enumerate(lrs):
        ax = axes[k, 0]
        sel = df[_lr_match(df["lr"], lr)]
        common = dict(
            x="pair",
            y=value,
            hue="technique",
            order=pair_order,
            hue_order=hue_order,
            palette=colors,
            ax=ax,
        )
        sns.barplot(sel, **common, errorbar=None, alpha=0.5, legend=(k == 0))
        sns.stripplot(
            sel, **common, dodge=True, size=3.5, edgecolor="0.2", linewidth=0.4, legend=False
        )
        ax.set(
            xlabel="pair of hidden layers" if k == len(lrs) - 1 else "",
            ylabel="mean |cos|\n(0 = orthogonal)",
            title=f"learning rate {lr_label(lr)}" if len(lrs) > 1 else "",
        )
        ax.tick_params(axis="x", rotation=30 if len(pair_order) > 4 else 0)
        if len(pair_order) > 4:
            for t in ax.get_xticklabels():
                t.set_ha("right")
    if axes[0, 0].get_legend() is not None:
        axes[0, 0].get_legend().set_title("")
    return fig


def plot_surrounding(
    counts: pd.DataFrame,
    rho: pd.DataFrame,
    *,
    lr_order: Sequence,
    variant_order: Sequence[str],
    few: int = FEW,
) -> plt.Figure:
    """Fig. 6 / Fig. 12: unique surrounding regions (box plot with points) and cosine similarity.

    Parameters
    ----------
    counts : DataFrame
        One row per (model, point) with columns ``variant``, ``lr``, ``n_unique_regions``.
    rho : DataFrame
        Long table with columns ``variant``, ``lr``, ``rho`` (one row per surrounding region).
    lr_order : sequence
        Learning rates (floats or text such as "0.001").
    few : int, default=FEW
        Below this many values per model, the similarities are drawn as points over a box plot
        instead of a histogram.
    """
    labels = [_model_label(v) for v in variant_order]
    colors = _model_colors(labels)
    counts = counts.assign(
        model_=counts["variant"].map(_model_label), lr_=[lr_label(v) for v in counts["lr"]]
    )
    rho = rho.assign(model_=rho["variant"].map(_model_label), lr_=[lr_label(v) for v in rho["lr"]])
    lr_names = [lr_label(lr) for lr in lr_order]
    fig, axes = plt.subplots(
        1,
        1 + len(lr_order),
        figsize=(3.9 * (1 + len(lr_order)), 3.5),
        constrained_layout=True,
        squeeze=False,
    )
    ax = axes[0, 0]
    lr_pal = dict(zip(lr_names, sns.color_palette("Greys", len(lr_names) + 2)[2:], strict=False))
    _box_with_points(
        ax,
        counts,
        x="model_",
        y="n_unique_regions",
        order=labels,
        hue="lr_",
        hue_order=lr_names,
        palette=lr_pal,
        dodge=True,
    )
    _log_axis(ax, counts["n_unique_regions"], "y")
    ax.set(xlabel="", ylabel="unique regions (log scale)", title="(a) regions within ε")
    if ax.get_legend() is not None:
        ax.get_legend().set_title("learning rate")
    for k, (lr, name) in enumerate(zip(lr_order, lr_names, strict=True)):
        ax = axes[0, k + 1]
        sel = rho[_lr_match(rho["lr"], lr)]
        per_model = sel.groupby("model_").size()
        panel = f"({chr(ord('b') + k)})" + (f" learning rate {name}" if len(lr_order) > 1 else "")
        if sel.empty:
            ax.text(0.5, 0.5, "no surrounding regions", ha="center", transform=ax.transAxes)
        elif per_model.max() < few:
            _box_with_points(
                ax,
                sel,
                x="rho",
                y="model_",
                order=labels,
                hue="model_",
                hue_order=labels,
                palette=colors,
            )
            ax.set_ylabel("")
        else:
            sns.histplot(
                sel,
                x="rho",
                hue="model_",
                hue_order=labels,
                palette=colors,
                stat="density",
                common_norm=False,
                element="step",
                fill=False,
                bins=40,
                ax=ax,
            )
            if ax.get_legend() is not None:
                ax.get_legend().set_title("")
        ax.set(xlabel=r"cosine similarity $\rho$ (eq. 13)", title=panel)
    return fig


def plot_xt_images(
    rows: Mapping[str, np.ndarray],
    predicted: Mapping[str, Sequence[int]],
    *,
    true_class: int,
    class_names: Sequence[str],
    x_star: np.ndarray | None = None,
) -> plt.Figure:
    """Fig. 5 / Fig. 11: the most probable point :math:`x^t` of every class, one row per model.

    A green border marks an :math:`x^t` still classified as the test point's class, a red one an
    :math:`x^t` classified as another class (the class ``t`` reached inside the region).

    Parameters
    ----------
    rows : mapping of model name -> ndarray of shape (M, C, H, W) or (M, H, W)
        Images in [-1, 1].
    predicted : mapping of model name -> sequence of int
        Predicted class of each :math:`x^t`.
    true_class : int
        Class of the test point :math:`x^*`.
    """
    names = list(rows)
    m = len(class_names) + (x_star is not None)
    fig, axes = plt.subplots(
        len(names),
        m,
        figsize=(1.15 * m, 1.3 * len(names) + 0.4),
        squeeze=False,
        constrained_layout=True,
    )

    def show(ax, img, color=None):
        img = np.asarray(img, float)
        if img.ndim == 3 and img.shape[0] in (1, 3):
            img = np.moveaxis(img, 0, -1)
        img = (np.clip(img, -1, 1) + 1) / 2
        ax.imshow(img.squeeze(), cmap="gray", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(color is not None)
            if color is not None:
                spine.set_edgecolor(color)
                spine.set_linewidth(3)

    for i, name in enumerate(names):
        off = 0
        if x_star is not None:
            show(axes[i, 0], x_star)
            axes[i, 0].set_ylabel(name, fontsize=9)
            if i == 0:
                axes[i, 0].set_title("$x^*$", fontsize=9)
            off = 1
        for t in range(len(class_names)):
            ok = predicted[name][t] == true_class
            show(axes[i, t + off], rows[name][t], "tab:green" if ok else "tab:red")
            if i == 0:
                axes[i, t + off].set_title(f"t = {class_names[t]}", fontsize=9)
        if x_star is None:
            axes[i, 0].set_ylabel(name, fontsize=9)
    return fig
