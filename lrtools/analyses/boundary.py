r"""Manifold, decision and adversarial regions (Section 3.2, Fig. 3; Appendix E, Fig. 9).

Section 3.2 of [1] measures the inradius of three kinds of regions around each test point
:math:`x_{test}`:

* the *manifold region*: the region of :math:`x_{test}` itself;
* the *decision region*: the region containing the decision boundary between :math:`x_{test}`
  and a target :math:`x_{target}` of another class (the mean point of that class for MNIST; a
  random test point of that class for CIFAR-10, Appendix E);
* the *adversarial region*: the same with :math:`x_{target}` the PGD adversarial example of
  :math:`x_{test}` (Madry et al., 2018).

On the segment :math:`x_\alpha = \alpha x_{target} + (1 - \alpha) x_{test}` the region kept is
the one of the last point that still has the class of :math:`x_{test}`, found exactly by
:func:`lrtools.walks.first_class_changes` (first exit from the start class; see its Notes for
how this reads the paper's "maximum :math:`\alpha`").

Every function here is a pure function of the model, the points and the parameters: random
choices are seeded per point from ``point_seed(seed, index)``
(:func:`lrtools.execution.point_seed`), so a run split into chunks gives the same
table as one run, and the inspheres are mapped over processes.

References
----------
.. [1] X. Zhang and D. Wu, "Empirical Studies on the Properties of Linear Regions in Deep
   Neural Networks", ICLR 2020.
.. [2] A. Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks",
   ICLR 2018.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral, Real
from typing import NamedTuple

import numpy as np
import pandas as pd
from torch import nn

from .._validation import check_array, check_choice, check_scalar
from ..attacks import pgd
from ..exceptions import LRToolsError
from ..execution import map_points, point_seed
from ..regions import predict
from ..walks import first_class_changes
from .inradius import inradii

__all__ = [
    "KINDS",
    "DecisionTargets",
    "BoundaryPoints",
    "class_means",
    "decision_targets",
    "decision_points",
    "adversarial_points",
    "region_inradii",
]

KINDS = ("manifold", "decision", "adversarial")
TARGET_MODES = ("class_mean", "random_other")
OTHER_CLASS_RULES = ("random", "runner_up")


# --------------------------------------------------------------------------------------------
# Validation helpers
# --------------------------------------------------------------------------------------------


def _check_Xy(X, y) -> tuple[np.ndarray, np.ndarray]:
    X = check_array(X, "X")
    if X.ndim < 2:
        raise ValueError(
            f"X must have shape (n, *input_shape); got {X.shape}. Use X[None] for one point."
        )
    y = check_array(y, "y", ndim=1, dtype=np.int64, hint="Pass integer class labels.")
    if len(X) != len(y):
        raise ValueError(f"X and y must have the same length; got {len(X)} and {len(y)}.")
    if len(X) == 0:
        raise ValueError("X must hold at least one point; got an empty array.")
    if y.min() < 0:
        raise ValueError(f"y must hold class indices >= 0; got min(y) == {y.min()}.")
    return X, y


def _check_index(index, n: int) -> np.ndarray:
    if index is None:
        return np.arange(n)
    index = check_array(index, "index", ndim=1, dtype=np.int64)
    if len(index) != n:
        raise ValueError(f"index must have one entry per point ({n}); got {len(index)}.")
    if index.min() < 0:
        raise ValueError(f"index must hold indices >= 0; got min(index) == {index.min()}.")
    return index


# --------------------------------------------------------------------------------------------
# Targets of the decision regions
# --------------------------------------------------------------------------------------------


def class_means(X, y, n_classes: int) -> np.ndarray:
    r"""Mean point of every class (the MNIST targets of Section 3.2 of [1]).

    Parameters
    ----------
    X : array-like of shape (n, *input_shape)
        Points, e.g. the test set.
    y : array-like of int, shape (n,)
        Their labels in ``[0, n_classes)``.
    n_classes : int
        Number of classes ``M``.

    Returns
    -------
    ndarray of shape (n_classes, *input_shape)
        :math:`\bar x_k = \frac{1}{n_k} \sum_{i : y_i = k} x_i`.

    Raises
    ------
    ValueError
        If a class has no point, or a label is out of range.
    """
    X, y = _check_Xy(X, y)
    check_scalar(n_classes, "n_classes", Integral, min_val=2)
    if y.max() >= n_classes:
        raise ValueError(f"y must be < n_classes == {n_classes}; got max(y) == {y.max()}.")
    counts = np.bincount(y, minlength=n_classes)
    if np.any(counts == 0):
        missing = np.nonzero(counts == 0)[0].tolist()
        raise ValueError(
            f"classes {missing} have no point in X, so their mean is undefined; pass more points."
        )
    flat = X.reshape(len(X), -1)
    sums = np.zeros((n_classes, flat.shape[1]))
    np.add.at(sums, y, flat)
    return (sums / counts[:, None]).reshape(n_classes, *X.shape[1:])


@dataclass(frozen=True, eq=False)
class DecisionTargets:
    """The target :math:`x_{target}` of each test point, and how it was chosen.

    Attributes
    ----------
    points : ndarray of shape (n, *input_shape)
        The targets.
    target_class : ndarray of int, shape (n,)
        The "other class" of each point (never equal to its label).
    source_index : ndarray of int, shape (n,)
        Row of the pool used as the target (``mode="random_other"``); -1 for class means.
    mode : str
        ``"class_mean"`` or ``"random_other"``.
    other : str
        ``"random"`` or ``"runner_up"``: how the other class was chosen.
    """

    points: np.ndarray
    target_class: np.ndarray
    source_index: np.ndarray
    mode: str
    other: str


def _check_pool(pool, X, y) -> tuple[np.ndarray, np.ndarray]:
    """The points targets come from: ``(X_pool, y_pool)``, default ``(X, y)`` (not copied)."""
    if pool is None:
        return X, y
    try:
        Xp, yp = pool
    except (TypeError, ValueError) as exc:
        raise TypeError(
            "pool must be a pair (X_pool, y_pool), e.g. (data.X_test, data.y_test)."
        ) from exc
    Xp = np.asarray(Xp)
    if Xp.ndim < 2 or Xp.shape[1:] != X.shape[1:]:
        raise ValueError(
            f"pool points must have shape (n, {X.shape[1:]}) like X; got {Xp.shape}. Pass the "
            "points to draw targets from, e.g. the whole test set."
        )
    yp = check_array(yp, "pool labels", ndim=1, dtype=np.int64, hint="Pass integer labels.")
    if len(yp) != len(Xp) or len(yp) == 0:
        raise ValueError(
            f"pool must hold at least one point and one label per point; got {len(Xp)} points "
            f"and {len(yp)} labels."
        )
    if yp.min() < 0:
        raise ValueError(f"pool labels must be class indices >= 0; got {yp.min()}.")
    return Xp, yp


def _check_means(means, n_classes, X, y, Xp, yp, mode) -> tuple[np.ndarray | None, int]:
    """Validate the class means and the number of classes; compute the pool's means if needed."""
    if means is not None:
        means = check_array(means, "means")
        if means.shape[1:] != X.shape[1:]:
            raise ValueError(
                f"means must have shape (M, {X.shape[1:]}); got {means.shape}. Use class_means."
            )
    if n_classes is None:
        n_classes = len(means) if means is not None else int(max(y.max(), yp.max())) + 1
    check_scalar(n_classes, "n_classes", Integral, min_val=2)
    for name, labels in (("y", y), ("pool labels", yp)):
        if labels.max() >= n_classes:
            raise ValueError(
                f"{name} must be < n_classes == {n_classes}; got max == {labels.max()}."
            )
    if mode == "class_mean":
        if means is None:
            means = class_means(np.asarray(Xp, dtype=np.float64), yp, n_classes)
        if len(means) != n_classes:
            raise ValueError(f"means must have {n_classes} rows (one per class); got {len(means)}.")
    return means, int(n_classes)


def _runner_up(model, X, y, n_classes) -> np.ndarray:
    """The other class (!= y) with the largest logit at each point."""
    z = predict(model, X)
    if z.shape[1] != n_classes:
        raise ValueError(f"model has {z.shape[1]} logits but there are {n_classes} classes.")
    z[np.arange(len(y)), y] = -np.inf
    return np.argmax(z, axis=1)


def _draw_one(rng, yi, n_classes, fixed_class, pools, gi) -> tuple[int, int]:
    """The other class of one point (unless fixed) and, with ``pools``, a row of that class."""
    if fixed_class is None:
        k = int(rng.integers(n_classes - 1))
        fixed_class = k + (k >= yi)  # uniform over the n_classes - 1 classes other than yi
    if pools is None:
        return fixed_class, -1
    pool = pools[fixed_class]
    if pool.size == 0:
        raise ValueError(
            f"class {fixed_class} has no point in the pool to draw a target from (point {gi}); "
            'pass a larger pool (e.g. the whole test set) or use mode="class_mean".'
        )
    return fixed_class, int(pool[rng.integers(pool.size)])


def decision_targets(
    X,
    y,
    *,
    mode: str = "class_mean",
    other: str = "random",
    means=None,
    n_classes: int | None = None,
    model: nn.Module | None = None,
    seed: int = 0,
    index=None,
    pool=None,
) -> DecisionTargets:
    r"""The target of each test point for the decision regions (Section 3.2, Appendix E).

    The one decision-target rule of lrtools: the other class is drawn per point (or is the
    runner-up), and the target is that class's mean over ``pool`` or a random ``pool`` point of
    that class.

    Parameters
    ----------
    X : array-like of shape (n, *input_shape)
        Test points.
    y : array-like of int, shape (n,)
        Labels of ``X``. "Another class" means a class other than the label.
    mode : {"class_mean", "random_other"}, default="class_mean"
        ``"class_mean"``: the mean point of the other class (MNIST, Section 3.2);
        ``"random_other"``: a random point of the pool of the other class (CIFAR-10, Appendix
        E, where class means are not classified as their class).
    other : {"random", "runner_up"}, default="random"
        Which other class: ``"random"`` draws it uniformly among the ``M - 1`` other classes,
        seeded per point; ``"runner_up"`` takes the other class with the largest logit at
        :math:`x_{test}` (the 2nd-largest logit when the point is correctly classified; needs
        ``model``). The paper does not say which class it used.
    means : array-like of shape (M, *input_shape), optional
        Class means for ``mode="class_mean"``; default :func:`class_means` of the pool.
    n_classes : int, optional
        ``M``; default ``len(means)`` or ``max(y) + 1``.
    model : torch.nn.Sequential, optional
        Required for ``other="runner_up"``.
    seed : int, default=0
        Seed of the random choices. Point ``i`` draws from
        ``default_rng(point_seed(seed, index[i]))`` (see
        :func:`lrtools.execution.point_seed`), so its choice does not depend on which
        other points are in the batch.
    index : array-like of int, shape (n,), optional
        Global indices of the points (default ``0..n-1``); pass them when ``X`` is a chunk.
    pool : tuple (X_pool, y_pool), optional
        The points targets are made from (class means, or random points of the other class);
        default ``(X, y)``. Pass the whole test set when ``X`` is a selection of it, so that a
        point's target does not depend on which other points are selected. Rows are not copied
        (only the drawn ones are converted to float64).

    Returns
    -------
    DecisionTargets
        ``source_index`` is the pool row of each target (-1 for class means).

    Raises
    ------
    ValueError
        On inconsistent shapes, unknown options, a missing class, or a class with no point to
        draw from.
    """
    X, y = _check_Xy(X, y)
    check_choice(mode, "mode", TARGET_MODES)
    check_choice(other, "other", OTHER_CLASS_RULES)
    check_scalar(seed, "seed", Integral, min_val=0)
    index = _check_index(index, len(X))
    Xp, yp = _check_pool(pool, X, y)
    means, n_classes = _check_means(means, n_classes, X, y, Xp, yp, mode)
    if other == "runner_up" and model is None:
        raise ValueError('other="runner_up" needs the model (largest other logit at each x).')
    fixed = _runner_up(model, X, y, n_classes) if other == "runner_up" else [None] * len(X)
    pools = [np.flatnonzero(yp == k) for k in range(n_classes)] if mode == "random_other" else None
    drawn = [
        _draw_one(np.random.default_rng(point_seed(seed, int(gi))), int(yi), n_classes,
                  None if f is None else int(f), pools, gi)
        for yi, gi, f in zip(y, index, fixed, strict=True)
    ]  # fmt: skip
    target = np.array([k for k, _ in drawn], dtype=np.int64)
    src = np.array([j for _, j in drawn], dtype=np.int64)
    if mode == "class_mean":
        points = means[target]
    else:
        points = check_array(np.asarray(Xp)[src], "pool points")
    return DecisionTargets(points, target, src, mode, other)


# --------------------------------------------------------------------------------------------
# Points in the decision / adversarial regions
# --------------------------------------------------------------------------------------------


class BoundaryPoints(NamedTuple):
    """Result of :func:`decision_points` and :func:`adversarial_points`.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per test point (see the functions for the columns); ``region_row`` is the row
        of ``region_points`` holding the point's region point, or -1 when it has none.
    region_points : ndarray of shape (k, *input_shape)
        One point strictly inside each decision (adversarial) region, for the ``k`` points whose
        segment changes class; points whose class never changes are excluded.
    targets : ndarray of shape (n, *input_shape)
        The segment ends (class targets or adversarial examples).
    """

    table: pd.DataFrame
    region_points: np.ndarray
    targets: np.ndarray


def _walk_one_by_one(model, Xs, Xe, tol):
    """Per-segment fallback when a batched walk fails verification: record each failure."""
    out = []
    for xs, xe in zip(Xs, Xe, strict=True):
        try:
            out.append(first_class_changes(model, xs[None], xe[None], tol=tol)[0])
        except LRToolsError as exc:
            out.append(f"failed: {exc}")
    return out


def _segment_rows(model, X, targets, tol) -> tuple[list[dict], list[np.ndarray]]:
    """First class change on each segment X[i] -> targets[i], as table rows + region points."""
    n = len(X)
    flat_len = np.abs((targets - X).reshape(n, -1)).max(axis=1)
    ok = np.nonzero(flat_len > 0)[0]
    changes: list = [None] * n
    if ok.size:
        try:
            found = first_class_changes(model, X[ok], targets[ok], tol=tol)
        except LRToolsError:
            found = _walk_one_by_one(model, X[ok], targets[ok], tol)
        for i, c in zip(ok, found, strict=True):
            changes[i] = c
    start = predict(model, X).argmax(axis=1)
    rows, region_pts = [], []
    for i, c in enumerate(changes):
        row = {"start_class": int(start[i]), "alpha": np.nan, "changed": False, "new_class": -1}
        row.update(region_alpha=np.nan, n_pieces=0, region_row=-1)
        if c is None:
            row["status"] = "skipped: target equals the point (zero-length segment)"
        elif isinstance(c, str):
            row["status"] = c
        else:
            row.update(alpha=c.alpha, changed=c.changed, new_class=c.new_class)
            row.update(region_alpha=c.region_alpha, n_pieces=c.n_pieces)
            row["status"] = "ok" if c.changed else "skipped: class never changes on the segment"
            if c.changed:
                row["region_row"] = len(region_pts)
                region_pts.append(c.region_point)
        rows.append(row)
    return rows, region_pts


def _stack(points: list[np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    return np.stack(points) if points else np.zeros((0, *shape))


def decision_points(
    model: nn.Module,
    X,
    y,
    targets,
    *,
    target_class=None,
    index=None,
    tol: float = 1e-10,
) -> BoundaryPoints:
    r"""A point inside the decision region of each test point (Section 3.2, Fig. 3 of [1]).

    Parameters
    ----------
    model : torch.nn.Sequential
        ReLU network of supported layers (eval mode is used).
    X : array-like of shape (n, *input_shape)
        Test points :math:`x_{test}`.
    y : array-like of int, shape (n,)
        Their labels (recorded; the start class is the model's prediction at :math:`x_{test}`).
    targets : DecisionTargets or array-like of shape (n, *input_shape)
        :math:`x_{target}`, e.g. from :func:`decision_targets` (then ``target_class`` is taken
        from it).
    target_class : array-like of int, shape (n,), optional
        The class each target stands for (recorded); default: the model's prediction at the
        target.
    index : array-like of int, shape (n,), optional
        Global indices of the points, recorded in the ``point`` column (default ``0..n-1``).
    tol : float, default=1e-10
        Zero tolerance of :func:`lrtools.walks.first_class_changes`.

    Returns
    -------
    BoundaryPoints
        ``table`` columns: ``point``, ``label``, ``start_class``, ``correct``,
        ``target_class``, ``target_pred`` (class the model gives the target; Section 3.2 notes
        MNIST class means are classified as their class), ``alpha`` (:math:`\alpha^*`),
        ``changed``, ``new_class``, ``region_alpha`` (the region point is
        :math:`x_{test} + \text{region\_alpha}\,(x_{target} - x_{test})`), ``n_pieces``,
        ``region_row``, ``status``. Points whose segment never changes class have
        ``changed=False``, ``region_row=-1`` and no region point.

    Notes
    -----
    On the segment

    .. math::

        x_\alpha = \alpha\, x_{target} + (1 - \alpha)\, x_{test}, \qquad \alpha \in [0, 1],

    :math:`\alpha^*` is the first exit from the class :math:`c_0` of :math:`x_{test}` and the
    region point lies strictly inside the region of :math:`x_\alpha` just before
    :math:`\alpha^*` (it has class :math:`c_0`); that region contains the decision boundary.
    """
    X, y = _check_Xy(X, y)
    if isinstance(targets, DecisionTargets):
        target_class = targets.target_class if target_class is None else target_class
        targets = targets.points
    T = check_array(targets, "targets")
    if T.shape != X.shape:
        raise ValueError(f"targets must have the shape of X {X.shape}; got {T.shape}.")
    index = _check_index(index, len(X))
    pred_t = predict(model, T).argmax(axis=1)
    if target_class is None:
        target_class = pred_t
    target_class = check_array(target_class, "target_class", ndim=1, dtype=np.int64)
    if len(target_class) != len(X):
        raise ValueError(f"target_class must have {len(X)} entries; got {len(target_class)}.")
    rows, pts = _segment_rows(model, X, T, tol)
    table = pd.DataFrame(rows)
    table.insert(0, "point", index)
    table.insert(1, "label", y)
    table.insert(3, "correct", table["start_class"].to_numpy() == y)
    table.insert(4, "target_class", target_class)
    table.insert(5, "target_pred", pred_t)
    return BoundaryPoints(table, _stack(pts, X.shape[1:]), T)


def _pgd_one(model, x, label: int, ss: np.random.SeedSequence, pgd_kw: dict) -> np.ndarray:
    """PGD on one point, its random start seeded by ``ss``."""
    seed = int(ss.generate_state(1)[0])
    return pgd(model, x[None], np.array([label]), seed=seed, **pgd_kw)[0]


def _pgd_kwargs(eps, step_size, steps, random_start, box) -> dict:
    check_scalar(eps, "eps", Real, min_val=0.0, include_min=False)
    check_scalar(step_size, "step_size", Real, min_val=0.0, include_min=False)
    check_scalar(steps, "steps", Integral, min_val=1)
    lo, hi = box
    return {
        "eps": float(eps),
        "step_size": float(step_size),
        "steps": int(steps),
        "random_start": bool(random_start),
        "box": (float(lo), float(hi)),
    }


def _adversarial_table(model, X, y, adv, index, tol) -> BoundaryPoints:
    rows, pts = _segment_rows(model, X, adv, tol)
    adv_class = predict(model, adv).argmax(axis=1)
    table = pd.DataFrame(rows)
    table.insert(0, "point", index)
    table.insert(1, "label", y)
    table.insert(3, "correct", table["start_class"].to_numpy() == y)
    table.insert(4, "adv_class", adv_class)
    table.insert(5, "pgd_success", adv_class != y)
    table.insert(6, "linf", np.abs((adv - X).reshape(len(X), -1)).max(axis=1))
    return BoundaryPoints(table, _stack(pts, X.shape[1:]), adv)


def adversarial_points(
    model: nn.Module,
    X,
    y,
    *,
    eps: float = 0.3,
    step_size: float = 0.01,
    steps: int = 40,
    random_start: bool = True,
    seed: int = 0,
    box: tuple[float, float] = (-1.0, 1.0),
    index=None,
    tol: float = 1e-10,
) -> BoundaryPoints:
    r"""PGD adversarial examples and a point inside each adversarial region (Section 3.2).

    Parameters
    ----------
    model : torch.nn.Sequential
        ReLU network of supported layers (eval mode is used).
    X : array-like of shape (n, *input_shape)
        Test points.
    y : array-like of int, shape (n,)
        Their labels (the PGD loss uses them).
    eps, step_size, steps, random_start, box
        L-infinity PGD parameters of :func:`lrtools.attacks.pgd`, in input units (the box
        ``[-1, 1]`` has width 2). The paper does not state them; Madry et al.'s MNIST setting
        (0.3 on [0, 1]) is ``eps=0.6, step_size=0.02`` on ``[-1, 1]``.
    seed : int, default=0
        Seed of the random starts. Point ``i`` runs its own PGD, seeded from
        ``point_seed(seed, index[i])`` (:func:`lrtools.execution.point_seed`), so the
        result does not depend on the batch.
    index : array-like of int, shape (n,), optional
        Global indices of the points (default ``0..n-1``).
    tol : float, default=1e-10
        Zero tolerance of the walk.

    Returns
    -------
    BoundaryPoints
        ``targets`` are the adversarial examples. ``table`` has the columns of
        :func:`decision_points` except ``target_class``/``target_pred``, plus ``adv_class``
        (the model's class at the example), ``pgd_success`` (``adv_class != label``) and
        ``linf`` (:math:`\|x_{adv} - x_{test}\|_\infty \le \epsilon`).

    Notes
    -----
    PGD (Madry et al. [2]) maximises the cross-entropy in
    :math:`B_\infty(x, \epsilon) \cap [\ell, u]^d`,

    .. math::

        x_{k+1} = \Pi\bigl(x_k + \eta\,\operatorname{sign}\nabla_x L(f(x_k), y)\bigr),

    then the segment :math:`x_{test} \to x_{adv}` is walked as in :func:`decision_points`. A
    point whose attack failed can still change class on the segment (then it has a region
    point); filter on ``pgd_success`` to keep successful attacks only.
    """
    X, y = _check_Xy(X, y)
    pgd_kw = _pgd_kwargs(eps, step_size, steps, random_start, box)
    check_scalar(seed, "seed", Integral, min_val=0)
    index = _check_index(index, len(X))
    adv = np.stack(
        [
            _pgd_one(model, x, int(c), point_seed(seed, int(g)), pgd_kw)
            for x, c, g in zip(X, y, index, strict=True)
        ]
    )
    return _adversarial_table(model, X, y, adv, index, tol)


# --------------------------------------------------------------------------------------------
# The three kinds of regions, measured
# --------------------------------------------------------------------------------------------


def _inradius_row(model: nn.Module, x: np.ndarray, *, box, method) -> pd.DataFrame:
    """Inradius of the region of one point (the per-point work mapped over processes)."""
    return inradii(model, x[None], box=box, method=method, progress=False).drop(columns="point")


def _check_kinds(kinds) -> tuple[str, ...]:
    kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds)
    if not kinds:
        raise ValueError(f"kinds must name at least one of {list(KINDS)}; got an empty list.")
    for k in kinds:
        check_choice(k, "kinds", KINDS)
    return kinds


def _kind_tables(model, X, y, kinds, targets, seed, pgd_kw, tol, index=None
                 ) -> dict[str, BoundaryPoints]:  # fmt: skip
    """Boundary table and region points of each kind (manifold: the test points themselves)."""
    out = {}
    for kind in kinds:
        if kind == "manifold":
            start = predict(model, X).argmax(axis=1)
            table = pd.DataFrame({"label": y, "start_class": start, "correct": start == y})
            table["region_row"] = np.arange(len(X))
            out[kind] = BoundaryPoints(table, X, X)
        elif kind == "decision":
            out[kind] = decision_points(model, X, y, targets, tol=tol)
        else:
            out[kind] = adversarial_points(model, X, y, seed=seed, tol=tol, index=index,
                                           **pgd_kw)  # fmt: skip
    return out


def _join(kind: str, bp: BoundaryPoints, radii: pd.DataFrame) -> pd.DataFrame:
    """The kind's table with the inradius columns of its region points (NaN where skipped)."""
    table = bp.table.drop(columns="point", errors="ignore").assign(kind=kind)
    rows = table.pop("region_row").to_numpy()
    have = rows >= 0
    if not have.any():  # no region to measure: the boundary status stays
        return table
    part = radii.iloc[rows[have]].rename(columns={"status": "solver_status"})
    part.index = table.index[have]
    table = table.join(part)
    if "status" in table:
        table["status"] = table["solver_status"].where(have, table["status"])
    else:
        table["status"] = table["solver_status"]
    return table.drop(columns="solver_status")


def region_inradii(
    model: nn.Module,
    X,
    y,
    kinds=KINDS,
    *,
    targets: DecisionTargets | None = None,
    target_mode: str = "class_mean",
    other: str = "random",
    means=None,
    eps: float = 0.3,
    step_size: float = 0.01,
    steps: int = 40,
    random_start: bool = True,
    seed: int = 0,
    box: tuple[float, float] = (-1.0, 1.0),
    method: str = "auto",
    tol: float = 1e-10,
    n_jobs: int = 2,
    progress: bool = True,
    index=None,
) -> pd.DataFrame:
    r"""Inradii of the manifold, decision and adversarial regions (Fig. 3, Fig. 9 of [1]).

    Parameters
    ----------
    model : torch.nn.Sequential
        ReLU network of supported layers.
    X : array-like of shape (n, *input_shape)
        Test points.
    y : array-like of int, shape (n,)
        Their labels.
    kinds : sequence of {"manifold", "decision", "adversarial"}, default=all three
        Which regions to measure.
    targets : DecisionTargets, optional
        Precomputed decision targets, e.g. with class means of the whole test set. Default:
        ``decision_targets(X, y, mode=target_mode, other=other, means=means, model=model,
        seed=seed)``.
    target_mode, other, means
        Passed to :func:`decision_targets`: ``"class_mean"`` for MNIST (Section 3.2),
        ``"random_other"`` for CIFAR-10 (Appendix E).
    eps, step_size, steps, random_start
        PGD parameters of :func:`adversarial_points`.
    seed : int, default=0
        Point ``i`` uses ``point_seed(seed, i)`` for its other class and its PGD start; the
        table is that of :func:`decision_targets`, :func:`decision_points` and
        :func:`adversarial_points` called with the same seed, whatever ``n_jobs``.
    box : tuple of float, default=(-1.0, 1.0)
        Input domain of the regions (eq. 5).
    method : str, default="auto"
        Insphere solver, see :func:`lrtools.solvers.insphere.insphere`.
    tol : float, default=1e-10
        Zero tolerance of the walks.
    n_jobs : int, default=2
        Worker processes of :func:`lrtools.execution.map_points` (1: this process).
    progress : bool, default=True
        Show a progress bar over points.
    index : array-like of int, shape (n,), optional
        Global indices of the points (default ``0..n-1``): the PGD start of point ``i`` is
        seeded by ``point_seed(seed, index[i])`` (see :func:`adversarial_points`).

    Returns
    -------
    pandas.DataFrame
        One row per (kind, point), the same columns whatever ``kinds``: ``kind``, ``point``,
        ``radius`` (NaN when the region was skipped or its solve failed; ``status`` says
        which), ``label``, ``start_class``, ``correct``, ``target_class``, ``target_pred``
        (decision), ``adv_class``, ``pgd_success``, ``linf`` (adversarial), ``alpha``,
        ``changed``, ``new_class``, ``region_alpha``, ``n_pieces`` (decision, adversarial; see
        :func:`decision_points`), ``n_rows``, ``activation_rate``, ``pattern_ok``, ``method``,
        ``seconds`` (of :func:`lrtools.analyses.inradius.inradii`). Nullable dtypes hold NA
        where a kind has no such value.

    Notes
    -----
    The inradius of each region is the optimum of eq. (5) of [1],

    .. math::

        \max_{\bar x, r}\ r \quad \text{s.t.}\quad w_i^T \bar x - r\|w_i\| + b_i \ge 0,\quad
        \mathrm{MIN}_x + r \le \bar x \le \mathrm{MAX}_x - r.

    The walks to the boundaries run batched in this process (one segment per point and kind,
    all segments of a kind stepped together, about 3x faster than one by one); the heavy part,
    one region and one insphere per (point, kind), is mapped point by point over ``n_jobs``
    processes by :func:`lrtools.execution.map_points`.
    """
    X, y = _check_Xy(X, y)
    kinds = _check_kinds(kinds)
    pgd_kw = _pgd_kwargs(eps, step_size, steps, random_start, box)
    check_scalar(seed, "seed", Integral, min_val=0)
    if "decision" in kinds and targets is None:
        targets = decision_targets(
            X, y, mode=target_mode, other=other, means=means, model=model, seed=seed
        )
    tables = _kind_tables(model, X, y, kinds, targets, seed, pgd_kw, tol, index)
    points = np.concatenate([bp.region_points for bp in tables.values()])
    rows = map_points(
        _inradius_row, model, points, n_jobs=n_jobs, desc="inspheres", progress=progress,
        box=box, method=method,
    )  # fmt: skip
    radii = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
    parts, offset = [], 0
    for kind, bp in tables.items():
        n = len(bp.region_points)
        part = _join(kind, bp, radii.iloc[offset : offset + n].reset_index(drop=True))
        parts.append(part.assign(point=np.arange(len(X))))
        offset += n
    out = pd.concat(parts, ignore_index=True).reindex(columns=list(_COLUMNS))
    return out.astype(_COLUMNS)


def inradii_point(model: nn.Module, task: dict, **kwargs) -> pd.DataFrame:
    """:func:`region_inradii` of one test point, the per-point task of the stored Fig. 3.

    ``task`` holds ``x`` (the point), ``y`` (its label), ``index`` (its test-set index, which
    seeds its PGD start: ``point_seed(seed, index)``), and ``target``/``target_class``/
    ``source_index``/``mode``/``other`` (its decision target, drawn by
    :func:`decision_targets` for the whole selection, which is seeded per test index too).
    ``kwargs`` are those of :func:`region_inradii` (``seed``, ``eps``, ``step_size``,
    ``steps``, ``method``, ...); the walks, PGD and inspheres all run in this process, so a
    worker does the whole point. Returns the rows of the point (``point`` is 0).
    """
    targets = DecisionTargets(
        np.asarray(task["target"])[None], np.array([task["target_class"]]),
        np.array([task["source_index"]]), task["mode"], task["other"],
    )  # fmt: skip
    return region_inradii(model, np.asarray(task["x"])[None], np.array([task["y"]]),
                          targets=targets, index=[int(task["index"])], n_jobs=1,
                          progress=False, **kwargs)  # fmt: skip


# the schema of region_inradii, whatever the kinds (nullable dtypes: NA where a kind has none)
_COLUMNS = {
    "kind": "str",
    "point": "int64",
    "radius": "float64",
    "status": "str",
    "label": "Int64",
    "start_class": "Int64",
    "correct": "boolean",
    "target_class": "Int64",
    "target_pred": "Int64",
    "adv_class": "Int64",
    "pgd_success": "boolean",
    "linf": "float64",
    "alpha": "float64",
    "changed": "boolean",
    "new_class": "Int64",
    "region_alpha": "float64",
    "n_pieces": "Int64",
    "n_rows": "Int64",
    "activation_rate": "float64",
    "pattern_ok": "boolean",
    "method": "str",
    "seconds": "float64",
}
