"""The book's ways in: the landing page's summary, the figure index, the gallery, measured facts
for the theory page - all gathered from the executed chapters when the HTML is built.

A Sphinx extension (listed in ``_config.yml``): at ``builder-inited`` it reads every executed
notebook in ``book/chapters/`` and writes Markdown fragments to ``book/_generated/`` (git-ignored),
which the static pages ``{include}``. Nothing is typed in: a fragment says what the chapters of
this build recorded with :func:`lrtools.report.publish` (scorecards, figure bases, the data they
used), which profile built each chapter and how long it took (papermill's metadata), and
thumbnails are the chapters' own figures.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from .report import RESULTS_MIME, fmt_number

__all__ = ["FIGURES", "TABLES", "ChapterRun", "collect", "write_fragments", "setup"]

#: Every figure of the paper in paper order: (item, short name, figure label in the book).
FIGURES = [
    ("Fig. 1", "2-D slice of MNIST input space: linear and classification regions", "fig-mnist-1"),
    ("Fig. 2", "depth-wise exclusion on a real slice", "fig-mnist-2"),
    ("Fig. 3", "inradii of manifold, decision and adversarial regions", "fig-mnist-3"),
    ("Fig. 4", "angles between the hyperplanes of one region", "fig-mnist-4"),
    (
        "Fig. 4 (layers)",
        "mean absolute cosine per pair of layers, every region",
        "fig-mnist-4-layers",
    ),
    ("Fig. 4 (App. C)", "angles without the redundant hyperplanes", "fig-mnist-4-nonredundant"),
    ("Fig. 5", "most probable point of each class in one region", "fig-mnist-5"),
    ("Fig. 6", "surrounding regions and their decision directions", "fig-mnist-6"),
    ("Fig. 7", "the two-spirals toy set", "fig-toy-7"),
    ("Fig. 8", "linear and classification regions of the toy models", "fig-toy-8"),
    ("Fig. 3 (toy)", "inradii of every toy region", "fig-toy-inradius"),
    ("Fig. 9", "inradii of CNN regions", "fig-cifar-9"),
    ("Fig. 10", "angles between the hyperplanes of one CNN region", "fig-cifar-10"),
    ("Fig. 10 (layers)", "mean absolute cosine per pair of CNN layers", "fig-cifar-10-layers"),
    ("Fig. 11", "most probable point of each class, one automobile", "fig-cifar-11"),
    ("Fig. 12", "surrounding regions of CNN regions", "fig-cifar-12"),
]

#: Tables and appendices of the paper: (item, short name, chapter).
TABLES = [
    ("Table 1", "MNIST test accuracies", "mnist_models"),
    ("Table 2", "classification regions in a region, distortion", "mnist_decision"),
    ("Table 3", "CNN architecture, CNN accuracies", "cifar_models"),
    ("Table 4", "classification regions in a CNN region, distortion", "cifar_decision"),
    ("Appendix A", "toy models, their accuracy and claims", "toy_spirals"),
    ("Appendix B-D", "equations 14-21", "theory"),
    ("Appendix C", "redundant hyperplanes removed exactly", "mnist_angles"),
    ("Appendix D", "x^t on the faces of its region, measured", "mnist_decision"),
    ("Findings 1-4", "claims scorecard", "mnist_claims"),
    ("Appendix E", "claims scorecard for CNNs", "cifar_claims"),
]

GENERATED = Path("book") / "_generated"
CHAPTERS = Path("book") / "chapters"
_GLUE_FIGURE = re.compile(r"```\{glue:figure\}\s+(\S+)\s*\n:name:\s*(\S+)")


@dataclass
class ChapterRun:
    """What one executed chapter recorded."""

    name: str
    title: str = ""
    profile: str = ""
    duration: float | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, str] = field(default_factory=dict)  # label -> glue key
    images: dict[str, bytes] = field(default_factory=dict)  # glue key -> PNG


def _read(path: Path) -> ChapterRun:
    nb = nbformat.read(path, as_version=4)
    pm = nb.metadata.get("papermill") or {}
    params = dict(pm.get("parameters") or {})
    run = ChapterRun(
        name=path.stem,
        profile=str(params.pop("profile", "")),
        duration=pm.get("duration"),
        parameters=params,
    )
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            if not run.title:
                m = re.search(r"^#\s+(.+)$", cell.source, flags=re.M)
                run.title = m.group(1).strip() if m else ""
            for key, label in _GLUE_FIGURE.findall(cell.source):
                run.figures[label] = key
            continue
        for out in cell.get("outputs", []):
            data = out.get("data") or {}
            if RESULTS_MIME in data:
                payload = data[RESULTS_MIME]
                run.results[payload["key"]] = payload["value"]
            glue = (out.get("metadata") or {}).get("scrapbook") or {}
            png = data.get(glue.get("mime_prefix", "") + "image/png")  # myst-nb's glue record
            if glue.get("name") and png:
                run.images[glue["name"]] = base64.b64decode(png)
    return run


def collect(root: Path) -> dict[str, ChapterRun]:
    """Every executed chapter of ``root`` (``book/chapters/*.ipynb``), by name."""
    folder = Path(root) / CHAPTERS
    if not folder.exists():
        return {}
    return {p.stem: _read(p) for p in sorted(folder.glob("*.ipynb")) if not p.name.startswith(".")}


def _duration(seconds: float | None) -> str:
    from .runner import format_seconds

    return format_seconds(seconds)


def _cell(text: Any) -> str:
    """Text safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _data_text(run: ChapterRun) -> str:
    d = run.results.get("data")
    if not d:
        return "–"
    kind = "stand-in" if d.get("standin") else "real"
    seen = d.get("images_per_epoch") or []
    train = f", trained on {fmt_number(max(seen))} images/epoch" if seen else ""
    return f"{d.get('name', '')} ({kind}){train}, {fmt_number(d.get('n_test', 0))} test images"


def summary_md(runs: dict[str, ChapterRun]) -> str:
    """The landing page's results summary: every published scorecard row, by section."""
    rows = []
    for run in runs.values():
        card = run.results.get("scorecard")
        if not card:
            continue
        for r in card.get("rows", []):
            rows.append((card.get("section", run.name), run, r))
    if not rows:
        return (
            "No chapter of this build has published a results scorecard yet: build the book "
            "(`make book`) to fill this table.\n"
        )
    lines = [
        "| where | claim | this build | the paper | verdict |",
        "|---|---|---|---|---|",
    ]
    for section, run, r in rows:
        lines.append(
            f"| [{_cell(section)}](chapters/{run.name}) | {_cell(r.get('claim', ''))} | "
            f"{_cell(_ours(r))} | {_cell(r.get('paper value', ''))} | "
            f"{_verdict(r.get('verdict', ''))} |"
        )
    counts: dict[str, int] = {}
    for _, _, r in rows:
        counts[r.get("verdict", "")] = counts.get(r.get("verdict", ""), 0) + 1
    tally = ", ".join(f"{n} {v}" for v, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    return "\n".join(lines) + f"\n\nIn all: {len(rows)} claims tested; {tally}.\n"


def _ours(row: dict) -> str:
    """This build's side of a claim: the compared values when given (with the tested difference
    and its interval beside them), else the tested value."""
    ours = row.get("our value")
    ours = "" if ours is None else str(ours)
    ci = next((str(v) for k, v in row.items() if "CI" in k and v), "")
    diff = f"{ours} {ci}".strip()
    values = row.get("values")
    if values:
        return f"{values} (difference {diff})" if diff and diff != "–" else str(values)
    return diff or "–"


def _verdict(v: str) -> str:
    """The landing table's mark: ✓ reproduced, ✗ not reproduced, ≈ no difference of practical
    size (lrtools.analyses.verdicts.decide), ? every inconclusive verdict."""
    mark = {"reproduced": "✓", "agrees": "✓", "not reproduced": "✗", "does not agree": "✗",
            "no difference": "≈"}
    return f"{mark.get(v, '?')} {v}" if v else "–"


def runs_md(runs: dict[str, ChapterRun], order: list[str]) -> str:
    """Which profile and data built each chapter, its basis and its run time."""
    if not runs:
        return "No chapter has been executed yet.\n"
    lines = ["| chapter | profile | data | run time |", "|---|---|---|---|"]
    for name in order:
        run = runs.get(name)
        if run is None:
            continue
        lines.append(
            f"| [{_cell(run.title or name)}](chapters/{name}) | `{run.profile}` | "
            f"{_cell(_data_text(run))} | {_duration(run.duration)} |"
        )
    profiles = sorted({r.profile for r in runs.values()})
    total = sum(r.duration or 0 for r in runs.values())
    head = (
        f"This build was made with the profile `{profiles[0]}`"
        if len(profiles) == 1
        else "**This build mixes profiles** (" + ", ".join(f"`{p}`" for p in profiles) + ")"
    )
    return (
        head
        + f"; executing its chapters took {_duration(total)} in all.\n\n"
        + "\n".join(lines)
        + "\n"
    )


def _figure_index(runs: dict[str, ChapterRun]) -> dict[str, tuple[ChapterRun, str]]:
    where = {}
    for run in runs.values():
        for label, key in run.figures.items():
            where[label] = (run, key)
    return where


def figure_index_md(runs: dict[str, ChapterRun]) -> str:
    """The figure index in paper order: item, short name (linked), page, basis, profile."""
    where = _figure_index(runs)
    lines = ["| paper | figure | page | points behind it | profile |", "|---|---|---|---|---|"]
    for item, short, label in FIGURES:
        if label not in where:
            continue
        run, _ = where[label]
        basis = (run.results.get(f"figure:{label}") or {}).get("basis", "–")
        lines.append(
            f"| {item} | {{ref}}`{_cell(short)} <{label}>` | [{_cell(run.title or run.name)}]"
            f"(chapters/{run.name}) | {_cell(basis)} | `{run.profile}` |"
        )
    lines += ["", "| paper | content | page | profile |", "|---|---|---|---|"]
    for item, short, chapter in TABLES:
        if chapter == "theory":
            lines.append(f"| {item} | {short} | [Theory](theory) | – |")
        elif chapter in runs:
            run = runs[chapter]
            lines.append(
                f"| {item} | {short} | [{_cell(run.title or chapter)}](chapters/{chapter}) | "
                f"`{run.profile}` |"
            )
    return "\n".join(lines) + "\n"


def gallery_md(runs: dict[str, ChapterRun], thumbs: Path) -> str:
    """Thumbnails of every figure (paper order), each linking to the figure."""
    where = _figure_index(runs)
    cards = []
    for item, short, label in FIGURES:
        if label not in where:
            continue
        run, key = where[label]
        png = run.images.get(key)
        if png is None:
            continue
        thumbs.mkdir(parents=True, exist_ok=True)
        (thumbs / f"{label}.png").write_bytes(png)
        cards += [
            f":::{{grid-item-card}} {item}",
            f":img-top: /{GENERATED.as_posix()}/thumbs/{label}.png",
            f":link: {label}",
            ":link-type: ref",
            ":class-card: lrbook-thumb",
            "",
            short,
            ":::",
            "",
        ]
    if not cards:
        return "No figure has been built yet.\n"
    return "::::{grid} 2 3 4 4\n:gutter: 2\n\n" + "\n".join(cards) + "::::\n"


def appendix_d_md(runs: dict[str, ChapterRun]) -> str:
    """The measured support of Appendix D's proposition in this build."""
    parts = []
    for name, what in (("mnist_decision", "MNIST MLPs"), ("cifar_decision", "CIFAR-10 CNNs")):
        rows = (runs.get(name).results.get("appendix_d") if name in runs else None) or []
        if not rows:
            continue
        total = sum(int(r.get("solves", 0)) for r in rows)
        on = sum(float(r.get("on_face", 0)) * int(r.get("solves", 0)) for r in rows)
        per = "; ".join(
            f"{r['model']}: {100 * float(r.get('on_face', 0)):.0f}% of {int(r.get('solves', 0))}"
            for r in rows
        )
        parts.append(
            f"- **{what}** ([{name}](chapters/{name}), profile `{runs[name].profile}`): "
            f"$x^t$ lies on a face of its region in {on:.0f} of {total} solves "
            f"({100 * on / max(total, 1):.1f}%). Per model: {per}."
        )
    if not parts:
        return "Not measured in this build (the decision chapters have not been executed).\n"
    return "\n".join(parts) + "\n"


def write_fragments(root: Path) -> dict[str, Path]:
    """Write every fragment of ``book/_generated/`` for the chapters executed under ``root``."""
    root = Path(root)
    out = root / GENERATED
    out.mkdir(parents=True, exist_ok=True)
    runs = collect(root)
    from .runner import chapters

    try:
        order = chapters(root)
    except Exception:  # a fragment must never break the build
        order = sorted(runs)
    texts = {
        "summary.md": summary_md(runs),
        "runs.md": runs_md(runs, order),
        "figure_index.md": figure_index_md(runs),
        "gallery.md": gallery_md(runs, out / "thumbs"),
        "appendix_d.md": appendix_d_md(runs),
    }
    paths = {}
    for name, text in texts.items():
        path = out / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
        paths[name] = path
    return paths


def _on_builder_inited(app) -> None:
    write_fragments(Path(app.srcdir))


def setup(app) -> dict[str, Any]:
    """Sphinx entry point: write the fragments before any page is read."""
    app.connect("builder-inited", _on_builder_inited)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
