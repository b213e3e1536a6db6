"""A chapter's study: its data, its trained models and its cached per-model measurements.

The MNIST chapter (Section 3) and the CIFAR-10 chapter (Appendix E) run the same analyses on
different data, architectures and parameters; :class:`StudyConfig` holds what differs, and the
functions here compose datasets, training, regions, solvers and analyses. Every per-point
measurement goes through :func:`lrtools.store.measure`: one stored entry per (measurement,
model, settings, code identity, test index), computed on Dask workers
(:mod:`lrtools.execution`) only when missing, so a larger ``n_points`` computes only the new
points, a stopped run resumes and a rerun computes nothing. A notebook calls these functions
and only plots and prints their tables.
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
from ..store import Job, measure
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
    test points"), sorted, reproducible from ``seed``.

    The first ``n`` of one seeded permutation of the test set: the selection for ``n`` is
    contained in the one for any larger ``n``, so raising ``n_points`` measures only the new
    points (the others come from the store)."""
    check_scalar(n, "n", int, min_val=1)
    n = min(n, len(data.X_test))
    rng = np.random.default_rng(seed)
    return np.sort(rng.permutation(len(data.X_test))[:n])


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
    from . import boundary

    X, y = _inputs(data, idx)
    pool = (data.X_test, data.y_test)
    settings = {
        "data": _data_id(data),
        "mode": target_mode,
        "other": other,
        "targets": "test-set pool, seeded by test index",  # the one decision-target rule
    }
    jobs = []
    for run, tm in models.items():
        t = boundary.decision_targets(X, y, mode=target_mode, other=other, pool=pool,
                                      n_classes=data.n_classes, model=tm.model, seed=cfg.seed,
                                      index=idx)  # fmt: skip
        inputs = {
            int(g): {"x": X[k], "y": int(y[k]), "index": int(g), "target": t.points[k],
                     "target_class": int(t.target_class[k]),
                     "source_index": int(t.source_index[k]), "mode": t.mode, "other": t.other}
            for k, g in enumerate(idx)
        }  # fmt: skip
        jobs.append(_job(tm, run, cfg, inputs))
    results = measure("inradii", boundary.inradii_point, settings, jobs, n_jobs=n_jobs,
                      desc="regions and inspheres (eq. 5)", eps=eps, step_size=step_size,
                      steps=steps, seed=cfg.seed, method=method)  # fmt: skip
    frames = []
    kinds = {k: n for n, k in enumerate(boundary.KINDS)}
    for (run, _), res in zip(models.items(), results, strict=True):
        table = pd.concat([res[int(g)].assign(point=k) for k, g in enumerate(idx)],
                          ignore_index=True)  # fmt: skip
        order = np.lexsort((table["point"].to_numpy(), table["kind"].map(kinds).to_numpy()))
        frames.append(_label(table.iloc[order].reset_index(drop=True), run, cfg.lrs))
    return pd.concat(frames, ignore_index=True)


def angle_tables(
    cfg: StudyConfig,
    models: dict[tuple[str, float], TrainedModel],
    data: Dataset,
    idx: np.ndarray,
    *,
    image_size: int | None = 512,
    n_jobs: int = 2,
) -> tuple[pd.DataFrame, dict]:
    """Fig. 4 / Fig. 10: per-layer-pair angle statistics of the manifold regions of ``idx``,
    and the (downsampled) angle image of the first point's region, for every model; one
    stored task per (model, point) on ``n_jobs`` workers."""
    from .angles import region_angle_image, region_angle_stats

    settings = {"data": _data_id(data)}
    jobs = [_job(tm, run, cfg, {int(i): _x(data, i) for i in idx}) for run, tm in models.items()]
    stats = measure("angles", region_angle_stats, settings, jobs, n_jobs=n_jobs,
                    desc="angles (Fig. 4)")  # fmt: skip
    first = [_job(tm, run, cfg, {int(idx[0]): _x(data, idx[0])}) for run, tm in models.items()]
    images = measure("angle-image", region_angle_image, settings, first, n_jobs=n_jobs,
                     desc="angle images (Fig. 4)", size=image_size)  # fmt: skip
    frames, out_images = [], {}
    for run, st, im in zip(models, stats, images, strict=True):
        table = pd.concat([st[int(i)].assign(point=int(i)) for i in idx], ignore_index=True)
        frames.append(_label(table, run, cfg.lrs))
        out_images[run] = im[int(idx[0])]
    return pd.concat(frames, ignore_index=True), out_images


def _x(data: Dataset, i) -> np.ndarray:
    return data.X_test[int(i)].astype(np.float64)


def _data_id(data: Dataset) -> str:
    """The test set's identity (the stored inputs are its rows): SHA-256 of its arrays."""
    import hashlib

    h = hashlib.sha256()
    for a in (data.X_test, data.y_test):
        a = np.ascontiguousarray(a)
        h.update(f"{a.shape}{a.dtype}".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def _job(tm: TrainedModel, run: tuple, cfg: StudyConfig, inputs: dict) -> Job:
    return Job(tm.cache_id, tm.model, inputs, label=model_name(run[0], run[1], cfg.lrs))


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
    from .nonredundant import nonredundant_point

    runs = list(models) if runs is None else list(runs)
    unknown = [run for run in runs if run not in models]
    if unknown:
        raise ValueError(f"runs {unknown} are not among the trained models {list(models)}.")
    jobs = [_job(models[run], run, cfg, {int(point): _x(data, point)}) for run in runs]
    stored = measure("nonredundant-angles", nonredundant_point, {"data": _data_id(data)}, jobs,
                     n_jobs=n_jobs, desc="redundant rows (eq. 18)", image_size=image_size)
    results = {run: res[int(point)] for run, res in zip(runs, stored, strict=True)}
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
    from .surrounding import surrounding_point, surrounding_point_tables

    jobs = [_job(tm, run, cfg, {int(i): _x(data, i) for i in idx}) for run, tm in models.items()]
    results = measure("surrounding", surrounding_point, {"data": _data_id(data)}, jobs,
                      n_jobs=n_jobs, seeded=cfg.seed, desc="surrounding regions (eq. 10-13)",
                      n_directions=int(n_directions), eps=float(eps), pair="own",
                      tol=1e-10)  # fmt: skip
    counts, rho = [], []
    for run, res in zip(models, results, strict=True):
        c, r = surrounding_point_tables([res[int(i)] for i in idx])
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
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Table 2 / Table 4, Fig. 5 / Fig. 11 and Appendix D for every model (``exact``: also
    the margin-LP existence test of every class, see
    :func:`lrtools.analyses.class_regions.class_region_table`).

    Returns the per-point table, the per-(point, class) table (both with model labels) and
    ``{run: {point: x^t array}}``.
    """
    from .class_regions import class_regions_point

    jobs = [_job(tm, run, cfg, {int(i): _x(data, i) for i in idx}) for run, tm in models.items()]
    results = measure("class-regions", class_regions_point, {"data": _data_id(data)}, jobs,
                      n_jobs=n_jobs, desc="x^t (eq. 6)", method=method, exact=exact)
    points, classes, xts = [], [], {}
    for run, res in zip(models, results, strict=True):
        rows, per, xt = [], [], {}
        for k, i in enumerate(idx):
            r = res[int(i)]
            rows.append({"point": k, **{c: r[c] for c in r if c not in ("per_class", "xt")}})
            per.append(r["per_class"].assign(point=k))
            xt[k] = r["xt"]
        pp, pc = pd.DataFrame(rows), pd.concat(per, ignore_index=True)
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
