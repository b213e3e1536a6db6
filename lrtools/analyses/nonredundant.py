r"""Fig. 4 on the non-redundant hyperplanes only (Section 3.3 and Appendix C of [1]).

Section 3.3 of [1] measures the angles between *all* hyperplanes of a region, "since it is
time-consuming to eliminate the redundant hyperplanes". A row :math:`k` of the region is
redundant when its halfspace is implied by the others and the box (eq. 18); removing the
redundant rows leaves the facets of the polytope. This module removes them exactly
(:func:`lrtools.solvers.redundancy.redundant_rows`, every answer certified) and recomputes the
per-layer-pair angle statistics and the angle image on what is left, so the two versions of
Fig. 4 can be shown side by side.

References
----------
.. [1] X. Zhang and D. Wu, "Empirical Studies on the Properties of Linear Regions in Deep
   Neural Networks", ICLR 2020.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ..regions import linear_region
from ..solvers.redundancy import redundant_rows
from .angles import downsampled_angle_image, nonredundant_angles

__all__ = ["nonredundant_region", "nonredundant_point"]


def nonredundant_region(x: np.ndarray, model, *, image_size: int | None = 512) -> dict[str, Any]:
    """Redundancy and non-redundant angle statistics of the region of ``x``.

    See :func:`nonredundant_point` for the ``(model, x)`` order of a per-point task.

    Parameters
    ----------
    x : ndarray of shape input_shape
        The point :math:`x^*` whose region is measured.
    model : torch.nn.Sequential
        A ReLU network (see :func:`lrtools.regions.linear_region`).
    image_size : int or None, default=512
        Side of the downsampled angle image of the non-redundant rows (None: full matrix).

    Returns
    -------
    dict
        ``stats`` (the table of :func:`lrtools.analyses.angles.nonredundant_angles`),
        ``image`` (:class:`lrtools.analyses.angles.AngleImage` of the non-redundant rows),
        ``redundant`` (bool mask over hidden-unit rows), ``per_layer`` (redundant rows per
        layer), ``n_lp`` (linear programs solved) and ``seconds`` (redundancy removal time).
    """
    region = linear_region(model, np.asarray(x, dtype=np.float64))
    t0 = time.perf_counter()
    res = redundant_rows(region.polytope)
    seconds = time.perf_counter() - t0
    mask = np.asarray(res.redundant, dtype=bool)
    stats = nonredundant_angles(region, mask)
    diagonal = stats[stats["layer_i"] == stats["layer_j"]]
    return {
        "stats": stats,
        "image": downsampled_angle_image(region, size=image_size, rows=~mask),
        "redundant": mask,
        "per_layer": dict(zip(diagonal["layer_i"].tolist(), diagonal["redundant_i"].tolist(),
                              strict=True)),
        "n_rows": int(mask.size),
        "n_lp": int(res.n_lp),
        "seconds": seconds,
    }


def nonredundant_point(model, x: np.ndarray, *, image_size: int | None = 512) -> dict[str, Any]:
    """:func:`nonredundant_region` in the ``(model, x)`` order of a stored per-point task."""
    return nonredundant_region(x, model, image_size=image_size)
