r"""Classification regions inside a manifold region (Section 3.4, Table 2, Fig. 5, Appendix D).

For a test point :math:`x^*` and every class :math:`t`, the most probable point
:math:`x^t = \arg\max_{x \in S_L} \log p_t(x)` (eq. 6) is solved on the region of :math:`x^*`
with the affine logits of eq. (7). The paper counts class :math:`t` as present in the region
when :math:`x^t` is classified as :math:`t`; Table 2 reports the mean count and the mean
distortion :math:`\max_t \|x^t - x^*\|` (eq. 8). Beside the paper's criterion we report the
exact existence test (margin LP of :func:`lrtools.solvers.maxprob.class_region_exists`) and how
often the two disagree, and, for Appendix D, how many constraints are active at :math:`x^t`.
The margin LP is skipped where eq. 6 already decides (``exists_by``): :math:`x^t` is a witness
(positive margin), eq. 6's solution and multipliers give a negative weak-duality bound
(``"eq6-dual"``, :func:`lrtools.solvers.maxprob.margin_bound_from_eq6`), or its certified optimum
has :math:`p_t < 1/K` (``"eq6-bound"``); otherwise the interior-point LP stops as soon as the sign
of its optimum is certified (``"lp-sign"``).

:math:`x^t` is not unique (the logits are constant along the null space of the logit Jacobian,
so a whole face of the region can be optimal), so eq. (8) depends on the solver. Beside it we
report the *nearest-optimum distortion* :math:`\max_t \|\hat x^t - x^*\|`, where
:math:`\hat x^t` is the point of the region nearest :math:`x^*` with
:math:`\log p_t \ge \mathrm{OPT}_t - \mathrm{tol}`
(:func:`lrtools.solvers.nearest.nearest_optimum`), which is well defined. As
:math:`\|\hat x^t - x^*\| \le \|x^t - x^*\|`, ``nearest="max"`` solves the classes in
decreasing order of :math:`\|x^t - x^*\|` and stops once that bound is below the largest
nearest distance found: the maximum is exact, at a fraction of the solves.
Every :math:`\hat x^t` is certified (feasibility, a lower bound on the distance) and checked
with the model itself (activation pattern and logits); failures are recorded, never used.

On Dask the work of one point is split into part tasks of two classes each and one finishing
task (:class:`lrtools.execution.Split`), so that a few long points (a CNN class costs minutes)
keep every worker busy; the serial path runs the same parts, so the result does not depend on
the number or placement of the workers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .._validation import check_choice
from ..exceptions import SolverError
from ..execution import Split, map_points, run_split
from ..modelid import weights_digest
from ..regions import activation_patterns, linear_region, predict
from ..solvers.maxprob import class_region_exists, interior_point, max_log_prob_all
from ..solvers.nearest import nearest_optimum

#: Modes of the nearest-optimum distortion: every class, only what the per-point maximum
#: needs (exact), or none.
NEAREST_MODES = ("max", "all", "off")
_OK = ("optimal", "optimal_clarabel_duals", "at_x_star")  # statuses whose distance is used

__all__ = [
    "NEAREST_MODES",
    "class_region_table",
    "class_regions_point",
    "nearest_comparison",
    "nearest_note",
]


#: Classes per part task of a split Table 2 point (:data:`class_regions_point.split`): each
#: part rebuilds the region (0.2-0.3 s on the paper's MNIST MLP against 1-3 s per class), so
#: pairs halve that overhead and still give five tasks per point to spread over the workers.
CLASSES_PER_PART = 2


_LAST_REGION: dict[str, Any] = {}  # this process's last point region: {"key", "region"}


def _region(model, x):
    """:func:`linear_region` of ``(model, x)``, reused by the parts and the finish of one
    point that run in the same process (serially, or on one Dask worker).

    Keyed by the model's class, its printed architecture and the digest of every weight and
    buffer (:func:`lrtools.modelid.weights_digest`, ~25 ms on the paper MLP against ~0.2 s
    for the region), and the exact bytes of ``x``: a model changed in place or another point
    builds a new region. One entry, so at most one extra region is held per process.
    """
    xa = np.asarray(x)
    key = (type(model).__qualname__, repr(model), weights_digest(model), xa.dtype.str,
           xa.shape, xa.tobytes())
    if _LAST_REGION.get("key") != key:
        _LAST_REGION.clear()  # release the old region before building the new one
        region = linear_region(model, xa)
        poly = region.polytope
        for a in (region.x_star, region.preact, region.logit_W, region.logit_b, poly.A, poly.b,
                  poly.lo, poly.hi):
            if isinstance(a, np.ndarray):
                a.flags.writeable = False  # shared by later parts: an in-place write raises
        _LAST_REGION.update(key=key, region=region)
    return _LAST_REGION["region"]


def _class_parts(model, x, **kwargs: Any) -> list[tuple[Any, list[int]]]:
    """The part inputs of one point: ``(x, classes)`` for consecutive pairs of classes."""
    n_classes = int(predict(model, np.asarray(x)[None]).shape[-1])
    return [(x, list(range(k, min(k + CLASSES_PER_PART, n_classes))))
            for k in range(0, n_classes, CLASSES_PER_PART)]


def _classes_of_point(
    model, task, *, method: str = "auto", active_tol: float = 1e-6, exact: bool = True,
    nearest: str = "max", nearest_tol: float = 1e-6,
) -> dict:
    """eq. 6 and the existence test of the classes of ``task = (x, classes)`` (one part).

    With ``exact=False`` the margin LP is skipped: a class whose :math:`x^t` has a positive
    margin still counts as existing (the point is a witness), the others are unknown (NaN).
    Returns the per-class rows and the solver results (the nearest optima need them all).
    """
    x, classes = task
    region = _region(model, x)
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
    return {"per_class": per_class, "results": list(table.results)}


def _finish_point(
    model, x, parts: list[dict], *, method: str = "auto", active_tol: float = 1e-6,
    exact: bool = True, nearest: str = "max", nearest_tol: float = 1e-6,
) -> dict:
    """The Table 2 quantities of one point from its parts: the nearest optima (which need
    every class's :math:`x^t` for ``nearest="max"``), the summary and :math:`x^t`."""
    region = _region(model, x)
    per_class = pd.concat([p["per_class"] for p in parts], ignore_index=True)
    results = [r for p in parts for r in p["results"]]
    near = _nearest_rows(model, region, results, nearest, nearest_tol)
    for key in near[0] if near else ():
        per_class[key] = [row[key] for row in near]
    return {
        **_summary(per_class),
        "label": int(np.argmax(region.logits(region.x_star))),
        "per_class": per_class,
        "xt": np.stack([r.x for r in results]).reshape(-1, *region.input_shape),
    }


def _existence(poly, W, c, res, x_star, exact: bool):
    """The exact existence test of one class, or None when skipped (``exact=False``)."""
    upper = lam = None
    if res.status == "failed":
        witness = None
    elif not exact and not res.reaches_class:
        return None  # x^t is no witness, and the LP is not run
    else:
        witness = res.x
        if np.isfinite(res.gap) and res.gap >= 0:
            upper = res.log_prob + res.gap  # certified: p_t < 1/K proves absence, no LP
        lam = res.info.get("row_multipliers")  # eq. 6's duals: a margin-LP dual point
    return class_region_exists(
        poly, W, c, res.target, x_star=x_star, witness=witness, sign_only=True,
        log_prob_upper=upper, witness_multipliers=lam,
    )


def _nearest_rows(model, region, results, mode: str, tol: float) -> list[dict]:
    r"""Nearest-optimum columns of each class (in the order of ``results``).

    ``mode="max"``: classes in decreasing order of :math:`\|x^t - x^*\|`; a class whose
    :math:`\|x^t - x^*\|` does not exceed the largest nearest distance found so far cannot hold
    the maximum (its nearest distance is at most that) and is skipped (status ``"bounded"``).
    So is a class whose solve meets a feasible point at most that far from :math:`x^*`: the
    solve stops there (``stop_below``; status ``"bounded"``, with that point's distance as
    ``nearest_upper``). Only the classes that hold or may exceed the maximum are solved to
    their certificate, and the maximum is the same as with every class solved.
    """
    rows = [_nearest_row("off" if mode == "off" else "no x^t") for _ in results]
    if mode == "off":
        return rows
    poly, W, c, xs = region.polytope, region.logit_W, region.logit_b, region.x_star
    order = sorted((i for i, r in enumerate(results) if r.status != "failed"),
                   key=lambda i: -results[i].distortion)
    best, x_in = -np.inf, None
    for i in order:
        r = results[i]
        if mode == "max" and r.distortion <= best:
            rows[i] = _nearest_row("bounded", upper=r.distortion)
            continue
        stop = best if mode == "max" and np.isfinite(best) else None
        try:
            if x_in is None:  # one strictly interior start per point (may cost an LP)
                x_in = interior_point(poly, xs)
            near = nearest_optimum(poly, W, c, r.target, xs, r.x, r.log_prob, r.gap, tol=tol,
                                   x_in=x_in, stop_below=stop)
        except SolverError as exc:
            rows[i] = _nearest_row("failed", error=str(exc))
            continue
        status = near.status if _pattern_holds(model, region, near.x) else "pattern_mismatch"
        rows[i] = _nearest_row(
            status, distance=near.distance, lower=near.lower_bound, seconds=near.seconds,
            iterations=near.iterations, apart=float(np.linalg.norm(near.x - r.x)),
            upper=near.distance,
        )
        if status in _OK:
            best = max(best, near.distance)
    return rows


def _nearest_row(status: str, *, distance=np.nan, lower=np.nan, seconds=0.0, iterations=0,
                 apart=np.nan, error: str = "", upper=np.nan) -> dict:
    return {
        "distortion_nearest": distance if status in _OK else np.nan,
        "nearest_lower": lower if status in _OK else np.nan,
        "nearest_upper": upper if status in _OK or status == "bounded" else np.nan,
        "nearest_status": status,
        "nearest_seconds": seconds,
        "nearest_iterations": iterations,
        "xt_to_nearest": apart if status in _OK else np.nan,
        "nearest_error": error,
    }


def _pattern_holds(model, region, x: np.ndarray, tol: float = 1e-9) -> bool:
    """The model's own activation pattern at ``x`` equals the region's on every row that is
    not tight, and its logits equal the region's affine logits (eq. 7)."""
    batch = x.reshape(1, *region.input_shape)
    pattern = activation_patterns(model, batch)[0]
    loose = region.polytope.slack(x) > tol * region.polytope.row_norms
    logits = predict(model, batch)[0]
    z = region.logits(x)
    return bool(np.array_equal(pattern[loose], region.pattern[loose])
                and np.all(np.abs(logits - z) <= 1e-6 * (1.0 + np.abs(z))))


def _nearest_summary(per_class: pd.DataFrame) -> dict[str, Any]:
    """Per-point nearest-optimum distortion: NaN unless every needed class was certified."""
    status = per_class["nearest_status"]
    bad = status.isin(["failed", "pattern_mismatch"])
    used = status.isin(_OK)
    solved = bad | used
    return {
        "distortion_nearest": float(per_class.loc[used, "distortion_nearest"].max())
        if used.any() and not bad.any() else np.nan,
        "n_nearest_failed": int(bad.sum()),
        "nearest_solves": int(solved.sum()),
        "xt_to_nearest": float(per_class.loc[used, "xt_to_nearest"].max())
        if used.any() else np.nan,
        "nearest_seconds": float(per_class["nearest_seconds"].sum()),
    }


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
        **_nearest_summary(per_class),
    }


def _count(flags: pd.Series) -> float:
    """Number of True entries; NaN when any entry is unknown (NaN)."""
    return int(flags.astype(bool).sum()) if flags.notna().all() else np.nan


def class_regions_point(
    model, x, *, method: str = "auto", active_tol: float = 1e-6, exact: bool = True,
    nearest: str = "max", nearest_tol: float = 1e-6,
) -> dict:
    """Table 2 quantities of one test point; see the module docstring (``exact``: as in
    :func:`class_region_table`). The per-point task of the stored Table 2.

    On Dask it runs as five part tasks (eq. 6 and the existence test of two classes each,
    :data:`CLASSES_PER_PART`) and a finishing task (the nearest optima and the summary):
    ``class_regions_point.split``, see :class:`lrtools.execution.Split`. Here the same parts
    run one after the other, so both give the same numbers.

    Returns
    -------
    dict
        ``n_reached`` (paper's count), ``n_failed`` (classes whose eq. 6 no solver could
        certify: recorded with their status, never counted), ``n_exists`` (margin LP count),
        ``disagree``, ``distortion`` (eq. 8), ``on_boundary`` (share of :math:`x^t` with an
        active constraint, Appendix D), ``mean_active_rows``, ``fallbacks``, ``seconds``,
        the nearest-optimum columns of :func:`class_region_table`, ``label``, ``per_class``
        (a DataFrame) and ``xt`` (array of shape (M, *input_shape), for Fig. 5).
    """
    check_choice(nearest, "nearest", NEAREST_MODES)
    return run_split(class_regions_point.split, model, x, method=method, active_tol=active_tol,
                     exact=exact, nearest=nearest, nearest_tol=nearest_tol)  # fmt: skip


class_regions_point.split = Split(_class_parts, _classes_of_point, _finish_point)


def class_region_table(
    model,
    X: np.ndarray,
    *,
    method: str = "auto",
    n_jobs: int = 2,
    progress: bool = True,
    exact: bool = True,
    nearest: str = "max",
    nearest_tol: float = 1e-6,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[int, np.ndarray]]:
    r"""Table 2 for the points ``X``: per-point table, long per-class table, and :math:`x^t`.

    ``exact=False`` skips the margin LP of the classes that :math:`x^t` does not reach
    (``n_exists`` and ``disagree`` are then NaN): at CNN size that LP costs 60-100 s per class.

    ``nearest`` chooses the classes whose nearest optimum :math:`\hat x^t` is computed
    (module docstring): ``"max"`` (default) only those needed for the exact per-point maximum
    (the others get status ``"bounded"``), ``"all"`` every class, ``"off"`` none.
    ``nearest_tol`` is the tolerance on :math:`\log p_t` of
    :func:`lrtools.solvers.nearest.nearest_optimum`.

    Returns
    -------
    per_point : DataFrame
        ``point, n_reached, n_failed, n_exists, disagree, distortion, on_boundary,
        mean_active_rows, fallbacks, seconds, distortion_nearest`` (NaN unless every class it
        needs was certified), ``n_nearest_failed, nearest_solves, xt_to_nearest`` (largest
        :math:`\|x^t - \hat x^t\|` over the solved classes), ``nearest_seconds, label``.
    per_class : DataFrame
        One row per (point, class), see :func:`lrtools.solvers.maxprob.MaxProbTable.to_dict`,
        plus ``distortion_nearest, nearest_lower`` (certified lower bound),
        ``nearest_upper`` (the distance of a verified feasible point: the nearest distance
        itself when solved, the bound that excluded a ``bounded`` class from the maximum),
        ``nearest_status`` (``optimal``, ``optimal_clarabel_duals``, ``at_x_star``,
        ``bounded``, ``off``, ``no x^t``, ``failed``, ``pattern_mismatch``),
        ``nearest_seconds, nearest_iterations, xt_to_nearest, nearest_error``.
    xt : dict of point -> ndarray of shape (M, *input_shape)
    """
    check_choice(nearest, "nearest", NEAREST_MODES)
    results: list[dict[str, Any]] = map_points(
        class_regions_point, model, list(X), n_jobs=n_jobs, desc="x^t (eq. 6)",
        progress=progress, method=method, exact=exact, nearest=nearest, nearest_tol=nearest_tol,
    )  # fmt: skip
    rows, classes, xt = [], [], {}
    for i, r in enumerate(results):
        rows.append({"point": i, **{k: v for k, v in r.items() if k not in ("per_class", "xt")}})
        classes.append(r["per_class"].assign(point=i))
        xt[i] = r["xt"]
    return pd.DataFrame(rows), pd.concat(classes, ignore_index=True), xt


def nearest_comparison(points: pd.DataFrame, by: str = "model") -> pd.DataFrame:
    r"""Per model: eq. (8) beside the nearest-optimum distortion, and how far apart they were.

    Parameters
    ----------
    points : DataFrame
        The per-point table of :func:`class_region_table` (with a ``by`` column).
    by : str, default="model"

    Returns
    -------
    DataFrame
        Index ``by``; columns ``points``, ``distortion`` (eq. 8, mean), ``distortion_nearest``
        (mean; NaN if any point lacks a certified value: failures are not averaged away),
        ``mean_difference`` (mean of eq. 8 minus the nearest distortion), ``max_xt_to_nearest``
        (largest :math:`\|x^t - \hat x^t\|` over the solved classes), ``nearest_solves``,
        ``nearest_failed``, ``nearest_seconds_per_point`` and ``eq6_seconds_per_point``.
    """
    frame = points.assign(_diff=points["distortion"] - points["distortion_nearest"])
    g = frame.groupby(by, sort=False)

    def strict_mean(v: pd.Series) -> float:
        return float(v.mean(skipna=False))

    return pd.DataFrame({
        "points": g.size(),
        "distortion": g["distortion"].mean(),
        "distortion_nearest": g["distortion_nearest"].agg(strict_mean),
        "mean_difference": g["_diff"].agg(strict_mean),
        "max_xt_to_nearest": g["xt_to_nearest"].max(),
        "nearest_solves": g["nearest_solves"].sum(),
        "nearest_failed": g["n_nearest_failed"].sum(),
        "nearest_seconds_per_point": g["nearest_seconds"].mean(),
        "eq6_seconds_per_point": g["seconds"].mean(),
    })


def nearest_note(comparison: pd.DataFrame, *, dim: int, n_classes: int) -> str:
    r"""Markdown sentences on how far the solver's :math:`x^t` and the nearest optimum were.

    ``comparison`` is :func:`nearest_comparison`'s table; ``dim`` the input dimension ``d``
    and ``n_classes`` the number of classes ``M`` (the optimal set of eq. 6 may have dimension
    up to ``d - M``).
    """
    cmp = comparison
    solves, failed = int(cmp["nearest_solves"].sum()), int(cmp["nearest_failed"].sum())
    if solves == 0:
        return ("The nearest optimum was not computed in this run (`nearest=\"off\"`), so only "
                "the solver-dependent distortion of eq. (8) is shown.")
    apart = float(cmp["max_xt_to_nearest"].max())
    diff = cmp["mean_difference"].dropna()
    parts = [
        f"In this run the solver's $x^t$ and the nearest optimum $\\hat x^t$ of the same class "
        f"were up to **{apart:.2f}** apart (the input box $[-1, 1]^{{{dim}}}$ has diameter "
        f"{2 * np.sqrt(dim):.1f}), so $x^t$ was far from unique: the optimal set of eq. (6) "
        f"can have dimension up to $d - M = {dim - n_classes}$."
    ]
    if len(diff):
        parts.append(
            f"Per point, the nearest-optimum distortion was smaller than eq. (8)'s by "
            f"{diff.min():.2f} to {diff.max():.2f} on average over the models."
        )
    extra = cmp["nearest_seconds_per_point"].sum() / max(cmp["eq6_seconds_per_point"].sum(), 1e-12)
    parts.append(
        f"{solves} nearest-optimum programs were solved to their certificate (only the "
        f"classes that can hold the maximum: a class whose $\\|x^t - x^*\\|$ is below the "
        f"largest nearest distance found cannot, and a solve stops once it meets a feasible "
        f"point that near $x^*$), costing {extra:.2f}x the time of eq. (6) itself."
    )
    if failed:
        parts.append(
            f"**{failed}** of them had no certified answer; their points have no nearest-optimum "
            "distortion (shown as –) rather than a value computed without them."
        )
    return " ".join(parts)
