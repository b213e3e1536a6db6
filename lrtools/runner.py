"""Build the book: execute every chapter notebook with papermill under a parameter profile,
then assemble the HTML with jupyter-book (warnings are errors).

Command line (installed as ``lrbook``, or ``python -m lrtools.runner``)::

    lrbook build --profile default              # every chapter, then the HTML
    lrbook run toy_spirals --profile smoke -p lr=1e-4 -p widths='[16, 16]'
    lrbook profiles                             # list profiles and their notebooks
    lrbook run mnist_inspheres --scheduler tcp://10.0.0.5:8786   # on an existing Dask cluster
    lrbook store                                # stored per-point results per chapter, model
    lrbook store --prune                        # delete entries that no profile's run used

Chapters are the notebooks ``notebooks/<name>.ipynb`` whose executed copies
``book/chapters/<name>`` appear in ``_toc.yml``. A profile is ``params/<profile>.yaml``::

    description: one line
    shared:                      # applied to every chapter that has the parameter
      seed: 0
    notebooks:
      toy_spirals: {n_samples: 2000, lr: 0.001}
    scheduler: tcp://10.0.0.5:8786   # optional: run per-point work on this Dask cluster

Per-point measurements run through :mod:`lrtools.store` (an SQLite store that computes only
missing points) on :mod:`lrtools.execution` (Dask: an embedded local cluster, or the scheduler
of ``--scheduler``, ``$LRBOOK_SCHEDULER`` or the profile's ``scheduler``, in that order).

Each value must name a parameter of the notebook's ``parameters`` cell (a shared value, of at
least one chapter) and have the type of that parameter's default (an int where the default is
an int, a number where it is a float, a list of ints where it is a list of ints, ...); anything
else, and any YAML error in a profile or a ``-p`` value, is an error before any work starts.
Executed notebooks are written atomically, with papermill's parameter cells hidden and a table
of the parameters actually used at the top.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import nbformat
import yaml

from .exceptions import RunnerError

__all__ = [
    "RunnerError",
    "load_profile",
    "check_parameters",
    "parse_overrides",
    "chapters",
    "execute_chapter",
    "build_book",
    "computed_points_line",
    "main",
]

CHAPTER_DIR = Path("book") / "chapters"
PROFILE_KEYS = ("description", "shared", "notebooks", "scheduler")


def project_root(start: Path | None = None) -> Path:
    """The folder holding ``_config.yml`` and ``_toc.yml`` (searched upwards from cwd)."""
    here = (start or Path.cwd()).resolve()
    for p in (here, *here.parents):
        if (p / "_toc.yml").exists() and (p / "_config.yml").exists():
            return p
    raise RunnerError(
        f"no _config.yml/_toc.yml found in {here} or its parents; run lrbook from the "
        "repository root (or pass --root)."
    )


def chapters(root: Path) -> list[str]:
    """Chapter names in ``_toc.yml`` order (entries ``book/chapters/<name>``)."""
    toc = (root / "_toc.yml").read_text()
    names = re.findall(r"book/chapters/([A-Za-z0-9_\-]+)", toc)
    return list(dict.fromkeys(names))


def available_profiles(root: Path) -> list[str]:
    """Names of the profiles in ``params/``."""
    return sorted(p.stem for p in (root / "params").glob("*.yaml"))


def notebook_parameters(path: Path) -> dict[str, Any]:
    """Defaults of a notebook's ``parameters`` cell, by executing only that cell."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", []):
            scope: dict[str, Any] = {}
            exec(compile(cell.source, f"{path.name}:parameters", "exec"), scope)  # noqa: S102
            return {k: v for k, v in scope.items() if not k.startswith("_")}
    raise RunnerError(f"{path} has no cell tagged 'parameters'; tag its first code cell.")


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """The first line of a YAML error, with its position."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
    return f"{problem}{where}"


def _mapping(value: Any, what: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RunnerError(
            f"{what} must be a mapping of names to values (name: value lines); got a "
            f"{type(value).__name__}: {value!r}."
        )
    return dict(value)


def read_profile(root: Path, profile: str) -> dict[str, Any]:
    """Parse ``params/<profile>.yaml`` and check its layout (not yet its parameter names).

    Returns
    -------
    dict
        ``{"description": str, "shared": dict, "notebooks": {chapter: dict}}``.

    Raises
    ------
    RunnerError
        Unknown profile, invalid YAML, or a file that is not a mapping of the keys
        ``description``, ``shared`` and ``notebooks`` (the message names the file).
    """
    path = root / "params" / f"{profile}.yaml"
    if not path.exists():
        raise RunnerError(
            f"unknown profile {profile!r}: {path} does not exist. Available profiles: "
            f"{available_profiles(root)}."
        )
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise RunnerError(f"profile {path} is not valid YAML: {_yaml_problem(exc)}.") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RunnerError(
            f"profile {path} must be a mapping with the keys {list(PROFILE_KEYS)}; it is a YAML "
            f"{type(data).__name__}. Write e.g. 'shared:' and 'notebooks:' sections."
        )
    unknown = sorted(set(data) - set(PROFILE_KEYS))
    if unknown:
        raise RunnerError(
            f"profile {path} has unknown key(s) {unknown}; the keys are {list(PROFILE_KEYS)}."
        )
    sections = _mapping(data.get("notebooks"), f"'notebooks' in profile {path}")
    scheduler = data.get("scheduler")
    if scheduler is not None and not isinstance(scheduler, str):
        raise RunnerError(
            f"'scheduler' in profile {path} must be a Dask scheduler address such as "
            f"tcp://127.0.0.1:8786; got {scheduler!r}."
        )
    return {
        "description": str(data.get("description") or ""),
        "scheduler": scheduler,
        "shared": _coerce(_mapping(data.get("shared"), f"'shared' in profile {path}")),
        "notebooks": {
            name: _coerce(_mapping(values, f"'notebooks: {name}' in profile {path}"))
            for name, values in sections.items()
        },
    }


def load_profile(root: Path, profile: str) -> dict[str, dict[str, Any]]:
    """Read ``params/<profile>.yaml`` and check every name and value against the notebooks.

    Returns
    -------
    dict
        ``{chapter: {parameter: value}}`` for every chapter of the book (missing ones: {}),
        values converted to the type of the notebook's default where that is lossless (an int
        for a float parameter becomes a float).

    Raises
    ------
    RunnerError
        Unknown profile, invalid YAML, a malformed file, an unknown chapter or parameter, or a
        value of the wrong type (the message names the file, the chapter and the parameter).
    """
    data = read_profile(root, profile)
    shared, sections = data["shared"], data["notebooks"]
    known = chapters(root)
    for name in sections:
        if name not in known:
            raise RunnerError(
                f"profile {profile!r} sets parameters for unknown chapter {name!r}; "
                f"chapters are {known}."
            )
    out, used = {}, set()
    for name in known:
        defaults = notebook_parameters(root / "notebooks" / f"{name}.ipynb")
        common = {k: v for k, v in shared.items() if k in defaults}
        used |= set(common)
        values = {**common, **sections.get(name, {})}
        out[name] = check_parameters(root, name, values, origin=f"profile {profile!r}")
    if set(shared) - used:
        raise RunnerError(
            f"profile {profile!r} has shared parameter(s) {sorted(set(shared) - used)} that no "
            "chapter's parameters cell defines; check the spelling."
        )
    return out


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "a bool (true or false)"
    if isinstance(value, int):
        return "an int"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        kinds = {_type_name(v) for v in value}
        return f"a list of {kinds.pop().split(' ', 1)[1]}s" if len(kinds) == 1 else "a list"
    return type(value).__name__


def _convert(value: Any, default: Any) -> tuple[bool, Any]:
    """``(ok, value)``: whether ``value`` has the type of ``default``, and the converted value."""
    if default is None:  # e.g. max_train = None: an optional value of any plain type
        return True, value
    if isinstance(default, bool):
        return isinstance(value, bool), value
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool), value
    if isinstance(default, float):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return ok, float(value) if ok else value
    if isinstance(default, str):
        return isinstance(value, str), value
    if isinstance(default, list | tuple):
        if not isinstance(value, list):
            return False, value
        kinds = {type(d) for d in default}
        if len(kinds) != 1 or not default:  # empty or mixed default: any list
            return True, value
        pairs = [_convert(v, default[0]) for v in value]
        return all(ok for ok, _ in pairs), [v for _, v in pairs]
    return True, value


def check_parameters(
    root: Path, chapter: str, values: dict[str, Any], origin: str
) -> dict[str, Any]:
    """Check ``values`` against the notebook's ``parameters`` cell; return them converted.

    Every name must be a parameter of the chapter, and every value must have the type of the
    parameter's default (see the module notes): a string for an int parameter (``-p
    seed=abc``) or a list that does not parse is refused before the notebook starts.

    Raises
    ------
    RunnerError
        Naming the origin (profile or command line), the chapter, the parameter, its default
        and the value received.
    """
    defaults = notebook_parameters(root / "notebooks" / f"{chapter}.ipynb")
    unknown = sorted(set(values) - set(defaults))
    if unknown:
        raise RunnerError(
            f"{origin} sets unknown parameter(s) {unknown} for chapter {chapter!r}; its parameters "
            f"are {sorted(defaults)}."
        )
    out = {}
    for name, value in values.items():
        ok, converted = _convert(value, defaults[name])
        if not ok:
            default = defaults[name]
            example = json.dumps(default) if not isinstance(default, str) else default
            raise RunnerError(
                f"{origin} sets {name}={value!r} ({_type_name(value)}) for chapter {chapter!r}, "
                f"but the parameter expects {_type_name(default)} like its default "
                f"{default!r}; e.g. -p '{name}={example}'."
            )
        out[name] = converted
    return out


def _coerce(value: Any) -> Any:
    """YAML 1.1 reads ``1e-4`` as a string; turn such numeric strings into floats."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    if isinstance(value, list):
        return [_coerce(v) for v in value]
    if isinstance(value, dict):
        return {k: _coerce(v) for k, v in value.items()}
    return value


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """Parse ``key=value`` strings; values are read as YAML (numbers, lists, strings).

    Raises
    ------
    RunnerError
        If an item is not ``name=value`` or its value is not valid YAML (the message names the
        argument).
    """
    out = {}
    for item in items:
        if "=" not in item or not item.split("=", 1)[0].strip():
            raise RunnerError(f"override {item!r} must look like name=value, e.g. lr=1e-4.")
        key, value = item.split("=", 1)
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise RunnerError(
                f"-p {item!r}: the value {value!r} is not valid YAML ({_yaml_problem(exc)}). "
                "Close brackets and quote the whole argument, e.g. -p 'widths=[16, 16]'."
            ) from exc
        out[key.strip()] = _coerce(parsed)
    return out


#: Replaced by :func:`_tidy` with the chapter's execution time (known only after the run).
_RUN_TIME = "@@run-time@@"
#: Parameters that set the statistical basis of a chapter, read generically from their names.
_BASIS = re.compile(r"(^|_)(points|seeds?|directions|boot|samples)$")


def _yaml_value(value: Any) -> str:
    """``value`` as ``-p name=value`` expects it (YAML flow style, one line)."""
    if isinstance(value, str):
        return value
    return (
        yaml.safe_dump(value, default_flow_style=True, width=10_000)
        .strip()
        .removesuffix("...")
        .strip()
    )


def _rerun_command(chapter: str, profile: str, overrides: dict[str, Any]) -> str:
    import shlex

    parts = ["lrbook", "run", chapter, "--profile", profile]
    for key, value in overrides.items():
        parts += ["-p", shlex.quote(f"{key}={_yaml_value(value)}")]
    return " ".join(parts)


def format_seconds(seconds: float | None) -> str:
    """A duration for people: ``"42 s"``, ``"3 min 07 s"``, ``"1 h 05 min"`` (``None``: unknown)."""
    if seconds is None:
        return "unknown"
    s = int(round(seconds))
    if s < 60:
        return f"{seconds:.0f} s" if seconds >= 1 else f"{seconds:.1f} s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m} min {s:02d} s"
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min"


def _parameter_table(
    profile: str,
    defaults: dict[str, Any],
    used: dict[str, Any],
    *,
    chapter: str = "CHAPTER",
    profile_values: dict[str, Any] | None = None,
) -> str:
    """The chapter's run box: profile, statistical basis, run time, exact rerun command, and
    every parameter (in a dropdown, collapsed by default).

    ``profile_values`` are the chapter's values from the profile file; a value of ``used``
    that is not among them came from the command line (``-p``) and appears in the rerun
    command. Without ``profile_values`` every value of ``used`` counts as the profile's.
    """
    from_profile = used if profile_values is None else profile_values
    overrides = {k: v for k, v in used.items() if k not in from_profile or from_profile[k] != v}
    rows = ["| parameter | value | from |", "|---|---|---|"]
    for key in defaults:
        value = used.get(key, defaults[key])
        origin = (
            "command line" if key in overrides else "profile" if key in used else "notebook default"
        )
        rows.append(f"| `{key}` | `{value!r}` | {origin} |")
    basis = [f"`{k}` = {used.get(k, defaults[k])!r}" for k in defaults if _BASIS.search(k)]
    lines = [
        f":::{{admonition}} This run: profile `{profile}`, executed in {_RUN_TIME}",
        ":class: note lrbook-run",
        "",
    ]
    if basis:
        lines.append("Behind this chapter's figures and tables: " + ", ".join(basis) + ".")
        lines.append("")
    lines += [
        "Rerun exactly this chapter (from the repository root):",
        "",
        "```bash",
        _rerun_command(chapter, profile, overrides),
        "```",
        "",
        "Add `-p name=value` to change a parameter (all of them are listed below) and `--html`"
        " to rebuild the pages.",
        ":::",
        "",
        f"::::{{admonition}} Parameters of this run (profile `{profile}`)",
        ":class: dropdown lrbook-params",
        "",
        *rows,
        "::::",
        "",
    ]
    return "\n".join(lines)


def _tidy(nb: nbformat.NotebookNode, table: str) -> nbformat.NotebookNode:
    """Hide papermill's parameter cells; put the run box (with the execution time papermill
    recorded) after the title cell."""
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if {"parameters", "injected-parameters"} & set(tags) and "remove-cell" not in tags:
            tags.append("remove-cell")
    duration = (nb.metadata.get("papermill") or {}).get("duration")
    table = table.replace(_RUN_TIME, format_seconds(duration))
    first_md = next((i for i, c in enumerate(nb.cells) if c.cell_type == "markdown"), -1)
    nb.cells.insert(first_md + 1, nbformat.v4.new_markdown_cell(table))
    return nb


def _profile_values(root: Path, profile: str, chapter: str) -> dict[str, Any] | None:
    """The chapter's values in ``params/<profile>.yaml`` (None if the profile cannot be read)."""
    try:
        return load_profile(root, profile).get(chapter, {})
    except RunnerError:
        return None


def _user_errors() -> set[str]:
    """Names of the lrtools errors (:class:`~lrtools.exceptions.LRToolsError` subclasses)."""
    from . import exceptions

    return {
        name
        for name, obj in vars(exceptions).items()
        if isinstance(obj, type) and issubclass(obj, exceptions.LRToolsError)
    }


def execute_chapter(
    root: Path, chapter: str, params: dict[str, Any], profile: str, *, log_output: bool = False
) -> Path:
    """Run ``notebooks/<chapter>.ipynb`` with papermill into ``book/chapters/<chapter>.ipynb``.

    The executed copy is written to a temporary file and moved into place only on success, so a
    failed run leaves the previous copy (or none) behind, never a half-executed notebook.
    """
    import papermill as pm

    src = root / "notebooks" / f"{chapter}.ipynb"
    if not src.exists():
        raise RunnerError(f"chapter {chapter!r} has no notebook {src}.")
    params = check_parameters(root, chapter, params, origin="the command line")
    dest_dir = root / CHAPTER_DIR
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / f"{chapter}.ipynb"
    fd, tmp = tempfile.mkstemp(dir=dest_dir, prefix=f".{chapter}.", suffix=".ipynb")
    os.close(fd)
    run_id = f"{time.time_ns()}-{os.getpid()}"  # the store records which entries this run used
    os.environ.update(LRBOOK_PROFILE=profile, LRBOOK_CHAPTER=chapter, LRBOOK_RUN_ID=run_id)
    try:
        try:
            pm.execute_notebook(
                str(src),
                tmp,
                parameters={**params, "profile": profile},
                cwd=str(root),
                kernel_name="python3",
                progress_bar=False,
                log_output=log_output,
            )
        except pm.PapermillExecutionError as exc:
            if exc.ename not in _user_errors():
                raise
            # lrtools' own errors are written for the reader (what, expected, fix): no traceback
            raise RunnerError(
                f"chapter {chapter!r} stopped in cell {exc.exec_count}: {exc.ename}: {exc.evalue}"
            ) from exc
        nb = nbformat.read(tmp, as_version=4)
        defaults = notebook_parameters(src)
        table = _parameter_table(
            profile,
            {k: v for k, v in defaults.items() if k != "profile"},
            params,
            chapter=chapter,
            profile_values=_profile_values(root, profile, chapter),
        )
        nbformat.write(_tidy(nb, table), tmp)
        os.replace(tmp, dest)
        _finish_store_run(profile, chapter, run_id)
    finally:
        Path(tmp).unlink(missing_ok=True)
        for key in ("LRBOOK_PROFILE", "LRBOOK_CHAPTER", "LRBOOK_RUN_ID"):
            os.environ.pop(key, None)
    return dest


def _finish_store_run(profile: str, chapter: str, run_id: str) -> None:
    """The chapter succeeded: its entries in the store are those this run used."""
    from .store import open_store, store_path

    if not store_path().exists():
        return
    with open_store() as st:
        st.finish_run(profile, chapter, run_id)


def build_book(root: Path, *, strict: bool = True) -> Path:
    """Run ``jupyter-book build`` on the root (``-W -n --keep-going`` when ``strict``)."""
    exe = Path(sys.executable).with_name("jupyter-book")
    cmd = [
        str(exe) if exe.exists() else "jupyter-book",
        "build",
        str(root),
        "--builder",
        "html",
        "--all",
    ]
    if strict:
        cmd += ["-W", "-n", "--keep-going"]
    proc = subprocess.run(cmd, cwd=root)
    if proc.returncode != 0:
        raise RunnerError(
            f"jupyter-book build failed (exit {proc.returncode}); the messages above name the "
            "page and the warning. Reports are in _build/html/reports."
        )
    return root / "_build" / "html" / "index.html"


#: Notebook kernels use one BLAS/OpenMP thread each: the analyses parallelise over points with
#: Dask worker processes (``lrtools.execution``), and oversubscribed threads were measured up to
#: 10x slower on 2 cores.
THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _single_threaded() -> None:
    for key, value in THREAD_ENV.items():
        os.environ.setdefault(key, value)


def _use_scheduler(root: Path, args: argparse.Namespace) -> None:
    """``--scheduler``, else ``$LRBOOK_SCHEDULER``, else the profile's ``scheduler``: the Dask
    cluster of the notebooks' per-point work (they read ``$LRBOOK_SCHEDULER``)."""
    address = args.scheduler or os.environ.get("LRBOOK_SCHEDULER")
    address = address or read_profile(root, args.profile).get("scheduler")
    if address:
        os.environ["LRBOOK_SCHEDULER"] = address
        print(f"[lrbook] per-point work on the Dask scheduler {address}", flush=True)


def computed_points_line(since: float) -> str:
    """The build's closing line: how many per-point results it computed (entries written to
    the result store since ``since``); a rebuild with unchanged parameters computes none."""
    from .store import open_store, store_path

    path = store_path()
    n = 0
    if path.exists():
        with open_store(path) as store:
            n = store.written_since(since)
    if n == 0:
        return "[lrbook] this build computed no point: every per-point result came from the store"
    return f"[lrbook] this build computed {n:,} per-point results (now in the store)"


def _cmd_build(args: argparse.Namespace) -> None:
    root = Path(args.root).resolve() if args.root else project_root()
    profile = load_profile(root, args.profile)
    _use_scheduler(root, args)
    t0, started = time.perf_counter(), time.time()
    for chapter, params in profile.items():
        t = time.perf_counter()
        print(f"[lrbook] executing {chapter} (profile {args.profile}) ...", flush=True)
        execute_chapter(root, chapter, params, args.profile, log_output=args.verbose)
        print(f"[lrbook] {chapter} done in {time.perf_counter() - t:.1f} s", flush=True)
    print(computed_points_line(started), flush=True)
    if not args.no_html:
        index = build_book(root)
        print(f"[lrbook] book built in {time.perf_counter() - t0:.1f} s: {index}")


def _cmd_run(args: argparse.Namespace) -> None:
    root = Path(args.root).resolve() if args.root else project_root()
    profile = load_profile(root, args.profile)
    if args.chapter not in profile:
        raise RunnerError(f"unknown chapter {args.chapter!r}; chapters are {list(profile)}.")
    params = {**profile[args.chapter], **parse_overrides(args.param)}
    _use_scheduler(root, args)
    dest = execute_chapter(root, args.chapter, params, args.profile, log_output=args.verbose)
    print(f"[lrbook] executed {dest}")
    if args.html:
        print(f"[lrbook] book: {build_book(root)}")


def _cmd_profiles(args: argparse.Namespace) -> None:
    """List the profiles that load; report the broken ones (and fail if there is any)."""
    root = Path(args.root).resolve() if args.root else project_root()
    broken = []
    for name in available_profiles(root):
        try:
            description = read_profile(root, name)["description"]
            load_profile(root, name)
        except RunnerError as exc:
            broken.append((name, str(exc)))
            continue
        print(f"{name}: {description}")
    print(f"chapters: {chapters(root)}")
    for name, why in broken:
        print(f"lrbook: broken profile {name!r}: {why}", file=sys.stderr)
    if broken:
        raise RunnerError(
            f"{len(broken)} profile(s) cannot be used: {[name for name, _ in broken]} (see above)."
        )


def _cmd_store(args: argparse.Namespace) -> None:
    """List the store per chapter, model and measurement; with --prune, delete what no
    profile's last successful chapter run used."""
    from .store import open_store, store_summary_text

    root = Path(args.root).resolve() if args.root else project_root()
    if args.prune:
        profiles = available_profiles(root)
        with open_store() as st:
            n = st.prune(profiles, dry_run=args.dry_run)
        verb = "would delete" if args.dry_run else "deleted"
        print(f"[lrbook] store: {verb} {n} entries that no run of {profiles} used")
    print(store_summary_text())


def _terminate(signum, frame) -> None:
    """SIGTERM handler: exit through ``finally`` blocks, so no temporary notebook is left."""
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``lrbook`` command."""
    parser = argparse.ArgumentParser(prog="lrbook", description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", help="repository root (default: found from the cwd)")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="execute every chapter with a profile, then build the HTML")
    b.add_argument("--profile", default="default")
    b.add_argument("--no-html", action="store_true", help="execute the notebooks only")
    b.add_argument("-v", "--verbose", action="store_true", help="stream notebook output")
    b.add_argument("--scheduler", metavar="ADDRESS", help="Dask scheduler for per-point work "
                   "(default $LRBOOK_SCHEDULER, the profile's 'scheduler', else a local cluster)")
    b.set_defaults(func=_cmd_build)
    r = sub.add_parser("run", help="execute one chapter, optionally with overrides")
    r.add_argument("chapter")
    r.add_argument("--profile", default="default")
    r.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE")
    r.add_argument("--html", action="store_true", help="rebuild the HTML afterwards")
    r.add_argument("-v", "--verbose", action="store_true")
    r.add_argument("--scheduler", metavar="ADDRESS", help="Dask scheduler for per-point work")
    r.set_defaults(func=_cmd_run)
    p = sub.add_parser("profiles", help="list parameter profiles and chapters")
    p.set_defaults(func=_cmd_profiles)
    st = sub.add_parser("store", help="list (or prune) the per-point result store")
    st.add_argument("--prune", action="store_true",
                    help="delete entries that no profile's last run of a chapter used")
    st.add_argument("--dry-run", action="store_true", help="with --prune: only count")
    st.set_defaults(func=_cmd_store)
    args = parser.parse_args(argv)
    _single_threaded()
    signal.signal(signal.SIGTERM, _terminate)  # clean up half-written notebooks on kill
    try:
        args.func(args)
    except RunnerError as exc:
        print(f"lrbook: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
