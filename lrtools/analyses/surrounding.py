r"""Relevance of the surrounding regions (Section 3.5, Fig. 6; Appendix E, Fig. 12).

For a test point :math:`x^*`, sample unit directions in the null space of the logit Jacobian
(eq. 10), walk each exactly up to :math:`\epsilon` (eq. 11), count the unique linear regions
met, :math:`x^*`'s own included (Fig. 6(a), Fig. 12(a)), and measure the cosine similarity of
the decision direction (eq. 13) of every unique region with that of :math:`x^*`
(Fig. 6(b, c), Fig. 12(b)).

* :func:`surrounding_point` - one point, composed from :mod:`lrtools.walks`.
* :func:`surrounding_table` - many points through :func:`lrtools.execution.map_points`,
  returned as two plain tables (counts per point; long table of :math:`\rho`).

References
----------
.. [1] X. Zhang and D. Wu, "Empirical Studies on the Properties of Linear Regions in Deep
   Neural Networks", ICLR 2020.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any

import numpy as np
import pandas as pd

from .._validation import check_array, check_choice, check_scalar
from ..execution import map_points
from ..walks import logit_jacobian, null_space_directions, surrounding_regions, walk

__all__ = ["surrounding_point", "surrounding_table", "surrounding_point_tables"]


def _check_seed(seed: Any) -> Any:
    if isinstance(seed, np.random.SeedSequence | np.random.Generator):
        return seed
    check_scalar(seed, "seed", Integral, min_val=0)
    return int(seed)


def _check_walk_args(n_directions: int, eps: float) -> None:
    check_scalar(n_directions, "n_directions", Integral, min_val=1)
    check_scalar(eps, "eps", Real, min_val=0.0, include_min=False)
    if not np.isfinite(eps):
        raise ValueError(f"eps == {eps}, must be finite.")


def surrounding_point(
    model,
    x,
    *,
    n_directions: int = 100,
    eps: float = 0.2,
    seed: int | np.random.SeedSequence | np.random.Generator = 0,
    pair: str = "own",
    tol: float = 1e-10,
    return_walks: bool = False,
) -> dict[str, Any]:
    r"""Unique regions around :math:`x^*` along null-space directions, and their relevance.

    Parameters
    ----------
    model : torch.nn.Sequential
        A supported ReLU network (evaluated in eval mode, in float64).
    x : array-like of shape input_shape
        The test point :math:`x^*`, without batch dimension.
    n_directions : int, default=100
        Directions sampled from :math:`N(A)` (100 in [1]).
    eps : float, default=0.2
        Walk length :math:`\epsilon` (0.2 in [1]).
    seed : int, numpy.random.SeedSequence or numpy.random.Generator, default=0
        Seed of the directions.
    pair : {"own", "x_star"}, default="own"
        Logit pair of eq. (13): the two largest logits of each region (the paper's wording), or
        those of :math:`x^*` for every region; see :func:`lrtools.walks.surrounding_regions`.
    tol : float, default=1e-10
        Zero tolerance of the exact walks (:func:`lrtools.walks.walk`).
    return_walks : bool, default=False
        Also return the walks (their ``direction`` attributes are the sampled :math:`e`).

    Returns
    -------
    dict
        ``n_unique_regions`` (int): unique activation patterns met, :math:`x^*`'s own included
        (the count of Fig. 6(a)); ``n_pieces_total`` (int): pieces over all walks, repeats
        included; ``rho`` (ndarray of shape (U,)): cosine similarity of each unique region's
        :math:`g` with :math:`g(x^*)`, entry 0 being :math:`x^*`'s own region (1 up to
        rounding), NaN where a :math:`g` vanishes; ``walk_index`` and ``beta`` (ndarrays of
        shape (U,)): the representative point :math:`x^* + \beta e_j` of each region (walk
        -1 and :math:`\beta = 0` for :math:`x^*`); ``walks`` (list of Walk) if
        ``return_walks``.

    Raises
    ------
    ValueError
        If the logit Jacobian has full column rank (no null space), or on invalid arguments.
    LRToolsError
        If a walk fails its verification.

    Notes
    -----
    Implements Section 3.5 of [1]. With :math:`A^T` the logit Jacobian of the region of
    :math:`x^*` (eq. 10) and :math:`e` uniform on the unit sphere of its null space,

    .. math::

        x = x^* + \beta e,\quad \beta \in [0, \epsilon],\qquad
        g(x) = \nabla_x\bigl(z_{k_1}(x) - z_{k_2}(x)\bigr),\qquad
        \rho = \frac{g(x)^T g(x^*)}{\|g(x)\|\,\|g(x^*)\|}

    (eqs. 11 and 13). Regions are told apart by their activation patterns, found exactly along
    each segment (no sampling step), so regions thinner than any grid are counted too.
    """
    _check_walk_args(n_directions, eps)
    check_choice(pair, "pair", ("own", "x_star"))
    rng = np.random.default_rng(_check_seed(seed))
    x = check_array(x, "x")
    E = null_space_directions(logit_jacobian(model, x), int(n_directions), rng)
    walks = walk(model, x, E, float(eps), tol=tol)
    sr = surrounding_regions(model, walks, pair=pair)
    out = {
        "n_unique_regions": sr.n_regions,
        "n_pieces_total": int(sum(w.n_pieces for w in walks)),
        "rho": sr.rho,
        "walk_index": sr.walk_index,
        "beta": sr.betas,
    }
    if return_walks:
        out["walks"] = walks
    return out


def _summary_row(res: dict[str, Any]) -> dict[str, Any]:
    """One row of the counts table; rho statistics over the surrounding regions only."""
    rho = res["rho"][1:]
    finite = rho[np.isfinite(rho)]
    stat = (lambda f: float(f(finite))) if finite.size else (lambda f: np.nan)
    return {
        "n_unique_regions": res["n_unique_regions"],
        "n_pieces_total": res["n_pieces_total"],
        "min_rho": stat(np.min),
        "median_rho": stat(np.median),
        "mean_rho": stat(np.mean),
        "n_nan_rho": int(rho.size - finite.size),
    }


def surrounding_table(
    model,
    X,
    *,
    n_directions: int = 100,
    eps: float = 0.2,
    seed: int = 0,
    n_jobs: int = 2,
    pair: str = "own",
    tol: float = 1e-10,
    progress: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    r"""Surrounding regions of many test points (the data of Fig. 6 and Fig. 12 of [1]).

    Parameters
    ----------
    model : torch.nn.Sequential
        A supported ReLU network.
    X : array-like of shape (n, *input_shape)
        Test points :math:`x^*`.
    n_directions : int, default=100
        Directions per point.
    eps : float, default=0.2
        Walk length.
    seed : int, default=0
        Point ``i`` uses ``seed=point_seed(seed, i)`` (see
        :func:`lrtools.execution.point_seed`): results do not depend on ``n_jobs``, and
        row ``i`` equals ``surrounding_point(model, X[i], seed=point_seed(seed, i))``.
    n_jobs : int, default=2
        Worker processes (1: in this process).
    pair : {"own", "x_star"}, default="own"
        Logit pair of eq. (13).
    tol : float, default=1e-10
        Zero tolerance of the walks.
    progress : bool, default=True
        Show a progress bar over points.

    Returns
    -------
    counts : pandas.DataFrame
        One row per point: ``point``, ``n_unique_regions`` (Fig. 6(a), :math:`x^*`'s region
        included), ``n_pieces_total``, and ``min_rho``, ``median_rho``, ``mean_rho`` over the
        surrounding regions (NaN when no region other than :math:`x^*`'s was met), and
        ``n_nan_rho`` (regions whose :math:`g` vanishes, excluded from those statistics).
    rho : pandas.DataFrame
        Long table, one row per unique surrounding region, :math:`x^*`'s own region excluded
        (its :math:`\rho` is 1 by definition): ``point``, ``region`` (1, 2, ... in order of
        first appearance), ``walk_index``, ``beta``, ``rho`` (the distributions of
        Fig. 6(b, c)).

    Notes
    -----
    Per-point measurement of :func:`surrounding_point` (eqs. 10-13 of [1]).
    """
    _check_walk_args(n_directions, eps)
    check_scalar(seed, "seed", Integral, min_val=0)
    check_choice(pair, "pair", ("own", "x_star"))
    X = check_array(X, "X")
    if X.ndim < 2 or X.shape[0] == 0:
        raise ValueError(
            f"X must have shape (n, *input_shape) with n >= 1; got {X.shape}. Use "
            "X[None] for a single point."
        )
    results = map_points(
        surrounding_point,
        model,
        X,
        n_jobs=n_jobs,
        seed=int(seed),
        desc="surrounding regions",
        progress=progress,
        n_directions=int(n_directions),
        eps=float(eps),
        pair=pair,
        tol=tol,
    )
    return _tables(results)


def surrounding_point_tables(results: list[dict[str, Any]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ``counts`` and ``rho`` tables of :func:`surrounding_table` from the results of
    :func:`surrounding_point` for points ``0, 1, ...`` (``point`` is the position in the list)."""
    return _tables(results)


def _tables(results: list[dict[str, Any]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    counts = pd.DataFrame([{"point": i, **_summary_row(r)} for i, r in enumerate(results)])
    n_sur = [len(r["rho"]) - 1 for r in results]
    rho = pd.DataFrame(
        {
            "point": np.repeat(np.arange(len(results)), n_sur),
            "region": np.concatenate([np.arange(1, k + 1) for k in n_sur]),
            "walk_index": np.concatenate([r["walk_index"][1:] for r in results]),
            "beta": np.concatenate([r["beta"][1:] for r in results]),
            "rho": np.concatenate([r["rho"][1:] for r in results]),
        }
    )
    return counts, rho
