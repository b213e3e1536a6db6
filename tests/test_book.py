"""The smoke book end to end: papermill executes every chapter, jupyter-book builds with -W, and
the pages say what a reader needs - equations, computed notes, no log noise, no local paths."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest

import lrtools
from lrtools.runner import main

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("smoke_book")]

#: A tqdm frame: "training:  50%|#####     | 1/2 [00:01<00:01, 1.2it/s]", or its rate tail.
TQDM = re.compile(r"\d+%\|[^\n]*\|\s*\d+/\d+|\d+(?:\.\d+)?(?:it/s|s/it)\]|\[\d\d:\d\d<")


def _outputs_text(nb) -> list[tuple[int, str]]:
    out = []
    for i, cell in enumerate(nb.cells):
        for o in cell.get("outputs", []):
            if o.get("output_type") == "error":
                out.append((i, "Traceback " + o.get("ename", "")))
            text = o.get("text", "")
            data = o.get("data") or {}
            text += "".join(str(data.get(k, "")) for k in ("text/plain", "text/markdown"))
            out.append((i, text))
    return out


def test_smoke_build_produces_the_book(smoke_book):
    root, _ = smoke_book
    html = root / "_build" / "html"
    assert (html / "index.html").exists()
    page = (html / "book" / "chapters" / "toy_spirals.html").read_text()
    text = re.sub(r"<[^>]+>", "", page)  # code blocks are split into highlighted spans
    assert "lrbook run toy_spirals --profile smoke" in text  # the exact rerun command
    for needle in (
        "Fig. 7",
        "Fig. 8",
        "Parameters of this run",
        "profile <code",
        "test accuracy, paper",
        "inradius",
        "What you will see",
    ):
        assert needle in page, needle
    assert page.count("<img") >= 3
    assert "lrbook.css" in page  # hides Sphinx's "Fig. N"; captions carry the paper's numbers
    cifar = (html / "book" / "chapters" / "cifar_decision.html").read_text()
    for needle in ("Table 4", "Fig. 11", "7.811", "automobile", "Small sample"):
        assert needle in cifar, needle
    executed = nbformat.read(root / "book" / "chapters" / "toy_spirals.ipynb", as_version=4)
    hidden = [
        c
        for c in executed.cells
        if {"parameters", "injected-parameters"} & set(c.metadata.get("tags", []))
    ]
    assert hidden and all("remove-cell" in c.metadata["tags"] for c in hidden)


def test_executed_notebooks_have_no_tracebacks_raw_dicts_or_long_floats(smoke_book):
    root, _ = smoke_book
    for path in sorted((root / "book" / "chapters").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for i, text in _outputs_text(nb):
            assert "Traceback" not in text, f"{path.name} cell {i} has a traceback"
            assert not re.search(r"\{'[A-Z][\w-]*': ", text), f"{path.name} cell {i}: raw dict"
            assert not re.search(r"\d\.\d{9,}", text), f"{path.name} cell {i}: long float"


def test_executed_notebooks_have_no_progress_bars(smoke_book):
    """Progress goes to the runner's terminal (lrtools.progress), never into a cell output."""
    pytest.importorskip(
        "lrtools.progress", reason="lrtools.progress (issue 10) sends the bars to the terminal"
    )
    root, _ = smoke_book
    for path in sorted((root / "book" / "chapters").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for i, text in _outputs_text(nb):
            assert not TQDM.search(text), f"{path.name} cell {i} has a progress bar: {text[:200]!r}"


def test_every_equation_is_written_out_and_linked_from_a_chapter(smoke_book):
    root, _ = smoke_book
    html = root / "_build" / "html" / "book"
    theory = (html / "theory.html").read_text()
    numbers = re.findall(r'id="equation-eq-(\d+)"', theory)
    assert [int(n) for n in numbers] == list(range(1, 22))
    linked = set()
    for page in (html / "chapters").glob("*.html"):
        linked |= {int(n) for n in re.findall(r"theory\.html#equation-eq-(\d+)", page.read_text())}
    assert set(range(1, 19)) <= linked, sorted(set(range(1, 19)) - linked)
    assert "Proposition 1" in theory and "What this build measured" in theory
    assert re.search(r"lies on a face of its region in \d+ of \d+ solves", theory)


def test_pages_carry_computed_notes_and_no_local_paths(smoke_book):
    root, _ = smoke_book
    html = root / "_build" / "html"
    models = nbformat.read(root / "book" / "chapters" / "mnist_models.ipynb", as_version=4)
    seen = {
        int(m)
        for _, t in _outputs_text(models)
        for m in re.findall(r"gradient steps on ([\d,]+)", t.replace(",", ""))
    }
    assert seen, "the data note names the training images the models saw"
    landing = (html / "index.html").read_text() + (html / "book" / "intro.html").read_text()
    assert "Toy spirals (Appendix A)" in landing and "<code class" in landing
    assert "smoke" in landing and "Results at a glance" in landing
    index = (html / "book" / "figures.html").read_text()
    order = [index.find(f"Fig. {k}<") for k in (1, 2, 3, 4, 5, 6)]
    assert all(p > 0 for p in order) and order == sorted(order), order
    package_root = str(Path(lrtools.__file__).resolve().parents[1])  # a warning's file path
    for page in html.rglob("*.html"):
        text = page.read_text()
        assert str(root) not in text, f"{page.name} shows a local path"
        assert package_root not in text, f"{page.name} shows the package's local path"
        assert "/tmp/" not in re.sub(r"<script.*?</script>", "", text, flags=re.S), page.name


def test_rebuild_with_the_same_parameters_loads_from_the_cache(smoke_book, monkeypatch, capsys):
    root, env = smoke_book
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert main(["--root", str(root), "build", "--profile", "smoke", "--no-html"]) == 0
    out = capsys.readouterr().out
    assert "this build computed no point" in out, out[-2000:]
    again = nbformat.read(root / "book" / "chapters" / "toy_spirals.ipynb", as_version=4)
    text = "".join(json.dumps(o) for c in again.cells if c.cell_type == "code" for o in c.outputs)
    assert "yes" in text or "True" in text  # "loaded from cache" column
