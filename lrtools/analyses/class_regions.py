r"""Classification regions inside a manifold region (Section 3.4, Table 2, Fig. 5, Appendix D).

For a test point :math:`x^*` and every class :math:`t`, the most probable point
:math:`x^t = \arg\max_{x \in S_L} \log p_t(x)` (eq. 6) is solved on the region of :math:`x^*`
with the affine logits of eq. (7). The paper counts class :math:`t` as present in the region
when :math:`x^t` is classified as :math:`t`; Table 2 reports the mean count and the mean
distortion :math:`\max_t \|x^t - x^*\|` (eq. 8). Beside the paper's criterion we report the
exact existence test (margin LP of :func:`lrtools.solvers.maxprob.class_region_exists`) and how
often the two disagree, and, for Appendix D, how many constraints are active at :math:`x^t`.

The work of one point is split by class when there are fewer points than workers (a CNN region
costs minutes per point), so both cores stay busy; the result does not depend on the split.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..execution import map_points
from ..regions import linear_region, predict
from ..solvers.maxprob import class_region_exists, max_log_prob_all

__all__ = ["class_regions_point", "class_region_table"]


def _classes_of_point(
    model, task, *, method: str = "auto", active_tol: float = 1e-6, exact: bool = True
) -> dict:
    """Per-class rows and :math:`x^t` of one point for the classes of ``task = (x, classes)``.

    With ``exact=False`` the margin LP is skipped: a class whose :math:`x^t` has a positive
    margin still counts as existing (the point is a witness), the others are unknown (NaN).
    """
    x, classes = task
    region = linear_region(model, x)
    poly, W, c = region.polytope, region.logit_W, region.logit_b
    table = max_log_prob_all(
        poly, W, c, x_star=region.x_star, method=method, active_tol=active_tol,
        on_error="record", classes=classes,
    )
    per_class = pd.DataFrame(table.to_dict())
    exists = [_existence(poly, W, c, r, region.x_star, exact) for r in table.results]
    failed = per_class["status"] == "failed"
    per_class["reached"] = (per_class["predicted"] == per_class["class"]) & ~failed
    per_class["exists_lp"] = [np.nan if e is None else e.exists for e in exists]
    per_class["margin_lp"] = [np.nan if e is None else e.margin for e in exists]
    per_class["exists_by"] = ["skipped" if e is None else e.by for e in exists]
    per_class["n_active"] = per_class["n_active_rows"] + per_class["n_active_box"]
    return {
        "per_class": per_class,
        "xt": np.stack([r.x for r in table.results]).reshape(-1, *region.input_shape),
        "label": int(np.argmax(region.logits(region.x_star))),
    }


def _existence(poly, W, c, res, x_star, exact: bool):
    """The exact existence test of one class, or None when skipped (``exact=False``)."""
    if res.status == "failed":
        witness = None
    elif not exact and not res.reaches_class:
        return None  # x^t is no witness, and the LP is not run
    else:
        witness = res.x
    return class_region_exists(
        poly, W, c, res.target, x_star=x_star, witness=witness, sign_only=True
    )


def _summary(per_class: pd.DataFrame) -> dict[str, Any]:
    """Table 2 quantities of one point from its per-class rows (all classes)."""
    failed = per_class["status"] == "failed"
    return {
        "n_reached": int(per_class["reached"].sum()),
        "n_failed": int(failed.sum()),
        "n_exists": _count(per_class["exists_lp"]),
        "disagree": _count(per_class["reached"] != per_class["exists_lp"].astype(bool))
        if per_class["exists_lp"].notna().all() else np.nan,
        "distortion": float(per_class.loc[~failed, "distortion"].max()),
        "on_boundary": float((per_class["n_active"] > 0).mean()),
        "mean_active_rows": float(per_class["n_active_rows"].mean()),
        "fallbacks": int(per_class["fallback"].sum()),
        "seconds": float(per_class["seconds"].sum()),
    }


def _count(flags: pd.Series) -> float:
    """Number of True entries; NaN when any entry is unknown (NaN)."""
    return int(flags.astype(bool).sum()) if flags.notna().all() else np.nan


def class_regions_point(
    model, x, *, method: str = "auto", active_tol: float = 1e-6, exact: bool = True
) -> dict:
    """Table 2 quantities of one test point; see the module docstring (``exact``: as in
    :func:`class_region_table`). The per-point task of the stored Table 2.

    Returns
    -------
    dict
        ``n_reached`` (paper's count), ``n_failed`` (classes whose eq. 6 no solver could
        certify: recorded with their status, never counted), ``n_exists`` (margin LP count),
        ``disagree``, ``distortion`` (eq. 8), ``on_boundary`` (share of :math:`x^t` with an
        active constraint, Appendix D), ``mean_active_rows``, ``fallbacks``, ``seconds``,
        ``label``, ``per_class`` (a DataFrame) and ``xt`` (array of shape (M, *input_shape),
        for Fig. 5).
    """
    part = _classes_of_point(model, (x, None), method=method, active_tol=active_tol, exact=exact)
    return {**_summary(part["per_class"]), "label": part["label"],
            "per_class": part["per_class"], "xt": part["xt"]}


def class_region_table(
    model,
    X: np.ndarray,
    *,
    method: str = "auto",
    n_jobs: int = 2,
    progress: bool = True,
    exact: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[int, np.ndarray]]:
    """Table 2 for the points ``X``: per-point table, long per-class table, and :math:`x^t`.

    ``exact=False`` skips the margin LP of the classes that :math:`x^t` does not reach
    (``n_exists`` and ``disagree`` are then NaN): at CNN size that LP costs 60-100 s per class.

    Returns
    -------
    per_point : DataFrame
        ``point, n_reached, n_failed, n_exists, disagree, distortion, on_boundary,
        mean_active_rows, fallbacks, seconds, label``.
    per_class : DataFrame
        One row per (point, class), see :func:`lrtools.solvers.maxprob.MaxProbTable.to_dict`.
    xt : dict of point -> ndarray of shape (M, *input_shape)
    """
    X = list(X)
    n_classes = predict(model, np.asarray(X[:1])).shape[-1] if X else 0
    parts = 1 if len(X) >= n_jobs else -(-n_jobs // max(len(X), 1))
    chunks = [c.tolist() for c in np.array_split(np.arange(n_classes), parts) if c.size]
    tasks = [(x, chunk) for x in X for chunk in chunks]
    results: list[dict[str, Any]] = map_points(
        _classes_of_point,
        model,
        tasks,
        n_jobs=n_jobs,
        desc="x^t (eq. 6)",
        progress=progress,
        method=method,
        exact=exact,
    )
    rows, classes, xt = [], [], {}
    for i in range(len(X)):
        mine = results[i * len(chunks) : (i + 1) * len(chunks)]
        per_class = pd.concat([r["per_class"] for r in mine], ignore_index=True)
        rows.append({"point": i, **_summary(per_class), "label": mine[0]["label"]})
        classes.append(per_class.assign(point=i))
        xt[i] = np.concatenate([r["xt"] for r in mine])
    return pd.DataFrame(rows), pd.concat(classes, ignore_index=True), xt
