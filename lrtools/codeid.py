"""Code identity of a measuring (or training) function: a hash of the code it can run.

:func:`code_identity` is part of the key of every stored per-point result
(:mod:`lrtools.store`) and of every trained model (:func:`lrtools.training.fit`), so that a
change to that code recomputes instead of returning a stale result. This module imports no
other ``lrtools`` module than :mod:`lrtools.exceptions`, so editing the store or the training
code does not change the identity of unrelated measurements.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import sys
from collections.abc import Callable
from functools import cache
from importlib import metadata
from pathlib import Path

from .exceptions import LRToolsError

__all__ = ["CodeIdentityError", "code_identity", "NUMERIC_DEPENDENCIES"]

#: Distributions whose version is part of every code identity (they compute the numbers).
NUMERIC_DEPENDENCIES = ("numpy", "scipy", "torch", "pandas", "cvxpy", "clarabel", "highspy")

_PACKAGE = "lrtools"


class CodeIdentityError(LRToolsError, TypeError):
    """A function's code cannot be tracked (defined in a script or without source)."""


def _module_file(name: str, packages: tuple[str, ...] = (_PACKAGE,)) -> Path | None:
    """Source file of module ``name`` of one of ``packages`` (None if it is not in them)."""
    if not any(name == p or name.startswith(p + ".") for p in packages):
        return None
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        return None
    return Path(spec.origin)


def _parents(name: str) -> list[str]:
    """The packages whose ``__init__`` runs when ``name`` is imported."""
    parts = name.split(".")
    return [".".join(parts[:k]) for k in range(1, len(parts))]


def _imports(name: str, path: Path, packages: tuple[str, ...]) -> set[str]:
    """Every module of ``packages`` that the source of module ``name`` imports, anywhere."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_pkg = path.name == "__init__.py"
    here = name if is_pkg else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                prefix = ".".join(base)
                mod = f"{prefix}.{node.module}" if node.module else prefix
            else:
                mod = node.module or ""
            found.add(mod)
            found.update(f"{mod}.{a.name}" for a in node.names)  # submodules imported by name
    return {m for m in found if _module_file(m, packages) is not None}


def _packages(name: str) -> tuple[str, ...]:
    return tuple(sorted({_PACKAGE, name.split(".")[0]}))


@cache
def _closure(name: str) -> tuple[tuple[str, str], ...]:
    """``(module, sha256 of its source)`` for ``name`` and its transitive imports of lrtools
    (and of ``name``'s own top-level package)."""
    packages = _packages(name)
    seen: dict[str, str] = {}
    todo = [name]
    while todo:
        mod = todo.pop()
        if mod in seen:
            continue
        path = _module_file(mod, packages)
        if path is None:
            continue
        seen[mod] = hashlib.sha256(path.read_bytes()).hexdigest()
        for parent in _parents(mod):  # their source (not their re-exports: see code_identity)
            ppath = _module_file(parent, packages)
            if ppath is not None and parent not in seen:
                seen[parent] = hashlib.sha256(ppath.read_bytes()).hexdigest()
        todo.extend(_imports(mod, path, packages))
    return tuple(sorted(seen.items()))


def _versions() -> dict[str, str]:
    out = {"python": ".".join(map(str, sys.version_info[:3]))}
    for dist in NUMERIC_DEPENDENCIES:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "absent"
    return out


def code_identity(func: Callable) -> str:
    """Identity of the code a measuring function runs: 16 hex digits.

    The SHA-256 of the function's qualified name, the source files of its module and of every
    ``lrtools`` module reachable from it through imports (module- or function-level,
    absolute or relative), the source of the ``__init__`` of every package on the way, the
    Python version and the versions of :data:`NUMERIC_DEPENDENCIES`.

    The imports of a package ``__init__`` that is only the parent of an imported module are
    not followed: they re-export names, and a function the measurement calls is reached
    through the import of the module that calls it (the project's modules have no
    import-time side effects). A package imported by name (``from lrtools import walk``,
    ``from . import x``) has its ``__init__``'s imports followed, so that path is covered.

    Parameters
    ----------
    func : callable
        A module-level function of a source module (of ``lrtools``, or of another package:
        then that package's modules are followed as well as ``lrtools``'s).

    Returns
    -------
    str

    Raises
    ------
    CodeIdentityError
        If ``func`` is not defined in a source module of ``lrtools`` (its code could change
        without the identity noticing).
    """
    name = getattr(func, "__module__", None) or ""
    if name in ("", "__main__") or _module_file(name, _packages(name)) is None:
        raise CodeIdentityError(
            f"{func!r} is defined in {name or 'no module'!r}, not in an importable source "
            "module: its code identity cannot be tracked, so its results cannot be stored. "
            f"Move the measuring function into a module (of {_PACKAGE}, or of your package)."
        )
    blob = json.dumps(
        {"func": func.__qualname__, "modules": _closure(name), "versions": _versions()},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


