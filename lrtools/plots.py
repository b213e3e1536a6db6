"""Figures of the book: tables and partitions in, matplotlib figures out (no heavy computing).

Every function returns the ``Figure`` so notebooks can ``glue`` it; axes carry labels and units,
panels carry model names, and colour bars say what the colour means.
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
    "plot_dataset_2d",
    "plot_partitions",
    "plot_distributions",
    "plot_depthwise_exclusion",
    "plot_angle_images",
    "plot_surrounding",
    "plot_xt_images",
]


def set_style() -> None:
    """Seaborn's paper style with readable defaults for the book."""
    sns.set_theme(context="notebook", style="whitegrid", font_scale=0.95)
    mpl.rcParams.update({"figure.dpi": 110, "savefig.bbox": "tight", "axes.titleweight": "bold"})


def plot_dataset_2d(
    X: np.ndarray, y: np.ndarray, class_names: Sequence[str], *, title: str = ""
) -> plt.Figure:
    """Scatter plot of a 2-D labelled data set (Fig. 7)."""
    fig, ax = plt.subplots(figsize=(4.6, 4.4))
    palette = sns.color_palette("Set1", len(class_names))
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
    Fig. 8 of the paper. Bottom row: the exact classification regions; the decision boundary is
    where the colours meet.
    """
    names = list(partitions)
    fig, axes = plt.subplots(
        2, len(names), figsize=(3.8 * len(names) + 1.0, 8.4), squeeze=False, constrained_layout=True
    )
    rates = np.concatenate([[c.activation_rate for c in p.cells] for p in partitions.values()])
    norm = mpl.colors.Normalize(vmin=float(rates.min()), vmax=float(rates.max()))
    cmap = sns.color_palette("viridis", as_cmap=True)
    palette = sns.color_palette("Set2", len(class_names))
    ccmap = mpl.colors.ListedColormap(palette)
    cnorm = mpl.colors.BoundaryNorm(np.arange(len(class_names) + 1) - 0.5, len(class_names))
    for j, name in enumerate(names):
        part = partitions[name]
        label = MODEL_LABELS.get(name, name)
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
        top.set_title(f"{label}: {part.n_regions} linear regions", fontsize=10)
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
            ax.set_ylabel(axis_labels[1])
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
        label="activation rate\n(fraction of active hidden units)",
    )
    handles = [mpl.patches.Patch(color=palette[k], label=n) for k, n in enumerate(class_names)]
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncol=min(len(handles), 10),
        fontsize=9,
        title="classification region of class",
        frameon=False,
    )
    if suptitle:
        fig.suptitle(suptitle)
    return fig


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
    height: float = 3.0,
) -> plt.Figure:
    """Histograms (density, shared bins) of ``value`` per model, as in Fig. 3, 6 and 9.

    Parameters
    ----------
    df : pandas.DataFrame
        Long table, one row per measurement.
    value : str
        Column to plot (e.g. ``"radius"``).
    by : str, default="model"
        Column mapped to colour.
    col, row : str, optional
        Columns that split the figure into a grid (e.g. region kind and learning rate).
    log : bool, default=True
        Log-scaled x axis (inradii span orders of magnitude).
    """
    data = df[np.isfinite(df[value]) & ((df[value] > 0) if log else True)].copy()
    data[by] = data[by].map(lambda m: MODEL_LABELS.get(m, m))
    hue_order = [MODEL_LABELS.get(m, m) for m in (order or df[by].unique())]
    grid = sns.displot(
        data,
        x=value,
        hue=by,
        hue_order=hue_order,
        col=col,
        row=row,
        kind="hist",
        stat="density",
        common_norm=False,
        element="step",
        log_scale=log,
        height=height,
        aspect=1.25,
        facet_kws={"sharey": False},
    )
    grid.set_axis_labels(xlabel or value, "density")
    if grid.legend is not None:
        grid.legend.set_title("model")
    return grid.figure


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


def plot_angle_images(
    images: Mapping[tuple[str, str], object],
    *,
    row_order: Sequence[str],
    col_order: Sequence[str],
    title: str = "",
) -> plt.Figure:
    """Fig. 4 / Fig. 10: heatmaps of hyperplane angles, one panel per model.

    Parameters
    ----------
    images : mapping of (row label, column label) -> AngleImage
        From :func:`lrtools.analyses.angles.downsampled_angle_image`.
    row_order, col_order : sequence of str
        Panel layout (e.g. learning rates by rows, variants by columns, as in Fig. 4).
    """
    fig, axes = plt.subplots(
        len(row_order),
        len(col_order),
        squeeze=False,
        figsize=(3.3 * len(col_order) + 1.2, 3.2 * len(row_order)),
        constrained_layout=True,
    )
    cmap = sns.color_palette("vlag", as_cmap=True)  # white at 90 degrees (orthogonal)
    im = None
    for i, r in enumerate(row_order):
        for j, c in enumerate(col_order):
            ax = axes[i, j]
            ax.grid(False)
            if (r, c) not in images:
                ax.set_axis_off()
                continue
            img = images[(r, c)]
            im = ax.imshow(img.image, cmap=cmap, vmin=0, vmax=180, interpolation="nearest")
            for bnd in img.boundaries:
                ax.axhline(bnd - 0.5, color="black", lw=0.6)
                ax.axvline(bnd - 0.5, color="black", lw=0.6)
            n = int(img.cell_rows.sum())
            ticks = np.concatenate([[0], img.boundaries, [img.image.shape[0]]]) - 0.5
            labels = np.concatenate([[0], img.layer_starts, [n]]).astype(int)
            ax.set_xticks(ticks, labels, fontsize=7)
            ax.set_yticks(ticks, labels, fontsize=7)
            ax.set_title(f"{c} ({r})", fontsize=10)
            ax.set_xlabel("hyperplane index $j$", fontsize=8)
            ax.set_ylabel("hyperplane index $i$", fontsize=8)
    if im is not None:
        fig.colorbar(
            im,
            ax=axes.ravel().tolist(),
            shrink=0.8,
            label=r"angle $\arccos\cos(w_i, w_j)$ (degrees)",
        )
    if title:
        fig.suptitle(title)
    return fig


def plot_surrounding(
    counts: pd.DataFrame,
    rho: pd.DataFrame,
    *,
    lr_order: Sequence[float],
    variant_order: Sequence[str],
) -> plt.Figure:
    """Fig. 6 / Fig. 12: unique surrounding regions (box plot) and cosine similarities.

    Parameters
    ----------
    counts : DataFrame
        One row per (model, point) with columns ``variant``, ``lr``, ``n_unique_regions``.
    rho : DataFrame
        Long table with columns ``variant``, ``lr``, ``rho`` (one row per surrounding region).
    """
    labels = [MODEL_LABELS.get(v, v) for v in variant_order]
    lr_order = [f"{lr:g}" if isinstance(lr, float) else lr for lr in lr_order]  # lr is a float
    lr_text = {"lr": lambda f: f["lr"].map(lambda v: f"{v:g}" if isinstance(v, float) else v)}
    counts = counts.assign(model=counts["variant"].map(lambda v: MODEL_LABELS.get(v, v)), **lr_text)
    rho = rho.assign(model=rho["variant"].map(lambda v: MODEL_LABELS.get(v, v)), **lr_text)
    fig, axes = plt.subplots(
        1,
        1 + len(lr_order),
        figsize=(4.2 * (1 + len(lr_order)), 3.6),
        constrained_layout=True,
        squeeze=False,
    )
    ax = axes[0, 0]
    sns.boxplot(
        counts,
        x="model",
        y="n_unique_regions",
        hue="lr",
        hue_order=list(lr_order),
        order=labels,
        ax=ax,
        fliersize=2,
    )
    ax.set(
        yscale="log",
        xlabel="",
        ylabel="unique surrounding regions (log scale)",
        title="(a) unique regions within $\\epsilon$",
    )
    ax.legend(title="learning rate", fontsize=8)
    for k, lr in enumerate(lr_order):
        ax = axes[0, k + 1]
        sel = rho[rho["lr"] == lr]
        sns.histplot(
            sel,
            x="rho",
            hue="model",
            hue_order=labels,
            stat="density",
            common_norm=False,
            element="step",
            bins=40,
            ax=ax,
        )
        ax.set(
            xlabel=r"cosine similarity $\rho$ of decision directions",
            title=f"({chr(ord('b') + k)}) learning rate {lr}",
        )
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
