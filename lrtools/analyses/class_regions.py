r"""Classification regions inside a manifold region (Section 3.4, Table 2, Fig. 5, Appendix D).

For a test point :math:`x^*` and every class :math:`t`, the most probable point
:math:`x^t = \arg\max_{x \in S_L} \log p_t(x)` (eq. 6) is solved on the region of :math:`x^*`
with the affine logits of eq. (7). The paper counts class :math:`t` as present in the region
when :math:`x^t` is classified as :math:`t`; Table 2 reports the mean count and the mean
distortion :math:`\max_t \|x^t - x^*\|` (eq. 8). Beside the paper's criterion we report the
exact existence test (margin LP of :func:`lrtools.solvers.maxprob.class_region_exists`) and how
often the two disagree, and, for Appendix D, how many constraints are active at :math:`x^t`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..regions import linear_region
from ..solvers.maxprob import class_region_exists, max_log_prob_all
from .parallel import map_points

__all__ = ["class_regions_point", "class_region_table"]


def class_regions_point(model, x, *, method: str = "auto", active_tol: float = 1e-6) -> dict:
    """Table 2 quantities of one test point; see the module docstring.

    Returns
    -------
    dict
        ``n_reached`` (paper's count), ``n_failed`` (classes whose eq. 6 no solver could
        certify: recorded with their status, never counted), ``n_exists`` (margin LP count),
        ``disagree``,
        ``distortion`` (eq. 8), ``on_boundary`` (share of :math:`x^t` with an active
        constraint, Appendix D), ``mean_active_rows``, ``fallbacks``, ``per_class`` (a
        DataFrame) and ``xt`` (array of shape (M, *input_shape), for Fig. 5).
    """
    region = linear_region(model, x)
    poly, W, c = region.polytope, region.logit_W, region.logit_b
    table = max_log_prob_all(
        poly, W, c, x_star=region.x_star, method=method, active_tol=active_tol, on_error="record"
    )
    per_class = pd.DataFrame(table.to_dict())
    exists = [
        class_region_exists(
            poly, W, c, r.target, x_star=region.x_star,
            witness=r.x if np.all(np.isfinite(r.x)) else None,
        )
        for r in table.results
    ]
    failed = per_class["status"] == "failed"
    per_class["reached"] = (per_class["predicted"] == per_class["class"]) & ~failed
    per_class["exists_lp"] = [e.exists for e in exists]
    per_class["margin_lp"] = [e.margin for e in exists]
    per_class["exists_by"] = [e.by for e in exists]
    per_class["n_active"] = per_class["n_active_rows"] + per_class["n_active_box"]
    return {
        "n_reached": int(per_class["reached"].sum()),
        "n_failed": int(failed.sum()),
        "n_exists": int(per_class["exists_lp"].sum()),
        "disagree": int((per_class["reached"] != per_class["exists_lp"]).sum()),
        "distortion": float(per_class.loc[~failed, "distortion"].max()),
        "on_boundary": float((per_class["n_active"] > 0).mean()),
        "mean_active_rows": float(per_class["n_active_rows"].mean()),
        "fallbacks": int(per_class["fallback"].sum()),
        "seconds": float(per_class["seconds"].sum()),
        "label": int(np.argmax(region.logits(region.x_star))),
        "per_class": per_class,
        "xt": np.stack([r.x for r in table.results]).reshape(-1, *region.input_shape),
    }


def class_region_table(
    model,
    X: np.ndarray,
    *,
    method: str = "auto",
    n_jobs: int = 2,
    progress: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[int, np.ndarray]]:
    """Table 2 for the points ``X``: per-point table, long per-class table, and :math:`x^t`.

    Returns
    -------
    per_point : DataFrame
        ``point, label, n_reached, n_exists, disagree, distortion, on_boundary,
        mean_active_rows, fallbacks, seconds``.
    per_class : DataFrame
        One row per (point, class), see :func:`lrtools.solvers.maxprob.MaxProbTable.to_dict`.
    xt : dict of point -> ndarray of shape (M, *input_shape)
    """
    results: list[dict[str, Any]] = map_points(
        class_regions_point,
        model,
        list(X),
        n_jobs=n_jobs,
        desc="x^t (eq. 6)",
        progress=progress,
        method=method,
    )
    rows, classes, xt = [], [], {}
    for i, res in enumerate(results):
        rows.append({"point": i, **{k: v for k, v in res.items() if k not in ("per_class", "xt")}})
        classes.append(res["per_class"].assign(point=i))
        xt[i] = res["xt"]
    return pd.DataFrame(rows), pd.concat(classes, ignore_index=True), xt
