"""The LP front (lrtools/solvers/_lp.py): one status vocabulary and one check for every back-end."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from lrtools.solvers._lp import (
    FALLBACKS,
    LP_METHODS,
    STATUS_MAP,
    check_result,
    lp_lower_bound,
    record_fallback,
    solve_lp,
)


def _random_lp(seed: int, m: int = 40, n: int = 8):
    rng = np.random.default_rng(seed)
    G = rng.standard_normal((m, n))
    x0 = rng.uniform(-0.5, 0.5, n)
    h = G @ x0 + rng.uniform(0.1, 1.0, m)  # x0 strictly feasible
    c = rng.standard_normal(n)
    bounds = np.column_stack([np.full(n, -2.0), np.full(n, 2.0)])
    return c, G, h, bounds


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_backend_agrees_and_is_certified(seed):
    c, G, h, bounds = _random_lp(seed)
    sols = {m: solve_lp(c, G, h, bounds, method=m) for m in LP_METHODS}
    ref = sols["highs-ds"].value
    for method, sol in sols.items():
        assert sol.success and sol.status == "optimal", (method, sol.status, sol.raw_status)
        assert sol.primal_violation <= 1e-7
        np.testing.assert_allclose(sol.value, ref, rtol=1e-6, atol=1e-7, err_msg=method)
        assert np.all(sol.lam >= -1e-9)
        bound = lp_lower_bound(c, G, h, bounds, sol.lam)
        assert bound <= ref + 1e-7  # weak duality holds for any multipliers
        assert bound >= ref - 1e-5 * (1 + abs(ref)), method  # and is tight at the optimum


def test_infeasible_lp_is_reported_in_the_vocabulary():
    G = np.array([[1.0], [-1.0]])
    h = np.array([-1.0, -1.0])  # x <= -1 and x >= 1
    for method in ("ipm", "highs-ipm", "clarabel"):
        sol = solve_lp(np.ones(1), G, h, method=method)
        assert not sol.success
        assert sol.status in set(STATUS_MAP.values()) | {"check_failed"}
        assert sol.status != "optimal"


def test_check_result_relabels_a_violating_success():
    c, G, h, bounds = _random_lp(3)
    sol = solve_lp(c, G, h, bounds, method="highs-ipm")
    bad = dataclasses.replace(sol, x=sol.x + 10.0)
    checked = check_result(bad, c, G, h, bounds)
    assert checked.status == "check_failed" and not checked.success
    assert "primal violation" in checked.info["check"]


def test_unknown_method_and_fallback_counter():
    with pytest.raises(ValueError, match="Unknown LP method"):
        solve_lp(np.ones(1), np.ones((1, 1)), np.ones(1), method="simplex")
    before = FALLBACKS["test_counter"]
    record_fallback("test_counter")
    assert FALLBACKS["test_counter"] == before + 1
