"""The claims catalogue (lrtools.analyses.claims): published numbers, and every catalogue scored
on small synthetic tables whose verdicts are known by construction."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

from lrtools.analyses import claims, verdicts
from lrtools.analyses.scorecard import NOT_REPRODUCED, REPRODUCED

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT.parent / "shared" / "paper" / "paper-html-text.txt"
VARIANTS = ("vanilla", "bn", "dropout")


# --------------------------------------------------------------------------------------------
# Published numbers
# --------------------------------------------------------------------------------------------


def test_tables_hold_the_published_numbers():
    t1, t2, t4 = claims.table1(), claims.table2(), claims.table4()
    assert t1.loc[1e-4, "bn"] == 98.3 and t1.loc[1e-3, "dropout"] == 97.5
    assert t2.loc[("Number", 1e-4), "vanilla"] == 8.766
    assert t2.loc[("Distortion", 1e-4), "bn"] == 7.61
    assert t4.loc["Number", "dropout"] == 2.901 and t4.loc["Distortion", "vanilla"] == 27.08
    assert claims.cifar_accuracy().loc[1e-3].tolist() == [68.2, 70.1, 69.2]
    assert claims.table3()["parameters"].iloc[1] == "filters=(3, 3)x32; strides=(2, 2)"
    for table in (t1, t2, claims.table3(), t4, claims.cifar_accuracy()):
        assert table.attrs["reference"] in claims.REFERENCES.values()
    t1.loc[1e-3, "bn"] = 0.0  # a copy: the module's numbers cannot be changed by a caller
    assert claims.table1().loc[1e-3, "bn"] == 97.9


@pytest.mark.skipif(not PAPER.exists(), reason="the paper's text is not next to the checkout")
def test_tables_match_the_paper_text():
    text = PAPER.read_text()
    rows = {
        "1e-3 97.8 97.9 97.5": claims.table1().loc[1e-3],
        "1e-4 98.0 98.3 98.2": claims.table1().loc[1e-4],
        "Number 1e-3 1.116 1.083 1.012": claims.table2().loc[("Number", 1e-3)],
        "1e-4 8.766 2.622 1.048": claims.table2().loc[("Number", 1e-4)],
        "Distortion 1e-3 26.35 14.90 25.28": claims.table2().loc[("Distortion", 1e-3)],
        "1e-4 23.81 07.61 25.41": claims.table2().loc[("Distortion", 1e-4)],
        "Number 7.811 9.984 2.901": claims.table4().loc["Number"],
        "Distortion 27.08 20.85 25.25": claims.table4().loc["Distortion"],
    }
    for line, numbers in rows.items():
        assert line in text
        np.testing.assert_allclose([float(v) for v in line.split()[-3:]], numbers.to_numpy())
    assert "68.2%, 70.1% and 69.2%" in text and "were all 100%" in text
    words = " ".join(text.split())
    for finding in claims.FINDINGS.values():  # verbatim, sentence by sentence
        for sentence in re.split(r"(?<=\.) ", finding.text):
            assert sentence in words, sentence


# --------------------------------------------------------------------------------------------
# Synthetic measurement tables: the paper's effects with sign s (+1: as the paper says,
# -1: the opposite, 0: no effect at all)
# --------------------------------------------------------------------------------------------


def _tables(s: float, *, cifar: bool = False, n: int = 30, noise: float = 0.02, seed: int = 0,
            lrs=(1e-3, 1e-4)) -> dict[str, pd.DataFrame]:  # fmt: skip
    rng = np.random.default_rng(seed)
    L, S = max(lrs), min(lrs)

    def jitter(sd=noise):
        return sd * rng.standard_normal(n)

    inradii, angles, surrounding, class_regions = [], [], [], []
    for lr in lrs:
        for v in VARIANTS:
            base = {"variant": v, "lr": lr, "point": np.arange(n)}
            man_sd = noise if v != "vanilla" else (0.2 if (lr == L) == (s > 0) else 0.02) * abs(s)
            man = -1.0 - s * {"vanilla": 0, "bn": 1.0, "dropout": 0.3}[v] + jitter(man_sd)
            dec = -1.0 - s * 0.5 - s * {"vanilla": 0, "bn": 1.0, "dropout": 1.0}[v] + jitter()
            for kind, logr in (("manifold", man), ("decision", dec), ("adversarial", man)):
                inradii.append(pd.DataFrame({**base, "kind": kind, "radius": 10.0**logr}))
            cos = 0.3 + s * {"vanilla": 0, "bn": -0.15, "dropout": 0.15}[v] + jitter()
            for pair in range(3):  # layer pairs, weighted by their pair counts
                angles.append(pd.DataFrame({**base, "n_pairs": 10 + pair, "mean_abs_cos": cos}))
            log_n = 1.0 + s * (lr == S) + s * (v == "bn") + jitter()
            rho = 0.9 + s * 0.07 - s * 0.05 * (v != "vanilla") + jitter()
            surrounding.append(pd.DataFrame({**base, "n_unique_regions": 10.0**log_n,
                                             "median_rho": rho}))  # fmt: skip
            bn_number = 2.0 if cifar else -2.0
            number = 6.0 - s * 3 * (lr == L) + s * {"vanilla": 0, "bn": bn_number,
                                                    "dropout": -2.0}[v] + jitter(3 * noise)
            distortion = 25.0 - s * 10 * (v == "bn") + jitter(3 * noise)
            class_regions.append(pd.DataFrame({**base, "n_reached": number,
                                               "distortion": distortion}))  # fmt: skip
    return {"inradii": pd.concat(inradii), "angles": pd.concat(angles),
            "surrounding": pd.concat(surrounding), "class_regions": pd.concat(class_regions)}


def _verdicts(card: pd.DataFrame) -> set[str]:
    return set(card["verdict"])


@pytest.mark.parametrize(
    "catalogue, cifar",
    [(lambda: claims.mnist_claims(VARIANTS, (1e-3, 1e-4)), False),
     (lambda: claims.cifar_claims(VARIANTS, 1e-3), True)],
)  # fmt: skip
def test_catalogues_give_the_known_verdicts(catalogue, cifar):
    lrs = (1e-3,) if cifar else (1e-3, 1e-4)
    entries = catalogue()
    assert len(entries) == (14 if cifar else 2 * 11 + 3)
    good = claims.score(entries, _tables(+1, cifar=cifar, lrs=lrs), n_boot=300)
    assert _verdicts(good) == {REPRODUCED}, good[["claim", "our value", "verdict"]]
    bad = claims.score(entries, _tables(-1, cifar=cifar, lrs=lrs), n_boot=300)
    assert _verdicts(bad) == {NOT_REPRODUCED}, bad[["claim", "our value", "verdict"]]
    # no effect at all: every difference is exactly 0 (32 equal values have an exact mean, so
    # the rho claim's reference 0.9 is met exactly, not within rounding)
    flat = claims.score(entries, _tables(0, cifar=cifar, noise=0.0, n=32, lrs=lrs), n_boot=300)
    assert _verdicts(flat) == {verdicts.NO_DIFFERENCE}
    # strong effects on too few points: numbers, but no verdict
    few = claims.score(entries, _tables(+1, cifar=cifar, n=1, lrs=lrs), n_boot=300)
    assert _verdicts(few) == {"inconclusive: n = 1"} and few["CI"].eq("").all()
    nine = claims.score(entries, _tables(+1, cifar=cifar, n=verdicts.MIN_POINTS - 1, lrs=lrs),
                        n_boot=300)  # fmt: skip
    assert _verdicts(nine) == {f"inconclusive: n = {verdicts.MIN_POINTS - 1}"}
    assert nine["ci_low"].notna().all()  # the interval is computed and shown, only not judged
    assert good["n"].eq("30 points x 1 seed").all() and good["per seed"].eq("").all()
    assert list(good.columns[: len(claims.DISPLAY_COLUMNS)]) == claims.DISPLAY_COLUMNS
    assert good["reference"].str.len().min() > 0 and good["paper value"].str.len().min() > 0


def test_mnist_catalogue_quotes_table2_and_follows_the_models_present():
    entries = claims.mnist_claims(VARIANTS, (1e-3, 1e-4))
    quoted = {c.claim: c.paper_value for c in entries}
    assert quoted["Dropout makes manifold regions less likely to contain decision boundaries-S"] \
        == "Number: 1.048 vs 8.766"
    assert quoted["BN decreases the distortion of x^t-L"] == "Distortion: 14.90 vs 26.35"
    one_lr = claims.mnist_claims(("vanilla", "bn"), (1e-3,))
    assert all("dropout" not in c.claim.lower() and "-L" not in c.claim for c in one_lr)
    assert not any("learning rate" in c.claim for c in one_lr)
    other = claims.mnist_claims(VARIANTS, (3e-4, 1e-4))  # a rate the paper did not train
    assert "(no model at lr 0.0003 in the paper)" in {c.paper_value.split(" vs ")[0][8:]
                                                      for c in other if "Number" in c.paper_value}
    with pytest.raises(ValueError, match="variants"):
        claims.mnist_claims(("vanilla", "resnet"), (1e-3,))


def test_cifar_catalogue_quotes_table4():
    quoted = {c.claim: c.paper_value for c in claims.cifar_claims()}
    assert quoted["BN no longer eliminates decision boundaries"] == "Number: 9.984 vs 7.811"
    assert quoted["BN still reduces the distortion of x^t"] == "Distortion: 20.85 vs 27.08"
    assert claims.cifar_claims(("bn", "dropout")) == []  # every CIFAR claim compares to vanilla


def test_paired_claims_align_on_the_test_points():
    tables = _tables(+1)
    inradii = tables["inradii"]
    # the decision regions of points 0-9 were not measured (e.g. their solve failed)
    drop = (inradii.kind == "decision") & (inradii.point < 10)
    tables["inradii"] = inradii.assign(radius=inradii.radius.where(~drop))
    entry = next(c for c in claims.mnist_claims() if c.claim.startswith("Decision regions"))
    a, b = entry.values(tables)
    assert len(a) == len(b) == 20
    card = claims.score([entry], tables, n_boot=200)
    assert card.loc[0, "n_a"] == card.loc[0, "n_b"] == 20 and card.loc[0, "verdict"] == REPRODUCED


def test_a_claim_left_unscored_does_not_change_the_others():
    entries = claims.mnist_claims(("vanilla", "bn"), (1e-3,))
    full = claims.score(entries, _tables(+1, lrs=(1e-3,)), n_boot=300, seed=3)
    thin = _tables(+1, lrs=(1e-3,))
    thin["class_regions"] = thin["class_regions"][thin["class_regions"].point == 0]
    part = claims.score(entries, thin, n_boot=300, seed=3)
    unscored = part["verdict"].map(verdicts.is_too_few)
    assert unscored.sum() == 2  # the two Table 2 claims
    pd.testing.assert_frame_equal(full[~unscored], part[~unscored])


def _seeded(effects: dict[int, float], n: int = 30) -> dict[str, pd.DataFrame]:
    """The synthetic tables once per training seed, with the paper's effects scaled per seed."""
    parts = [{k: t.assign(seed=seed) for k, t in _tables(s, n=n, seed=seed).items()}
             for seed, s in effects.items()]  # fmt: skip
    return {k: pd.concat([p[k] for p in parts], ignore_index=True) for k in parts[0]}


def test_seeds_are_resampled_and_shown():
    entries = claims.mnist_claims(VARIANTS, (1e-3, 1e-4))
    agree = claims.score(entries, _seeded({0: 1.0, 1: 0.8}), n_boot=300)
    assert _verdicts(agree) == {REPRODUCED}, agree[["claim", "per seed", "verdict"]]
    assert agree["n"].eq("30 points x 2 seeds").all() and (agree["n_seeds"] == 2).all()
    assert agree["per seed"].str.match(r"seed 0: [-+][\d.e-]+; seed 1: [-+]").all()
    assert (agree["n_a"] == 60).all()  # both seeds' points pooled
    # one seed shows the paper's effects, the other the opposite: no claim is decided
    split = claims.score(entries, _seeded({0: 1.0, 1: -1.0}), n_boot=300)
    assert _verdicts(split) == {verdicts.SEEDS_DISAGREE}
    # one seed's points alone would have decided them (the point bootstrap of one model)
    alone = claims.score(entries, _seeded({0: 1.0}), n_boot=300)
    assert _verdicts(alone) == {REPRODUCED}


def test_paired_claims_pair_within_seeds():
    entry = next(c for c in claims.mnist_claims() if c.claim.startswith("Decision regions"))
    a, b = entry.series(_seeded({0: 1.0, 1: 1.0}))
    assert a.index.names == ["seed", "point"] and a.index.equals(b.index) and len(a) == 60


def test_missing_table_is_named():
    tables = _tables(+1)
    del tables["angles"]
    with pytest.raises(KeyError, match="need the measurement table .angles."):
        claims.score(claims.mnist_claims(), tables)
    with pytest.raises(TypeError, match="PaperClaim"):
        claims.score(["BN is smaller"], tables)


# --------------------------------------------------------------------------------------------
# The toy catalogue: one run per model, compared directly; several runs, bootstrapped
# --------------------------------------------------------------------------------------------


def _toy(s: float, seeds=(0,)) -> pd.DataFrame:
    rows = []
    for seed in seeds:
        for v in VARIANTS:
            rows.append({
                "variant": v, "seed": seed,
                "test accuracy (%)": 100.0 if s > 0 else 97.0,
                "linear regions": 50 + s * (30 if v != "vanilla" else 0) + seed,
                "CV of inradius": 1.0 + s * {"vanilla": 0.0, "bn": -0.3, "dropout": 0.3}[v],
                "concentration": 1.0 + s * (1.0 if v == "dropout" else 0.2) + 0.01 * seed,
            })  # fmt: skip
    return pd.DataFrame(rows)


def test_toy_catalogue_compares_one_run_directly():
    entries = claims.toy_claims()
    agree = claims.score(entries, {"toy": _toy(+1).drop(columns="seed")})
    assert _verdicts(agree) == {claims.AGREES} and len(agree) == 3 + 2 + 1 + 1 + 2
    assert agree["values"].iloc[0] == "Vanilla: 100; 99.95"
    disagree = claims.score(entries, {"toy": _toy(-1)})
    assert _verdicts(disagree) == {claims.DISAGREES}
    assert len(claims.toy_claims(("vanilla", "bn"))) == 3  # two accuracies, one region count


def test_toy_catalogue_bootstraps_over_several_runs():
    card = claims.score(claims.toy_claims(), {"toy": _toy(+1, seeds=range(6))}, n_boot=300)
    assert (card["n_a"] == 6).all() and card["unit"].eq("run").all()
    accuracy = card["claim"].str.contains("accuracy")
    assert set(card.loc[~accuracy, "verdict"]) == {REPRODUCED}
    assert set(card.loc[accuracy, "verdict"]) == {REPRODUCED}  # 100 > 99.95 in every run


# --------------------------------------------------------------------------------------------
# The notebooks: thin, and no paper number outside this module
# --------------------------------------------------------------------------------------------

PAPER_NUMBERS = ["97.8", "98.3", "1.116", "8.766", "2.622", "26.35", "14.90", "7.811",
                 "9.984", "2.901", "27.08", "20.85", "68.2", "70.1", "69.2"]  # fmt: skip


def _code(path: Path) -> list[nbformat.NotebookNode]:
    return [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


@pytest.mark.parametrize("path", sorted((ROOT / "notebooks").glob("*.ipynb")), ids=str)
def test_paper_numbers_live_in_the_claims_module(path):
    source = "\n".join(c.source for c in _code(path))
    for number in PAPER_NUMBERS:
        assert not re.search(rf"(?<![\d.]){re.escape(number)}(?![\d])", source), (path, number)
    assert "def _v(" not in source and "key_path" not in source


@pytest.mark.parametrize("name", ["mnist_claims", "cifar_claims"])
def test_claims_notebooks_are_thin(name):
    cells = _code(ROOT / "notebooks" / f"{name}.ipynb")
    lines = [line for c in cells if "parameters" not in c.metadata.get("tags", [])
             for line in c.source.splitlines() if line.strip()]  # fmt: skip
    assert len(lines) <= 30
    assert "Claim(" not in "\n".join(lines) and "claims.score(" in "\n".join(lines)
