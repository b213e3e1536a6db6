"""The shared interior-point kernels (lrtools/solvers/_kernel.py) against dense references."""

from __future__ import annotations

import gc

import numpy as np
import pytest
import torch
from scipy import sparse

from lrtools.solvers._kernel import (
    LowRank,
    NormalMatrix,
    SinglePrecision,
    centrality_correctors,
    cholesky,
    max_step,
    region_memo,
    region_normal_matrix,
    resolve_device,
    single_precision_state,
    step_length,
    weighted_gram,
)


def _mixed_rows(seed: int, n: int = 120):
    """Dense rows, sparse 'conv' rows, box rows (+-e_j, 1) with a border column, one border row."""
    rng = np.random.default_rng(seed)
    dense = np.hstack([rng.standard_normal((60, n)), np.ones((60, 1))])
    conv = sparse.random(90, n, density=0.02, random_state=seed).toarray()
    conv = np.hstack([conv, np.zeros((90, 1))])
    eye = np.eye(n)
    box = np.vstack([np.hstack([-eye, np.full((n, 1), 0.5)]), np.hstack([eye, np.ones((n, 1))])])
    border_only = np.zeros((1, n + 1))
    border_only[0, -1] = 2.0
    return np.vstack([dense, conv, box, border_only])


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("as_sparse", [False, True])
def test_normal_matrix_matches_dense_formula(seed, as_sparse):
    G = _mixed_rows(seed)
    rng = np.random.default_rng(seed + 10)
    d = rng.uniform(0.01, 3.0, G.shape[0])
    diag = rng.uniform(0, 1, G.shape[1])
    H = rng.standard_normal((G.shape[1], 4))
    H = H @ H.T
    N = NormalMatrix(sparse.csr_matrix(G) if as_sparse else G)
    assert N.dense_idx.size >= 60 and N.sparse_idx.size > 0 and N.narrow_idx.size > 0
    assert N.border.tolist() == [G.shape[1] - 1]
    ref = G.T @ (d[:, None] * G) + np.diag(diag) + H
    for _ in range(2):  # the buffer is reused: a second update must not accumulate
        M = N.update(d, diag=diag, extra=H)
        np.testing.assert_allclose(np.triu(M), np.triu(ref), rtol=1e-12, atol=1e-11)
    np.testing.assert_allclose(N.matvec(d[: G.shape[1]]), G @ d[: G.shape[1]], atol=1e-12)
    np.testing.assert_allclose(N.rmatvec(d), G.T @ d, atol=1e-11)


def _conv_like_rows(seed: int, n: int = 200):
    """Dense rows, plus rows sharing a few supports as the units of one convolution position
    do: narrow supports (8 columns, sparse rows) and wide ones (60 columns, above the dense
    threshold of 5%), a singleton support, and box rows; the last column is a border."""
    rng = np.random.default_rng(seed)
    blocks = [rng.standard_normal((30, n))]
    for size, n_rows, n_supports in ((8, 5, 6), (60, 7, 3), (60, 1, 1)):
        for _ in range(n_supports):
            cols = rng.choice(n - 1, size, replace=False)
            B = np.zeros((n_rows, n))
            B[:, cols] = rng.standard_normal((n_rows, size))
            B[:, -1] = 1.0  # the border column (the radius of eq. 5) in every support
            blocks.append(B)
    eye = np.eye(n)
    eye[:, -1] = 1.0
    blocks.append(eye[:-1])
    G = np.vstack(blocks)
    return G[rng.permutation(G.shape[0])]  # groups need not be contiguous


@pytest.mark.parametrize("as_sparse", [False, True])
def test_support_groups_give_the_exact_matrix(as_sparse):
    G = _conv_like_rows(0)
    rng = np.random.default_rng(7)
    d = rng.uniform(0.01, 3.0, G.shape[0])
    diag = rng.uniform(0, 1, G.shape[1])
    H = rng.standard_normal((G.shape[1], 3))
    H = H @ H.T
    N = NormalMatrix(sparse.csr_matrix(G) if as_sparse else G)
    sizes = sorted(cols.size for _, cols, _ in N._groups)
    assert sizes == [9] * 6 + [61] * 3  # the singleton support is not a group
    assert N.group_idx.size == 6 * 5 + 3 * 7
    assert N.dense_idx.size == 30 + 1  # the dense rows and the wide singleton
    parts = [N.dense_idx, N.group_idx, N.sparse_idx, N.narrow_idx]
    assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(G.shape[0]))
    ref = G.T @ (d[:, None] * G) + np.diag(diag) + H
    for extra in (H, np.asfortranarray(H)):  # either memory order of the symmetric term
        M = N.update(d, diag=diag, extra=extra)
        np.testing.assert_allclose(np.triu(M), np.triu(ref), rtol=1e-12, atol=1e-11)
    np.testing.assert_allclose(N.matvec(d[: G.shape[1]]), G @ d[: G.shape[1]], atol=1e-12)
    np.testing.assert_allclose(N.rmatvec(d), G.T @ d, atol=1e-11)
    keep = N.heaviest(d, 10)  # the reduction drops dense rows only: groups stay exact
    dense, kept = N.dense_idx, N.dense_idx[keep]
    dropped = np.setdiff1d(dense, kept)
    exact = np.setdiff1d(np.arange(G.shape[0]), dropped)
    ref_k = (G[exact].T @ (d[exact, None] * G[exact])
             + np.diag(np.sum(d[dropped, None] * G[dropped] ** 2, axis=0)))
    np.testing.assert_allclose(np.triu(N.update(d, keep=keep)), np.triu(ref_k), atol=1e-11)
    Mt = NormalMatrix(G, device="cpu").update(d, diag=diag, extra=H)  # full, both triangles
    np.testing.assert_allclose(Mt.numpy(), ref, rtol=1e-12, atol=1e-11)


def test_reduced_matrix_keeps_heaviest_rows_and_diagonal_of_the_rest():
    G = _mixed_rows(3)
    d = np.random.default_rng(3).uniform(0.01, 3.0, G.shape[0])
    N = NormalMatrix(G)
    keep = N.heaviest(d, 20)
    rows = N.dense_idx
    weight = d[rows] * np.sum(G[rows] ** 2, axis=1)
    assert set(rows[keep]) == set(rows[np.argsort(weight)[-20:]])
    kept, dropped = rows[keep], np.setdiff1d(rows, rows[keep])
    rest = np.setdiff1d(np.arange(G.shape[0]), rows)
    ref = (G[kept].T @ (d[kept, None] * G[kept]) + G[rest].T @ (d[rest, None] * G[rest])
           + np.diag(np.sum(d[dropped, None] * G[dropped] ** 2, axis=0)))
    np.testing.assert_allclose(np.triu(N.update(d, keep=keep)), np.triu(ref), atol=1e-11)
    assert N.heaviest(d, 10**6) is None


def test_torch_cpu_path_matches_numpy():
    G = _mixed_rows(4)
    d = np.random.default_rng(4).uniform(0.01, 3.0, G.shape[0])
    Mn = NormalMatrix(G).update(d)
    Mt = NormalMatrix(G, device="cpu").update(d)
    assert isinstance(Mt, torch.Tensor) and Mt.dtype == torch.float64
    np.testing.assert_allclose(np.triu(Mt.numpy()), np.triu(Mn), rtol=1e-13, atol=1e-11)
    rhs = np.arange(G.shape[1], dtype=float)
    np.testing.assert_allclose(cholesky(Mt).solve(rhs), cholesky(Mn).solve(rhs), rtol=1e-10)


def test_cholesky_regularises_a_singular_matrix_and_leaves_input_intact():
    B = np.random.default_rng(5).standard_normal((3, 6))
    K = np.asfortranarray(B.T @ B)  # rank 3
    K0 = K.copy()
    info = {}
    F = cholesky(K, info=info)
    assert F is not None and F.regularization > 0 and info["regularizations"] >= 1
    np.testing.assert_array_equal(K, K0)
    U = np.triu(F.U)
    np.testing.assert_allclose(U.T @ U, K + F.regularization * np.eye(6), atol=1e-12)
    assert cholesky(-np.eye(3), max_tries=2) is None


def test_weighted_gram_with_subset():
    B = np.random.default_rng(6).standard_normal((50, 7))
    w = np.linspace(0.1, 2.0, 50)
    keep = np.array([3, 9, 40])
    ref = B[keep].T @ (w[keep, None] * B[keep])
    np.testing.assert_allclose(np.triu(weighted_gram(B, w, keep=keep)), np.triu(ref), atol=1e-13)


def test_step_rule():
    v = np.array([1.0, 2.0, 4.0])
    assert max_step(v, np.array([-2.0, 1.0, -1.0])) == 0.5
    assert max_step(v, np.ones(3)) == np.inf
    assert step_length(v, np.ones(3)) == 0.99
    assert step_length(v, np.array([-0.1, 0, 0])) == 0.99
    assert step_length(v, np.array([-2.0, 0, 0])) == pytest.approx(0.495)


def _lp_newton(seed: int):
    """A Mehrotra step of a random LP ``min c^T y, G y + s = h, s >= 0`` at an off-centre
    iterate (products s_i lam_i spread over two decades), with its exact Newton solver."""
    rng = np.random.default_rng(seed)
    m, n = 80, 10
    G = rng.standard_normal((m, n))
    s = 10.0 ** rng.uniform(-1, 0, m)
    lam = 10.0 ** rng.uniform(-1, 0, m)
    r_p, r_d = 0.01 * rng.standard_normal(m), 0.01 * rng.standard_normal(n)
    K = G.T @ ((lam / s)[:, None] * G)

    def solve(r):
        dy = np.linalg.solve(K, -r_d - G.T @ (lam / s * r_p - r / s))
        ds = -r_p - G @ dy
        return dy, ds, -(r + lam * ds) / s

    dy, ds, dl = solve(s * lam)  # affine-scaling predictor
    a_p, a_d = min(1.0, max_step(s, ds)), min(1.0, max_step(lam, dl))
    mu = s @ lam / m
    sigma = ((s + a_p * ds) @ (lam + a_d * dl) / m / mu) ** 3
    r = s * lam + ds * dl - sigma * mu
    return G, s, lam, r_p, r_d, r, sigma, mu, solve


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_centrality_correctors_keep_a_newton_step_and_only_lengthen_it(seed):
    """Gondzio's correctors change only the complementarity target: the step still solves the
    primal and dual Newton equations, stays inside (lengths of at most 0.99 of the boundary
    step), and is at least as long as Mehrotra's step; with no corrector it is that step."""
    G, s, lam, r_p, r_d, r, sigma, mu, solve = _lp_newton(seed)
    plain = solve(r)
    step0, p0, d0 = centrality_correctors(s, lam, plain, r, sigma, mu, solve, n_correctors=0)
    assert step0 is plain
    assert (p0, d0) == (step_length(s, plain[1]), step_length(lam, plain[2]))
    (dy, ds, dl), a_p, a_d = centrality_correctors(s, lam, plain, r, sigma, mu, solve)
    np.testing.assert_allclose(G @ dy + ds, -r_p, atol=1e-10)
    np.testing.assert_allclose(G.T @ dl, -r_d, atol=1e-10)
    assert np.all(s + a_p * ds > 0) and np.all(lam + a_d * dl > 0)
    assert a_p <= 0.99 and a_d <= 0.99
    assert min(a_p, a_d) >= min(p0, d0)
    # off centre, Mehrotra's shorter step is 0.44-0.64 here: a corrector is taken
    assert not np.array_equal(ds, plain[1])
    assert min(a_p, a_d) >= 1.01 * min(p0, d0)


def test_device_validation(monkeypatch):
    monkeypatch.delenv("LRTOOLS_DEVICE", raising=False)
    assert resolve_device(None) is None
    monkeypatch.setenv("LRTOOLS_DEVICE", "cpu")
    assert resolve_device(None) == "cpu"
    with pytest.raises(ValueError, match="device must be one of"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            resolve_device("cuda")


def test_blas_thread_policy(monkeypatch):
    from threadpoolctl import threadpool_info

    from lrtools.solvers._kernel import blas_threads

    def blas_threads_now():
        return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]

    monkeypatch.setenv("LRTOOLS_BLAS_THREADS", "1")
    with blas_threads(None):
        assert set(blas_threads_now()) == {1}
    monkeypatch.setenv("LRTOOLS_BLAS_THREADS", "many")
    with pytest.raises(ValueError, match="LRTOOLS_BLAS_THREADS must be a positive integer"):
        blas_threads(None)
    monkeypatch.delenv("LRTOOLS_BLAS_THREADS")
    before = blas_threads_now()
    with blas_threads(None):
        assert blas_threads_now() == before
    with pytest.raises(ValueError, match="threads must be >= 1"):
        blas_threads(0)


def _spd(n: int, cond: float, seed: int, order: str = "F") -> np.ndarray:
    """SPD matrix with eigenvalues log-spaced in [1, cond] (upper triangle valid only)."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    K = (Q * np.logspace(0, np.log10(cond), n)) @ Q.T
    K = np.triu(K) + np.tril(rng.standard_normal((n, n)), -1)  # garbage below: never read
    return np.asarray(K, order=order)


@pytest.mark.parametrize("order", ["F", "C"])
def test_single_precision_factor_refines_to_the_double_solve(order):
    n = 300
    K = _spd(n, 1e3, 0, order)
    Ks = np.triu(K) + np.triu(K, 1).T
    state = SinglePrecision(n)
    F = cholesky(K, single=state)
    assert F.precision == "single" and state.n_single == 1
    rhs = np.random.default_rng(1).standard_normal((n, 2))
    want = np.linalg.solve(Ks, rhs)
    got = F.solve(rhs)
    # one refinement step: error about (cond * eps32)^2 * cond, far below a float32 solve's
    assert np.linalg.norm(got - want) / np.linalg.norm(want) < 1e-7
    unrefined = lapack_spotrs(F.U, rhs)
    assert np.linalg.norm(unrefined - want) / np.linalg.norm(want) > 1e-6  # refinement mattered
    np.testing.assert_allclose(F.solve(rhs[:, 0]), got[:, 0])
    assert state.enabled and F.precision == "single"


def lapack_spotrs(U, rhs):
    from scipy.linalg import lapack

    return lapack.spotrs(U, rhs.astype(np.float32), lower=0)[0].astype(np.float64)


def test_single_precision_hands_over_to_double_when_ill_conditioned():
    n = 200
    K = _spd(n, 1e7, 2)  # cond * eps32 near 1: spotrf succeeds, its error estimate is too large
    Ks = np.triu(K) + np.triu(K, 1).T
    state = SinglePrecision(n)
    F = cholesky(K, single=state)
    rhs = np.random.default_rng(3).standard_normal(n)
    got = F.solve(rhs)
    assert F.precision == "double" and not state.enabled and state.n_upgraded == 1
    want = np.linalg.solve(Ks, rhs)
    assert np.linalg.norm(got - want) / np.linalg.norm(want) < 1e-5  # double's accuracy here
    assert cholesky(K, single=state).precision == "double"  # later factors stay in float64
    state.reset()
    assert state.enabled


def test_single_precision_falls_back_when_spotrf_fails():
    n = 50
    rng = np.random.default_rng(4)
    B = rng.standard_normal((n, n - 1))
    K = np.asfortranarray(B @ B.T + 1e-12 * np.eye(n))  # PD in float64, singular in float32
    state = SinglePrecision(n)
    F = cholesky(K, single=state)
    assert F is not None and F.precision == "double" and not state.enabled
    assert state.n_single == 0


def test_single_precision_state_policy(monkeypatch):
    monkeypatch.delenv("LRTOOLS_CHOLESKY", raising=False)
    assert single_precision_state(785, None) is None  # MNIST: float64 only
    assert isinstance(single_precision_state(3073, None), SinglePrecision)
    assert single_precision_state(3073, "cpu") is None  # the torch path factors in float64
    monkeypatch.setenv("LRTOOLS_CHOLESKY", "double")
    assert single_precision_state(3073, None) is None


def test_low_rank_extra_equals_its_dense_matrix():
    """eq. 6's Hessian as U U^T - v v^T, added by syrk/syr, equals the dense extra term."""
    G = _mixed_rows(5)
    rng = np.random.default_rng(6)
    n = G.shape[1]
    d = rng.uniform(0.01, 3.0, G.shape[0])
    W = rng.standard_normal((10, n))
    p = rng.dirichlet(np.ones(10))
    term = LowRank(W.T * np.sqrt(p), (W.T @ p,))
    H = W.T @ (np.diag(p) - np.outer(p, p)) @ W
    np.testing.assert_allclose(term.dense(), H, atol=1e-12)
    rows = NormalMatrix(G)
    want = np.triu(rows.update(d, extra=H).copy())
    got = np.triu(rows.update(d, extra=term))
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    t_rows = NormalMatrix(G, device="cpu")
    np.testing.assert_allclose(t_rows.update(d, extra=term).numpy(),
                               t_rows.update(d, extra=H).numpy(), rtol=1e-12, atol=1e-12)


def test_region_memo_shares_only_read_only_arrays_and_forgets_freed_ones():
    """A read-only region's kernel is built once and shared; a writeable array (which could be
    changed between two solves) is rebuilt at every call; the entry goes with its array."""
    from lrtools.solvers import _kernel

    calls = []

    def build(G):
        calls.append(1)
        return NormalMatrix(G)

    G = _mixed_rows(0)
    first, second = region_memo(G, ("k",), build), region_memo(G, ("k",), build)
    assert first is not second and len(calls) == 2  # writeable: never shared
    G.flags.writeable = False
    shared = region_memo(G, ("k",), build)
    assert region_memo(G, ("k",), build) is shared and len(calls) == 3
    other = region_memo(G, ("other",), build)  # another key: another value
    assert other is not shared and len(calls) == 4
    H = G.copy()  # equal values, another array: its own entry
    H.flags.writeable = False
    assert region_memo(H, ("k",), build) is not shared
    rows = region_normal_matrix(G)  # the kernel eq. 6 and the nearest optima share
    assert region_normal_matrix(G, device="numpy") is rows  # "numpy" is the default device
    n = len(_kernel._MEMO)
    del G, H, shared, other, first, second, rows
    gc.collect()
    assert len(_kernel._MEMO) == n - 2


def _rows_with_free_columns(seed: int, n: int = 40, free=(0, 7, 8, 39)):
    """Dense rows, sparse rows, a support group and narrow rows, all zero on ``free``."""
    rng = np.random.default_rng(seed)
    dense = rng.standard_normal((30, n))
    conv = sparse.random(50, n, density=0.06, random_state=seed).toarray()
    group = np.zeros((6, n))
    group[:, 10:16] = rng.standard_normal((6, 6))  # one support shared by six rows
    narrow = np.eye(n)[[2, 5, 20]] * 1.5
    G = np.vstack([dense, conv, group, narrow])
    G[:, list(free)] = 0.0
    return G, np.asarray(free)


@pytest.mark.parametrize("as_sparse", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_free_columns_split_the_factor_and_give_the_full_solve(as_sparse, seed):
    G, free = _rows_with_free_columns(seed)
    n = G.shape[1]
    rng = np.random.default_rng(seed + 5)
    d = rng.uniform(0.01, 3.0, G.shape[0])
    diag = rng.uniform(0.1, 1.0, n)
    U = rng.standard_normal((n, 3))
    U[free] = 0.0  # the objective does not see the free columns either
    v = rng.standard_normal(n)
    v[free] = 0.0
    H = LowRank(U, (0.1 * v,))
    Gin = sparse.csr_matrix(G) if as_sparse else G
    full, split = NormalMatrix(Gin), NormalMatrix(Gin, free_columns=free)
    assert split.M.shape == (n - free.size,) * 2
    ref = G.T @ (d[:, None] * G) + np.diag(diag) + H.dense()
    rhs = rng.standard_normal((n, 2))
    for keep in (None, np.array([0, 3, 4])):  # exact, and reduced to three dense rows
        F_full = cholesky(full.update(d, diag=diag, extra=H, keep=keep))
        K = split.update(d, diag=diag, extra=H, keep=keep)
        F_split = cholesky(K)
        for r in (rhs[:, 0], rhs):
            np.testing.assert_allclose(F_split.solve(r), F_full.solve(r), rtol=1e-10, atol=1e-12)
        if keep is None:
            np.testing.assert_allclose(F_split.solve(rhs), np.linalg.solve(ref, rhs), rtol=1e-9)
            np.testing.assert_allclose(K.free_diag, diag[free])
    y = rng.standard_normal(n)
    np.testing.assert_allclose(split.matvec(y), G @ y, atol=1e-12)
    np.testing.assert_allclose(split.rmatvec(d), G.T @ d, atol=1e-11)
    assert np.all(split.rmatvec(d)[free] == 0.0)


def test_free_columns_refuse_an_extra_term_that_couples_them():
    G, free = _rows_with_free_columns(0)
    n = G.shape[1]
    N = NormalMatrix(G, free_columns=free)
    U = np.ones((n, 1))
    with pytest.raises(ValueError, match="couples the free columns"):
        N.update(np.ones(G.shape[0]), diag=np.ones(n), extra=LowRank(U))
    with pytest.raises(ValueError, match="couples the free columns"):
        N.update(np.ones(G.shape[0]), diag=np.ones(n), extra=np.ones((n, n)))


def test_region_normal_matrix_splits_only_columns_the_objective_ignores():
    G, free = _rows_with_free_columns(1)
    G.flags.writeable = False
    W = np.random.default_rng(0).standard_normal((3, G.shape[1]))
    W_blind = W.copy()
    W_blind[:, free] = 0.0
    assert region_normal_matrix(G, objective=W_blind).free.tolist() == free.tolist()
    assert region_normal_matrix(G, objective=W).free is None  # the objective sees them
    assert region_normal_matrix(G).free is None  # no objective given: nothing split
    assert region_normal_matrix(G, objective=W_blind) is region_normal_matrix(G, objective=W_blind)
