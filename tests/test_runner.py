"""Runner: profiles are validated before any work; a smoke build produces the HTML book."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest

from lrtools import runner
from lrtools.runner import RunnerError, load_profile, main, parse_overrides

ROOT = Path(__file__).resolve().parents[1]


def test_every_profile_is_valid_for_every_chapter():
    for name in runner.available_profiles(ROOT):
        profile = load_profile(ROOT, name)
        assert set(profile) == set(runner.chapters(ROOT))


def test_chapters_come_from_the_toc_and_have_notebooks():
    chapters = runner.chapters(ROOT)
    assert "toy_spirals" in chapters
    for ch in chapters:
        assert (ROOT / "notebooks" / f"{ch}.ipynb").exists()


def test_notebook_sources_have_no_outputs_and_a_parameters_cell():
    for path in (ROOT / "notebooks").glob("*.ipynb"):
        nb = nbformat.read(path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(not c.outputs for c in code), f"{path.name} has committed outputs"
        assert "parameters" in code[0].metadata.get("tags", [])
        assert "profile" in runner.notebook_parameters(path)


def test_unknown_profile_lists_the_available_ones(capsys):
    assert main(["--root", str(ROOT), "build", "--profile", "nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown profile 'nope'" in err and "default" in err and "smoke" in err


def test_unknown_parameter_is_rejected_before_running(tmp_path, capsys):
    rc = main(
        ["--root", str(ROOT), "run", "toy_spirals", "--profile", "smoke", "-p", "learning_rate=0.1"]
    )
    assert rc == 2
    err = capsys.readouterr().err
    assert "unknown parameter(s) ['learning_rate']" in err and "'lr'" in err


def test_unknown_parameter_in_a_profile_file(tmp_path):
    root = _copy_book_sources(tmp_path)
    (root / "params" / "broken.yaml").write_text("notebooks:\n  toy_spirals:\n    widthz: [3]\n")
    with pytest.raises(RunnerError, match=r"unknown parameter\(s\) \['widthz'\]"):
        load_profile(root, "broken")
    (root / "params" / "broken.yaml").write_text("notebooks:\n  toy_spiral:\n    widths: [3]\n")
    with pytest.raises(RunnerError, match="unknown chapter 'toy_spiral'"):
        load_profile(root, "broken")


def test_unknown_chapter_and_malformed_override(capsys):
    assert main(["--root", str(ROOT), "run", "mnist_nope", "--profile", "smoke"]) == 2
    assert "unknown chapter 'mnist_nope'" in capsys.readouterr().err
    with pytest.raises(RunnerError, match="name=value"):
        parse_overrides(["lr"])
    assert parse_overrides(["lr=1e-4", "widths=[3, 4]", "variants=[bn]"]) == {
        "lr": 1e-4,
        "widths": [3, 4],
        "variants": ["bn"],
    }


def _copy_book_sources(tmp_path: Path) -> Path:
    root = tmp_path / "book-root"
    root.mkdir()
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(ROOT / name, root / name)
    for name in ("book", "notebooks", "params", "_static"):
        shutil.copytree(ROOT / name, root / name, ignore=shutil.ignore_patterns("chapters"))
    return root


# The smoke build itself (every chapter executed, the HTML built with -W, the pages checked) is
# in tests/test_book.py and tests/test_browser.py, which share one build.


def test_shared_parameters_apply_where_defined(tmp_path):
    root = _copy_book_sources(tmp_path)
    (root / "params" / "shared.yaml").write_text(
        "shared:\n  seed: 7\nnotebooks:\n  toy_spirals:\n    lr: 1e-2\n"
    )
    profile = load_profile(root, "shared")
    assert profile["toy_spirals"] == {"seed": 7, "lr": 0.01}
    (root / "params" / "shared.yaml").write_text("shared:\n  sead: 7\n")
    with pytest.raises(RunnerError, match=r"shared parameter\(s\) \['sead'\]"):
        load_profile(root, "shared")


def test_interrupted_run_leaves_no_temporary_notebook(tmp_path, monkeypatch):
    """A kill (SIGTERM becomes SystemExit) while papermill runs leaves book/chapters clean."""
    import signal

    import papermill

    root = _copy_book_sources(tmp_path)

    def killed(*args, **kwargs):
        runner._terminate(signal.SIGTERM, None)

    monkeypatch.setattr(papermill, "execute_notebook", killed)
    with pytest.raises(SystemExit) as exc:
        runner.execute_chapter(root, "toy_spirals", {}, "smoke")
    assert exc.value.code == 128 + signal.SIGTERM
    chapters = root / runner.CHAPTER_DIR
    assert list(chapters.iterdir()) == []  # neither the temporary file nor a partial result
