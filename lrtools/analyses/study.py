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

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from numbers import Integral
from typing import Any

import numpy as np
import pandas as pd

from .._validation import check_choice, check_scalar
from ..cache import cache_path, cached_pickle
from ..datasets.base import Dataset
from ..models import VARIANTS, model_name
from ..store import Job, measure
from ..training import (
    ModelSpec,
    TrainConfig,
    TrainedModel,
    fit,
    fit_cache_path,
    fit_job,
    save_fitted,
    train_job,
)

__all__ = [
    "DATASETS",
    "StudyConfig",
    "load_dataset",
    "train_models",
    "model_name",
    "select_points",
    "select_points_with",
    "first_classified",
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
    drop_rate, batch_size, max_epochs, patience
        As in :class:`lrtools.training.TrainConfig`.
    max_train : int or None
        Train on at most this many images (None: all).
    seed : int
        Seed of the point selection and of the measurements' randomness (PGD starts, walk
        directions, decision targets): the same for every model, so that models are compared
        on the same test points and directions.
    seeds : tuple of int or None
        Training seeds: every variant and learning rate is trained once per seed, with that
        seed for the initialisation and the batch order (``ModelSpec.init_seed`` and
        ``TrainConfig.seed``). None: ``(seed,)``, one model per variant and learning rate.
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
    seeds: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        check_choice(self.data, "data", DATASETS)
        check_choice(self.arch, "arch", ("mlp", "cnn"))
        for v in self.variants:
            check_choice(v, "variant", VARIANTS)
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        object.__setattr__(self, "variants", tuple(self.variants))
        object.__setattr__(self, "lrs", tuple(float(lr) for lr in self.lrs))
        check_scalar(self.max_epochs, "max_epochs", int, min_val=1)
        check_scalar(self.seed, "seed", Integral, min_val=0)
        object.__setattr__(self, "seeds", _check_seeds(self.seeds, self.seed))

    @property
    def runs(self) -> list[tuple[str, float, int]]:
        """Every (variant, learning rate, seed), learning rates outermost (Fig. 3's rows), then
        variants, then seeds."""
        return [(v, lr, s) for lr in self.lrs for v in self.variants for s in self.seeds]

    @property
    def first_seed(self) -> int:
        """The seed of the pictures that show one model per variant (Fig. 4, 5, 10, 11)."""
        return self.seeds[0]

    def runs_of(self, seed: int | None = None) -> list[tuple[str, float, int]]:
        """The runs of one training seed (default: the first), in the order of :attr:`runs`."""
        seed = self.first_seed if seed is None else seed
        if seed not in self.seeds:
            raise ValueError(f"seed {seed!r} is not among the training seeds {self.seeds}.")
        return [run for run in self.runs if run[2] == seed]

    def name(self, run: tuple[str, float, int]) -> str:
        """A run's label: the paper's model name (``BN-L``, Fig. 5), with ``seed s`` appended
        only when the study trains more than one seed (``BN-L seed 1``)."""
        variant, lr, seed = _run(run)
        label = model_name(variant, lr, self.lrs)
        return f"{label} seed {seed}" if len(self.seeds) > 1 else label


def _check_seeds(seeds: Any, seed: int) -> tuple[int, ...]:
    """``seeds`` as a tuple of distinct non-negative ints (None: ``(seed,)``)."""
    if seeds is None:
        return (int(seed),)
    if isinstance(seeds, str | bytes) or not isinstance(seeds, Sequence):
        raise TypeError(
            f"seeds must be a list of ints, e.g. seeds=[0, 1]; got {type(seeds).__name__} "
            f"{seeds!r}."
        )
    if not seeds:
        raise ValueError("seeds is empty; give at least one training seed, e.g. seeds=[0].")
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, Integral) or s < 0:
            raise TypeError(
                f"seeds must hold non-negative ints; got {s!r} in {list(seeds)}. "
                "E.g. seeds=[0, 1]."
            )
    if len(set(seeds)) != len(seeds):
        raise ValueError(
            f"seeds {list(seeds)} repeat a seed: each would train the same model twice and "
            "count it as two independent runs. Give distinct seeds."
        )
    return tuple(int(s) for s in seeds)


def _run(run: tuple) -> tuple[str, float, int]:
    if not isinstance(run, tuple) or len(run) != 3:
        raise ValueError(
            f"a run is a (variant, learning rate, seed) tuple, as in StudyConfig.runs; got "
            f"{run!r}."
        )
    return str(run[0]), float(run[1]), int(run[2])


def load_dataset(name: str, *, downsample: int = 1, warn: bool = True) -> Dataset:
    """The chapter's data set: real when on disk or downloadable, else the labelled stand-in.

    ``downsample > 1`` averages the images over blocks of that side
    (:meth:`lrtools.datasets.base.Dataset.downsampled`): not the paper's setting, a knob for
    fast runs such as the smoke profile.

    ``warn=False`` silences the :class:`~lrtools.exceptions.DataFallbackWarning` of a stand-in
    for callers that show ``Dataset.fallback_reason`` themselves (the chapters' data notice):
    a warning printed in a cell would put this file's local path on the page.
    """
    check_choice(name, "data", DATASETS)
    if not isinstance(warn, bool):
        raise TypeError(f"warn must be True or False; got {warn!r}.")
    if not warn:
        import warnings

        from ..exceptions import DataFallbackWarning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataFallbackWarning)
            return load_dataset(name, downsample=downsample)
    if name == "mnist":
        from ..datasets.mnist import load_mnist

        return load_mnist().downsampled(downsample)
    if name == "cifar10":
        from ..datasets import cifar

        return cifar.load_cifar10().downsampled(downsample)
    from ..datasets import make_spirals

    return make_spirals()


def train_models(
    cfg: StudyConfig, data: Dataset, *, n_jobs: int = 1, progress: bool = True
) -> dict[tuple[str, float, int], TrainedModel]:
    """Train (or load from the cache) one model per (variant, learning rate, seed) of ``cfg``.

    The training seed is the initialisation seed: run ``(v, lr, s)`` starts from the weights
    drawn with seed ``s`` and shuffles its batches with seed ``s``. Keys are
    :attr:`StudyConfig.runs`.

    With ``n_jobs > 1`` (or a Dask scheduler, :func:`lrtools.execution.map_tasks`) the models
    not in the cache are trained on the workers, one model per task, the data shipped once per
    worker; each is written to the cache as it arrives, then everything is loaded as with
    ``n_jobs=1``. Training runs with one torch thread either way, so the weights do not depend
    on ``n_jobs``.
    """
    check_scalar(n_jobs, "n_jobs", Integral, min_val=1)
    plan = [_fit_plan(cfg, run) for run in cfg.runs]
    _train_missing(plan, data, n_jobs, progress)
    return {run: fit(spec, data, train, progress=progress)
            for run, (spec, train) in zip(cfg.runs, plan, strict=True)}  # fmt: skip


def _train_missing(plan, data: Dataset, n_jobs: int, progress: bool) -> None:
    """Train the uncached models of ``plan`` on the workers and write them to the cache."""
    from ..execution import map_tasks, scheduler_address

    if n_jobs == 1 and scheduler_address(None) is None:
        return  # fit trains them here, one by one
    paths, tasks = {}, []
    for k, (spec, train) in enumerate(plan):
        path = fit_cache_path(spec, data, train)
        if not path.exists():
            paths[k] = path
            tasks.append((0, k, fit_job(spec, data, train)))
    if len(tasks) < 2:
        return

    def done(j, k, blob, seconds, host):
        save_fitted(paths[k], blob)

    map_tasks(train_job, [data], tasks, done, n_jobs=n_jobs, desc="training models",
              progress=progress)  # fmt: skip


def _fit_plan(cfg: StudyConfig, run: tuple[str, float, int]) -> tuple[ModelSpec, TrainConfig]:
    """The network and training of one run of ``cfg``."""
    variant, lr, seed = run
    spec = ModelSpec(
        cfg.arch,
        cfg.widths,
        variant,
        drop_rate=cfg.drop_rate,
        dense=cfg.dense,
        init_seed=seed,
    )
    train = TrainConfig(
        lr=lr,
        batch_size=cfg.batch_size,
        max_epochs=cfg.max_epochs,
        patience=cfg.patience,
        seed=seed,
        max_train=cfg.max_train,
    )
    return spec, train


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
    cfg: StudyConfig, models: dict[tuple[str, float, int], TrainedModel], paper: dict | None = None
) -> pd.DataFrame:
    """Test accuracy (%) per learning rate (rows, floats) and variant (columns), as in Table 1,
    averaged over the training seeds of ``models``.

    ``attrs["n_seeds"]`` holds the number of seeds behind each cell (a table), and
    ``attrs["per_seed"]`` the accuracies of every run (columns ``variant``, ``lr``, ``seed``,
    ``accuracy``).
    """
    runs = pd.DataFrame(
        [{"variant": v, "lr": float(lr), "seed": int(s), "accuracy": 100 * tm.test_accuracy}
         for (v, lr, s), tm in ((_run(run), tm) for run, tm in models.items())]
    )  # fmt: skip
    grouped = runs.groupby(["lr", "variant"])["accuracy"]
    table = grouped.mean().unstack("variant").sort_index(ascending=False)
    table = table[list(cfg.variants)].reindex([float(lr) for lr in cfg.lrs])
    table.index.name = "learning rate"
    table.columns.name = None
    counts = grouped.size().unstack("variant").reindex(table.index)[list(cfg.variants)]
    table.attrs["n_seeds"] = counts
    table.attrs["per_seed"] = runs
    return table


# --------------------------------------------------------------------------------------------
# per-chapter measurements: one cached table per model, concatenated with model labels
# --------------------------------------------------------------------------------------------


def _label(frame: pd.DataFrame, run: tuple[str, float, int], cfg: StudyConfig) -> pd.DataFrame:
    """Model columns of a per-point table: ``variant``, ``lr`` (a float), ``seed`` (the
    training seed) and ``model`` (:meth:`StudyConfig.name`: the paper's name, with the seed
    only when the study trains several, so a table grouped by ``model`` has one group per
    trained network)."""
    variant, lr, seed = _run(run)
    return frame.assign(variant=variant, lr=lr, seed=seed, model=cfg.name(run))


def _inputs(data: Dataset, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return data.X_test[idx].astype(np.float64), data.y_test[idx]


def inradius_tables(
    cfg: StudyConfig,
    models: dict[tuple[str, float, int], TrainedModel],
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
        frames.append(_label(table.iloc[order].reset_index(drop=True), run, cfg))
    return pd.concat(frames, ignore_index=True)


def angle_tables(
    cfg: StudyConfig,
    models: dict[tuple[str, float, int], TrainedModel],
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
        frames.append(_label(table, run, cfg))
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
    return Job(tm.cache_id, tm.model, inputs, label=cfg.name(run))


def nonredundant_angle_tables(
    cfg: StudyConfig,
    models: dict[tuple[str, float, int], TrainedModel],
    data: Dataset,
    point: int,
    *,
    runs: list[tuple[str, float, int]] | None = None,
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
        frames.append(_label(res["stats"], run, cfg))
        images[run] = res["image"]
        summary.append({"model": cfg.name(run), "rows": res["n_rows"],
                        "redundant": int(res["redundant"].sum()),
                        **{f"layer {la + 1}": n for la, n in res["per_layer"].items()},
                        "LPs": res["n_lp"], "seconds": res["seconds"]})
    return pd.concat(frames, ignore_index=True), images, pd.DataFrame(summary)


def surrounding_tables(
    cfg: StudyConfig,
    models: dict[tuple[str, float, int], TrainedModel],
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
        counts.append(_label(c, run, cfg))
        rho.append(_label(r, run, cfg))
    return pd.concat(counts, ignore_index=True), pd.concat(rho, ignore_index=True)


def class_region_tables(
    cfg: StudyConfig,
    models: dict[tuple[str, float, int], TrainedModel],
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
    from .class_regions import class_regions_point

    jobs = [_job(tm, run, cfg, {int(i): _x(data, i) for i in idx}) for run, tm in models.items()]
    results = measure("class-regions", class_regions_point, {"data": _data_id(data)}, jobs,
                      n_jobs=n_jobs, desc="x^t (eq. 6)", method=method, exact=exact,
                      nearest=nearest)
    points, classes, xts = [], [], {}
    for run, res in zip(models, results, strict=True):
        rows, per, xt = [], [], {}
        for k, i in enumerate(idx):
            r = res[int(i)]
            rows.append({"point": k, **{c: r[c] for c in r if c not in ("per_class", "xt")}})
            per.append(r["per_class"].assign(point=k))
            xt[k] = r["xt"]
        pp, pc = pd.DataFrame(rows), pd.concat(per, ignore_index=True)
        points.append(_label(pp.assign(test_index=idx[pp["point"]]), run, cfg))
        classes.append(_label(pc.assign(test_index=idx[pc["point"]]), run, cfg))
        xts[run] = xt
    return pd.concat(points, ignore_index=True), pd.concat(classes, ignore_index=True), xts


def first_classified(
    data: Dataset, models: dict[tuple[str, float, int], TrainedModel], include_class: int,
    *, chunk: int = 500,
) -> tuple[int, int]:
    """The first test point *classified* as ``include_class`` by every model of ``models``
    (the paper's Fig. 5 / Fig. 11 point: "the first test image classified as automobile").

    Test images are scanned in order, ``chunk`` at a time, with each model's prediction
    (the argmax of its logits). If no test image is classified as ``include_class`` by all
    models, the first one classified so by the most models is returned.

    Returns
    -------
    (index, n_agree) : tuple of int
        The test index and how many of the ``len(models)`` models classify it as
        ``include_class`` (a caption says "classified as automobile by n_agree of m models").

    Raises
    ------
    ValueError
        No model classifies any test image as ``include_class``, or ``models`` is empty.
    """
    from ..regions import predict

    check_scalar(include_class, "include_class", Integral, min_val=0,
                 max_val=data.n_classes - 1)  # fmt: skip
    check_scalar(chunk, "chunk", Integral, min_val=1)
    if not models:
        raise ValueError("models is empty; pass the trained models whose predictions count.")
    best, best_votes = -1, 0
    for start in range(0, len(data.X_test), int(chunk)):
        X = data.X_test[start : start + int(chunk)].astype(np.float64)
        votes = sum((predict(tm.model, X).argmax(1) == include_class).astype(int)
                    for tm in models.values())  # fmt: skip
        if votes.max() == len(models):
            return start + int(np.argmax(votes == len(models))), len(models)
        if votes.max() > best_votes:
            best, best_votes = start + int(np.argmax(votes)), int(votes.max())
    if best < 0:
        raise ValueError(
            f"no model classifies any of the {len(data.X_test)} test images as class "
            f"{include_class} ({data.classes[include_class]!r}); choose another class."
        )
    return best, best_votes


def select_points_with(
    data: Dataset,
    n: int,
    include_class: int,
    *,
    seed: int = 0,
    models: dict[tuple[str, float, int], TrainedModel] | None = None,
) -> np.ndarray:
    """:func:`select_points` plus one test point of ``include_class`` (Fig. 5 / Fig. 11 show
    one point of a given class); sorted, reproducible. ``n=0``: that point alone.

    With ``models`` the added point is the first test point those models *classify* as
    ``include_class`` (:func:`first_classified`, the paper's choice); without, the first one
    *labelled* so.
    """
    check_scalar(n, "n", int, min_val=0)
    idx = select_points(data, n, seed=seed) if n > 0 else np.zeros(0, dtype=int)
    if models is None:
        first = int(np.flatnonzero(data.y_test == include_class)[0])
    else:
        first = first_classified(data, models, include_class)[0]
    return idx if first in idx else np.sort(np.append(idx, first))
