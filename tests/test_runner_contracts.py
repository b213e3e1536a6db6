"""Runner contracts: YAML errors in ``-p`` or a profile, malformed profiles and parameter values
of the wrong type are RunnerErrors naming the file or argument, raised before any notebook
starts; ``lrbook profiles`` lists the good profiles and reports the broken ones."""

from __future__ import annotations

import shutil
from pathlib import Path

import papermill
import pytest

from lrtools import runner
from lrtools.exceptions import LRToolsError
from lrtools.runner import RunnerError, check_parameters, load_profile, main, parse_overrides

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def root(tmp_path) -> Path:
    """A copy of the book's sources (profiles can be broken without touching the checkout)."""
    out = tmp_path / "book-root"
    out.mkdir()
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(ROOT / name, out / name)
    for name in ("notebooks", "params"):
        shutil.copytree(ROOT / name, out / name)
    return out


@pytest.fixture
def no_execution(monkeypatch):
    """Fail the test if a notebook would start; record the parameters it would get."""
    calls = []

    def execute(src, dest, *, parameters, **kwargs):
        calls.append(parameters)
        raise AssertionError(f"{src} was started")

    monkeypatch.setattr(papermill, "execute_notebook", execute)
    return calls


def test_runner_error_is_an_lrtools_error():
    assert issubclass(RunnerError, LRToolsError)


def test_invalid_yaml_in_an_override_names_the_argument(capsys, no_execution):
    match = r"-p 'widths=\[16, 16': the value '\[16, 16' is not valid YAML"
    with pytest.raises(RunnerError, match=match):
        parse_overrides(["widths=[16, 16"])
    rc = main(["--root", str(ROOT), "run", "toy_spirals", "--profile", "smoke",
               "-p", "widths=[16, 16"])  # fmt: skip
    assert rc == 2 and "is not valid YAML" in capsys.readouterr().err and not no_execution
    with pytest.raises(RunnerError, match="name=value"):
        parse_overrides(["=3"])


@pytest.mark.parametrize(
    "override, match",
    [
        ("lr=abc", r"sets lr='abc' \(a string\).*expects a number like its default 0.001"),
        ("seed=1.5", r"seed=1.5 \(a number\).*expects an int"),
        ("widths=16", r"widths=16 \(an int\).*expects a list of ints"),
        ("widths=[16, 1.5]", "expects a list of ints"),
        ("variants=bn", r"variants='bn' \(a string\).*expects a list of strings"),
        ("insphere_method=1", "expects a string like its default 'auto'"),
    ],
)
def test_parameter_values_are_type_checked_before_the_notebook_starts(
    override, match, capsys, no_execution
):
    rc = main(["--root", str(ROOT), "run", "toy_spirals", "--profile", "smoke", "-p", override])
    err = capsys.readouterr().err
    assert rc == 2 and not no_execution
    assert "the command line" in err and "toy_spirals" in err
    with pytest.raises(RunnerError, match=match):
        check_parameters(ROOT, "toy_spirals", parse_overrides([override]), "the command line")


def test_good_values_are_converted_to_the_defaults_type():
    values = parse_overrides(["lr=1", "widths=[16, 16]", "turns=2", "seed=3"])
    checked = check_parameters(ROOT, "toy_spirals", values, "the command line")
    assert checked == {"lr": 1.0, "widths": [16, 16], "turns": 2.0, "seed": 3}
    assert isinstance(checked["lr"], float) and isinstance(checked["seed"], int)
    # an optional parameter (default None) takes a value of any plain type
    assert check_parameters(ROOT, "mnist_models", {"max_train": 500}, "x") == {"max_train": 500}


@pytest.mark.parametrize(
    "text, match",
    [
        ("notebooks:\n  toy_spirals: {lr: [0.1\n", "broken.yaml is not valid YAML"),
        ("- toy_spirals\n- mnist_models\n", "must be a mapping with the keys.*it is a YAML list"),
        ("notebook:\n  toy_spirals: {lr: 0.1}\n", r"unknown key\(s\) \['notebook'\]"),
        ("notebooks:\n  toy_spirals: [lr, 0.1]\n", "'notebooks: toy_spirals'.*must be a mapping"),
        ("shared: 3\n", "'shared' in profile .*must be a mapping"),
        ("shared:\n  seed: seven\n", r"profile 'broken' sets seed='seven'.*expects an int"),
        ("notebooks:\n  toy_spirals: {lr: fast}\n", "profile 'broken' sets lr='fast'"),
    ],
)
def test_malformed_profiles_are_named(root, text, match):
    (root / "params" / "broken.yaml").write_text(text)
    with pytest.raises(RunnerError, match=match):
        load_profile(root, "broken")


def test_profiles_lists_the_good_ones_and_reports_the_broken(root, capsys):
    (root / "params" / "broken.yaml").write_text("- not a mapping\n")
    (root / "params" / "typo.yaml").write_text("notebooks:\n  toy_spirals: {seed: 0.5}\n")
    assert main(["--root", str(root), "profiles"]) == 2
    out, err = capsys.readouterr()
    for name in ("default", "paper", "smoke"):
        assert f"{name}: " in out
    assert "broken:" not in out and "typo:" not in out and "chapters:" in out
    assert "broken profile 'broken'" in err and "YAML list" in err
    assert "broken profile 'typo'" in err and "expects an int" in err
    assert "2 profile(s) cannot be used" in err
    # with the broken ones gone, the listing succeeds
    (root / "params" / "broken.yaml").unlink()
    (root / "params" / "typo.yaml").unlink()
    assert main(["--root", str(root), "profiles"]) == 0
    assert set(runner.available_profiles(root)) == {"default", "paper", "smoke"}
