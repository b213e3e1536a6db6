"""Statistics of an exact 2-D partition (Fig. 1, Fig. 8 and the toy chapter's tables).

* :func:`region_table` - one row per linear region of the slice: area, activation rate,
  inradius of the full region (eq. 5) and the distance of the region to the decision boundary.
* :func:`boundary_concentration` - how much denser linear regions are near the decision
  boundary than elsewhere (the paper's observation 3 about dropout, made a number).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from ..regions import predict
from ..slices import region_points
from .inradius import inradii

__all__ = ["region_table", "boundary_concentration", "decision_distances"]


def _grid(partition, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """Plane coordinates of a grid over the domain (inside it), and the grid spacing."""
    verts = np.vstack([c.vertices for c in partition.cells])
    (s0, t0), (s1, t1) = verts.min(0), verts.max(0)
    s, t = np.meshgrid(np.linspace(s0, s1, resolution), np.linspace(t0, t1, resolution))
    st = np.column_stack([s.ravel(), t.ravel()])
    inside = partition.locate(st) >= 0
    return st[inside], max((s1 - s0), (t1 - t0)) / (resolution - 1)


def decision_distances(
    model, partition, query_st: np.ndarray, *, resolution: int = 400
) -> np.ndarray:
    """Distance (plane units) from each query point to the nearest point of another class.

    Measured against a ``resolution x resolution`` grid of the domain classified by the model:
    accurate to about one grid spacing (the returned distances are minus half a spacing,
    clipped at 0). Used only for the boundary-concentration statistic.
    """
    grid, h = _grid(partition, resolution)
    plane = partition.plane
    glabel = predict(model, plane.to_input(grid)).argmax(1)
    qlabel = predict(model, plane.to_input(query_st)).argmax(1)
    out = np.full(len(query_st), np.inf)
    for c in np.unique(qlabel):
        others = grid[glabel != c]
        if len(others) == 0:
            continue
        sel = qlabel == c
        out[sel] = cKDTree(others).query(query_st[sel])[0]
    return np.clip(out - h / 2, 0.0, None)


def region_table(model, partition, *, method: str = "auto", progress: bool = True) -> pd.DataFrame:
    """One row per linear region of the slice, with its inradius (eq. 5) and boundary distance.

    The inradius is that of the region's full H-representation in input space (for a 2-D input
    the slice is the whole input space, so it is the toy analogue of Fig. 3).
    """
    frame = partition.to_frame().reset_index(drop=True)
    pts = region_points(partition)
    rad = inradii(model, pts, method=method, progress=progress, desc="region inspheres")
    frame["radius"] = rad["radius"].to_numpy()
    frame["pattern_ok"] = rad["pattern_ok"].to_numpy()
    frame["status"] = rad["status"].to_numpy()
    frame["boundary_distance"] = decision_distances(model, partition, partition.plane.to_plane(pts))
    return frame


def boundary_concentration(
    table: pd.DataFrame, model, partition, *, delta: float = 0.05, resolution: int = 400
) -> dict[str, float]:
    """Share of linear regions within ``delta`` of the decision boundary, over the area share.

    A ratio above 1 means regions crowd around the decision boundary (the paper's observation 3
    for dropout); 1 means they are spread evenly.
    """
    grid, _ = _grid(partition, resolution)
    area_share = float(
        np.mean(decision_distances(model, partition, grid, resolution=resolution) < delta)
    )
    region_share = float(np.mean(table["boundary_distance"] < delta))
    ratio = region_share / area_share if area_share > 0 else np.nan
    return {
        "delta": delta,
        "region_share": region_share,
        "area_share": area_share,
        "concentration": ratio,
    }
