r"""Insphere (Chebyshev centre) of a polytope: eq. (5) of [1].

.. math::

    \max_{\bar x, r}\; r \quad\text{s.t.}\quad
    w_i^T \bar x - r\|w_i\| + b_i \ge 0 \;\;\forall i,\qquad
    \ell + r \le \bar x \le u - r.

The reference formulation is written in cvxpy and solved with Clarabel; ``method="highs"``
solves the same LP with scipy's HiGHS (an independent solver, used to cross-check). Every answer
is verified by :func:`verify_insphere` before it is returned.

References
----------
.. [1] X. Zhang and D. Wu, ICLR 2020, Section 3.2.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..exceptions import SolverError
from ..polytope import Polytope

__all__ = ["InsphereResult", "insphere", "insphere_cvxpy", "insphere_highs", "verify_insphere"]


@dataclass(frozen=True)
class InsphereResult:
    """Centre, radius and provenance of an insphere.

    Attributes
    ----------
    center : ndarray of shape (d,)
    radius : float
    method : str
        Solver that produced the answer (``"clarabel"``, ``"highs"``, ...).
    status : str
        The solver's own status string.
    seconds : float
        Wall-clock time of the solve.
    max_violation : float
        Largest violation of ``slack_i >= r ||w_i||`` (box rows included) at the answer,
        measured in float64 after the solve.
    info : dict
        Solver-specific extras (iterations, fallbacks, ...).
    """

    center: np.ndarray
    radius: float
    method: str
    status: str
    seconds: float
    max_violation: float
    info: dict = field(default_factory=dict)


def verify_insphere(
    poly: Polytope, center: np.ndarray, radius: float, *, tol: float = 1e-7
) -> float:
    """Check that the ball ``B(center, radius)`` lies in ``poly``; return the largest violation.

    The ball lies inside iff every hyperplane slack is at least ``radius * ||w_i||`` and the
    centre is at least ``radius`` from each box face (the constraints of eq. 5).

    Raises
    ------
    SolverError
        If a constraint is violated by more than ``tol`` (relative to ``1 + |b_i|``), or the
        radius is negative.
    """
    if not np.isfinite(radius) or radius < -tol:
        raise SolverError(f"insphere radius {radius!r} is not a finite non-negative number.")
    slack = poly.slack(center) - radius * poly.row_norms
    box = np.minimum(center - poly.lo, poly.hi - center) - radius
    scale = 1.0 + np.abs(poly.b)
    viol = max(float(np.max(-slack / scale, initial=0.0)), float(np.max(-box, initial=0.0)))
    if viol > tol:
        raise SolverError(
            f"insphere answer violates eq. 5 by {viol:.3g} (tolerance {tol:g}) on a polytope with "
            f"{poly.n_rows} rows in {poly.dim} dimensions."
        )
    return viol


def insphere_cvxpy(poly: Polytope, *, solver: str = "CLARABEL", **solver_opts) -> InsphereResult:
    """Reference: eq. (5) written in cvxpy, solved with Clarabel (or another conic solver).

    Parameters
    ----------
    poly : Polytope
    solver : str, default="CLARABEL"
        A cvxpy solver name.
    **solver_opts
        Passed to ``Problem.solve``.
    """
    import cvxpy as cp

    d = poly.dim
    x = cp.Variable(d)
    r = cp.Variable()
    norms = poly.row_norms
    cons = [poly.A @ x - r * norms + poly.b >= 0, poly.lo + r <= x, x <= poly.hi - r]
    prob = cp.Problem(cp.Maximize(r), cons)
    t0 = time.perf_counter()
    try:
        prob.solve(solver=solver, **solver_opts)
    except cp.error.SolverError as exc:
        raise SolverError(
            f"insphere (eq. 5) failed in cvxpy+{solver} on {poly.n_rows} rows x {d} dims: {exc}"
        ) from exc
    seconds = time.perf_counter() - t0
    if prob.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) or x.value is None:
        raise SolverError(
            f"insphere (eq. 5) in cvxpy+{solver}: status {prob.status} on {poly.n_rows} rows x {d} dims."
        )
    center, radius = np.asarray(x.value, dtype=np.float64), float(r.value)
    viol = verify_insphere(poly, center, radius, tol=1e-6)
    return InsphereResult(center, radius, solver.lower(), prob.status, seconds, viol)


def insphere_highs(poly: Polytope, *, method: str = "highs") -> InsphereResult:
    """Independent reference: the LP of eq. (5) with ``scipy.optimize.linprog`` (HiGHS).

    Variables are ``(x, r)``; we minimise ``-r`` subject to
    ``-A x + ||w|| r <= b``, ``-x + r <= -lo``, ``x + r <= hi``, ``r >= 0``.
    """
    from scipy import sparse
    from scipy.optimize import linprog

    d = poly.dim
    A = sparse.csr_matrix(poly.A)
    eye = sparse.identity(d, format="csr")
    ones = np.ones((d, 1))
    G = sparse.vstack(
        [
            sparse.hstack([-A, poly.row_norms[:, None]]),
            sparse.hstack([-eye, ones]),
            sparse.hstack([eye, ones]),
        ],
        format="csr",
    )
    h = np.concatenate([poly.b, -poly.lo, poly.hi])
    c = np.zeros(d + 1)
    c[-1] = -1.0
    bounds = [(None, None)] * d + [(0, None)]
    t0 = time.perf_counter()
    res = linprog(c, A_ub=G, b_ub=h, bounds=bounds, method=method)
    seconds = time.perf_counter() - t0
    if res.status != 0:
        raise SolverError(
            f"insphere (eq. 5) with scipy {method}: status {res.status} ({res.message}) "
            f"on {poly.n_rows} rows x {d} dims."
        )
    center, radius = res.x[:d], float(res.x[d])
    viol = verify_insphere(poly, center, radius, tol=1e-6)
    return InsphereResult(center, radius, method, res.message, seconds, viol)


_METHODS = {"clarabel": insphere_cvxpy, "highs": insphere_highs}


def insphere(poly: Polytope, *, method: str = "clarabel") -> InsphereResult:
    """Insphere of ``poly`` (eq. 5), verified.

    Parameters
    ----------
    poly : Polytope
        The region, e.g. ``linear_region(model, x).polytope``.
    method : {"clarabel", "highs"}, default="clarabel"
        ``"clarabel"``: the cvxpy reference; ``"highs"``: scipy's HiGHS.

    Returns
    -------
    InsphereResult

    Raises
    ------
    SolverError
        When the solver fails or its answer fails :func:`verify_insphere`.
    """
    if method not in _METHODS:
        raise ValueError(f"method == {method!r} is not supported; choose one of {list(_METHODS)}.")
    return _METHODS[method](poly)
