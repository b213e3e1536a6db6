"""A chapter's study: its data, its trained models and its cached per-model measurements.

The MNIST chapter (Section 3) and the CIFAR-10 chapter (Appendix E) run the same analyses on
different data, architectures and parameters; :class:`StudyConfig` holds what differs, and the
functions here compose datasets, training, regions, solvers and analyses, caching every table
on disk under a hash of all the parameters it depends on (model weights included, through the
model's cache key). A notebook calls these functions and only plots and prints their tables.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .._validation import check_choice, check_scalar
from ..cache import cache_path, cached_pickle
from ..datasets.base import Dataset
from ..models import VARIANTS, model_name
from ..training import ModelSpec, TrainConfig, TrainedModel, fit

__all__ = [
    "DATASETS",
    "StudyConfig",
    "load_dataset",
    "train_models",
    "model_name",
    "select_points",
    "select_points_with",
    "cached_measure",
    "is_cached",
    "accuracy_table",
    "inradius_tables",
    "angle_tables",
    "nonredundant_angle_tables",
    "surrounding_tables",
    "class_region_tables",
]

DATASETS = ("mnist", "cifar10", "spirals")


@dataclass(frozen=True)
class StudyConfig:
    """What a chapter trains: data set, architecture and training parameters (Section 3.1).

    Parameters
    ----------
    data : {"mnist", "cifar10"}
        The data set (real when available, else the labelled offline stand-in).
    arch : {"mlp", "cnn"}
    widths : tuple of int
        Hidden widths (MLP) or convolution channels (CNN).
    dense : int
        Hidden dense width of the CNN.
    variants : tuple of str
        Subset of ("vanilla", "bn", "dropout").
    lrs : tuple of float
        Learning rates (the paper: 1e-3 "-L" and 1e-4 "-S" on MNIST; 1e-3 on CIFAR-10).
    drop_rate, batch_size, max_epochs, patience, seed
        As in :class:`lrtools.training.TrainConfig`.
    max_train : int or None
        Train on at most this many images (None: all).
    """

    data: str = "mnist"
    arch: str = "mlp"
    widths: tuple[int, ...] = (1024, 1024, 1024)
    dense: int = 1024
    variants: tuple[str, ...] = VARIANTS
    lrs: tuple[float, ...] = (1e-3, 1e-4)
    drop_rate: float = 0.2
    batch_size: int = 256
    max_epochs: int = 20
    patience: int = 3
    max_train: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        check_choice(self.data, "data", DATASETS)
        check_choice(self.arch, "arch", ("mlp", "cnn"))
        for v in self.variants:
            check_choice(v, "variant", VARIANTS)
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        object.__setattr__(self, "variants", tuple(self.variants))
        object.__setattr__(self, "lrs", tuple(float(lr) for lr in self.lrs))
        check_scalar(self.max_epochs, "max_epochs", int, min_val=1)

    @property
    def runs(self) -> list[tuple[str, float]]:
        """Every (variant, learning rate) pair, learning rates outermost (Fig. 3's rows)."""
        return [(v, lr) for lr in self.lrs for v in self.variants]


def load_dataset(name: str, *, downsample: int = 1) -> Dataset:
    """The chapter's data set: real when on disk or downloadable, else the labelled stand-in.

    ``downsample > 1`` averages the images over blocks of that side
    (:meth:`lrtools.datasets.base.Dataset.downsampled`): not the paper's setting, a knob for
    fast runs such as the smoke profile.
    """
    check_choice(name, "data", DATASETS)
    if name == "mnist":
        from ..datasets.mnist import load_mnist

        return load_mnist().downsampled(downsample)
    if name == "cifar10":
        from ..datasets import cifar

        return cifar.load_cifar10().downsampled(downsample)
    from ..datasets import make_spirals

    return make_spirals()


def train_models(
    cfg: StudyConfig, data: Dataset, *, progress: bool = True
) -> dict[tuple[str, float], TrainedModel]:
    """Train (or load from the cache) one model per (variant, learning rate) of ``cfg``."""
    out = {}
    for variant, lr in cfg.runs:
        spec = ModelSpec(
            cfg.arch,
            cfg.widths,
            variant,
            drop_rate=cfg.drop_rate,
            dense=cfg.dense,
            init_seed=cfg.seed,
        )
        train = TrainConfig(
            lr=lr,
            batch_size=cfg.batch_size,
            max_epochs=cfg.max_epochs,
            patience=cfg.patience,
            seed=cfg.seed,
            max_train=cfg.max_train,
        )
        out[(variant, lr)] = fit(spec, data, train, progress=progress)
    return out


def select_points(data: Dataset, n: int, *, seed: int = 0) -> np.ndarray:
    """``n`` test indices drawn at random without replacement (the paper's "randomly selected
    test points"), sorted, reproducible from ``seed``."""
    check_scalar(n, "n", int, min_val=1)
    n = min(n, len(data.X_test))
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(len(data.X_test), size=n, replace=False))


def cached_measure(
    kind: str,
    trained: TrainedModel,
    params: dict[str, Any],
    compute: Callable[[], Any],
) -> Any:
    """Cache ``compute()`` under ``kind``, keyed by the model's weights key and ``params``.

    ``params`` must hold every other input of the measurement (point indices, solver
    settings, counts...), so that changing any of them recomputes, and nothing else does.
    """
    return cached_pickle(kind, _measure_key(trained, params), compute)


def _measure_key(trained: TrainedModel, params: dict[str, Any]) -> dict[str, Any]:
    return {"model": trained.cache_id, **params}


def is_cached(kind: str, trained: TrainedModel, params: dict[str, Any]) -> bool:
    """Whether :func:`cached_measure` would load ``kind`` for ``(trained, params)`` from disk."""
    return cache_path(kind, _measure_key(trained, params), "pkl").exists()


def accuracy_table(
    cfg: StudyConfig, models: dict[tuple[str, float], TrainedModel], paper: dict | None = None
) -> pd.DataFrame:
    """Test accuracy (%) per learning rate (rows, floats) and variant (columns), as in Table 1."""
    rows = {}
    for (variant, lr), tm in models.items():
        rows.setdefault(float(lr), {})[variant] = 100 * tm.test_accuracy
    table = pd.DataFrame(rows).T[list(cfg.variants)]
    table.index.name = "learning rate"
    return table


# --------------------------------------------------------------------------------------------
# per-chapter measurements: one cached table per model, concatenated with model labels
# --------------------------------------------------------------------------------------------


def _label(frame: pd.DataFrame, run: tuple[str, float], lrs: tuple[float, ...]) -> pd.DataFrame:
    return frame.assign(variant=run[0], lr=float(run[1]), model=model_name(*run, lrs))


def _inputs(data: Dataset, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return data.X_test[idx].astype(np.float64), data.y_test[idx]


def inradius_tables(
    cfg: StudyConfig,
    models: dict[tuple[str, float], TrainedModel],
    data: Dataset,
    idx: np.ndarray,
    *,
    target_mode: str = "class_mean",
    other: str = "random",
    eps: float = 0.6,
    step_size: float = 0.02,
    steps: int = 40,
    method: str = "auto",
    n_jobs: int = 2,
) -> pd.DataFrame:
    """Fig. 3 / Fig. 9: inradii of manifold, decision and adversarial regions of every model.

    See :func:`lrtools.analyses.boundary.region_inradii`. Decision targets follow the one rule
    of :func:`lrtools.analyses.boundary.decision_targets` with the whole test set as the pool:
    the mean of another class (``target_mode="class_mean"``, MNIST) or a random test point of
    another class (``"random_other"``, CIFAR-10); ``other`` picks that class ("random" or
    "runner_up", per model), seeded by the test index.
    """
    from .boundary import decision_targets, region_inradii

    X, y = _inputs(data, idx)
    pool = (data.X_test, data.y_test)

    def targets(net):
        return decision_targets(X, y, mode=target_mode, other=other, pool=pool,
                                n_classes=data.n_classes, model=net, seed=cfg.seed, index=idx)

    params = {
        "points": idx.tolist(),
        "mode": target_mode,
        "other": other,
        "eps": eps,
        "step": step_size,
        "steps": steps,
        "method": method,
        "seed": cfg.seed,
        "targets": "test-set pool, seeded by test index",  # the one decision-target rule
    }
    frames = []
    for run, tm in models.items():
        table = cached_measure(
            "inradii",
            tm,
            params,
            lambda tm=tm: region_inradii(
                tm.model,
                X,
                y,
                targets=targets(tm.model),
                eps=eps,
                step_size=step_size,
                steps=steps,
                seed=cfg.seed,
                method=method,
                n_jobs=n_jobs,
            ),
        )
        frames.append(_label(table, run, cfg.lrs))
    return pd.concat(frames, ignore_index=True)


def angle_tables(
    cfg: StudyConfig,
    models: dict[tuple[str, float], TrainedModel],
    data: Dataset,
    idx: np.ndarray,
    *,
    image_size: int | None = 512,
) -> tuple[pd.DataFrame, dict]:
    """Fig. 4 / Fig. 10: per-layer-pair angle statistics of the manifold regions of ``idx``,
    and the (downsampled) angle image of the first point's region, for every model."""
    from ..regions import linear_region
    from .angles import downsampled_angle_image, layer_pair_mean_angles

    def compute(net):
        tables, image = [], None
        for k, i in enumerate(idx):
            region = linear_region(net, data.X_test[i].astype(np.float64))
            tables.append(layer_pair_mean_angles(region).assign(point=int(i)))
            if k == 0:
                image = downsampled_angle_image(region, size=image_size)
        return pd.concat(tables, ignore_index=True), image

    frames, images = [], {}
    for run, tm in models.items():
        stats, image = cached_measure(
            "angles",
            tm,
            {"points": idx.tolist(), "size": image_size},
            lambda tm=tm: compute(tm.model),
        )
        frames.append(_label(stats, run, cfg.lrs))
        images[run] = image
    return pd.concat(frames, ignore_index=True), images


def nonredundant_angle_tables(
    cfg: StudyConfig,
    models: dict[tuple[str, float], TrainedModel],
    data: Dataset,
    point: int,
    *,
    runs: list[tuple[str, float]] | None = None,
    image_size: int | None = 512,
    n_jobs: int = 2,
) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    """Fig. 4 with the redundant hyperplanes removed (Appendix C), for the region of one test
    point in each model of ``runs`` (default: all); one region per worker, cached per model.

    Returns the per-layer-pair statistics (model labels added), ``{run: AngleImage}`` and a
    summary table (redundant rows per layer, LPs solved, seconds) with one row per model.
    """
    from .nonredundant import nonredundant_region
    from .parallel import map_points

    runs = list(models) if runs is None else list(runs)
    unknown = [run for run in runs if run not in models]
    if unknown:
        raise ValueError(f"runs {unknown} are not among the trained models {list(models)}.")
    kind, params = "nonredundant-angles", {"point": int(point), "size": image_size}
    results = {
        run: cached_measure(kind, models[run], params, _computed_above)
        for run in runs
        if is_cached(kind, models[run], params)
    }
    todo = [run for run in runs if run not in results]
    if todo:  # the missing regions in parallel, one per worker, each stored through the cache
        x = data.X_test[int(point)].astype(np.float64)
        fresh = map_points(nonredundant_region, x, [models[run].model for run in todo],
                           n_jobs=n_jobs, desc="redundant rows (eq. 18)", image_size=image_size)
        for run, res in zip(todo, fresh, strict=True):
            results[run] = cached_measure(kind, models[run], params, lambda res=res: res)
    frames, images, summary = [], {}, []
    for run in runs:
        res = results[run]
        frames.append(_label(res["stats"], run, cfg.lrs))
        images[run] = res["image"]
        summary.append({"model": model_name(*run, cfg.lrs), "rows": res["n_rows"],
                        "redundant": int(res["redundant"].sum()),
                        **{f"layer {la + 1}": n for la, n in res["per_layer"].items()},
                        "LPs": res["n_lp"], "seconds": res["seconds"]})
    return pd.concat(frames, ignore_index=True), images, pd.DataFrame(summary)


def _computed_above():
    raise RuntimeError("internal: a cache entry found on disk vanished before it was read.")


def surrounding_tables(
    cfg: StudyConfig,
    models: dict[tuple[str, float], TrainedModel],
    data: Dataset,
    idx: np.ndarray,
    *,
    n_directions: int = 100,
    eps: float = 0.2,
    n_jobs: int = 2,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fig. 6 / Fig. 12: unique surrounding regions and decision-direction similarities."""
    from .surrounding import surrounding_table

    X, _ = _inputs(data, idx)
    params = {"points": idx.tolist(), "n_directions": n_directions, "eps": eps, "seed": cfg.seed}
    counts, rho = [], []
    for run, tm in models.items():
        c, r = cached_measure(
            "surrounding",
            tm,
            params,
            lambda tm=tm: surrounding_table(
                tm.model, X, n_directions=n_directions, eps=eps, seed=cfg.seed, n_jobs=n_jobs
            ),
        )
        counts.append(_label(c, run, cfg.lrs))
        rho.append(_label(r, run, cfg.lrs))
    return pd.concat(counts, ignore_index=True), pd.concat(rho, ignore_index=True)


def class_region_tables(
    cfg: StudyConfig,
    models: dict[tuple[str, float], TrainedModel],
    data: Dataset,
    idx: np.ndarray,
    *,
    method: str = "auto",
    n_jobs: int = 2,
    exact: bool = True,
    nearest: str = "max",
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Table 2 / Table 4, Fig. 5 / Fig. 11 and Appendix D for every model (``exact``: also
    the margin-LP existence test of every class; ``nearest``: which classes get the nearest
    optimum, see :func:`lrtools.analyses.class_regions.class_region_table`).

    Returns the per-point table, the per-(point, class) table (both with model labels) and
    ``{run: {point: x^t array}}``.
    """
    from .class_regions import class_region_table

    X, _ = _inputs(data, idx)
    params = {"points": idx.tolist(), "method": method, "nearest": nearest}
    if not exact:
        params["exact"] = False
    points, classes, xts = [], [], {}
    for run, tm in models.items():
        pp, pc, xt = cached_measure(
            "class-regions",
            tm,
            params,
            lambda tm=tm: class_region_table(tm.model, X, method=method, n_jobs=n_jobs,
                                             exact=exact, nearest=nearest),
        )
        points.append(_label(pp.assign(test_index=idx[pp["point"]]), run, cfg.lrs))
        classes.append(_label(pc.assign(test_index=idx[pc["point"]]), run, cfg.lrs))
        xts[run] = xt
    return pd.concat(points, ignore_index=True), pd.concat(classes, ignore_index=True), xts


def select_points_with(data: Dataset, n: int, include_class: int, *, seed: int = 0) -> np.ndarray:
    """:func:`select_points` plus the first test point of ``include_class`` (Fig. 5 / Fig. 11
    show one point of a given class); sorted, reproducible. ``n=0``: that point alone."""
    check_scalar(n, "n", int, min_val=0)
    idx = select_points(data, n, seed=seed) if n > 0 else np.zeros(0, dtype=int)
    first = int(np.flatnonzero(data.y_test == include_class)[0])
    return idx if first in idx else np.sort(np.append(idx, first))
