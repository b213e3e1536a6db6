"""Per-point result store: one SQLite entry per (measurement, model, settings, code, test point).

The measurements of Section 3 of [1] repeat one per-point computation over up to 1000 test
points per model (Fig. 3, 4, 6, Table 2). :func:`measure` keeps each point's result as its own
entry, written in its own transaction the moment the point finishes, and assembles the
requested points from the entries:

* a larger ``n_points`` computes only the new points;
* an interrupted run (killed client, lost worker) resumes with the points that are missing;
* a rerun with the same settings computes nothing.

Storage
-------
One SQLite file, ``<cache_root>/store.sqlite`` (``$LRTOOLS_STORE`` overrides it), in WAL mode:
a killed process leaves either a whole committed entry or none (SQLite's atomic commit), it
holds millions of rows, and it can be inspected with ``sqlite3`` (table ``points``: one row per
entry, the value a pickle; ``digest`` is the SHA-256 of the entry's key and value). It is checked on
read: a damaged entry is recomputed (with a warning), never returned; a damaged file raises
:class:`StoreError` naming the file and the fix.

Code identity
-------------
An entry's key holds :func:`code_identity` of the measuring function: the SHA-256 of the
source files of its module and of every ``lrtools`` module that module imports, transitively
(module-level and function-level imports, relative or absolute, package ``__init__`` files
included), plus the Python version and the versions of the numerical dependencies. Any edit
to code the measurement can execute changes the identity, so a stale result is never
returned; an edit to an unrelated module (plots, runner, the store itself) does not.

References
----------
.. [1] X. Zhang and D. Wu, "Empirical Studies on the Properties of Linear Regions in Deep
   Neural Networks", ICLR 2020.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import socket
import sqlite3
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import codeid
from .cache import cache_root, canonical, param_key
from .exceptions import LRToolsError

__all__ = [
    "StoreError",
    "Store",
    "Job",
    "MeasureReport",
    "code_identity",
    "store_path",
    "open_store",
    "measure",
]

SCHEMA_VERSION = 2  # 2: digest over key and value


class StoreError(LRToolsError):
    """The store file cannot be used; the message names the file and how to fix it."""


def code_identity(func: Callable) -> str:
    """:func:`lrtools.codeid.code_identity`, raising :class:`StoreError` for untrackable code."""
    try:
        return codeid.code_identity(func)
    except codeid.CodeIdentityError as exc:
        raise StoreError(str(exc)) from exc


# --------------------------------------------------------------------------------------------
# The SQLite file
# --------------------------------------------------------------------------------------------


def store_path() -> Path:
    """``$LRTOOLS_STORE`` if set, else ``<cache_root>/store.sqlite``."""
    env = os.environ.get("LRTOOLS_STORE")
    return Path(env) if env else cache_root() / "store.sqlite"


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS settings (
    key TEXT PRIMARY KEY, kind TEXT NOT NULL, json TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS points (
    kind TEXT NOT NULL, model TEXT NOT NULL, settings TEXT NOT NULL, code TEXT NOT NULL,
    point INTEGER NOT NULL, value BLOB NOT NULL, digest TEXT NOT NULL,
    seconds REAL NOT NULL, created REAL NOT NULL, host TEXT NOT NULL,
    chapter TEXT NOT NULL DEFAULT '', label TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (kind, model, settings, code, point));
CREATE TABLE IF NOT EXISTS uses (
    profile TEXT NOT NULL, chapter TEXT NOT NULL, run TEXT NOT NULL, kind TEXT NOT NULL,
    model TEXT NOT NULL, settings TEXT NOT NULL, code TEXT NOT NULL,
    PRIMARY KEY (profile, chapter, run, kind, model, settings, code));
"""


def _digest(kind: str, model: str, settings: str, code: str, point: int, blob: bytes) -> str:
    """SHA-256 of an entry's key and value: damage to either is detected on read."""
    h = hashlib.sha256(f"{kind}\x00{model}\x00{settings}\x00{code}\x00{int(point)}\x00".encode())
    h.update(blob)
    return h.hexdigest()


def _fix(path: Path) -> str:
    return (
        f"Move {path} (and {path.name}-wal, {path.name}-shm next to it) aside or delete them; "
        "the next run recomputes the missing points."
    )


class Store:
    """The SQLite store at ``path`` (created on first use). Use :func:`open_store`.

    Raises
    ------
    StoreError
        If the file exists but is not a readable store (the message names it and the fix).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(_SCHEMA)
            row = self.db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if row is None:
                self.db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)",
                                (str(SCHEMA_VERSION),))  # fmt: skip
            elif row[0] != str(SCHEMA_VERSION):
                raise StoreError(
                    f"result store {self.path} has schema {row[0]}, this lrtools writes "
                    f"schema {SCHEMA_VERSION}. {_fix(self.path)}"
                )
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"result store {self.path} is not a readable SQLite database "
                f"({type(exc).__name__}: {exc}). {_fix(self.path)}"
            ) from exc

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- entries -------------------------------------------------------------------------

    def _execute(self, sql: str, args: tuple = ()) -> sqlite3.Cursor:
        try:
            return self.db.execute(sql, args)
        except sqlite3.DatabaseError as exc:
            raise self._damaged(exc) from exc

    def _fetch(self, sql: str, args: tuple = ()) -> list[tuple]:
        try:
            return self.db.execute(sql, args).fetchall()
        except sqlite3.DatabaseError as exc:  # a damaged page shows up while reading
            raise self._damaged(exc) from exc

    def _damaged(self, exc: Exception) -> StoreError:
        text = "".join(c if c.isascii() and c.isprintable() else "?" for c in str(exc))[:160]
        return StoreError(
            f"result store {self.path} is damaged or unreadable ({type(exc).__name__}: {text}). "
            f"{_fix(self.path)}"
        )

    def written_since(self, since: float) -> int:
        """How many entries were written at or after ``since`` (seconds since the epoch): the
        points a build computed (the runner's closing line)."""
        return int(self._fetch("SELECT COUNT(*) FROM points WHERE created >= ?",
                               (float(since),))[0][0])  # fmt: skip

    def register_settings(self, kind: str, settings: Mapping[str, Any]) -> str:
        """Record ``settings`` in clear and return their key."""
        key = param_key({"kind": kind, **settings})
        text = json.dumps(canonical(dict(settings)), sort_keys=True)
        self._execute("INSERT OR IGNORE INTO settings VALUES (?, ?, ?)", (key, kind, text))
        return key

    def load(self, kind: str, model: str, settings: str, code: str, points: Iterable[int]
             ) -> dict[int, Any]:  # fmt: skip
        """The stored values among ``points``; damaged entries are deleted and left out."""
        wanted = {int(p) for p in points}
        out: dict[int, Any] = {}
        rows = self._fetch(
            "SELECT point, CAST(value AS BLOB), digest FROM points WHERE kind=? AND model=? "
            "AND settings=? AND code=?",
            (kind, model, settings, code),
        )
        for point, value, digest in rows:
            if point not in wanted:
                continue
            try:
                if _digest(kind, model, settings, code, point, value) != digest:
                    raise ValueError("digest mismatch")
                out[point] = pickle.loads(value)
            except Exception as exc:  # a damaged entry: recompute it, never return it
                warnings.warn(
                    f"result store {self.path}: entry ({kind}, model {model}, point {point}) "
                    f"is damaged ({type(exc).__name__}: {exc}); it is recomputed.",
                    stacklevel=2,
                )
                self._execute(
                    "DELETE FROM points WHERE kind=? AND model=? AND settings=? AND code=? "
                    "AND point=?",
                    (kind, model, settings, code, point),
                )
        return out

    def write(self, kind: str, model: str, settings: str, code: str, point: int, value: Any,
              *, seconds: float = 0.0, host: str = "", chapter: str = "", label: str = ""
              ) -> bool:  # fmt: skip
        """Store one entry in its own transaction; False (and nothing written) if it exists."""
        blob = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        cur = self._execute(
            "INSERT OR IGNORE INTO points VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (kind, model, settings, code, int(point), blob,
             _digest(kind, model, settings, code, int(point), blob),
             float(seconds), time.time(), host or socket.gethostname(), chapter, label),
        )  # fmt: skip
        return cur.rowcount == 1

    def count(self, kind: str | None = None) -> int:
        if kind is None:
            return self._fetch("SELECT COUNT(*) FROM points")[0][0]
        return self._fetch("SELECT COUNT(*) FROM points WHERE kind=?", (kind,))[0][0]

    # -- uses and pruning ----------------------------------------------------------------

    def record_use(self, profile: str, chapter: str, run: str, kind: str, model: str,
                   settings: str, code: str) -> None:  # fmt: skip
        self._execute("INSERT OR IGNORE INTO uses VALUES (?, ?, ?, ?, ?, ?, ?)",
                      (profile, chapter, run, kind, model, settings, code))  # fmt: skip

    def finish_run(self, profile: str, chapter: str, run: str) -> int:
        """A chapter finished under ``profile``: forget the uses of its earlier runs."""
        cur = self._execute("DELETE FROM uses WHERE profile=? AND chapter=? AND run<>?",
                            (profile, chapter, run))  # fmt: skip
        return cur.rowcount

    def summary(self) -> list[dict[str, Any]]:
        """One row per (chapter, model label, measurement, code): entries, seconds, bytes."""
        rows = self._fetch(
            "SELECT chapter, label, model, kind, code, COUNT(*), SUM(seconds), "
            "SUM(LENGTH(value)) FROM points GROUP BY chapter, label, model, kind, code "
            "ORDER BY chapter, label, kind"
        )
        keys = ("chapter", "label", "model", "kind", "code", "entries", "seconds", "bytes")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def prune(self, profiles: Iterable[str], *, dry_run: bool = False) -> int:
        """Delete the entries that no run of ``profiles`` used; returns how many (would go)."""
        profiles = sorted(set(profiles))
        marks = ",".join("?" * len(profiles)) or "NULL"
        where = (
            "NOT EXISTS (SELECT 1 FROM uses u WHERE u.kind=points.kind AND u.model=points.model "
            f"AND u.settings=points.settings AND u.code=points.code AND u.profile IN ({marks}))"
        )
        n = self._fetch(f"SELECT COUNT(*) FROM points WHERE {where}", tuple(profiles))[0][0]
        if not dry_run and n:
            self._execute(f"DELETE FROM points WHERE {where}", tuple(profiles))
            self._execute(f"DELETE FROM uses WHERE profile NOT IN ({marks})", tuple(profiles))
        return n


def open_store(path: Path | None = None) -> Store:
    """Open (creating if needed) the store at ``path`` or :func:`store_path`."""
    return Store(store_path() if path is None else path)


# --------------------------------------------------------------------------------------------
# Measuring many points of many models through the store
# --------------------------------------------------------------------------------------------


@dataclass
class Job:
    """The points of one model to measure: ``inputs[i]`` is the input of test point ``i``.

    ``model_id`` identifies the weights (``TrainedModel.cache_id``), ``label`` is the display
    name kept in the store for ``lrbook store``.
    """

    model_id: str
    model: Any
    inputs: Mapping[int, Any]
    label: str = ""


@dataclass
class MeasureReport:
    """What :func:`measure` did: points requested, loaded from the store, computed."""

    kind: str
    requested: int = 0
    loaded: int = 0
    computed: int = 0
    written: int = 0
    seconds: float = 0.0
    code: str = ""
    computed_points: list[tuple[str, int]] = field(default_factory=list)

    def line(self) -> str:
        return (f"[store] {self.kind}: {self.requested} points, {self.loaded} from the store, "
                f"{self.computed} computed ({self.seconds:.1f} s)")  # fmt: skip


#: The reports of the measurements of this process, in order (the runner prints them).
REPORTS: list[MeasureReport] = []


def measure(
    kind: str,
    func: Callable[..., Any],
    settings: Mapping[str, Any],
    jobs: list[Job],
    *,
    n_jobs: int = 1,
    seeded: int | None = None,
    scheduler: str | None = None,
    desc: str = "",
    progress: bool = True,
    store: Store | None = None,
    **kwargs: Any,
) -> list[dict[int, Any]]:
    """``func(model, inputs[i], **kwargs)`` for every point of every job, through the store.

    Parameters
    ----------
    kind : str
        Name of the measurement (``"surrounding"``, ``"inradii"``, ...).
    func : callable
        Module-level ``lrtools`` function measuring one point; its :func:`code_identity` is
        part of every entry's key.
    settings : mapping
        Every other input the result depends on (plain values; ``kwargs`` and ``seeded`` are
        added to it automatically). The inputs themselves are not hashed: they must be
        determined by the model, the settings and the test index.
    jobs : list of Job
        The models and their points.
    n_jobs, scheduler, progress, desc
        Execution: see :func:`lrtools.execution.map_tasks`.
    seeded : int or None
        If given, point ``i`` receives ``seed=point_seed(seeded, i)`` (``i`` the test index).
    store : Store or None
        Default: :func:`open_store`.
    **kwargs
        Keyword arguments of ``func``.

    Returns
    -------
    list of dict
        For each job, ``{test index: result}``.
    """
    from . import execution

    t0 = time.perf_counter()
    own = store is None
    store = open_store() if own else store
    try:
        code = code_identity(func)
        skey = store.register_settings(kind, {**settings, "kwargs": kwargs, "seeded": seeded})
        report = MeasureReport(kind, code=code)
        env = os.environ
        profile, chapter = env.get("LRBOOK_PROFILE", ""), env.get("LRBOOK_CHAPTER", "")
        run = env.get("LRBOOK_RUN_ID", "")
        out: list[dict[int, Any]] = []
        tasks = []
        for j, job in enumerate(jobs):
            if profile:
                store.record_use(profile, chapter, run, kind, job.model_id, skey, code)
            have = store.load(kind, job.model_id, skey, code, job.inputs)
            out.append(have)
            report.requested += len(job.inputs)
            report.loaded += len(have)
            tasks.extend((j, int(i), x) for i, x in job.inputs.items() if int(i) not in have)

        def done(j: int, i: int, value: Any, seconds: float, host: str) -> None:
            job = jobs[j]
            out[j][i] = value
            report.computed += 1
            report.computed_points.append((job.model_id, i))
            report.written += store.write(kind, job.model_id, skey, code, i, value,
                                          seconds=seconds, host=host, chapter=chapter,
                                          label=job.label)  # fmt: skip

        execution.map_tasks(
            func, [job.model for job in jobs], tasks, done, n_jobs=n_jobs, seed=seeded,
            scheduler=scheduler, desc=desc or kind, progress=progress,
            loaded=report.loaded, total=report.requested, kwargs=kwargs,
        )  # fmt: skip
        report.seconds = time.perf_counter() - t0
        REPORTS.append(report)
        out_stream = execution.terminal()
        if progress and out_stream is not None:
            print(report.line(), file=out_stream, flush=True)
        return [{int(i): res[int(i)] for i in job.inputs} for job, res in zip(jobs, out,
                                                                             strict=True)]
    finally:
        if own:
            store.close()


def store_summary_text(path: Path | None = None) -> str:
    """The text of ``lrbook store``: entries per chapter, model and measurement."""
    with closing(open_store(path)) as st:
        rows = st.summary()
        lines = [f"result store {st.path}: {st.count()} entries"]
    if not rows:
        return lines[0]
    lines.append(f"{'chapter':<18} {'model':<12} {'measurement':<22} {'code':<16} "
                 f"{'entries':>7} {'compute s':>10} {'MB':>8}")  # fmt: skip
    for r in rows:
        lines.append(
            f"{r['chapter'] or '-':<18} {r['label'] or r['model'][:12]:<12} {r['kind']:<22} "
            f"{r['code']:<16} {r['entries']:>7} {r['seconds'] or 0:>10.1f} "
            f"{(r['bytes'] or 0) / 1e6:>8.2f}"
        )
    return "\n".join(lines)
