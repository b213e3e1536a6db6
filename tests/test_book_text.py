"""The book's computed text: data notes, gap notes, tables, the run box, the build fragments.

Every sentence a page shows about a run must come from the run: these tests build notes from
real and stand-in data sets and from fake training histories, and check the numbers in them.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import re
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import nbformat
import numpy as np
import pandas as pd
import pytest

from lrtools import booksite, report, runner
from lrtools.datasets.base import Dataset
from lrtools.datasets.mnist import MNIST_FILES, load_mnist, mnist_standin

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist-t10k"


def _models(n_images: int, epochs: int, k: int = 3):
    """Stand-ins for TrainedModel: only the history matters to the notes."""
    hist = pd.DataFrame({"epoch": range(1, epochs + 1), "n_images": [n_images] * epochs})
    return {(f"m{i}", 1e-3): SimpleNamespace(history=hist) for i in range(k)}


def _real_mnist(tmp_path: Path, n_train: int, monkeypatch) -> Dataset:
    """Real MNIST files: the shared t10k set as the test split, its first images as 'train'.

    The loader checks each plain file's count and digest against the canonical training set,
    which is not on this machine, so the two train entries of ``MNIST_FILES`` are replaced by
    the count and digest of the truncated files written here; the test files are the real,
    verified ones, byte for byte.
    """
    folder = tmp_path / "mnist"
    folder.mkdir()
    files = dict(MNIST_FILES)
    for key, spec in MNIST_FILES.items():
        if key.startswith("test"):
            (folder / spec.name).write_bytes((SHARED / spec.name).read_bytes())
            continue
        raw = gzip.open(SHARED / spec.name.replace("train", "t10k")).read()
        head, size = (16, 784) if spec.images else (8, 1)
        blob = bytearray(raw[:head] + raw[head : head + n_train * size])
        blob[4:8] = n_train.to_bytes(4, "big")  # IDX header: number of items
        (folder / spec.name.removesuffix(".gz")).write_bytes(bytes(blob))
        files[key] = replace(spec, count=n_train, raw_md5=hashlib.md5(bytes(blob)).hexdigest())
    monkeypatch.setattr("lrtools.datasets.mnist.MNIST_FILES", files)
    return load_mnist(folder, download=False, allow_standin=False)


@pytest.mark.skipif(not SHARED.exists(), reason="shared MNIST test set not present")
def test_real_data_note_counts_what_the_run_used(tmp_path, monkeypatch):
    data = _real_mnist(tmp_path, n_train=1200, monkeypatch=monkeypatch)
    assert not data.standin and len(data.X_test) == 10_000 and len(data.X_train) == 1200
    text = report.data_notice(data, _models(1080, 4), record=False).data
    assert text.startswith(":::{admonition} Data\n:class: note") and "real data set" in text
    assert "1,200 training-split and 10,000 test images" in text
    assert "gradient steps on 1,080 training images per epoch for 4 epochs" in text
    assert "full 60,000-image training set" in text  # the paper's size, next to ours
    assert str(tmp_path) not in text and "/" not in re.sub(r"`[^`]*`", "", text).replace(
        "/epoch", ""
    )
    reasons = report.likely_reasons(data, _models(1080, 4), max_epochs=4, n_points=15)
    assert any("1,080 training images per epoch, the paper's 60,000" in r for r in reasons)
    assert any("3 of 3 models stopped at the epoch budget" in r for r in reasons)
    assert any("15 test point(s) per model where the paper uses 1,000" in r for r in reasons)


def test_standin_note_says_it_once_and_why():
    data = mnist_standin(n_shifts=1)
    object.__setattr__(data, "fallback_reason", "train-images-idx3-ubyte.gz is missing")
    text = report.data_notice(data, _models(500, 2), record=False).data
    assert text.startswith(":::{admonition} Offline stand-in data\n:class: warning")
    assert text.lower().count("comparable") + text.count("not the paper's") == 1
    assert "Why: train-images-idx3-ubyte.gz is missing" in text
    assert f"{len(data.X_train):,} training-split and {len(data.X_test):,} test" in text
    assert "500 training images per epoch for 2 epochs" in text
    assert "60,000" not in text  # a stand-in is not compared with the real set's size


def test_absolute_paths_never_reach_a_page():
    data = Dataset(
        "mnist",
        np.zeros((4, 1, 2, 2), np.float32),
        np.zeros(4, np.int64),
        np.zeros((2, 1, 2, 2), np.float32),
        np.zeros(2, np.int64),
        ("0", "1"),
        source="MNIST (LeCun et al.), from /home/someone/lrbook/data/mnist.",
    )
    text = report.data_notice(data, record=False).data
    assert "/home" not in text and "MNIST (LeCun et al.)" in text


def test_gap_note_within_and_beyond_tolerance():
    same = report.gap_note("Table 1", {"a": 97.6, "b": 98.0}, {"a": 97.8, "b": 98.3}, tol=1.0)
    assert "within 1 of the paper's" in same.data
    off = report.gap_note(
        "Table 2",
        {"a": 3.0, "b": 1.1},
        {"a": 1.0, "b": 1.0},
        tol=0.5,
        se={"a": 0.5},
        reasons=["2 test point(s) per model"],
    )
    assert "differs from the paper" in off.data and "1 of 2 values" in off.data
    assert "a: 3 vs 1 (4.0 standard errors)" in off.data
    assert "Likely reasons: 2 test point(s) per model." in off.data


def test_numbers_and_headers_for_people():
    assert report.fmt_number(28.14534813099999) == "28.1"
    assert report.fmt_number(12512) == "12,512"
    assert report.fmt_number(0.000123456) == "1.23e-04"
    assert report.fmt_number(float("nan")) == "–"
    df = pd.DataFrame({"share_on_boundary": [1.0, np.nan], "n_reached": [1.25, 2.0]})
    html = report.show_table(df, "Appendix D", na_note="not measured").to_html()
    assert "share of x^t on a face" in html and "share_on_boundary" not in html
    assert "– : not measured" in html and "nan" not in html


def test_publish_emits_an_invisible_result(monkeypatch):
    shown = []
    monkeypatch.setattr(report, "display", lambda obj, raw=False: shown.append((obj, raw)))
    report.publish("x", pd.DataFrame({"a": [1.5, np.nan]}))
    ((obj, raw),) = shown
    assert raw and obj[report.RESULTS_MIME] == {"key": "x", "value": [{"a": 1.5}, {"a": None}]}
    with pytest.raises(ValueError, match="columns"):
        report.publish_scorecard(pd.DataFrame({"claim": ["c"]}), section="s")


def test_run_box_has_basis_time_and_exact_rerun_command():
    defaults = {"n_points": 20, "seed": 0, "lr": 1e-3, "widths": [8]}
    box = runner._parameter_table(
        "smoke",
        defaults,
        {"n_points": 2, "lr": 1e-4, "widths": [16, 16]},
        chapter="mnist_inspheres",
        profile_values={"n_points": 2},
    )
    assert "`n_points` = 2" in box and "`seed` = 0" in box
    assert "lrbook run mnist_inspheres --profile smoke -p lr=0.0001 -p 'widths=[16, 16]'" in box
    assert ":class: dropdown" in box  # the parameter table is collapsed by default
    assert "| `lr` | `0.0001` | command line |" in box and "| `n_points` | `2` | profile |" in box
    assert runner.parse_overrides(["lr=0.0001", "widths=[16, 16]"]) == {
        "lr": 1e-4,
        "widths": [16, 16],
    }
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Title")])
    nb.metadata["papermill"] = {"duration": 125.4}
    tidy = runner._tidy(nb, box)
    assert "executed in 2 min 05 s" in tidy.cells[1].source


def _executed(root: Path, name: str, outputs: list, markdown: str = "# Chapter\n") -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["papermill"] = {"duration": 12.0, "parameters": {"profile": "smoke", "n_points": 2}}
    nb.cells = [nbformat.v4.new_markdown_cell(markdown), nbformat.v4.new_code_cell("")]
    nb.cells[1].outputs = outputs
    path = root / "book" / "chapters" / f"{name}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


def _result(key, value):
    return nbformat.v4.new_output(
        "display_data", data={report.RESULTS_MIME: {"key": key, "value": value}}
    )


def test_build_fragments_come_from_the_executed_chapters(tmp_path):
    (tmp_path / "_toc.yml").write_text(
        "root: book/intro\nchapters:\n- file: book/chapters/toy_spirals\n"
        "- file: book/chapters/mnist_decision\n"
    )
    png = base64.b64encode(b"\x89PNG fake").decode()
    glued = nbformat.v4.new_output(
        "display_data",
        data={"application/papermill.record/image/png": png},
        metadata={
            "scrapbook": {"name": "toy-fig8", "mime_prefix": "application/papermill.record/"}
        },
    )
    card = [
        {
            "claim": "BN has more regions",
            "our value": "12",
            "paper value": "more",
            "verdict": "agrees",
        },
        {
            "claim": "dropout concentrates",
            "our value": "0.9",
            "paper value": "yes",
            "verdict": "does not agree",
        },
        {  # the claims catalogue's form: compared values, tested difference, interval
            "claim": "BN gives smaller regions",
            "values": "BN 0.01 vs vanilla 0.02",
            "our value": "-0.3",
            "CI": "[-0.5, -0.1]",
            "paper value": "BN smallest",
            "verdict": "reproduced",
        },
    ]
    _executed(
        tmp_path,
        "toy_spirals",
        [
            glued,
            _result("scorecard", {"section": "Toy", "rows": card}),
            _result("figure:fig-toy-8", {"basis": "every region, seed 0"}),
            _result(
                "data",
                {"name": "two spirals", "standin": False, "n_test": 100, "images_per_epoch": [270]},
            ),
        ],
        markdown="# Toy spirals\n\n```{glue:figure} toy-fig8\n:name: fig-toy-8\n\ncap\n```\n",
    )
    _executed(
        tmp_path,
        "mnist_decision",
        [
            _result(
                "appendix_d",
                [
                    {"model": "BN", "on_face": 1.0, "solves": 20},
                    {"model": "Vanilla", "on_face": 0.5, "solves": 20},
                ],
            )
        ],
    )
    paths = booksite.write_fragments(tmp_path)
    summary = paths["summary.md"].read_text()
    assert "| [Toy](chapters/toy_spirals) | BN has more regions | 12 | more | ✓ agrees |" in summary
    assert (
        "| BN 0.01 vs vanilla 0.02 (difference -0.3 [-0.5, -0.1]) | BN smallest | ✓ reproduced"
        in (summary)
    )
    assert "3 claims tested; 1 agrees, 1 does not agree, 1 reproduced" in summary
    index = paths["figure_index.md"].read_text()
    assert "{ref}`linear and classification regions of the toy models <fig-toy-8>`" in index
    assert "every region, seed 0" in index and "`smoke`" in index
    assert (tmp_path / "book" / "_generated" / "thumbs" / "fig-toy-8.png").read_bytes() == (
        b"\x89PNG fake"
    )
    assert ":link: fig-toy-8" in paths["gallery.md"].read_text()
    runs = paths["runs.md"].read_text()
    assert "profile `smoke`" in runs and "two spirals (real), trained on 270 images/epoch" in runs
    d = paths["appendix_d.md"].read_text()
    assert "30 of 40 solves (75.0%)" in d and "BN: 100% of 20" in d


def test_fragments_without_chapters_say_so(tmp_path):
    (tmp_path / "_toc.yml").write_text("root: book/intro\n")
    paths = booksite.write_fragments(tmp_path)
    assert "No chapter of this build has published" in paths["summary.md"].read_text()
    assert "Not measured in this build" in paths["appendix_d.md"].read_text()
