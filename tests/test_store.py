"""The per-point result store, with real processes: growing and resuming runs, code identity,
damaged files and entries, a killed client, a killed Dask worker, and 1 vs 2 workers."""

from __future__ import annotations

import importlib
import os
import pickle
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lrtools import codeid, execution, store
from lrtools.analyses import study
from lrtools.analyses.surrounding import surrounding_point
from lrtools.datasets.base import Dataset
from lrtools.models import build_mlp
from lrtools.store import Job, StoreError, code_identity, measure, open_store
from lrtools.training import TrainedModel
from tests.conftest import with_biases

REPO = Path(__file__).resolve().parents[1]
DASK = Path(sys.executable).with_name("dask")

SLOW = '''
import time

from .helper import OFFSET


def slow_point(model, x, *, delay=0.0):
    time.sleep(delay)
    return float(x) * 10 + OFFSET
'''


@pytest.fixture
def fakepkg(tmp_path, monkeypatch):
    """A package ``lrfake`` (measuring function + the helper it imports) on sys.path."""
    root = tmp_path / "pkgs"
    (root / "lrfake").mkdir(parents=True)
    (root / "lrfake" / "__init__.py").write_text("")
    (root / "lrfake" / "helper.py").write_text("OFFSET = 1\n")
    (root / "lrfake" / "other.py").write_text("UNUSED = 0\n")
    (root / "lrfake" / "measure.py").write_text(SLOW)
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(root), str(REPO)]))
    monkeypatch.setenv("LRTOOLS_STORE", str(tmp_path / "store.sqlite"))
    for mod in ("lrfake.measure", "lrfake.helper", "lrfake"):
        sys.modules.pop(mod, None)
    codeid._closure.cache_clear()
    yield root
    for mod in ("lrfake.measure", "lrfake.helper", "lrfake"):
        sys.modules.pop(mod, None)
    codeid._closure.cache_clear()


def _slow():
    return importlib.import_module("lrfake.measure").slow_point


def _job(n: int, start: int = 0) -> list[Job]:
    return [Job("m0", None, {i: float(i) for i in range(start, n)}, label="fake")]


def _last() -> store.MeasureReport:
    return store.REPORTS[-1]


# --------------------------------------------------------------------------------------------
# growing, rerunning, code identity
# --------------------------------------------------------------------------------------------


def test_rerun_computes_nothing_and_more_points_compute_only_the_new(fakepkg):
    slow = _slow()
    (out,) = measure("fake", slow, {"a": 1}, _job(5), progress=False)
    assert out == {i: i * 10 + 1.0 for i in range(5)} and _last().computed == 5
    measure("fake", slow, {"a": 1}, _job(5), progress=False)
    assert (_last().loaded, _last().computed) == (5, 0)
    (out,) = measure("fake", slow, {"a": 1}, _job(10), progress=False)
    assert (_last().loaded, _last().computed) == (5, 5)
    assert sorted(i for _, i in _last().computed_points) == list(range(5, 10))
    assert list(out) == list(range(10))
    measure("fake", slow, {"a": 2}, _job(3), progress=False)  # other settings: computed
    assert _last().computed == 3
    with open_store() as st:
        assert st.count("fake") == 13
    # the runner's closing line counts what a build wrote
    from lrtools.runner import computed_points_line

    since = time.time()
    measure("fake", slow, {"a": 1}, _job(10), progress=False)
    assert computed_points_line(since).endswith("computed no point: every per-point result "
                                                "came from the store")
    measure("fake", slow, {"a": 1}, _job(12), progress=False)
    assert "computed 2 per-point results" in computed_points_line(since)


def test_changed_code_in_the_import_closure_recomputes(fakepkg):
    slow = _slow()
    ident = code_identity(slow)
    measure("fake", slow, {}, _job(4), progress=False)
    (fakepkg / "lrfake" / "other.py").write_text("UNUSED = 1\n")  # not imported: same code
    codeid._closure.cache_clear()
    assert code_identity(slow) == ident
    (fakepkg / "lrfake" / "helper.py").write_text("OFFSET = 2\n")  # imported: new code
    codeid._closure.cache_clear()
    for mod in ("lrfake.measure", "lrfake.helper"):
        sys.modules.pop(mod, None)
    slow = _slow()
    assert code_identity(slow) != ident
    (out,) = measure("fake", slow, {}, _job(4), progress=False)
    assert _last().computed == 4 and out == {i: i * 10 + 2.0 for i in range(4)}


def test_every_study_measurement_is_keyed_by_its_code():
    from lrtools.analyses import angles, boundary, class_regions, nonredundant, surrounding

    funcs = [boundary.inradii_point, angles.region_angle_stats, angles.region_angle_image,
             surrounding.surrounding_point, class_regions.class_regions_point,
             nonredundant.nonredundant_point]  # fmt: skip
    assert len({code_identity(f) for f in funcs}) == len(funcs)
    mods = {m for m, _ in codeid._closure("lrtools.analyses.boundary")}
    assert {"lrtools.analyses.inradius", "lrtools.attacks", "lrtools.walks",
            "lrtools.solvers.insphere", "lrtools.execution"} <= mods  # fmt: skip
    assert "lrtools.plots" not in mods and "lrtools.store" not in mods
    def in_a_script(model, x):
        return x

    in_a_script.__module__ = "__main__"  # as if defined in a script: no source to track
    with pytest.raises(StoreError, match="code identity cannot be tracked"):
        code_identity(in_a_script)


# --------------------------------------------------------------------------------------------
# damage
# --------------------------------------------------------------------------------------------


def test_a_damaged_store_file_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.sqlite"
    path.write_bytes(b"not a database at all " * 200)
    with pytest.raises(StoreError, match=r"bad\.sqlite is not a readable SQLite database") as e:
        open_store(path)
    assert "Move" in str(e.value) and "recomputes the missing points" in str(e.value)


def test_a_damaged_entry_is_recomputed_never_returned(fakepkg):
    slow = _slow()
    measure("fake", slow, {}, _job(3), progress=False)
    db = sqlite3.connect(os.environ["LRTOOLS_STORE"])
    with db:
        db.execute("UPDATE points SET value = substr(value, 1, 8) || X'ff' || substr(value, 10) "
                   "WHERE point = 1")
    db.close()
    with pytest.warns(UserWarning, match="point 1.*damaged"):
        (out,) = measure("fake", slow, {}, _job(3), progress=False)
    assert out == {0: 1.0, 1: 11.0, 2: 21.0}
    assert _last().computed == 1 and _last().computed_points == [("m0", 1)]


def test_damaged_pages_give_an_error_or_recomputation_never_a_wrong_table(fakepkg):
    slow = _slow()
    path = Path(os.environ["LRTOOLS_STORE"])
    jobs = [Job("m0", None, {i: float(i) for i in range(300)})]
    measure("fake", slow, {"pad": "x" * 2000}, jobs, progress=False)
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    size = path.stat().st_size
    rng = np.random.default_rng(0)
    with open(path, "r+b") as fh:  # scribble over a few pages in the middle of the file
        for off in rng.integers(size // 4, size - 64, 6):
            fh.seek(int(off))
            fh.write(rng.integers(0, 256, 48, dtype=np.uint8).tobytes())
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            (out,) = measure("fake", slow, {"pad": "x" * 2000}, jobs, progress=False)
    except StoreError as exc:
        assert str(path) in str(exc) and "Move" in str(exc)
    else:
        assert out == {i: i * 10 + 1.0 for i in range(300)}


# --------------------------------------------------------------------------------------------
# killed processes
# --------------------------------------------------------------------------------------------

CLIENT = """
import sys
from lrfake.measure import slow_point
from lrtools.store import Job, measure
measure("fake", slow_point, {}, [Job("m0", None, {i: float(i) for i in range(12)})],
        progress=False, delay=0.25)
"""


def _count(path: str) -> int:
    db = sqlite3.connect(path, timeout=30)
    try:
        return db.execute("SELECT COUNT(*) FROM points").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0
    finally:
        db.close()


def test_a_killed_client_resumes_with_the_missing_points_only(fakepkg):
    path = os.environ["LRTOOLS_STORE"]
    proc = subprocess.Popen([sys.executable, "-c", CLIENT], env=os.environ.copy())
    try:
        deadline = time.time() + 60
        while _count(path) < 4 and time.time() < deadline:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    done = _count(path)
    assert proc.returncode == -signal.SIGKILL and 4 <= done < 12
    (out,) = measure("fake", _slow(), {}, _job(12), progress=False, delay=0.25)  # same settings
    assert (_last().loaded, _last().computed) == (done, 12 - done)
    assert out == {i: i * 10 + 1.0 for i in range(12)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def cluster(fakepkg):
    """``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1 (no nanny, so a
    killed worker stays dead); yields (address, worker processes)."""
    from distributed import Client

    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([str(DASK), "scheduler", "--host", "127.0.0.1", "--port",
                               str(port), "--no-dashboard"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]  # fmt: skip
    workers = [
        subprocess.Popen([str(DASK), "worker", address, "--nthreads", "1", "--no-nanny",
                          "--no-dashboard", "--host", "127.0.0.1", "--name", f"w{k}"],
                         env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)  # fmt: skip
        for k in range(2)
    ]
    procs += workers
    try:
        with Client(address, timeout="60s") as c:
            c.wait_for_workers(2, timeout=90)
        yield address, workers
    finally:
        execution.close_client()
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()


def test_a_killed_worker_loses_no_point_and_none_is_stored_twice(cluster):
    address, workers = cluster
    path = os.environ["LRTOOLS_STORE"]

    def kill_one_worker():
        deadline = time.time() + 60
        while _count(path) < 3 and time.time() < deadline:
            time.sleep(0.02)
        workers[0].send_signal(signal.SIGKILL)

    killer = threading.Thread(target=kill_one_worker)
    killer.start()
    (out,) = measure("fake", _slow(), {}, _job(16), scheduler=address, progress=False,
                     delay=0.3)  # fmt: skip
    killer.join()
    assert workers[0].wait(10) == -signal.SIGKILL
    assert out == {i: i * 10 + 1.0 for i in range(16)}
    rep = _last()
    assert rep.computed == rep.written == 16
    assert sorted(i for _, i in rep.computed_points) == list(range(16))
    with open_store() as st:
        assert st.count("fake") == 16
        hosts = st.db.execute("SELECT COUNT(*) FROM points").fetchone()[0]
    assert hosts == 16


def test_scheduler_with_two_workers_equals_the_serial_path_bit_for_bit(cluster):
    address, _ = cluster
    net = with_biases(build_mlp(6, [10, 8], 3, seed=2), 2)
    X = np.random.default_rng(1).uniform(-0.7, 0.7, (6, 6))
    job = [Job("net", net, {i: X[i] for i in range(6)})]
    kw = dict(n_directions=4, eps=0.2, progress=False, seeded=3)
    (serial,) = measure("sur", surrounding_point, {}, job, n_jobs=1, store=open_store(
        Path(os.environ["LRTOOLS_STORE"]).with_name("serial.sqlite")), **kw)  # fmt: skip
    (remote,) = measure("sur", surrounding_point, {}, job, scheduler=address, **kw)
    assert _last().computed == 6
    for i in range(6):
        assert pickle.dumps(serial[i]) == pickle.dumps(remote[i])


# --------------------------------------------------------------------------------------------
# the study layer: growing n_points, results independent of the number of workers
# --------------------------------------------------------------------------------------------


def _toy():
    rng = np.random.default_rng(0)
    y = np.arange(90) % 3
    X = (rng.uniform(-0.5, 0.5, (90, 4)) + 0.1 * y[:, None]).astype(np.float32)
    data = Dataset("toy", X, y, X, y, ("0", "1", "2"))
    cfg = study.StudyConfig(data="spirals", arch="mlp", widths=(8, 8),
                            variants=("vanilla", "bn"), lrs=(1e-3,))  # fmt: skip
    models = {run: TrainedModel(with_biases(build_mlp(4, [8, 8], 3, seed=k), k),
                                pd.DataFrame(), 0.0, False, f"/x/models/key{k}.pt")
              for k, run in enumerate(cfg.runs)}  # fmt: skip
    return cfg, models, data


def test_doubling_n_points_computes_exactly_the_new_points():
    cfg, models, data = _toy()
    idx5, idx10 = study.select_points(data, 5), study.select_points(data, 10)
    assert set(idx5) <= set(idx10)
    a, _ = study.surrounding_tables(cfg, models, data, idx5, n_directions=4, n_jobs=1)
    assert _last().computed == 10  # 5 points x 2 models
    b, _ = study.surrounding_tables(cfg, models, data, idx10, n_directions=4, n_jobs=1)
    assert (_last().loaded, _last().computed) == (10, 10)
    study.surrounding_tables(cfg, models, data, idx10, n_directions=4, n_jobs=1)
    assert _last().computed == 0
    pos = {int(g): k for k, g in enumerate(idx10)}
    for model in a["model"].unique():
        old = a[a["model"] == model].reset_index(drop=True)
        new = b[b["model"] == model].set_index("point").loc[[pos[int(g)] for g in idx5]]
        np.testing.assert_array_equal(old["n_unique_regions"], new["n_unique_regions"])
        np.testing.assert_array_equal(old["mean_rho"], new["mean_rho"])


def test_study_tables_are_the_same_for_one_and_two_workers(tmp_path, monkeypatch):
    cfg, models, data = _toy()
    idx = study.select_points(data, 3)
    tables = {}
    for n_jobs in (1, 2):
        monkeypatch.setenv("LRTOOLS_STORE", str(tmp_path / f"s{n_jobs}.sqlite"))
        tables[n_jobs] = (
            study.inradius_tables(cfg, models, data, idx, steps=5, n_jobs=n_jobs),
            study.class_region_tables(cfg, models, data, idx, n_jobs=n_jobs)[0],
        )
        assert _last().computed == 6
    for one, two in zip(tables[1], tables[2], strict=True):
        cols = [c for c in one.columns if not c.endswith("seconds")]  # wall-clock timings
        pd.testing.assert_frame_equal(one[cols], two[cols], check_exact=True)


# --------------------------------------------------------------------------------------------
# lrbook store: listing and pruning
# --------------------------------------------------------------------------------------------


def test_prune_keeps_what_the_last_run_of_a_profile_used(fakepkg, monkeypatch, capsys):
    from lrtools.runner import main

    slow = _slow()
    monkeypatch.setenv("LRBOOK_PROFILE", "smoke")
    monkeypatch.setenv("LRBOOK_CHAPTER", "mnist_inspheres")
    monkeypatch.setenv("LRBOOK_RUN_ID", "run1")
    measure("fake", slow, {"a": 1}, _job(3), progress=False)  # used by run1, then replaced
    monkeypatch.setenv("LRBOOK_RUN_ID", "run2")
    measure("fake", slow, {"a": 2}, _job(4), progress=False)  # used by run2 (the last run)
    monkeypatch.setenv("LRBOOK_PROFILE", "no-such-profile")
    measure("fake", slow, {"a": 3}, _job(5), progress=False)  # used by a profile that is gone
    with open_store() as st:
        st.finish_run("smoke", "mnist_inspheres", "run2")
        assert st.prune(["smoke", "default"], dry_run=True) == 3 + 5
        assert st.count() == 12
    assert main(["--root", str(REPO), "store", "--prune"]) == 0
    text = capsys.readouterr().out
    assert "deleted 8 entries" in text and "4 entries" in text
    assert "mnist_inspheres" in text and "fake" in text
    with open_store() as st:
        assert st.count() == 4
        (out,) = measure("fake", slow, {"a": 2}, _job(4), progress=False)
    assert _last().computed == 0 and out == {i: i * 10 + 1.0 for i in range(4)}
