"""The chapter "Your network": a user's spec and state_dict run end to end through the runner,
and every bad input stops with a clear error before any training or measurement."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

from lrtools import runner
from lrtools.analyses.study import load_dataset
from lrtools.cache import cache_root
from lrtools.netspec import load_spec
from lrtools.runner import main

from .conftest import copy_book_sources

ROOT = Path(__file__).resolve().parents[1]
SPEC = """\
name: test net
input_shape: [1, 28, 28]
layers:
  - flatten
  - linear: 6
  - relu
  - linear: 5
  - relu
  - linear: 10
"""


def _root(tmp_path: Path) -> Path:
    """A copy of the book's sources (no executed chapters) to run the runner in."""
    return copy_book_sources(tmp_path / "book-root")


def _outputs(nb) -> str:
    out = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            if o.get("output_type") == "error":
                out.append(f"ERROR {o.get('ename')}: {o.get('evalue')}")
            data = o.get("data") or {}
            out.append(
                o.get("text", "")
                + "".join(
                    str(data.get(k, "")) for k in ("text/plain", "text/markdown", "text/html")
                )
            )
    return "\n".join(out)


def _run(root: Path, *params: str) -> int:
    args = ["--root", str(root), "run", "your_network", "--profile", "smoke"]
    for p in params:
        args += ["-p", p]
    return main(args)


def test_chapter_is_in_the_book_and_every_profile():
    assert "your_network" in runner.chapters(ROOT)
    for name in runner.available_profiles(ROOT):
        assert "your_network" in runner.read_profile(ROOT, name)["notebooks"]
    defaults = runner.notebook_parameters(ROOT / "notebooks" / "your_network.ipynb")
    assert load_spec(ROOT / defaults["spec"]).input_shape == (1, 28, 28)
    assert defaults["weights"] is None and defaults["dataset"] == "mnist"


def test_a_users_spec_and_state_dict_run_end_to_end(tmp_path):
    root = _root(tmp_path)
    spec_path = tmp_path / "my_net.yaml"
    spec_path.write_text(SPEC)
    spec = load_spec(spec_path)
    model = spec.build(seed=4)
    with torch.no_grad():  # weights that are not the initialisation of any seed used here
        for p in model.parameters():
            p.mul_(1.7).add_(0.05)
    weights = tmp_path / "my_net.pt"
    torch.save(model.state_dict(), weights)
    data = load_dataset("mnist")
    with torch.no_grad():
        pred = model(torch.as_tensor(data.X_test)).argmax(1).numpy()
    expected = 100 * float(np.mean(pred == data.y_test))

    assert _run(root, f"spec={spec_path}", f"weights={weights}", "n_points=1",
                "decision_points=1", "n_directions=3") == 0  # fmt: skip
    nb = nbformat.read(root / "book" / "chapters" / "your_network.ipynb", as_version=4)
    text = _outputs(nb)
    assert "ERROR" not in text and "Traceback" not in text
    # the page's accuracy is that of the user's weights: they were loaded, not retrained
    shown = re.search(r"Test accuracy on ([\d,]+) test inputs: \*\*([\d.]+)%\*\*", text)
    assert shown and int(shown.group(1).replace(",", "")) == len(data.X_test)
    assert float(shown.group(2)) == pytest.approx(expected, abs=0.005)
    assert "weights `.../my_net.pt`" in text
    assert str(tmp_path) not in text and str(ROOT) not in text  # no local path on the page
    assert not (cache_root() / "models").exists()  # nothing was trained
    for needle in ("Inradius per region kind", "Redundant hyperplanes", "Classes reached",
                   "Surrounding regions", "linear: 6"):  # fmt: skip
        assert needle in text, needle
    box = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    command = re.search(r"lrbook run your_network --profile smoke[^\n]*", box)
    assert command and f"-p spec={spec_path}" in command.group(0)
    assert f"-p weights={weights}" in command.group(0)


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda tmp: ["spec_inline={input_shape: [1, 28, 28], layers: [flatten, {maxpool2d: 2}, "
                      "{linear: 10}]}"],
         ["SpecError", "'maxpool2d' is not a layer", "linear, conv2d"]),
        (lambda tmp: [f"spec={tmp / 'missing.yaml'}"], ["SpecError", "does not exist"]),
        (lambda tmp: ["spec_inline={input_shape: [2], layers: [{linear: 8}, relu, {linear: 10}]}"],
         ["SpecError", "input_shape (2,) does not fit", "(1, 28, 28)"]),
    ],
)  # fmt: skip
def test_bad_specs_stop_before_any_work(tmp_path, capsys, make, words):
    root = _root(tmp_path)
    assert _run(root, *make(tmp_path)) == 2
    err = capsys.readouterr().err
    for w in words:
        assert w in err, (w, err)
    assert "Traceback" not in err
    assert not (cache_root() / "models").exists()  # no training started
    assert not (root / "book" / "chapters" / "your_network.ipynb").exists()


class _Evil:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.mkdir, (self.marker,))


def test_bad_weights_stop_before_any_work(tmp_path, capsys):
    root = _root(tmp_path)
    spec_path = tmp_path / "my_net.yaml"
    spec_path.write_text(SPEC)
    marker = tmp_path / "unpickled"
    evil = tmp_path / "evil.pt"
    torch.save({"0.weight": _Evil(str(marker))}, evil)
    assert _run(root, f"spec={spec_path}", f"weights={evil}") == 2
    err = capsys.readouterr().err
    assert "SpecError" in err and "not a plain state_dict" in err and "never unpickles" in err
    assert not marker.exists()
    wrong = tmp_path / "wrong.pt"
    torch.save(load_spec(SPEC.replace("linear: 5", "linear: 7")).build().state_dict(), wrong)
    assert _run(root, f"spec={spec_path}", f"weights={wrong}") == 2
    err = capsys.readouterr().err
    assert "'3.weight': expected (5, 6), got (7, 6)" in err
    assert not (cache_root() / "models").exists()


def test_an_inline_spec_is_trained_on_the_chosen_data_set(tmp_path):
    root = _root(tmp_path)
    inline = (
        "spec_inline={input_shape: [2], layers: [{linear: 8}, relu, {linear: 8}, relu, "
        "{linear: 2}]}"
    )
    assert _run(root, inline, "dataset=spirals", "n_points=2", "decision_points=1") == 0
    nb = nbformat.read(root / "book" / "chapters" / "your_network.ipynb", as_version=4)
    text = _outputs(nb)
    assert "ERROR" not in text and "trained here for" in text
    assert len(list((cache_root() / "models").glob("*.pt"))) == 1  # the spec was trained, cached
    # 2 inputs, 2 logits: the logit Jacobian has no null space, and the page says so
    assert "No surrounding regions: with 2 input dimensions and 2 logits" in text
    assert "Inradius per region kind" in text and "Classes reached" in text
