"""What the book's pages say about a run: data notes, honest comparisons, tables for people.

Everything here is computed from the run (the data set's arrays, the models' training history,
the tables of measurements), never typed in: a page built with other parameters says other,
true things. The notices are MyST admonitions emitted as Markdown outputs (the book renders
Markdown outputs as MyST).

:func:`publish` records a small JSON result in the executed notebook without showing it; the
book's build step (:mod:`lrtools.booksite`) gathers those results into the landing page's
summary, the figure index and the theory page.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from .datasets.base import Dataset

__all__ = [
    "RESULTS_MIME",
    "data_notice",
    "standin_label",
    "beside_paper",
    "training_basis",
    "likely_reasons",
    "gap_note",
    "readable",
    "show_table",
    "fmt_number",
    "basis",
    "publish",
    "publish_scorecard",
    "publish_figure",
    "caption",
    "not_reproduced_notes",
]

#: MIME type of the invisible results that :func:`publish` stores in a notebook's outputs.
RESULTS_MIME = "application/vnd.lrbook.results+json"

#: The real data sets' names on the pages and their full training-set sizes (Section 3.1, E.1).
REAL_NAMES = {"mnist": "MNIST", "cifar10": "CIFAR-10", "spirals": "two spirals"}
FULL_TRAIN = {"mnist": 60_000, "cifar10": 50_000}

_ABS_PATH = re.compile(r"(?:,?\s*from\s+)?(?<![\w.])/(?:[\w.+-]+/)*[\w.+-]+/?")


def _real_name(data: Dataset) -> str:
    base = data.name.split("-")[0]
    return REAL_NAMES.get(base, base)


def _clean_source(text: str) -> str:
    """``text`` without absolute local paths (a page must not show the builder's folders)."""
    cleaned = _ABS_PATH.sub("", text or "")
    return re.sub(r"\s+([.,;])", r"\1", cleaned).strip()


def standin_label(data: Dataset) -> str:
    """A short tag for table captions: empty for real data, a warning for a stand-in."""
    return " [OFFLINE STAND-IN DATA - not the paper's data set]" if data.standin else ""


# --------------------------------------------------------------------------------------------
# What the models were trained on
# --------------------------------------------------------------------------------------------


def _histories(models: Mapping[Any, Any] | Iterable[Any] | None) -> list[pd.DataFrame]:
    if models is None:
        return []
    values = models.values() if isinstance(models, Mapping) else models
    return [m.history for m in values if getattr(m, "history", None) is not None]


def _span(values: Sequence[int], fmt: str = "{:,}") -> str:
    lo, hi = min(values), max(values)
    return fmt.format(lo) if lo == hi else f"{fmt.format(lo)}-{fmt.format(hi)}"


def training_basis(data: Dataset, models=None) -> dict[str, Any]:
    """Counts behind the models of a page, computed from the arrays and the training history.

    Parameters
    ----------
    data : Dataset
        The page's data set.
    models : mapping or iterable of TrainedModel, optional
        The page's trained models; each ``history`` has one row per epoch with ``n_images``
        (training images seen per epoch).

    Returns
    -------
    dict
        ``n_train_split`` and ``n_test`` (array lengths), ``images_per_epoch`` and ``epochs``
        (lists, one entry per model; empty without models), ``full_train`` (the real data set's
        training size, or None), ``standin`` and ``name``.
    """
    hist = _histories(models)
    base = data.name.split("-")[0]
    return {
        "name": _real_name(data),
        "standin": bool(data.standin),
        "n_train_split": int(len(data.X_train)),
        "n_test": int(len(data.X_test)),
        "images_per_epoch": [int(h["n_images"].iloc[0]) for h in hist if len(h)],
        "epochs": [int(len(h)) for h in hist],
        "full_train": FULL_TRAIN.get(base),
        "input_shape": tuple(int(s) for s in data.input_shape),
    }


def data_notice(data: Dataset, models=None, *, record: bool = True) -> Markdown:
    """A visible admonition naming the data behind the page, with the counts actually used.

    Real data gets a note, a stand-in a warning that says why it was used (the data set's
    ``fallback_reason``) and that its numbers are not the paper's - once. Every count is
    computed from the arrays and from the models' training history; no local path is shown.

    Parameters
    ----------
    data : Dataset
    models : mapping or iterable of TrainedModel, optional
        When given, the note says how many training images the models saw per epoch and for
        how many epochs.
    record : bool, default=True
        Also :func:`publish` the counts (key ``"data"``) for the landing page.
    """
    b = training_basis(data, models)
    if record:
        publish("data", b)
    name = b["name"]
    source = _clean_source(data.source)
    parts = []
    if data.standin:
        parts.append(f"**These results are computed on an offline stand-in, not on {name}.**")
        if source:
            parts.append(source if source.endswith(".") else source + ".")
        reason = _clean_source(getattr(data, "fallback_reason", "") or "")
        parts.append(
            f"Why: {reason}"
            if reason
            else f"The real {name} files were not available when this page was built."
        )
        if "comparable" not in source.lower():
            parts.append("Compare shapes and trends only: the numbers are not the paper's.")
    else:
        parts.append(f"**{name}**, the real data set." + (f" {source}" if source else ""))
    parts.append(
        f"Arrays used: {b['n_train_split']:,} training-split and {b['n_test']:,} test images "
        f"of shape {'x'.join(map(str, b['input_shape']))}."
    )
    if b["images_per_epoch"]:
        seen = b["images_per_epoch"]
        parts.append(
            f"The models on this page took gradient steps on {_span(seen)} training images per "
            f"epoch for {_span(b['epochs'])} epochs (the rest of the training split was held "
            "out for early stopping or left out by `max_train`)."
        )
        if b["full_train"] and not data.standin and max(seen) < b["full_train"]:
            parts.append(
                f"The paper trains on the full {b['full_train']:,}-image training set, so "
                "accuracies and regions can differ for that reason alone."
            )
    if data.standin:
        parts.append("Put the real files in `data/` and rebuild to replace the stand-in.")
    kind, title = ("warning", "Offline stand-in data") if data.standin else ("note", "Data")
    return Markdown(f":::{{admonition}} {title}\n:class: {kind}\n\n" + " ".join(parts) + "\n:::\n")


def likely_reasons(
    data: Dataset,
    models=None,
    *,
    n_points: int | None = None,
    paper_points: int = 1000,
    max_epochs: int | None = None,
    n_seeds: int | None = None,
    full_train: int | None = None,
) -> list[str]:
    """Computed reasons why a number of this run may differ from the paper's.

    Each reason is a sentence with the run's own count beside the paper's: the stand-in, the
    training-set size, an epoch budget the models ran into, the number of test points and of
    seeds. Only the reasons that apply to this run are returned. ``n_seeds`` (None) is read
    from the keys of ``models`` when they are the study's ``(variant, lr, seed)`` runs (one
    seed otherwise).
    """
    if n_seeds is None:
        keys = list(models) if isinstance(models, Mapping) else []
        runs = [k for k in keys if isinstance(k, tuple) and len(k) == 3]
        n_seeds = len({k[2] for k in runs}) if runs and len(runs) == len(keys) else 1
    b = training_basis(data, models)
    out = []
    if data.standin:
        out.append(f"the models are trained and tested on an offline stand-in, not on {b['name']}")
    full = full_train or b["full_train"]
    seen = b["images_per_epoch"]
    if seen and full and max(seen) < full:
        out.append(f"the models saw {_span(seen)} training images per epoch, the paper's {full:,}")
    if max_epochs and b["epochs"] and max(b["epochs"]) >= max_epochs:
        hit = sum(e >= max_epochs for e in b["epochs"])
        out.append(
            f"{hit} of {len(b['epochs'])} models stopped at the epoch budget "
            f"(`max_epochs` = {max_epochs}) before early stopping, so they may be under-trained"
        )
    if n_points is not None and n_points < paper_points:
        out.append(f"{n_points:,} test point(s) per model where the paper uses {paper_points:,}")
    if n_seeds <= 1:
        out.append("one training seed, so the spread between seeds is not measured")
    return out


def _join(items: Sequence[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def gap_note(
    what: str,
    ours: Mapping[str, float],
    paper: Mapping[str, float],
    *,
    tol: float,
    unit: str = "",
    reasons: Sequence[str] = (),
    se: Mapping[str, float] | None = None,
) -> Markdown:
    """A paragraph comparing this run's numbers with the paper's, with the likely reasons.

    Parameters
    ----------
    what : str
        The item, e.g. ``"Table 1"``.
    ours, paper : mapping of label -> float
        Values for the same labels (labels missing on either side are skipped).
    tol : float
        A gap within ``tol`` (in the values' unit) counts as agreement.
    unit : str, default=""
        Unit appended to numbers (e.g. ``" pp"`` for percentage points of a gap).
    reasons : sequence of str
        From :func:`likely_reasons`.
    se : mapping of label -> float, optional
        Standard errors of ``ours`` (over test points): the note says how many standard errors
        each gap is.
    """
    labels = [k for k in ours if k in paper and np.isfinite(ours[k])]
    if not labels:
        return Markdown(f"**{what} against the paper:** nothing to compare in this run.")
    gaps = {k: float(ours[k]) - float(paper[k]) for k in labels}
    off = [k for k in labels if abs(gaps[k]) > tol]
    if not off:
        body = (
            f"**{what} against the paper:** every value is within {fmt_number(tol)}{unit} of "
            f"the paper's ({_span_float(gaps.values(), unit)})."
        )
    else:
        items = []
        for k in off:
            s = f"{k}: {fmt_number(ours[k])} vs {fmt_number(paper[k])}"
            if se and k in se and np.isfinite(se[k]) and se[k] > 0:
                s += f" ({abs(gaps[k]) / se[k]:.1f} standard errors)"
            items.append(s)
        body = (
            f"**{what} differs from the paper** by more than {fmt_number(tol)}{unit} in "
            f"{len(off)} of {len(labels)} values: " + "; ".join(items) + "."
        )
    if off and reasons:
        body += " Likely reasons: " + _join(reasons) + "."
    return Markdown(body)


def _span_float(values: Iterable[float], unit: str) -> str:
    v = list(values)
    lo, hi = min(v), max(v)
    sign = lambda x: f"{x:+.3g}"  # noqa: E731
    return f"gap {sign(lo)}{unit}" if lo == hi else f"gaps {sign(lo)} to {sign(hi)}{unit}"


# --------------------------------------------------------------------------------------------
# Tables for people
# --------------------------------------------------------------------------------------------

#: Column names of lrtools tables and how a page shows them.
HEADERS = {
    "n_reached": "classes reached (paper's criterion)",
    "n_exists": "classes present (exact margin LP)",
    "distortion": "distortion (eq. 8)",
    "on_boundary": "share of x^t on a face",
    "share_on_boundary": "share of x^t on a face",
    "mean_active_rows": "active constraints at x^t",
    "classes_paper_criterion": "classes reached (paper's criterion)",
    "classes_margin_lp": "classes present (exact margin LP)",
    "disagreements": "criterion and LP disagree",
    "disagree": "criterion and LP disagree",
    "solver_fallbacks": "solver fallbacks",
    "fallbacks": "solver fallbacks",
    "uncertified_classes": "uncertified classes",
    "n_failed": "uncertified classes",
    "seconds_per_point": "seconds per point",
    "seconds": "seconds",
    "n_unique_regions": "unique surrounding regions",
    "median_regions": "median regions",
    "mean_regions": "mean regions",
    "median_rho": "median ρ",
    "mean_abs_cos": "mean |cos|",
    "mean_angle": "mean angle (°)",
    "radius": "inradius",
    "points": "test points",
    "regions": "regions",
    "lr": "learning rate",
    "kind": "region",
    "model": "model",
}


def readable(name: Any) -> Any:
    """The page's header for a column name: known names from :data:`HEADERS`, else spaces."""
    if not isinstance(name, str):
        return name
    return HEADERS.get(name, name.replace("_", " "))


def fmt_number(v: Any) -> str:
    """A number for a reader: 3 significant digits, thousands separators, integers as such."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, bool | np.bool_):
        return "yes" if v else "no"
    if isinstance(v, int | np.integer):
        return f"{int(v):,}"
    if isinstance(v, float | np.floating):
        v = float(v)
        if not math.isfinite(v):
            return str(v)
        if v == 0:
            return "0"
        if v.is_integer() and abs(v) < 1e15:
            return f"{int(v):,}"
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        if abs(v) >= 1e-3:
            return f"{v:.3g}" if abs(v) < 100 else f"{v:.1f}"
        return f"{v:.2e}"
    return str(v)


def show_table(
    df: pd.DataFrame,
    caption: str,
    *,
    precision: int | None = None,
    na_note: str = "",
    index: bool = True,
    formats: Mapping[str, str] | None = None,
):
    """A pandas Styler for a page: readable headers, sensible precision, ``nan`` explained.

    Parameters
    ----------
    df : DataFrame
    caption : str
    precision : int, optional
        Fixed decimals for every float; by default :func:`fmt_number` (3 significant digits).
    na_note : str, default=""
        What a missing value (shown as "–") means here; appended to the caption when the table
        has any.
    index : bool, default=True
        Show the index.
    formats : mapping of column -> format string, optional
        Per-column formats (e.g. ``{"accuracy": "{:.1f}"}``), by the original column name.
    """
    shown = df.rename(columns=readable, index=readable)
    shown.index = shown.index.rename(
        [readable(n) for n in shown.index.names]
        if isinstance(shown.index, pd.MultiIndex)
        else readable(shown.index.name)
    )
    if isinstance(shown.columns, pd.MultiIndex):
        shown.columns = pd.MultiIndex.from_tuples(
            [tuple(readable(c) for c in col) for col in shown.columns],
            names=shown.columns.names,
        )
    fmt = (
        (lambda v: "–" if pd.isna(v) else f"{v:,.{precision}f}")
        if precision is not None
        else fmt_number
    )
    styler = shown.style.format(fmt, na_rep="–")
    for col, f in (formats or {}).items():
        key = readable(col)
        if key in shown.columns:
            styler = styler.format(lambda v, f=f: "–" if pd.isna(v) else f.format(v), subset=[key])
    has_na = bool(df.isna().to_numpy().any())
    if has_na and na_note:
        caption = f"{caption}. – : {na_note}"
    styler = styler.set_caption(caption)
    if not index:
        styler = styler.hide(axis="index")
    return styler


def basis(
    n_points: int | Sequence[int], *, seeds: Sequence[int] | int = (0,), unit: str = "test point"
) -> str:
    """ "N test points per model, seed 0": the statistical basis of a figure or table."""
    seeds = [seeds] if isinstance(seeds, int | np.integer) else list(seeds)
    counts = [n_points] if isinstance(n_points, int | np.integer) else list(n_points)
    n = _span([int(c) for c in counts]) if counts else "0"
    plural = "" if counts and max(counts) == 1 else "s"
    s = "seed" if len(seeds) == 1 else "seeds"
    return f"{n} {unit}{plural} per model, {s} {', '.join(str(x) for x in seeds)}"


# --------------------------------------------------------------------------------------------
# Results recorded for the landing page, the figure index and the theory page
# --------------------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if isinstance(value, pd.DataFrame):
        return [_jsonable(r) for r in value.to_dict(orient="records")]
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def publish(key: str, value: Any) -> None:
    """Record ``value`` under ``key`` in the executed notebook, invisibly.

    The value (JSON-serialisable after conversion: DataFrames become lists of records, NaN
    becomes null) is stored as a display output of MIME type :data:`RESULTS_MIME`, which the
    book does not render; :mod:`lrtools.booksite` reads it back when the HTML is built.
    """
    payload = {"key": str(key), "value": _jsonable(value)}
    json.dumps(payload)  # fail here, in the notebook, if something is not serialisable
    display({RESULTS_MIME: payload}, raw=True)


def publish_scorecard(card: pd.DataFrame, *, section: str, basis_text: str = "") -> None:
    """Record a chapter's claims (columns claim, our value, paper value, verdict) for the
    landing page's results summary.

    ``card`` may have more columns; a ``values`` column (the compared values as text, as in
    :func:`lrtools.analyses.claims.score`), interval columns (``CI``, ``95% CI``) and the
    sample columns ``n`` (points x seeds) and ``per seed`` are kept and shown beside the
    tested difference. A claims chapter calls this once after showing its
    scorecard.
    """
    need = ["claim", "our value", "paper value", "verdict"]
    missing = [c for c in need if c not in card.columns]
    if missing:
        raise ValueError(
            f"a scorecard needs the columns {need}; {missing} are missing (got "
            f"{list(card.columns)}). Rename the columns before publishing."
        )
    extra = [c for c in card.columns
             if c not in need and (c in ("values", "n", "per seed") or "CI" in str(c))]  # fmt: skip
    rows = card[need + extra].copy()
    rows["our value"] = [
        fmt_number(v) if isinstance(v, float | int) else v for v in rows["our value"]
    ]
    publish("scorecard", {"section": section, "basis": basis_text, "rows": rows})


def publish_figure(label: str, *, basis_text: str) -> None:
    """Record the statistical basis of the figure ``label`` (for the figure index)."""
    publish(f"figure:{label}", {"basis": basis_text})


def caption(key: str, label: str, text: str, *, basis_text: str) -> None:
    """Glue the caption of figure ``key`` (as ``<key>-caption``) and record its basis.

    The page's ``{glue:figure}`` directive shows it with ``{glue:md}`<key>-caption:myst```; the
    caption ends with the statistical basis ("15 test points per model, seed 0"), so a figure
    never claims more than the run measured.
    """
    from myst_nb import glue

    body = text.rstrip()
    if basis_text:
        body += f" *Behind it: {basis_text}.*"
    glue(f"{key}-caption", Markdown(body), display=False)
    publish_figure(label, basis_text=basis_text)


def not_reproduced_notes(card: pd.DataFrame, reasons: Sequence[str] = ()) -> Markdown:
    """One paragraph per claim whose verdict is not "reproduced"/"agrees", with the reasons."""
    ok = {"reproduced", "agrees"}
    rows = card[~card["verdict"].isin(ok)]
    if rows.empty:
        return Markdown("Every claim tested on this page agrees with the paper in this run.")
    paras = []
    for _, r in rows.iterrows():
        ours = r["values"] if isinstance(r.get("values"), str) else r["our value"]
        text = (
            f"**{r['claim']}** - this run: {fmt_number(ours)}; the paper: {r['paper value']}; "
            f"verdict: *{r['verdict']}*."
        )
        if reasons:
            text += " Likely reasons: " + "; ".join(reasons) + "."
        paras.append(text)
    return Markdown("\n\n".join(paras))


def beside_paper(
    ours: pd.DataFrame,
    paper: pd.DataFrame,
    *,
    ours_label: str = "this run",
    paper_label: str = "paper",
) -> pd.DataFrame:
    """Interleave two tables of the same shape column by column: (col, this run), (col, paper)."""
    if list(ours.columns) != list(paper.columns) or list(ours.index) != list(paper.index):
        raise ValueError("ours and paper need the same index and columns to be set side by side.")
    both = pd.concat({ours_label: ours, paper_label: paper}, axis=1)
    both = both.swaplevel(0, 1, axis=1)
    return both[[(c, lab) for c in ours.columns for lab in (ours_label, paper_label)]]
