r"""The paper's claims and published numbers, and the catalogues that test them.

One module holds what the book compares against:

* the **published numbers** of [1]: Table 1 (MNIST accuracies), Table 2 (classification
  regions and distortion of the MNIST MLPs), Table 3 (the CNN), Table 4 (Table 2 for the CNNs),
  the CIFAR-10 accuracies of Appendix E.1 and the toy accuracies of Appendix A, and the
  findings in the paper's words (:data:`FINDINGS`), each with its reference;
* the **claim catalogues** of the toy (Appendix A), MNIST (Section 3) and CIFAR-10 (Appendix E)
  parts: :func:`toy_claims`, :func:`mnist_claims`, :func:`cifar_claims`. Each
  :class:`PaperClaim` names what is measured (a :class:`Quantity` of one of the measurement
  tables), for which models (:class:`Of`), in which direction the paper says it goes, and what
  the paper reports;
* :func:`score`, which evaluates a catalogue on the measurement tables of a run and returns
  one row per claim with its verdict.

Verdicts
--------
A claim compares a statistic :math:`s` of per-unit values of two models (or of one model and
a reference number). The unit of a per-point claim is the test point of a trained model: the
interval of :math:`s(a) - s(b)` comes from the hierarchical bootstrap of
:func:`lrtools.analyses.verdicts.hierarchical_compare` (resample the training seeds, then the
points within each drawn seed) and the verdict from :func:`lrtools.analyses.verdicts.decide`:
"inconclusive: n = k" below :data:`~lrtools.analyses.verdicts.MIN_POINTS` points per trained
model, "no difference" below :data:`~lrtools.analyses.verdicts.PRACTICAL_SIZE` pooled standard
deviations, "inconclusive: seeds disagree" when the seeds' own estimates differ in sign, else
"reproduced", "not reproduced" or "inconclusive at this sample size". The unit of a per-run
claim (the toy set, where a statistic covers the whole input box) is the training run: with
one run the two statistics are compared directly ("agrees" / "does not agree": what this run
shows, not a significance test); with ``min_values`` runs or more they are tested by the
point bootstrap of :func:`lrtools.analyses.scorecard.scorecard` over runs.

Values are pandas Series indexed by their unit (``test_index`` or ``point``; ``seed`` first
when a table has a ``seed`` column), so paired claims align on it and the bootstrap sees the
seeds.

References
----------
.. [1] X. Zhang and D. Wu, "Empirical Studies on the Properties of Linear Regions in Deep
   Neural Networks", ICLR 2020.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Integral, Real
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from .._validation import check_choice, check_scalar
from ..models import VARIANT_LABELS, VARIANTS
from .scorecard import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, Claim, scorecard
from .verdicts import (
    MIN_POINTS,
    NO_DIFFERENCE,
    PRACTICAL_SIZE,
    SEEDS_DISAGREE,
    decide,
    hierarchical_compare,
    too_few,
)

__all__ = [
    "REFERENCES",
    "FINDINGS",
    "Finding",
    "table1",
    "table2",
    "table3",
    "table4",
    "cifar_accuracy",
    "TOY_ACCURACY",
    "PAPER_TEST_POINTS",
    "Quantity",
    "Of",
    "Minus",
    "PaperClaim",
    "log10_inradius",
    "mean_abs_cos",
    "log10_regions",
    "median_rho",
    "per_point",
    "run_statistic",
    "toy_claims",
    "mnist_claims",
    "cifar_claims",
    "score",
    "NOT_SCORED",
    "AGREES",
    "DISAGREES",
    "VERDICTS",
    "DISPLAY_COLUMNS",
    "NO_DIFFERENCE",
    "SEEDS_DISAGREE",
]

# --------------------------------------------------------------------------------------------
# The paper's published numbers
# --------------------------------------------------------------------------------------------

#: Where each published table or number is, in [1].
REFERENCES = {
    "table1": "Table 1, Section 3.1",
    "table2": "Table 2, Section 3.4",
    "table3": "Table 3, Appendix E.1",
    "table4": "Table 4, Appendix E.2",
    "cifar_accuracy": "Appendix E.1",
    "toy_accuracy": "Appendix A",
    "test_points": "Sections 3.4, 3.5 and Appendix E.2",
}

#: Test accuracy (%) of all three toy models (Appendix A: "The test accuracies for the three
#: models were all 100%").
TOY_ACCURACY = 100.0

#: Randomly selected test points per model behind Table 2, Fig. 6 and Appendix E.2.
PAPER_TEST_POINTS = 1000


def _tagged(frame: pd.DataFrame, key: str) -> pd.DataFrame:
    frame.attrs["reference"] = REFERENCES[key]
    return frame


def table1() -> pd.DataFrame:
    """Table 1: test accuracies (%) of the MNIST MLPs; rows learning rate, columns variant."""
    frame = pd.DataFrame(
        {"vanilla": [97.8, 98.0], "bn": [97.9, 98.3], "dropout": [97.5, 98.2]},
        index=pd.Index([1e-3, 1e-4], name="learning rate"),
    )
    return _tagged(frame, "table1")


def table2() -> pd.DataFrame:
    """Table 2: mean number of classification regions in a manifold region ("Number") and
    mean distortion (eq. 8) of the MNIST MLPs; rows (measure, learning rate), columns variant.
    """
    index = pd.MultiIndex.from_product(
        [["Number", "Distortion"], [1e-3, 1e-4]], names=["measure", "learning rate"]
    )
    frame = pd.DataFrame(
        {
            "vanilla": [1.116, 8.766, 26.35, 23.81],
            "bn": [1.083, 2.622, 14.90, 7.61],
            "dropout": [1.012, 1.048, 25.28, 25.41],
        },
        index=index,
    )
    return _tagged(frame, "table2")


def table3() -> pd.DataFrame:
    """Table 3: the architecture of the vanilla CNN, as printed."""
    rows = [
        ("Input", "input size=(32, 32)x3", "-"),
        ("Conv", "filters=(3, 3)x32; strides=(2, 2)", "ReLU"),
        ("Conv", "filters=(3, 3)x64; strides=(2, 2)", "ReLU"),
        ("Conv", "filters=(3, 3)x128; strides=(2, 2)", "ReLU"),
        ("Flatten", "-", "-"),
        ("Dense", "nodes=1024", "ReLU"),
        ("Dense", "nodes=10", "Softmax"),
    ]
    return _tagged(pd.DataFrame(rows, columns=["layer", "parameters", "activation"]), "table3")


def table4() -> pd.DataFrame:
    """Table 4: Table 2 for the CIFAR-10 CNNs (one learning rate, 1e-3); columns variant."""
    frame = pd.DataFrame(
        {"vanilla": [7.811, 27.08], "bn": [9.984, 20.85], "dropout": [2.901, 25.25]},
        index=pd.Index(["Number", "Distortion"], name="measure"),
    )
    return _tagged(frame, "table4")


def cifar_accuracy() -> pd.DataFrame:
    """Test accuracies (%) of the CIFAR-10 CNNs (Appendix E.1: 68.2%, 70.1%, 69.2%)."""
    frame = pd.DataFrame(
        {"vanilla": [68.2], "bn": [70.1], "dropout": [69.2]},
        index=pd.Index([1e-3], name="learning rate"),
    )
    return _tagged(frame, "cifar_accuracy")


class Finding(NamedTuple):
    """A statement of the paper, verbatim, and where it is."""

    text: str
    reference: str


#: The paper's observations and findings in its own words.
FINDINGS = {
    "fig1-1": Finding(
        "BN and dropout help the DNN partition the input space into many more linear regions "
        "than the vanilla DNN.", "Section 1, Fig. 1, observation 1"),
    "fig1-2": Finding(
        "The linear regions resulted from the BN model are more uniform in size than those "
        "from the dropout DNN.", "Section 1, Fig. 1, observation 2"),
    "fig1-3": Finding(
        "Many transition boundaries of the dropout DNN share similar norm directions, and "
        "concentrate around the decision boundaries.", "Section 1, Fig. 1, observation 3"),
    "finding-1": Finding(
        "BN can help DNNs partition the input space into smaller linear regions, whereas "
        "dropout helps around the decision boundaries.", "Section 1, finding 1; Section 3.2"),
    "finding-2": Finding(
        "BN can make the norm directions of the hyperplanes orthogonal, whereas dropout the "
        "opposite.", "Section 1, finding 2; Section 3.3"),
    "finding-3": Finding(
        "Dropout makes regions in which data points lie less likely to contain the decision "
        "boundaries.", "Section 1, finding 3; Section 3.4"),
    "finding-4": Finding(
        "The gradient information of a linear region has high relevance to its surrounding "
        "regions; however, BN slightly reduces the relevance.",
        "Section 1, finding 4; Section 3.5"),
    "toy": Finding(
        "The test accuracies for the three models were all 100%. Figure 8 plots linear "
        "regions and classification regions in the input space, illustrating the same "
        "properties as Figure 1 shows.", "Appendix A"),
    "cifar-inspheres": Finding(
        "The experimental results show that both BN and dropout can narrow the linear regions. "
        "For dropout, the effect is more obvious on the decision boundaries than on the "
        "manifold regions.",
        "Appendix E.2, Fig. 9"),
    "cifar-decision": Finding(
        "As shown in Table 4, dropout can eliminate the decision boundaries in the manifold "
        "regions of CNNs, but BN did not work anymore. However, according to the distortions of "
        "the three models, BN still showed its ability to reduce the size of the manifold "
        "regions.",
        "Appendix E.2, Table 4"),
    "cifar-surrounding": Finding(
        "Though BN showed its strength in increasing the number of the linear regions, the "
        "effect was less obvious compared with those in Figure 6 for fully-connected DNNs. BN "
        "still shattered the decision directions, as well as dropout, which was slightly "
        "different from the results for fully-connected DNNs.",
        "Appendix E.2, Fig. 12"),
}  # fmt: skip


# --------------------------------------------------------------------------------------------
# Quantities: per-unit values of one model, read from a measurement table
# --------------------------------------------------------------------------------------------


def _unit_index(rows: pd.DataFrame) -> list[str]:
    """Index columns of a table's sampling unit: (seed,) test_index or point."""
    unit = "test_index" if "test_index" in rows else "point"
    return (["seed"] if "seed" in rows else []) + [unit]


@dataclass(frozen=True)
class Quantity:
    """Per-unit values of one model, from one measurement table.

    Attributes
    ----------
    name : str
        How the values are shown, e.g. ``"log10 inradius (manifold)"``.
    table : str
        Key of the table in the ``tables`` mapping of :func:`score`: ``"inradii"``
        (:func:`lrtools.analyses.study.inradius_tables`), ``"angles"`` (the statistics of
        :func:`~lrtools.analyses.study.angle_tables`), ``"surrounding"`` (the counts of
        :func:`~lrtools.analyses.study.surrounding_tables`), ``"class_regions"`` (the
        per-point table of :func:`~lrtools.analyses.study.class_region_tables`), ``"toy"``
        (one row per toy model and run).
    values : callable
        ``values(rows) -> pandas.Series``: the rows of one model to values indexed by unit.
    """

    name: str
    table: str
    values: Callable[[pd.DataFrame], pd.Series]


def _column(rows: pd.DataFrame, column: str) -> pd.Series:
    if column not in rows:
        raise KeyError(f"the table has no column {column!r}; its columns are {list(rows)}.")
    return rows.set_index(_unit_index(rows))[column].astype(float)


def log10_inradius(kind: str) -> Quantity:
    """log10 of the inradius (eq. 5) of the ``kind`` region of each test point (Fig. 3, 9)."""
    check_choice(kind, "kind", ("manifold", "decision", "adversarial"))

    def values(rows: pd.DataFrame) -> pd.Series:
        radius = _column(rows[rows["kind"] == kind], "radius").dropna()
        return np.log10(radius[radius > 0])

    return Quantity(f"log10 inradius ({kind})", "inradii", values)


def _mean_abs_cos(rows: pd.DataFrame) -> pd.Series:
    """Per point: mean |cos| over all pairs of hyperplanes (the pair-count weighted mean)."""
    keys = [rows[c] for c in _unit_index(rows)]
    weighted = (rows["n_pairs"] * rows["mean_abs_cos"]).groupby(keys).sum()
    return (weighted / rows["n_pairs"].groupby(keys).sum()).astype(float)


#: Mean :math:`|\cos\theta_{ij}|` over all pairs of hyperplanes of each test point's manifold
#: region (Fig. 4, 10): lower is more orthogonal.
mean_abs_cos = Quantity("mean |cos| of hyperplane pairs", "angles", _mean_abs_cos)

#: log10 of the number of unique surrounding regions of each test point (Fig. 6a, 12a).
log10_regions = Quantity(
    "log10 #surrounding regions", "surrounding",
    lambda rows: np.log10(_column(rows, "n_unique_regions")),
)  # fmt: skip

#: Per-point median of the cosine similarity :math:`\rho` of the surrounding regions' decision
#: directions (eq. 13; Fig. 6b-c, 12b).
median_rho = Quantity(
    "per-point median rho", "surrounding", lambda rows: _column(rows, "median_rho").dropna()
)


def per_point(column: str, name: str | None = None) -> Quantity:
    """A column of the per-point class-region table (Table 2, 4): ``n_reached``, ``distortion``."""
    return Quantity(name or column, "class_regions", lambda rows: _column(rows, column))


def run_statistic(column: str) -> Quantity:
    """A column of the toy table: one value per model and training run (Appendix A)."""

    def values(rows: pd.DataFrame) -> pd.Series:
        index = ["seed"] if "seed" in rows else []
        frame = rows.set_index(index) if index else rows.reset_index(drop=True)
        return frame[column].astype(float)

    return Quantity(column, "toy", values)


# --------------------------------------------------------------------------------------------
# Sides of a comparison and the claims
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Of:
    """The values of ``quantity`` for one model: a training ``variant`` at learning rate ``lr``
    (None: the table's only learning rate, or a table without one)."""

    quantity: Quantity
    variant: str
    lr: float | None = None

    def values(self, tables: Mapping[str, pd.DataFrame]) -> pd.Series:
        """The per-unit values, NaNs dropped."""
        table = _table(tables, self.quantity.table)
        rows = table[table["variant"] == self.variant] if "variant" in table else table
        if self.lr is not None and "lr" in rows:
            rows = rows[np.isclose(rows["lr"].astype(float), float(self.lr), rtol=1e-9, atol=0)]
        return self.quantity.values(rows).dropna()

    def text(self) -> str:
        """The model, e.g. ``BN at lr 0.001``."""
        lr = "" if self.lr is None else f" at lr {self.lr:g}"
        return f"{VARIANT_LABELS[self.variant]}{lr}"


@dataclass(frozen=True)
class Minus:
    """Per-unit differences of two sides (aligned on the unit), e.g. a model's effect."""

    left: Of | Minus
    right: Of | Minus

    def values(self, tables: Mapping[str, pd.DataFrame]) -> pd.Series:
        a, b = self.left.values(tables), self.right.values(tables)
        common = a.index.intersection(b.index)
        return a[common] - b[common]

    def text(self) -> str:
        return f"({self.left.text()} - {self.right.text()})"


Side = Of | Minus


def _table(tables: Mapping[str, pd.DataFrame], key: str) -> pd.DataFrame:
    if key not in tables:
        raise KeyError(
            f"the claims need the measurement table {key!r}; pass it in tables (given: "
            f"{sorted(tables)})."
        )
    return tables[key]


@dataclass(frozen=True)
class PaperClaim:
    r"""One directional claim of the paper and how to test it.

    The claim holds when :math:`s(a) - s(b)` is above (``expected="greater"``) or below
    (``"less"``) zero, with :math:`s` the ``statistic`` of the per-unit values.

    Attributes
    ----------
    claim : str
        The claim in words.
    reference : str
        Where the paper makes it, e.g. ``"finding 1, Fig. 3"``.
    a : Of or Minus
        The values of the first model.
    b : Of, Minus or float
        The values of the second model, or a reference number.
    expected : {"greater", "less"}
        The paper's side.
    paper_value : str
        What the paper reports (numbers from its tables, or a direction read off a figure).
    label : str
        The tested quantity, e.g. ``"mean log10 inradius, BN - vanilla"``.
    statistic : callable, default=numpy.mean
        The statistic :math:`s`.
    paired : bool, default=False
        Both sides are measured on the same units: resample them jointly (on common units).
    unit : {"point", "run"}, default="point"
        The sampling unit (see the module notes): test points, or training runs.
    """

    claim: str
    reference: str
    a: Side
    b: Side | float
    expected: str
    paper_value: str
    label: str
    statistic: Callable[..., Any] = field(default=np.mean)
    paired: bool = False
    unit: str = "point"

    def __post_init__(self) -> None:
        check_choice(self.expected, "expected", ("greater", "less"))
        check_choice(self.unit, "unit", ("point", "run"))

    def series(self, tables: Mapping[str, pd.DataFrame]) -> tuple[pd.Series, pd.Series | float]:
        """The two samples indexed by unit (``(seed, point)`` where the tables carry seeds;
        the second a float for a reference number), aligned on common units if paired."""
        a = self.a.values(tables)
        if isinstance(self.b, Real):
            return a.astype(float), float(self.b)
        b = self.b.values(tables)
        if self.paired:
            common = a.index.intersection(b.index)
            a, b = a[common], b[common]
        return a.astype(float), b.astype(float)

    def values(self, tables: Mapping[str, pd.DataFrame]) -> tuple[np.ndarray, np.ndarray | float]:
        """The two samples as arrays (the second a float for a reference number)."""
        a, b = self.series(tables)
        return a.to_numpy(float), (b if isinstance(b, float) else b.to_numpy(float))


# --------------------------------------------------------------------------------------------
# The catalogues
# --------------------------------------------------------------------------------------------


def _label(variant: str) -> str:
    return VARIANT_LABELS[variant]


def _present(variants: Sequence[str], *needed: str) -> bool:
    return set(needed) <= set(variants)


def _check_variants(variants: Sequence[str]) -> tuple[str, ...]:
    variants = tuple(variants)
    for v in variants:
        check_choice(v, "variants", VARIANTS)
    return variants


def _fmt_number(v: float) -> str:
    return f"{v:.4g}" if abs(v) < 10 else f"{v:.2f}"


def _paper_cell(paper: pd.DataFrame, measure: str, variant: str, lr: float) -> str:
    """A Table 2 number at learning rate ``lr``, or a note that the paper has no such model."""
    rates = paper.loc[measure].index
    hit = [r for r in rates if np.isclose(r, lr, rtol=1e-9, atol=0)]
    if not hit:
        return f"(no model at lr {lr:g} in the paper)"
    return _fmt_number(float(paper.loc[(measure, hit[0]), variant]))


def toy_claims(variants: Sequence[str] = VARIANTS) -> list[PaperClaim]:
    """The claims of Appendix A on the toy set: Fig. 8 shows the properties of Fig. 1.

    Measured on the table ``"toy"``: one row per model (and run), columns ``variant``,
    ``test accuracy (%)``, ``linear regions`` (in the whole input box), ``CV of inradius``
    (coefficient of variation of the regions' inradii) and ``concentration`` (share of regions
    near the decision boundary over the share of the box near it; see
    :func:`lrtools.analyses.partition.boundary_concentration`).
    """
    variants = _check_variants(variants)
    acc, n, cv, conc = (run_statistic(c) for c in (
        "test accuracy (%)", "linear regions", "CV of inradius", "concentration"))  # fmt: skip
    out = [
        PaperClaim(f"{_label(v)} reaches 100% test accuracy", "Appendix A", Of(acc, v), 99.95,
                   "greater", f"{TOY_ACCURACY:g}%", "test accuracy (%) - 99.95", unit="run")
        for v in variants
    ]  # fmt: skip
    for v in ("bn", "dropout"):
        if _present(variants, v, "vanilla"):
            out.append(PaperClaim(
                f"{_label(v)} gives more linear regions than vanilla",
                "Appendix A; Fig. 1, observation 1", Of(n, v), Of(n, "vanilla"), "greater",
                "more regions", f"linear regions, {_label(v)} - vanilla", unit="run"))  # fmt: skip
    if _present(variants, "bn", "dropout"):
        out.append(PaperClaim(
            "BN regions are more uniform in size than dropout's (lower CV of inradius)",
            "Appendix A; Fig. 1, observation 2", Of(cv, "bn"), Of(cv, "dropout"), "less",
            "BN more uniform", "CV of inradius, BN - dropout", unit="run"))  # fmt: skip
    if "dropout" in variants:
        out.append(PaperClaim(
            "Dropout's regions concentrate around the decision boundary (concentration > 1)",
            "Appendix A; Fig. 1, observation 3", Of(conc, "dropout"), 1.0, "greater",
            "dropout concentrates", "concentration of dropout - 1", unit="run"))  # fmt: skip
    for v in ("vanilla", "bn"):
        if _present(variants, "dropout", v):
            out.append(PaperClaim(
                f"Dropout's regions concentrate around the decision boundary more than "
                f"{_label(v)}'s", "Appendix A; Fig. 1, observation 3", Of(conc, "dropout"),
                Of(conc, v), "greater", "dropout concentrates",
                f"concentration, dropout - {_label(v)}", unit="run"))  # fmt: skip
    return out


def mnist_claims(variants: Sequence[str] = VARIANTS, lrs: Sequence[float] = (1e-3, 1e-4)
                 ) -> list[PaperClaim]:  # fmt: skip
    """The claims of Section 3 on the MNIST MLPs (findings 1-4; Fig. 3, 4, 6; Table 2).

    Per learning rate ("-L" the largest, "-S" the smallest, as in Fig. 5) for every claim
    comparing techniques, then the learning-rate claims when there are two. Tables:
    ``"inradii"``, ``"angles"``, ``"surrounding"``, ``"class_regions"``. Claims whose models
    are not in ``variants`` / ``lrs`` are left out.
    """
    variants = _check_variants(variants)
    lrs = tuple(float(v) for v in lrs)
    if not lrs:
        raise ValueError("lrs must name at least one learning rate.")
    L, S = max(lrs), min(lrs)
    paper = table2()
    roles = [(L, "-L"), (S, "-S")] if L != S else [(L, "")]
    out: list[PaperClaim] = []
    for lr, tag in roles:
        def of(q, v, lr=lr):
            return Of(q, v, lr)

        def t2(measure, v, lr=lr):
            return _paper_cell(paper, measure, v, lr)

        man, dec = log10_inradius("manifold"), log10_inradius("decision")
        number, distortion = per_point("n_reached", "#classes reached"), per_point("distortion")
        if _present(variants, "bn", "vanilla"):
            out += [
                PaperClaim(f"BN gives smaller manifold regions than vanilla{tag}",
                           "finding 1, Fig. 3", of(man, "bn"), of(man, "vanilla"), "less",
                           "BN smallest inradii", "mean log10 inradius, BN - vanilla"),
                PaperClaim(f"BN makes hyperplanes more orthogonal{tag}", "finding 2, Fig. 4",
                           of(mean_abs_cos, "bn"), of(mean_abs_cos, "vanilla"), "less",
                           "BN orthogonal", "mean |cos|, BN - vanilla"),
                PaperClaim(f"BN gives more surrounding regions{tag}", "Fig. 6a",
                           of(log10_regions, "bn"), of(log10_regions, "vanilla"), "greater",
                           "BN more regions", "mean log10 #regions, BN - vanilla"),
                PaperClaim(f"BN slightly reduces the relevance of surrounding regions{tag}",
                           "finding 4, Fig. 6b-c", of(median_rho, "bn"),
                           of(median_rho, "vanilla"), "less", "BN lower rho",
                           "mean of per-point median rho, BN - vanilla"),
                PaperClaim(f"BN makes manifold regions less likely to contain decision "
                           f"boundaries{tag}", "Section 3.4, Table 2", of(number, "bn"),
                           of(number, "vanilla"), "less",
                           f"Number: {t2('Number', 'bn')} vs {t2('Number', 'vanilla')}",
                           "mean #classes reached, BN - vanilla"),
                PaperClaim(f"BN decreases the distortion of x^t{tag}", "Section 3.4, Table 2",
                           of(distortion, "bn"), of(distortion, "vanilla"), "less",
                           f"Distortion: {t2('Distortion', 'bn')} vs "
                           f"{t2('Distortion', 'vanilla')}", "mean distortion, BN - vanilla"),
            ]  # fmt: skip
        if _present(variants, "dropout", "vanilla"):
            out += [
                PaperClaim(f"Dropout makes decision regions narrower{tag}", "finding 1, Fig. 3",
                           of(dec, "dropout"), of(dec, "vanilla"), "less",
                           "dropout narrows decision regions",
                           "mean log10 inradius, dropout - vanilla"),
                PaperClaim(f"Dropout makes hyperplanes less orthogonal{tag}",
                           "finding 2, Fig. 4", of(mean_abs_cos, "dropout"),
                           of(mean_abs_cos, "vanilla"), "greater", "dropout the opposite",
                           "mean |cos|, dropout - vanilla"),
                PaperClaim(f"Dropout makes manifold regions less likely to contain decision "
                           f"boundaries{tag}", "finding 3, Table 2", of(number, "dropout"),
                           of(number, "vanilla"), "less",
                           f"Number: {t2('Number', 'dropout')} vs {t2('Number', 'vanilla')}",
                           "mean #classes reached, dropout - vanilla"),
            ]  # fmt: skip
        if "vanilla" in variants:
            out += [
                PaperClaim(f"Decision regions are narrower than manifold regions{tag}",
                           "Section 3.2, Fig. 3", of(dec, "vanilla"), of(man, "vanilla"),
                           "less", "decision narrower",
                           "mean log10 inradius, decision - manifold (paired)", paired=True),
                PaperClaim(f"Surrounding regions are highly relevant{tag}",
                           "finding 4, Fig. 6b-c", of(median_rho, "vanilla"), 0.9, "greater",
                           "rho close to 1", "mean of per-point median rho - 0.9"),
            ]  # fmt: skip
    if "vanilla" in variants and L != S:
        man, number = log10_inradius("manifold"), per_point("n_reached", "#classes reached")
        out += [
            PaperClaim("A larger learning rate widens the inradius distribution",
                       "Section 3.2, Fig. 3", Of(man, "vanilla", L), Of(man, "vanilla", S),
                       "greater", f"larger variance at {L:g}",
                       "std of log10 inradius, vanilla-L - vanilla-S", statistic=np.std),
            PaperClaim("A smaller learning rate gives more surrounding regions",
                       "Section 3.5, Fig. 6a", Of(log10_regions, "vanilla", S),
                       Of(log10_regions, "vanilla", L), "greater", f"more regions at {S:g}",
                       "mean log10 #regions, vanilla-S - vanilla-L"),
            PaperClaim("A larger learning rate makes manifold regions less likely to contain "
                       "decision boundaries", "Section 3.4, Table 2", Of(number, "vanilla", L),
                       Of(number, "vanilla", S), "less",
                       f"Number: {_paper_cell(paper, 'Number', 'vanilla', 1e-3)} (1e-3) vs "
                       f"{_paper_cell(paper, 'Number', 'vanilla', 1e-4)} (1e-4)",
                       "mean #classes reached, vanilla-L - vanilla-S"),
        ]  # fmt: skip
    return out


def cifar_claims(variants: Sequence[str] = VARIANTS, lr: float | None = None
                 ) -> list[PaperClaim]:  # fmt: skip
    """The claims of Appendix E.2 on the CIFAR-10 CNNs (Fig. 9, 10, 12; Table 4).

    One learning rate (``lr``; None: the tables' only one). Tables: ``"inradii"``,
    ``"angles"``, ``"surrounding"``, ``"class_regions"``.
    """
    variants = _check_variants(variants)
    paper = table4()

    def of(q, v):
        return Of(q, v, lr)

    def t4(measure, v):
        return _fmt_number(paper.loc[measure, v])

    number, distortion = per_point("n_reached", "#classes reached"), per_point("distortion")
    out: list[PaperClaim] = []
    if "vanilla" not in variants:
        return out
    for v in ("bn", "dropout"):
        if v in variants:
            for kind in ("manifold", "decision"):
                q = log10_inradius(kind)
                out.append(PaperClaim(
                    f"{_label(v)} narrows the {kind} regions of CNNs", "Appendix E.2, Fig. 9",
                    of(q, v), of(q, "vanilla"), "less", "both BN and dropout narrow the regions",
                    f"mean log10 inradius, {_label(v)} - vanilla"))  # fmt: skip
    if "dropout" in variants:
        dec, man = log10_inradius("decision"), log10_inradius("manifold")
        out += [
            PaperClaim("Dropout's narrowing is stronger on decision than on manifold regions",
                       "Appendix E.2, Fig. 9",
                       Minus(of(dec, "dropout"), of(dec, "vanilla")),
                       Minus(of(man, "dropout"), of(man, "vanilla")), "less",
                       "more obvious on the decision boundaries",
                       "mean (decision - manifold) of log10 r(dropout) - log10 r(vanilla)",
                       paired=True),
            PaperClaim("Dropout makes hyperplanes less orthogonal", "Appendix E.2, Fig. 10",
                       of(mean_abs_cos, "dropout"), of(mean_abs_cos, "vanilla"), "greater",
                       "dropout the opposite", "mean |cos|, dropout - vanilla"),
            PaperClaim("Dropout eliminates decision boundaries in manifold regions",
                       "Appendix E.2, Table 4", of(number, "dropout"), of(number, "vanilla"),
                       "less", f"Number: {t4('Number', 'dropout')} vs {t4('Number', 'vanilla')}",
                       "mean #classes reached, dropout - vanilla"),
            PaperClaim("Dropout shatters the decision directions", "Appendix E.2, Fig. 12b",
                       of(median_rho, "dropout"), of(median_rho, "vanilla"), "less",
                       "dropout lower rho", "mean of per-point median rho, dropout - vanilla"),
        ]  # fmt: skip
    if "bn" in variants:
        out += [
            PaperClaim("BN makes hyperplanes more orthogonal", "Appendix E.2, Fig. 10",
                       of(mean_abs_cos, "bn"), of(mean_abs_cos, "vanilla"), "less",
                       "BN orthogonal", "mean |cos|, BN - vanilla"),
            PaperClaim("BN no longer eliminates decision boundaries", "Appendix E.2, Table 4",
                       of(number, "bn"), of(number, "vanilla"), "greater",
                       f"Number: {t4('Number', 'bn')} vs {t4('Number', 'vanilla')}",
                       "mean #classes reached, BN - vanilla"),
            PaperClaim("BN still reduces the distortion of x^t", "Appendix E.2, Table 4",
                       of(distortion, "bn"), of(distortion, "vanilla"), "less",
                       f"Distortion: {t4('Distortion', 'bn')} vs {t4('Distortion', 'vanilla')}",
                       "mean distortion, BN - vanilla"),
            PaperClaim("BN gives more surrounding regions", "Appendix E.2, Fig. 12a",
                       of(log10_regions, "bn"), of(log10_regions, "vanilla"), "greater",
                       "BN more regions, less than on MNIST", "mean log10 #regions, BN - vanilla"),
            PaperClaim("BN shatters the decision directions", "Appendix E.2, Fig. 12b",
                       of(median_rho, "bn"), of(median_rho, "vanilla"), "less", "BN lower rho",
                       "mean of per-point median rho, BN - vanilla"),
        ]  # fmt: skip
    out.append(PaperClaim("Surrounding regions are highly relevant", "Appendix E.2, Fig. 12b",
                          of(median_rho, "vanilla"), 0.9, "greater",
                          "similar to the MLPs (rho near 1)",
                          "mean of per-point median rho - 0.9"))  # fmt: skip
    return out


# --------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------

NOT_SCORED = "not scored (too few values)"
AGREES = "agrees"
DISAGREES = "does not agree"
#: Every fixed verdict :func:`score` can give; a per-point claim below the minimum sample gets
#: ``"inconclusive: n = k"`` (:func:`lrtools.analyses.verdicts.too_few`) instead.
VERDICTS = (REPRODUCED, NOT_REPRODUCED, NO_DIFFERENCE, SEEDS_DISAGREE, INCONCLUSIVE, AGREES,
            DISAGREES, NOT_SCORED)  # fmt: skip
#: The columns a book page shows (the others hold the numbers behind them).
DISPLAY_COLUMNS = ["claim", "reference", "statistic", "values", "our value", "CI", "per seed",
                   "n", "paper value", "verdict"]  # fmt: skip


def _stat(c: PaperClaim, x) -> float:
    return float(c.statistic(x)) if np.size(x) else np.nan


def _values_text(c: PaperClaim, a, b) -> str:
    left = f"{c.a.text()}: {_stat(c, a):.4g}"
    right = f"{float(b):g}" if isinstance(b, float) else f"{c.b.text()}: {_stat(c, b):.4g}"
    return f"{left}; {right}"


def _one_run(c: PaperClaim, a, b) -> dict:
    """The direct comparison of one value per side (one training run)."""
    diff = _stat(c, a) - (float(b) if isinstance(b, float) else _stat(c, b))
    holds = diff > 0 if c.expected == "greater" else diff < 0
    return {"our value": diff, "verdict": AGREES if holds else DISAGREES}


def _seeds_of(values: pd.Series) -> tuple:
    if isinstance(values.index, pd.MultiIndex) and "seed" in values.index.names:
        return tuple(sorted(set(values.index.get_level_values("seed"))))
    return (0,)


def _n_text(counts: Sequence[int], n_seeds: int) -> str:
    """ "50 points x 2 seeds": the sample behind a claim (points per trained model)."""
    lo, hi = min(counts, default=0), max(counts, default=0)
    points = f"{lo}" if lo == hi else f"{lo}-{hi}"
    return f"{points} point{'s' if hi != 1 else ''} x {n_seeds} seed{'s' if n_seeds != 1 else ''}"


def _per_point(c: PaperClaim, i: int, tables, n_boot, level, seed, min_points, practical
               ) -> dict:  # fmt: skip
    """The scorecard entries of one per-point claim (hierarchical bootstrap and decide)."""
    a, b = c.series(tables)
    reference = isinstance(b, float)
    seeds = _seeds_of(a) if len(a) else ()
    seeds_b = () if reference else (_seeds_of(b) if len(b) else ())
    out = {"n_seeds": len(seeds)}
    if not len(a) or (not reference and (not len(b) or seeds_b != seeds)):
        # a side measured nothing (or not on every seed): no estimate, no verdict
        counts = [0]
        out.update({"n": _n_text(counts, max(len(seeds), len(seeds_b))), "verdict": too_few(0)})
        return out
    comp = hierarchical_compare(a, b, c.statistic, paired=c.paired, n_boot=n_boot, level=level,
                                seed=np.random.SeedSequence(seed, spawn_key=(i,)))  # fmt: skip
    out.update({
        "our value": comp.estimate,
        "CI": "" if np.isnan(comp.low) else f"[{comp.low:.4g}, {comp.high:.4g}]",
        "per seed": "" if len(seeds) == 1 else "; ".join(
            f"seed {k}: {v:+.3g}" for k, v in zip(comp.seeds, comp.per_seed, strict=True)),
        "n": _n_text([*comp.n_a, *comp.n_b], len(seeds)),
        "verdict": decide(comp, c.expected, min_points=min_points, practical=practical),
        "ci_low": comp.low, "ci_high": comp.high, "effect": comp.effect,
    })  # fmt: skip
    return out


def score(
    claims: Sequence[PaperClaim],
    tables: Mapping[str, pd.DataFrame],
    *,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
    min_values: int = 2,
    min_points: int = MIN_POINTS,
    practical: float = PRACTICAL_SIZE,
) -> pd.DataFrame:
    r"""Evaluate a catalogue on the measurement tables of a run: one row per claim.

    Parameters
    ----------
    claims : sequence of PaperClaim
        E.g. :func:`mnist_claims`.
    tables : mapping of str to pandas.DataFrame
        The measurement tables the claims read (see :class:`Quantity`), with the columns
        ``variant`` and ``lr`` (a float) of :mod:`lrtools.analyses.study`, and ``seed`` where
        the models were trained with several seeds.
    n_boot : int, default=2000
        Bootstrap resamples per claim.
    level : float, default=0.95
        Nominal coverage of the intervals.
    seed : int, default=0
        Claim ``i`` of the catalogue resamples with ``SeedSequence(seed, spawn_key=(i,))``,
        whatever the other claims.
    min_values : int, default=2
        Per-run claims (the toy catalogue): fewest runs per side for the bootstrap (with
        fewer, one run is compared directly).
    min_points : int, default=MIN_POINTS
        Per-point claims: fewest test points per trained model before a verdict
        (:func:`lrtools.analyses.verdicts.decide`).
    practical : float, default=PRACTICAL_SIZE
        Per-point claims: smallest effect, in pooled standard deviations, that counts.

    Returns
    -------
    pandas.DataFrame
        In catalogue order: ``claim``, ``reference``, ``statistic``, ``values`` (the statistic
        of each side), ``our value`` (:math:`s(a) - s(b)` pooled over seeds), ``CI`` (the
        interval as text), ``per seed`` (each seed's :math:`s(a) - s(b)`, with several seeds),
        ``n`` (points per trained model x seeds), ``paper value``, ``verdict``, then
        ``ci_low``, ``ci_high``, ``n_a``, ``n_b`` (values per side, all seeds), ``n_seeds``,
        ``effect`` (the estimate in pooled standard deviations), ``unit``.
        ``attrs`` holds ``level``, ``min_points`` and ``practical``.
    """
    claims = list(claims)
    bad = [i for i, c in enumerate(claims) if not isinstance(c, PaperClaim)]
    if bad:
        raise TypeError(f"claims must be PaperClaim objects; item {bad[0]} is "
                        f"{type(claims[bad[0]]).__name__}.")  # fmt: skip
    check_scalar(min_values, "min_values", Integral, min_val=2)
    check_scalar(min_points, "min_points", Integral, min_val=2)
    check_scalar(practical, "practical", Real, min_val=0.0)
    rows, boot, keys = [], [], []
    for i, c in enumerate(claims):
        a, b = c.values(tables)
        n_b = 0 if isinstance(b, float) else len(b)
        row = {"claim": c.claim, "reference": c.reference, "statistic": c.label,
               "values": _values_text(c, a, b), "our value": np.nan, "CI": "", "per seed": "",
               "n": "", "paper value": c.paper_value, "verdict": NOT_SCORED, "ci_low": np.nan,
               "ci_high": np.nan, "n_a": len(a), "n_b": n_b, "n_seeds": 1, "effect": np.nan,
               "unit": c.unit}  # fmt: skip
        if c.unit == "point":
            row.update(_per_point(c, i, tables, n_boot, level, seed, min_points, practical))
            rows.append(row)
            continue
        row["n"] = f"{len(a)} run{'s' if len(a) != 1 else ''}"
        enough = len(a) >= min_values and (isinstance(b, float) or n_b >= min_values)
        if enough:
            boot.append(Claim(c.claim, a, b, c.expected, c.paper_value, statistic=c.statistic,
                              label=c.label, paired=c.paired))  # fmt: skip
            keys.append(i)
        elif len(a) and (isinstance(b, float) or n_b):
            row.update(_one_run(c, a, b))
        rows.append(row)
    if boot:
        card = scorecard(boot, n_boot=n_boot, level=level, seed=seed, keys=keys)
        ci = card.columns[3]
        for k, (_, r) in zip(keys, card.iterrows(), strict=True):
            rows[k].update({"our value": r["our value"], "CI": r[ci], "verdict": r["verdict"],
                            "ci_low": r["ci_low"], "ci_high": r["ci_high"]})  # fmt: skip
    out = pd.DataFrame(rows, columns=[*DISPLAY_COLUMNS, "ci_low", "ci_high", "n_a", "n_b",
                                      "n_seeds", "effect", "unit"])  # fmt: skip
    out.attrs.update({"level": float(level), "min_points": int(min_points),
                      "practical": float(practical)})  # fmt: skip
    return out
