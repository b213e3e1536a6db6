"""Inradius of the linear region of each point (Section 3.2, Fig. 3; Appendix A toy analogue).

For each input, build its region (eq. 4) and solve its insphere (eq. 5); record the radius, the
solver's status and a verification of the activation pattern at the centre. A failed solve is a
row with ``radius = NaN`` and the failure in ``status``: never a silent number.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..exceptions import SolverError
from ..progress import bar as progress_bar
from ..regions import activation_patterns, linear_region
from ..solvers.insphere import insphere

__all__ = ["inradii"]


def inradii(
    model,
    points: np.ndarray,
    *,
    box: tuple[float, float] = (-1.0, 1.0),
    method: str = "auto",
    progress: bool = True,
    desc: str = "inspheres",
) -> pd.DataFrame:
    """Insphere of the linear region of each point.

    Parameters
    ----------
    model : torch.nn.Sequential
        A supported ReLU network (eval mode is used).
    points : ndarray of shape (n, *input_shape)
        The points whose regions are measured (test points, decision points, ...).
    box : tuple of float, default=(-1.0, 1.0)
        Input domain.
    method : str, default="auto"
        Passed to :func:`lrtools.solvers.insphere.insphere`.
    progress : bool, default=True
        Show a tqdm bar.

    Returns
    -------
    pandas.DataFrame
        One row per point: ``radius``, ``n_rows``, ``activation_rate``, ``pattern_ok`` (the
        centre has the point's activation pattern), ``method``, ``status``, ``seconds``.
    """
    rows = []
    for i, x in enumerate(progress_bar(points, desc=desc, disable=not progress)):
        region = linear_region(model, x, box=box)
        row = {
            "point": i,
            "n_rows": region.polytope.n_rows,
            "activation_rate": region.activation_rate,
        }
        try:
            res = insphere(region.polytope, method=method)
        except SolverError as exc:
            rows.append(
                {
                    **row,
                    "radius": np.nan,
                    "pattern_ok": False,
                    "method": method,
                    "status": f"failed: {exc}",
                    "seconds": np.nan,
                }
            )
            continue
        centre = res.center.reshape(1, *region.input_shape)
        ok = (
            bool((activation_patterns(model, centre)[0] == region.pattern).all()) or res.radius == 0
        )
        rows.append(
            {
                **row,
                "radius": res.radius,
                "pattern_ok": ok,
                "method": res.method,
                "status": res.status,
                "seconds": res.seconds,
            }
        )
    return pd.DataFrame(rows)
