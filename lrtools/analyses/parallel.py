"""Run a per-point measurement over many test points in worker processes.

The analyses of Section 3 of [1] repeat one measurement on 1000 test points (Fig. 3, Fig. 6,
Fig. 12): :func:`map_points` runs a pure per-point function ``func(model, x, **kwargs)`` over the
points in ``n_jobs`` processes and returns the results in input order, and :func:`concat_frames`
stacks per-point tables into one with a ``point`` column.

Design
------
* Workers come from the ``forkserver`` context (``spawn`` where it is unavailable), never
  ``fork``: torch's thread pools are not fork-safe. The fork server preloads torch, so only the
  first pool of a session pays for importing it.
* The model, ``func`` and ``kwargs`` are pickled once per worker (pool initializer); tasks carry
  only chunks of points.
* Every worker calls ``torch.set_num_threads(1)``: with several processes on few cores,
  contended OpenMP threads are much slower than one thread per process.
* Results do not depend on ``n_jobs`` or on the chunking: the serial path (``n_jobs=1``, no pool,
  for debugging) also runs torch with one thread, and per-point random seeds come from
  :func:`point_seed` (the seed and the point's index), never from a worker's state.

References
----------
.. [1] X. Zhang and D. Wu, "Empirical Studies on the Properties of Linear Regions in Deep
   Neural Networks", ICLR 2020.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import pickle
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from contextlib import contextmanager
from numbers import Integral
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from .._validation import check_scalar
from ..exceptions import LRToolsError

__all__ = ["PointError", "map_points", "concat_frames", "point_seed"]


class PointError(LRToolsError):
    """``func`` failed on one point; ``index`` is that point's position in ``points``.

    The original exception is chained (``__cause__``; across processes, the worker's formatted
    traceback).
    """

    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index = index

    def __reduce__(self):
        return type(self), (self.index, self.args[0])


def point_seed(seed: int, index: int) -> np.random.SeedSequence:
    """Seed of point ``index`` of a run seeded with ``seed``.

    ``SeedSequence(seed, spawn_key=(index,))``: independent streams for different points, and
    the same stream for a point whatever ``n_jobs``, the chunking or the number of points.

    Parameters
    ----------
    seed : int
        Non-negative seed of the whole run.
    index : int
        Position of the point in the input.

    Returns
    -------
    numpy.random.SeedSequence
        Pass it to ``numpy.random.default_rng``.
    """
    check_scalar(seed, "seed", Integral, min_val=0)
    check_scalar(index, "index", Integral, min_val=0)
    return np.random.SeedSequence(int(seed), spawn_key=(int(index),))


# --------------------------------------------------------------------------------------------
# Work done in one process (a worker, or the caller when n_jobs == 1)
# --------------------------------------------------------------------------------------------

_STATE: dict[str, Any] = {}


def _init_worker(func: Callable, model: Any, kwargs: dict, seed: int | None) -> None:
    """Pool initializer: one torch thread, and the shared arguments kept for every task."""
    torch.set_num_threads(1)
    _STATE.update(func=func, model=model, kwargs=kwargs, seed=seed)


def _call(func, model, x, index: int, kwargs: dict, seed: int | None):
    """``func(model, x, **kwargs)``, plus ``seed=point_seed(seed, index)`` when seeded."""
    extra = {} if seed is None else {"seed": point_seed(seed, index)}
    try:
        return func(model, x, **kwargs, **extra)
    except Exception as exc:
        name = getattr(func, "__qualname__", repr(func))
        raise PointError(
            index, f"{name} failed on point {index}: {type(exc).__name__}: {exc}"
        ) from exc


def _run_chunk(start: int, chunk: Sequence) -> list:
    """Apply the worker's ``func`` to the points ``start, start + 1, ...`` of one chunk."""
    s = _STATE
    return [
        _call(s["func"], s["model"], x, start + k, s["kwargs"], s["seed"])
        for k, x in enumerate(chunk)
    ]


@contextmanager
def _one_torch_thread():
    """Run torch with one thread (as the workers do), restoring the caller's setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# --------------------------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------------------------


def _context() -> mp.context.BaseContext:
    """``forkserver`` (preloading torch) where available, else ``spawn``; never ``fork``."""
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["torch"])
        return ctx
    return mp.get_context("spawn")


def _check_points(points) -> Sequence:
    if isinstance(points, str | bytes) or not hasattr(points, "__len__"):
        raise TypeError(
            f"points must be a sequence with len() (an array of shape (n, *input_shape) or a "
            f"list); got {type(points).__name__}. Wrap an iterator in list(...)."
        )
    return points


def _default_chunksize(n: int, n_jobs: int) -> int:
    """About 8 chunks per worker (balance, frequent progress), at most 32 points each."""
    return max(1, min(32, math.ceil(n / (8 * n_jobs))))


def map_points(
    func: Callable[..., Any],
    model: Any,
    points: Sequence,
    *,
    n_jobs: int = 2,
    seed: int | None = None,
    chunksize: int | None = None,
    desc: str = "",
    progress: bool = True,
    **kwargs: Any,
) -> list:
    """Apply ``func(model, x, **kwargs)`` to every point, in ``n_jobs`` processes.

    Parameters
    ----------
    func : callable
        A pure per-point function ``func(model, x, **kwargs)``; for ``n_jobs > 1`` it must be
        picklable (defined at module level, not a lambda or a closure).
    model : torch.nn.Module or any picklable object
        Sent once to each worker.
    points : sequence of length n
        The points (rows of an array of shape ``(n, *input_shape)``, or any list).
    n_jobs : int, default=2
        Worker processes; 1 runs in this process without a pool (debugging, tests).
    seed : int or None, default=None
        If given, ``func`` also receives ``seed=point_seed(seed, i)`` for point ``i`` (a
        :class:`numpy.random.SeedSequence`), so random draws depend only on ``(seed, i)``.
    chunksize : int or None, default=None
        Points per task; by default about eight tasks per worker, at most 32 points each.
    desc : str, default=""
        Label of the progress bar.
    progress : bool, default=True
        Show a tqdm bar over points.
    **kwargs
        Further keyword arguments of ``func``, sent once per worker.

    Returns
    -------
    list
        ``[func(model, points[0], **kwargs), func(model, points[1], **kwargs), ...]`` in input
        order, whatever the order of completion.

    Raises
    ------
    PointError
        If ``func`` raises on a point; the message names the point's index and the original
        error, which is chained. With ``n_jobs > 1`` it is the first failure observed (not
        necessarily the lowest index); the remaining tasks are cancelled.
    ValueError, TypeError
        On invalid ``n_jobs``, ``seed``, ``chunksize`` or ``points``.

    Notes
    -----
    torch runs with one thread in every worker and, for the duration of the call, in the serial
    path too, so that results are identical for every ``n_jobs``.

    Starting the pool costs about a second or more (worker start, one copy of the model per
    worker), so ``n_jobs > 1`` pays off only when the points take longer than that in total.
    A script (not a notebook) that calls this with ``n_jobs > 1`` needs the
    ``if __name__ == "__main__":`` guard, as workers re-import the main module.

    Examples
    --------
    >>> from lrtools.models import build_mlp
    >>> from lrtools.analyses.parallel import map_points
    >>> net = build_mlp(2, [4], 2, seed=0)
    >>> def norm(model, x):  # at module level to be picklable for n_jobs > 1
    ...     return float(sum(v * v for v in x) ** 0.5)
    >>> map_points(norm, net, [[3.0, 4.0], [0.0, 1.0]], n_jobs=1, progress=False)
    [5.0, 1.0]
    """
    check_scalar(n_jobs, "n_jobs", Integral, min_val=1)
    if seed is not None:
        check_scalar(seed, "seed", Integral, min_val=0)
    if chunksize is not None:
        check_scalar(chunksize, "chunksize", Integral, min_val=1)
    if not callable(func):
        raise TypeError(f"func must be callable as func(model, x, **kwargs); got {func!r}.")
    points = _check_points(points)
    n = len(points)
    if n == 0:
        return []
    bar = tqdm(total=n, desc=desc, disable=not progress, leave=False)
    try:
        if n_jobs == 1:
            return _map_serial(func, model, points, kwargs, seed, bar)
        size = chunksize or _default_chunksize(n, n_jobs)
        return _map_pool(func, model, points, kwargs, seed, int(n_jobs), int(size), bar)
    finally:
        bar.close()


def _map_serial(func, model, points, kwargs, seed, bar) -> list:
    out = []
    with _one_torch_thread():
        for i in range(len(points)):
            out.append(_call(func, model, points[i], i, kwargs, seed))
            bar.update(1)
    return out


def _check_picklable(func: Callable) -> None:
    try:
        pickle.dumps(func)
    except (pickle.PicklingError, AttributeError, TypeError) as exc:
        raise TypeError(
            f"func {func!r} cannot be sent to worker processes ({exc}). Define it at module "
            "level (not a lambda, closure or a function of a script's __main__ without the "
            "main guard), or use n_jobs=1."
        ) from exc


def _map_pool(func, model, points, kwargs, seed, n_jobs, size, bar) -> list:
    _check_picklable(func)
    n = len(points)
    starts = range(0, n, size)
    out: list = [None] * n
    workers = min(n_jobs, len(starts))
    with ProcessPoolExecutor(
        workers,
        mp_context=_context(),
        initializer=_init_worker,
        initargs=(func, model, kwargs, seed),
    ) as pool:
        pending = {pool.submit(_run_chunk, s, points[s : s + size]): s for s in starts}
        while pending:
            done, _ = wait(pending, return_when=FIRST_EXCEPTION)
            for fut in done:
                s = pending.pop(fut)
                if fut.exception() is not None:
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise fut.exception()
                res = fut.result()
                out[s : s + len(res)] = res
                bar.update(len(res))
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
        One table per point (e.g. the results of :func:`map_points`); empty tables are allowed
        and contribute no rows.
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
