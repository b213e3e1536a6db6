"""Run per-point measurements on a Dask cluster (an embedded local one by default).

The analyses of Section 3 of [1] repeat one measurement on up to 1000 test points per model
(Fig. 3, 4, 6, 12, Table 2). :func:`map_tasks` runs ``func(model, x, **kwargs)`` for each
``(model, point)`` task on a :class:`distributed.Client` and hands every result to a callback
the moment it arrives (:func:`lrtools.store.measure` writes it to the store there);
:func:`map_points` is the list-in, list-out form for one model.

Where the work runs
-------------------
* ``n_jobs == 1`` and no scheduler: in this process, one point after the other (debugging,
  tests, the smoke profile).
* Otherwise a :class:`distributed.Client` on the scheduler named by the ``scheduler`` argument,
  else ``$LRBOOK_SCHEDULER`` (``lrbook run --scheduler ADDRESS`` and the profile key
  ``scheduler`` set it), else an embedded :class:`distributed.LocalCluster` of ``n_jobs`` worker
  processes with one thread each on 127.0.0.1, started once per process and reused.
* Each model is sent once to every worker (``scatter(broadcast=True)``); tasks carry only a
  point. Every worker runs torch with one thread, without Dask's statistical profiler (set
  ``DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED=False`` for workers started by hand).
* A task whose worker dies is rescheduled by the scheduler (``distributed.scheduler.
  allowed-failures``, 3 by default); an exception in ``func`` is raised at once as a
  :class:`PointError` naming the point, and the other tasks are cancelled.
* Results do not depend on the number or placement of workers: point ``i`` gets
  ``seed=point_seed(seed, i)``, and the serial path also runs torch with one thread.
* A point function that carries a :class:`Split` (``func.split``) is sent as independent
  part tasks and one finishing task that depends on them (Table 2's ten classes), so that a
  few long points still keep every worker busy; it is still one result per point, and the
  serial path computes it with the same parts (:func:`run_split`).

Progress goes to the terminal (:mod:`lrtools.progress`: inside a notebook kernel, the kernel's
original stderr, which is the terminal of ``lrbook``), never into a notebook's output, and so
does the dashboard address.

References
----------
.. [1] X. Zhang and D. Wu, "Empirical Studies on the Properties of Linear Regions in Deep
   Neural Networks", ICLR 2020.
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from numbers import Integral
from typing import Any

import numpy as np
import pandas as pd
import torch

from ._threads import one_torch_thread
from ._validation import check_scalar
from .exceptions import LRToolsError
from .progress import bar as progress_bar
from .progress import terminal

__all__ = [
    "PointError",
    "Split",
    "run_split",
    "point_seed",
    "map_points",
    "map_tasks",
    "get_client",
    "local_cluster",
    "close_client",
    "scheduler_address",
    "terminal",
    "concat_frames",
]

SCHEDULER_ENV = "LRBOOK_SCHEDULER"


class PointError(LRToolsError):
    """``func`` failed on one point; ``index`` is that point's index.

    The original exception is chained (``__cause__``; across processes, its text is in the
    message).
    """

    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index = index

    def __reduce__(self):
        return type(self), (self.index, self.args[0])


def point_seed(seed: int, index: int) -> np.random.SeedSequence:
    """Seed of point ``index`` of a run seeded with ``seed``.

    ``SeedSequence(seed, spawn_key=(index,))``: independent streams for different points, and
    the same stream for a point whatever the workers, their number or the other points.

    Parameters
    ----------
    seed : int
        Non-negative seed of the whole run.
    index : int
        Index of the point (a test-set index for the stored measurements).

    Returns
    -------
    numpy.random.SeedSequence
        Pass it to ``numpy.random.default_rng``.
    """
    check_scalar(seed, "seed", Integral, min_val=0)
    check_scalar(index, "index", Integral, min_val=0)
    return np.random.SeedSequence(int(seed), spawn_key=(int(index),))


# --------------------------------------------------------------------------------------------
# One task (in a worker, or in this process)
# --------------------------------------------------------------------------------------------


def _call(func, model, x, index: int, kwargs: dict, seed: int | None, *args):
    """``func(model, x, *args, **kwargs)``, plus ``seed=point_seed(seed, index)`` when seeded."""
    extra = {} if seed is None else {"seed": point_seed(seed, index)}
    try:
        return func(model, x, *args, **kwargs, **extra)
    except Exception as exc:
        name = getattr(func, "__qualname__", repr(func))
        raise PointError(
            index, f"{name} failed on point {index}: {type(exc).__name__}: {exc}"
        ) from exc


def _run_task(func, model, x, index: int, kwargs: dict, seed: int | None, *args):
    """Worker side: one torch thread, the result, its seconds and the worker's host."""
    torch.set_num_threads(1)
    t = time.perf_counter()
    value = _call(func, model, x, index, kwargs, seed, *args)
    return value, time.perf_counter() - t, socket.gethostname()


@dataclass(frozen=True)
class Split:
    """How one point's measurement splits into independent parts and a finishing step.

    Attach it to a per-point function as ``func.split``. On Dask, :func:`map_tasks` then runs
    every part of a point as its own task and ``finish`` as a task that depends on them; the
    point's result and its stored seconds (parts plus finish) are those of the finish. Define
    ``func`` itself with :func:`run_split`, so that the serial path computes the very same
    parts in the same order and the two paths agree bit for bit.

    Parameters
    ----------
    parts : callable
        ``parts(model, x, **kwargs) -> list``: the inputs of the parts (runs in the client, so
        it must be cheap, and it must not depend on the number of workers).
    part : callable
        ``part(model, p, **kwargs)``: one part's value (module level, runs on a worker).
    finish : callable
        ``finish(model, x, values, **kwargs)``: the point's result from the parts' values in
        the order of ``parts`` (module level, runs on a worker).

    A seeded measurement passes the point's ``seed=`` to ``part`` and ``finish`` alike.
    """

    parts: Callable[..., list]
    part: Callable[..., Any]
    finish: Callable[..., Any]


def run_split(split: Split, model, x, **kwargs: Any) -> Any:
    """``split.finish(model, x, [split.part(model, p, **kwargs) for p in parts], **kwargs)``
    in this process: the serial form of a split measurement."""
    extra = {k: v for k, v in kwargs.items() if k != "seed"}
    values = [split.part(model, p, **kwargs) for p in split.parts(model, x, **extra)]
    return split.finish(model, x, values, **kwargs)


def _run_finish(finish, model, x, parts: list, index: int, kwargs: dict, seed: int | None):
    """Worker side of a split point's finish; ``parts`` are the parts' :func:`_run_task`
    answers. Returns (result, seconds of parts and finish, host)."""
    value, seconds, host = _run_task(finish, model, x, index, kwargs, seed,
                                     [v for v, _, _ in parts])  # fmt: skip
    return value, seconds + sum(s for _, s, _ in parts), host


# --------------------------------------------------------------------------------------------
# The client
# --------------------------------------------------------------------------------------------

_CLIENT: dict[str, Any] = {}


def scheduler_address(scheduler: str | None = None) -> str | None:
    """``scheduler``, else ``$LRBOOK_SCHEDULER``, else None (an embedded local cluster)."""
    return scheduler or os.environ.get(SCHEDULER_ENV) or None


def local_cluster(n_workers: int, *, dashboard: bool = True):
    """The embedded :class:`distributed.LocalCluster`: ``n_workers`` processes on 127.0.0.1
    with one thread each (also for OpenMP/BLAS) and no memory limit.

    Three of Dask's defaults are off. The active memory manager's ``ReduceReplicas`` policy
    drops a broadcast model from a worker whenever no task waiting there needs it, and the next
    task fetches and unpickles it again (with its interval at 10 ms, 98 of 200 short tasks got a
    second copy; at the default 2 s it happened on a loaded CI machine). The other two slow
    numpy/torch-heavy points down:
    the workers' statistical profiler (it takes the GIL every 10 ms to sample the task's stack,
    and only the dashboard would show its data), and ``MALLOC_TRIM_THRESHOLD_=65536`` in the
    workers' environment. Setting it switches off glibc's dynamic mmap threshold, so every
    large temporary array is mapped and faulted in afresh: one Table 2 point of the paper's
    MNIST MLP took 21.9 s in such a worker (358,777 minor page faults, 2.1 s system time)
    against 19.0 s here (28,279 faults, 0.4 s) and 18.9 s in the main process.
    """
    import dask
    from distributed import LocalCluster

    check_scalar(n_workers, "n_workers", Integral, min_val=1)
    key = "distributed.nanny.pre-spawn-environ"
    environ = {k: v for k, v in (dask.config.get(key) or {}).items()
               if k != "MALLOC_TRIM_THRESHOLD_"}  # fmt: skip
    with dask.config.set({"distributed.worker.profile.enabled": False, key: environ,
                          "distributed.scheduler.active-memory-manager.start": False}):
        return LocalCluster(
            n_workers=int(n_workers), threads_per_worker=1, processes=True, host="127.0.0.1",
            dashboard_address="127.0.0.1:0" if dashboard else None, memory_limit=0,
            silence_logs=logging.ERROR,
            env={"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"},
        )  # fmt: skip


def get_client(n_jobs: int = 2, scheduler: str | None = None):
    """The Dask client of this process: on ``scheduler`` (or ``$LRBOOK_SCHEDULER``), else on
    an embedded LocalCluster of ``n_jobs`` single-threaded worker processes on 127.0.0.1.

    The client is started once and reused while the address (or ``n_jobs``) stays the same;
    the dashboard address is printed on the terminal.
    """
    from distributed import Client

    check_scalar(n_jobs, "n_jobs", Integral, min_val=1)
    address = scheduler_address(scheduler)
    want = address or f"local:{int(n_jobs)}"
    if _CLIENT.get("key") == want:
        return _CLIENT["client"]
    close_client()
    if address:
        try:
            client = Client(address, timeout="30s")
        except OSError as exc:
            raise LRToolsError(
                f"cannot reach the Dask scheduler at {address!r} ({exc}). Start one with "
                f"`dask scheduler` and workers with `dask worker {address}`, or unset "
                f"${SCHEDULER_ENV} / --scheduler to use an embedded local cluster."
            ) from exc
        cluster = None
    else:
        cluster = local_cluster(n_jobs)
        client = Client(cluster)
    _CLIENT.update(key=want, client=client, cluster=cluster)
    out = terminal()
    if out is not None:
        n = len(client.scheduler_info(n_workers=-1).get("workers", {}))
        try:
            import bokeh  # noqa: F401

            link = client.dashboard_link
        except ImportError:
            link = "not served (pip install bokeh)"
        where = address or "embedded LocalCluster on 127.0.0.1"
        print(f"[dask] {where}: {n} workers; dashboard {link}", file=out, flush=True)
    return client


def close_client() -> None:
    """Close this process's client (and its embedded cluster)."""
    client, cluster = _CLIENT.pop("client", None), _CLIENT.pop("cluster", None)
    _CLIENT.clear()
    if client is not None:
        client.close()
    if cluster is not None:
        cluster.close()


atexit.register(close_client)


# --------------------------------------------------------------------------------------------
# Running tasks
# --------------------------------------------------------------------------------------------


def map_tasks(
    func: Callable[..., Any],
    models: Sequence[Any],
    tasks: Sequence[tuple[int, int, Any]],
    done: Callable[[int, int, Any, float, str], None],
    *,
    n_jobs: int = 2,
    seed: int | None = None,
    scheduler: str | None = None,
    desc: str = "",
    progress: bool = True,
    loaded: int = 0,
    total: int | None = None,
    kwargs: dict[str, Any] | None = None,
) -> None:
    """Run ``func(models[j], x, **kwargs)`` for every task ``(j, i, x)``; call
    ``done(j, i, result, seconds, host)`` in this process as each one completes.

    Parameters
    ----------
    func : callable
        Module-level per-point function (picklable).
    models : sequence
        The models; each is sent once to every worker.
    tasks : sequence of (int, int, object)
        Model position ``j``, point index ``i`` (the seed's index) and input ``x``.
    done : callable
        Receives each result as it arrives (in completion order).
    n_jobs : int, default=2
        Worker processes of the embedded cluster; 1 (and no scheduler): this process.
    seed : int or None
        If given, ``func`` also receives ``seed=point_seed(seed, i)``.
    scheduler : str or None
        Address of an existing Dask scheduler (default ``$LRBOOK_SCHEDULER``).
    desc, progress, loaded, total
        Progress bar label, whether to show it, points already available (from the store)
        and the total it counts to (default ``loaded + len(tasks)``).
    kwargs : dict or None
        Keyword arguments of ``func`` (a dict, so that ``func`` may take a ``seed``).

    Raises
    ------
    PointError
        If ``func`` raises on a point (the others are cancelled).
    """
    check_scalar(n_jobs, "n_jobs", Integral, min_val=1)
    if seed is not None:
        check_scalar(seed, "seed", Integral, min_val=0)
    if not callable(func):
        raise TypeError(f"func must be callable as func(model, x, **kwargs); got {func!r}.")
    kwargs = dict(kwargs or {})
    total = loaded + len(tasks) if total is None else total
    serial = n_jobs == 1 and scheduler_address(scheduler) is None
    client = None if serial or not tasks else get_client(n_jobs, scheduler)  # prints its line
    bar = progress_bar(total=total, initial=loaded, desc=desc, disable=not progress or not tasks)
    if loaded:
        bar.set_postfix_str(f"{loaded} from store")
    try:
        if not tasks:
            return
        if serial:
            with one_torch_thread():
                for j, i, x in tasks:
                    t = time.perf_counter()
                    value = _call(func, models[j], x, i, kwargs, seed)
                    done(j, i, value, time.perf_counter() - t, socket.gethostname())
                    bar.update(1)
            return
        _map_dask(func, models, tasks, done, client, seed, kwargs, bar)
    finally:
        bar.close()


def _map_dask(func, models, tasks, done, client, seed, kwargs, bar) -> None:
    from distributed import as_completed

    _check_picklable(func)
    split = getattr(func, "split", None)
    if split is not None and not isinstance(split, Split):
        raise TypeError(f"{func!r}.split must be an lrtools.execution.Split; got {split!r}.")
    used = sorted({j for j, _, _ in tasks})
    shipped = {j: client.scatter(models[j], broadcast=True, hash=False) for j in used}
    tag = f"{getattr(func, '__name__', 'task')}-{os.getpid()}-{time.time_ns()}"
    futures, parts = {}, {}
    for j, i, x in tasks:
        key = f"{tag}-{j}-{i}"
        if split is None:
            fut = client.submit(_run_task, func, shipped[j], x, i, kwargs, seed, key=key,
                                pure=False)  # fmt: skip
        else:
            mine = [
                client.submit(_run_task, split.part, shipped[j], p, i, kwargs, seed,
                              key=f"{key}-part{k}", pure=False)  # fmt: skip
                for k, p in enumerate(split.parts(models[j], x, **kwargs))
            ]
            fut = client.submit(_run_finish, split.finish, shipped[j], x, mine, i, kwargs, seed,
                                key=key, pure=False)  # fmt: skip
            parts[fut] = mine
        futures[fut] = (j, i)
    try:
        for fut in as_completed(futures):
            j, i = futures[fut]
            if fut.status == "error":
                exc = fut.exception()
                raise exc if isinstance(exc, PointError) else PointError(
                    i, f"point {i} failed on its worker: {type(exc).__name__}: {exc}"
                ) from exc
            value, seconds, host = fut.result()
            for f in [fut, *parts.pop(fut, [])]:
                f.release()
            done(j, i, value, seconds, host)
            bar.update(1)
    finally:
        client.cancel(list(futures) + [f for mine in parts.values() for f in mine])
        client.cancel(list(shipped.values()))


def _check_picklable(func: Callable) -> None:
    import pickle

    try:
        pickle.dumps(func)
    except (pickle.PicklingError, AttributeError, TypeError) as exc:
        raise TypeError(
            f"func {func!r} cannot be sent to worker processes ({exc}). Define it at module "
            "level (not a lambda, closure or a function of a script's __main__), or use "
            "n_jobs=1."
        ) from exc


def map_points(
    func: Callable[..., Any],
    model: Any,
    points: Sequence,
    *,
    n_jobs: int = 2,
    seed: int | None = None,
    scheduler: str | None = None,
    desc: str = "",
    progress: bool = True,
    **kwargs: Any,
) -> list:
    """``[func(model, points[0], **kwargs), func(model, points[1], **kwargs), ...]``.

    The list form of :func:`map_tasks` for one model (point ``i`` is ``points[i]`` and gets
    ``seed=point_seed(seed, i)`` when seeded); see there for where the work runs.

    Raises
    ------
    PointError
        If ``func`` raises on a point; the message names its position.
    TypeError
        If ``points`` has no ``len()`` or ``func`` is not callable or not picklable.

    Examples
    --------
    >>> from lrtools.models import build_mlp
    >>> from lrtools.execution import map_points
    >>> net = build_mlp(2, [4], 2, seed=0)
    >>> def norm(model, x):  # at module level to be picklable for n_jobs > 1
    ...     return float(sum(v * v for v in x) ** 0.5)
    >>> map_points(norm, net, [[3.0, 4.0], [0.0, 1.0]], n_jobs=1, progress=False)
    [5.0, 1.0]
    """
    if isinstance(points, str | bytes) or not hasattr(points, "__len__"):
        raise TypeError(
            f"points must be a sequence with len() (an array of shape (n, *input_shape) or a "
            f"list); got {type(points).__name__}. Wrap an iterator in list(...)."
        )
    out: list = [None] * len(points)

    def keep(j, i, value, seconds, host):
        out[i] = value

    tasks = [(0, i, points[i]) for i in range(len(points))]
    map_tasks(func, [model], tasks, keep, n_jobs=n_jobs, seed=seed, scheduler=scheduler,
              desc=desc, progress=progress, kwargs=kwargs)  # fmt: skip
    return out


# --------------------------------------------------------------------------------------------
# Stacking per-point tables
# --------------------------------------------------------------------------------------------


def concat_frames(
    frames: Sequence[pd.DataFrame], *, labels: Sequence | None = None, name: str = "point"
) -> pd.DataFrame:
    """Stack per-point tables into one, with a first column naming each row's point.

    Parameters
    ----------
    frames : sequence of pandas.DataFrame
        One table per point; empty tables are allowed and contribute no rows.
    labels : sequence or None, default=None
        Label of each point (e.g. test-set indices); ``range(len(frames))`` by default.
    name : str, default="point"
        Name of the added column; it must not already be a column of the tables.

    Returns
    -------
    pandas.DataFrame
        The rows of every table in order, a fresh ``RangeIndex``, and the column ``name`` first.
    """
    frames = list(frames)
    bad = [i for i, f in enumerate(frames) if not isinstance(f, pd.DataFrame)]
    if bad:
        raise TypeError(
            f"frames must all be pandas DataFrames; item {bad[0]} is "
            f"{type(frames[bad[0]]).__name__}. Wrap a dict row as pd.DataFrame([row])."
        )
    labels = list(range(len(frames))) if labels is None else list(labels)
    if len(labels) != len(frames):
        raise ValueError(
            f"labels must have one entry per frame ({len(frames)}); got {len(labels)}."
        )
    clash = [i for i, f in enumerate(frames) if name in f.columns]
    if clash:
        raise ValueError(f"frame {clash[0]} already has a column {name!r}; pass another name=.")
    if not frames:
        return pd.DataFrame({name: []})
    parts = [f.assign(**{name: [lab] * len(f)}) for f, lab in zip(frames, labels, strict=True)]
    out = pd.concat(parts, ignore_index=True)
    return out[[name, *[c for c in out.columns if c != name]]]
