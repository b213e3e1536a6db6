"""Honest namespaces: every ``__all__`` entry exists, the notebooks import only public names,
no module imports another's private names, and every lrtools error is an LRToolsError."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import pkgutil
from pathlib import Path

import nbformat
import pytest

import lrtools
from lrtools import exceptions

ROOT = Path(__file__).resolve().parents[1]
MODULES = sorted(m.name for m in pkgutil.walk_packages(lrtools.__path__, "lrtools."))


@pytest.mark.parametrize("name", ["lrtools", *MODULES])
def test_every_name_in_all_exists(name):
    module = importlib.import_module(name)
    for entry in getattr(module, "__all__", []):
        assert hasattr(module, entry), f"{name}.__all__ lists {entry!r}, which it lacks"


def _imports(tree: ast.AST, package: str):
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module is not None:
            module = node.module
            if node.level:
                module = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]
                                  + [module])  # fmt: skip
            yield module, [a.name for a in node.names]


def test_notebooks_import_public_names_only():
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type != "code":
                continue
            for module, names in _imports(ast.parse(cell.source), ""):
                if not module.startswith("lrtools"):
                    continue
                mod = importlib.import_module(module)
                for n in names:
                    is_module = hasattr(mod, "__path__") and bool(
                        importlib.util.find_spec(f"{module}.{n}"))
                    assert is_module or n in getattr(mod, "__all__", []), (path.name, module, n)


def test_no_module_imports_another_modules_private_names():
    for name in MODULES:
        path = Path(importlib.import_module(name).__file__)
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for module, names in _imports(ast.parse(path.read_text()), package):
            if module.startswith("lrtools") and module != name:
                private = [n for n in names if n.startswith("_") and n != "__version__"]
                assert not private, f"{name} imports {private} from {module}"


def test_every_error_is_an_lrtools_error():
    for _, cls in inspect.getmembers(exceptions, inspect.isclass):
        if issubclass(cls, Exception) and not issubclass(cls, Warning):
            assert issubclass(cls, exceptions.LRToolsError), cls
    assert issubclass(exceptions.UnsupportedModelError, TypeError)
    assert issubclass(exceptions.InputShapeError, ValueError)
    assert issubclass(exceptions.DataFallbackWarning, UserWarning)
    from lrtools.runner import RunnerError

    assert RunnerError is exceptions.RunnerError
