"""Small display helpers for the book's notebooks: data provenance notices and paper tables.

The notices are MyST admonitions emitted as Markdown outputs (the book renders Markdown outputs
as MyST), so a page built on an offline stand-in says so in a visible box.
"""

from __future__ import annotations

import pandas as pd
from IPython.display import Markdown

from .datasets.base import Dataset

__all__ = ["data_notice", "standin_label", "beside_paper"]


def standin_label(data: Dataset) -> str:
    """A short tag for table captions: empty for real data, a warning for a stand-in."""
    return " [OFFLINE STAND-IN DATA - not the paper's data set]" if data.standin else ""


def data_notice(data: Dataset) -> Markdown:
    """A visible admonition naming the data behind the page (a warning for a stand-in)."""
    if data.standin:
        real = data.name.split("-")[0].upper()
        body = (
            f"**These results are computed on an offline stand-in, not on {real}.** "
            f"{data.source} The real data set was not available when this page was "
            "built (no local copy and no network). Compare shapes and trends only; the numbers "
            "are not comparable with the paper's. Put the real files in `data/` and rebuild to "
            "replace them."
        )
        return Markdown(f":::{{warning}} Offline stand-in data\n{body}\n:::\n")
    return Markdown(f":::{{note}} Data\n{data.source}\n:::\n")


def beside_paper(
    ours: pd.DataFrame,
    paper: pd.DataFrame,
    *,
    ours_label: str = "this run",
    paper_label: str = "paper",
) -> pd.DataFrame:
    """Interleave two tables of the same shape column by column: (col, this run), (col, paper)."""
    if list(ours.columns) != list(paper.columns) or list(ours.index) != list(paper.index):
        raise ValueError("ours and paper need the same index and columns to be set side by side.")
    both = pd.concat({ours_label: ours, paper_label: paper}, axis=1)
    both = both.swaplevel(0, 1, axis=1)
    return both[[(c, lab) for c in ours.columns for lab in (ours_label, paper_label)]]
