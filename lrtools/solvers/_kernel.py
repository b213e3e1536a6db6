r"""The linear-algebra kernels shared by every interior-point method of :mod:`lrtools.solvers`.

Every interior-point method here (the insphere LP of eq. 5, the margin LP, the redundancy LPs
of eq. 18 and the barrier method of eq. 6) spends its time on one matrix, the barrier normal
matrix

.. math::

    K = G^T \operatorname{diag}(d)\, G + \operatorname{diag}(e) + H,

with :math:`d > 0` the barrier weights of the rows of ``G`` (:math:`\lambda / s` in a
primal-dual method, :math:`1/s^2` for a Dikin ellipsoid), :math:`e` the weights of box rows
and :math:`H` an optional dense term (the Hessian of eq. 6's objective). This module holds:

* :class:`NormalMatrix`: ``G`` split once into a dense BLAS block (``syrk``), *support groups*
  (rows sharing one support narrower than half the columns, such as the units of one
  convolution layer at one position: a small dense product scattered into that support's
  block), CSR rows (their sparse product is added into the preallocated matrix in place)
  and *narrow* rows with one non-zero outside a few border columns (box rows such as
  :math:`\pm e_j` or :math:`(\pm e_j, 1)`, which add a diagonal and a border); ``K`` lives
  in one preallocated Fortran buffer updated in place at every iteration. ``n_keep`` builds
  the *reduced* matrix from only the heaviest dense rows (the others by their diagonal), for
  preconditioning or inexact Newton steps;
* :func:`cholesky`: one regularised Cholesky factorisation (growing diagonal shifts), in
  float32 with one refinement step per solve on large matrices while they are well
  conditioned (:class:`SinglePrecision`), float64 otherwise;
* :func:`max_step` and :func:`step_length`: one step-length rule, and
  :func:`centrality_correctors`: one corrector rule on top of Mehrotra's predictor-corrector;
* :func:`blas_threads`: the BLAS thread policy (``threadpoolctl``);
* :func:`region_memo`: what is derived from one region's rows (its :class:`NormalMatrix`, a
  CSR copy) built once and shared by the solves that follow one another on it;
* the same kernels on torch float64 tensors (``device="cpu"`` or ``"cuda"``, or the
  ``LRTOOLS_DEVICE`` environment variable), used only as a linear-algebra device.

Kernels are shared, algorithms are not: each method keeps its own iteration.
"""

from __future__ import annotations

import contextlib
import os
import weakref

import numpy as np
from scipy import sparse
from scipy.linalg import blas, lapack

from ..exceptions import SolverError

try:  # add a CSR / COO matrix into a dense buffer without allocating (scipy's own kernels)
    from scipy.sparse._sparsetools import coo_todense as _coo_add_into
    from scipy.sparse._sparsetools import csr_todense as _csr_add_into
except ImportError:  # pragma: no cover - other scipy layouts
    _csr_add_into = _coo_add_into = None

__all__ = [
    "DEVICES",
    "Factor",
    "LowRank",
    "NormalMatrix",
    "SinglePrecision",
    "SplitFactor",
    "SplitMatrix",
    "blas_threads",
    "centrality_correctors",
    "cholesky",
    "max_step",
    "region_memo",
    "region_normal_matrix",
    "resolve_device",
    "single_precision_state",
    "solve_factored",
    "step_length",
    "weighted_gram",
    "zero_columns",
]

#: Accepted values of ``device`` (``None``: numpy/LAPACK on the CPU).
DEVICES = (None, "numpy", "cpu", "cuda")
_SPARSE_BLOCKS = 8  # column blocks of the sparse product (bounds its fresh allocation)
_GROUP_MAX_FRACTION = 0.5  # support groups: supports of at most this share of the columns
_GROUP_MIN_ROWS = 2  # ... shared by at least this many rows
_GROUP_MIN_NNZ = 3  # ... and wider than box rows (+-e_j with a border: the narrow rows' path)
_MAX_REGULARIZATIONS = 9  # one plain try and eight growing shifts
_STEP_TO_BOUNDARY = 0.99
N_CORRECTORS = 2  # Gondzio centrality correctors per iteration (see centrality_correctors)
_SINGLE_MIN_N = 2048  # float32 Cholesky (refined) for normal matrices at least this large
_SINGLE_MAX_ERROR = 1e-2  # ... while the refinement's error estimate stays below this


# --------------------------------------------------------------------------- policies


def blas_threads(threads: int | None):
    """Context limiting BLAS threads to ``threads``: the one BLAS thread policy of the solvers.

    ``None`` reads the ``LRTOOLS_BLAS_THREADS`` environment variable (the runner and the
    workers set it; unset: leave the current setting). On cores shared with other jobs
    ``threads=1`` avoids OpenBLAS oversubscription, which can make a Cholesky factorisation
    10-60x slower.
    """
    if threads is None:
        env = os.environ.get("LRTOOLS_BLAS_THREADS")
        if not env:
            return contextlib.nullcontext()
        try:
            threads = int(env)
        except ValueError:
            raise ValueError(f"LRTOOLS_BLAS_THREADS must be a positive integer; got {env!r}. "
                             "Unset it to keep the BLAS default.") from None
    if threads < 1:
        raise ValueError(f"threads must be >= 1; got {threads}.")
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=int(threads), user_api="blas")


def resolve_device(device: str | None) -> str | None:
    """``None`` for the numpy path, ``"cpu"``/``"cuda"`` for torch tensors on that device.

    ``device=None`` reads the ``LRTOOLS_DEVICE`` environment variable (unset or ``"numpy"``
    means numpy). ``"cuda"`` without a CUDA device raises ``ValueError``.
    """
    if device is None:
        device = os.environ.get("LRTOOLS_DEVICE") or None
    if device in (None, "numpy"):
        return None
    if device not in DEVICES:
        raise ValueError(
            f"device must be one of {DEVICES}; got {device!r}. Use 'cpu' or 'cuda' for torch "
            "tensors, None or 'numpy' for numpy/LAPACK."
        )
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ValueError("device='cuda' was requested but torch sees no CUDA device; "
                             "use device=None (numpy) or 'cpu'.")
    return device


# --------------------------------------------------------------------------- step lengths


def max_step(v: np.ndarray, dv: np.ndarray) -> float:
    """Largest ``a`` with ``v + a dv >= 0`` for ``v > 0``; ``inf`` when ``dv >= 0``."""
    neg = dv < 0
    if not np.any(neg):
        return np.inf
    return float(np.min(v[neg] / -dv[neg]))


def step_length(v: np.ndarray, dv: np.ndarray, fraction: float = _STEP_TO_BOUNDARY) -> float:
    """The step rule of every method: ``fraction * min(1, max_step(v, dv))`` (never a full
    step onto or beyond the boundary; at most ``fraction``)."""
    return fraction * min(1.0, max_step(v, dv))


def centrality_correctors(s: np.ndarray, lam: np.ndarray, step: tuple, r: np.ndarray,
                          sigma: float, mu: float, solve, n_correctors: int = N_CORRECTORS):
    r"""Gondzio's multiple centrality correctors on a Mehrotra predictor-corrector step.

    ``step = (dx, ds, dlam)`` solves the Newton system for the complementarity residual ``r``
    (centring target :math:`s_i \lambda_i \to \sigma\mu`); ``solve(r')`` returns the
    step for another residual with the same factor. Each corrector pushes the products
    :math:`(s + \bar a\, ds)(\lambda + \bar a\, d\lambda)` at a trial step
    :math:`\bar a = \min(1, 1.5 a + 0.1)` back into :math:`[0.1, 10]\,\sigma\mu` and is kept
    only while it lengthens the shorter of the two steps by at least 1% (Gondzio, "Multiple
    centrality corrections in a primal-dual method for linear programming", Comput. Optim.
    Appl. 6, 1996). Returns ``(step, a_p, a_d)`` with :func:`step_length`'s step lengths.

    Each corrector costs one solve with the existing factor; on the LP of eq. (5) of a
    paper-size MNIST region two of them took the iterations from 16-18 to 13.
    """
    a_p, a_d = step_length(s, step[1]), step_length(lam, step[2])
    for _ in range(n_correctors):
        a_t = min(1.0, 1.5 * min(a_p, a_d) + 0.1)
        v = (s + a_t * step[1]) * (lam + a_t * step[2])
        corr = np.maximum(np.clip(v, 0.1 * sigma * mu, 10 * sigma * mu) - v, -10 * sigma * mu)
        cand = solve(r - corr)
        b_p, b_d = step_length(s, cand[1]), step_length(lam, cand[2])
        if min(b_p, b_d) < 1.01 * min(a_p, a_d):
            break
        step, (a_p, a_d), r = cand, (b_p, b_d), r - corr
    return step, a_p, a_d


# --------------------------------------------------------------------------- memo

_MEMO: dict[int, tuple[weakref.ref, dict]] = {}  # id(G) -> (weak reference to G, {key: value})


def region_memo(G, key: tuple, build):
    """``build(G)``, computed once per array object ``G`` and ``key`` while ``G`` lives.

    Eq. (6) solves every class of a region one after another, and then the nearest optimum of
    each (:mod:`lrtools.solvers.nearest`), on the same ``A``: each solve used to split it into
    a new :class:`NormalMatrix` (0.19 CPU-s on the Table 3 CNN region, 20 times per Table 4
    point) and the multiplier polish converted it to CSR (0.15 s, 10 times). Only a
    read-only ``numpy`` array is memoised (:func:`lrtools.analyses.class_regions` marks a
    region's arrays so): one that can still be written could change between two solves, and
    is built anew each time. The entry is keyed by the identity of ``G`` and dropped when
    ``G`` is freed; the value must only be used by one solve at a time (a
    :class:`NormalMatrix` holds the buffers of its normal matrix and factor).
    """
    if not isinstance(G, np.ndarray) or G.flags.writeable:
        return build(G)
    entry = _MEMO.get(id(G))
    if entry is None or entry[0]() is not G:
        ident = id(G)
        entry = (weakref.ref(G, lambda _ref: _MEMO.pop(ident, None)), {})
        _MEMO[ident] = entry
    values = entry[1]
    if key not in values:
        values[key] = build(G)
    return values[key]


def zero_columns(A) -> np.ndarray:
    """Indices of the all-zero columns of ``A`` (dense: by row blocks, no m x d mask; sparse:
    stored entries count as non-zero)."""
    used = np.zeros(A.shape[1], dtype=bool)
    if sparse.issparse(A):
        used[sparse.csr_matrix(A).indices] = True
    else:
        for a in range(0, A.shape[0], 1024):
            used |= np.any(A[a : a + 1024] != 0, axis=0)
    return np.flatnonzero(~used)


def region_normal_matrix(A, *, dense_row_fraction: float = 0.05, device: str | None = None,
                         objective: np.ndarray | None = None) -> NormalMatrix:
    """The :class:`NormalMatrix` of a region's rows ``A``, one per read-only ``A`` and settings
    (:func:`region_memo`): eq. (6) and the nearest optima call this, so that they share it.

    ``objective`` is the matrix through which the objective depends on ``x`` (the logit
    Jacobian ``W`` of eq. 6). The columns of ``A`` that are zero in ``A`` and in it only
    meet their box: they are split off the factorisation (``free_columns``)."""
    device = resolve_device(device)
    free = None
    if objective is not None and device is None:
        zero = region_memo(A, ("zero_columns",), zero_columns)
        if zero.size and not np.any(np.asarray(objective)[:, zero]):
            free = zero
    return region_memo(A, ("normal_matrix", dense_row_fraction, device, free is not None),
                       lambda G: NormalMatrix(G, dense_row_fraction=dense_row_fraction,
                                              device=device, free_columns=free))


# --------------------------------------------------------------------------- Cholesky


class SinglePrecision:
    r"""State of the single-precision factorisation of one region's normal matrices.

    A float32 Cholesky factor (LAPACK ``spotrf``, about half the time of ``dpotrf`` at
    n = 3,073 on this machine: 0.12 s against 0.23 s) serves while the matrix is well enough
    conditioned: every solve takes one step of iterative refinement against the float64 matrix,

    .. math::

        y = \tilde U^{-1}\tilde U^{-T} r,\quad c = \tilde U^{-1}\tilde U^{-T}(r - K y),
        \quad K^{-1} r \approx y + c,

    and :math:`\|c\| / \|y + c\|` estimates the relative error of the unrefined ``y``
    (refinement contracts the error by about that factor). When the estimate exceeds
    ``max_error``, or ``spotrf`` fails, this solve and every later factorisation use float64
    until :meth:`reset` (barrier matrices only grow worse conditioned along the path; eq. 6
    resets at each class). The
    solves are Newton directions of interior-point methods whose residuals and certificates
    are measured in float64 by the caller, so the precision of a direction changes the
    path, never an answer.
    """

    def __init__(self, n: int, max_error: float = _SINGLE_MAX_ERROR) -> None:
        self.work = np.empty((n, n), dtype=np.float32, order="F")
        self.max_error = max_error
        self.enabled = True
        self.n_single = 0  # factorisations that served in float32
        self.n_upgraded = 0  # ... and that were replaced by float64 on their error estimate

    def reset(self) -> None:
        """Enable float32 factors again and zero the counts: a new solve on the same rows
        starts well conditioned."""
        self.enabled = True
        self.n_single = self.n_upgraded = 0


def single_precision_state(n: int, device: str | None) -> SinglePrecision | None:
    """A :class:`SinglePrecision` for normal matrices of order ``n`` on the numpy path when it
    pays (``n >= 2048``, e.g. the CIFAR CNN's 3,072 inputs; the MNIST 785 stays in float64),
    else None. ``LRTOOLS_CHOLESKY=double`` turns it off."""
    if device is not None or n < _SINGLE_MIN_N:
        return None
    if os.environ.get("LRTOOLS_CHOLESKY", "").lower() == "double":
        return None
    return SinglePrecision(n)


def _symv(K: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``K y`` from the upper triangle of ``K`` (either memory order, no copy)."""
    if K.flags.f_contiguous:
        return blas.dsymv(1.0, K, y, lower=0)
    return blas.dsymv(1.0, K.T, y, lower=1)


def solve_factored(U: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """``(U^T U)^{-1} rhs`` from the upper triangle of ``U`` (float32 or float64 like ``U``).

    One right-hand side goes through two ``trsv`` (BLAS-2): LAPACK's ``potrs`` calls ``trsm``,
    which for a single column took 8.3 ms against 2.9 ms (float64) and 1.2 ms (float32) at
    n = 3,073 on this machine; several columns keep ``potrs``.
    """
    single = U.dtype == np.float32
    if rhs.ndim == 1:
        trsv = blas.strsv if single else blas.dtrsv
        y = trsv(U, rhs.astype(U.dtype), trans=1, lower=0)
        return trsv(U, y, trans=0, lower=0, overwrite_x=1)
    sol, info = (lapack.spotrs if single else lapack.dpotrs)(U, rhs.astype(U.dtype), lower=0)
    if info != 0:  # pragma: no cover - only for malformed arguments
        raise ValueError(f"potrs failed with info={info}.")
    return sol


class Factor:
    """Upper Cholesky factor of a normal matrix (numpy or torch), with its solve."""

    def __init__(self, U, regularization: float, torch_device: str | None = None,
                 single: tuple | None = None) -> None:
        self.U = U
        self.regularization = regularization
        self.torch_device = torch_device
        self._single = single  # (K, state, work, max_tries, info) while U is float32

    @property
    def precision(self) -> str:
        """``"single"`` (float32 factor with refinement) or ``"double"``."""
        return "double" if self._single is None else "single"

    def _solve_single(self, rhs: np.ndarray) -> np.ndarray:
        K, state = self._single[0], self._single[1]
        col = rhs.ndim == 1
        R = rhs[:, None] if col else rhs
        out = np.empty(R.shape)
        for j in range(R.shape[1]):
            r = R[:, j]
            y = solve_factored(self.U, r).astype(np.float64)
            c = solve_factored(self.U, r - _symv(K, y))
            y += c
            ny = np.linalg.norm(y)
            if not (np.isfinite(ny) and np.linalg.norm(c) <= state.max_error * ny):
                return self._upgrade(rhs)
            out[:, j] = y
        return out[:, 0] if col else out

    def _upgrade(self, rhs: np.ndarray) -> np.ndarray:
        K, state, work, max_tries, info = self._single
        state.enabled = False
        state.n_upgraded += 1
        F = cholesky(K, work=work, max_tries=max_tries, info=info)
        if F is None:
            n = K.shape[0]
            raise SolverError(f"the {n} x {n} normal matrix, factored in float32, stays "
                              "singular in float64 after regularisation.")
        self.U, self.regularization, self._single = F.U, F.regularization, None
        return self.solve(rhs)

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        """``K^{-1} rhs`` for ``rhs`` of shape (n,) or (n, k) (numpy in, numpy out)."""
        if self._single is not None:
            return self._solve_single(rhs)
        if self.torch_device is None:
            return solve_factored(self.U, np.asarray(rhs, dtype=np.float64))
        import torch

        r = torch.as_tensor(np.asarray(rhs, dtype=np.float64), device=self.torch_device)
        col = r.ndim == 1
        sol = torch.cholesky_solve(r[:, None] if col else r, self.U, upper=True)
        out = sol.cpu().numpy()
        return out[:, 0] if col else out


class SplitMatrix:
    """A normal matrix with free columns: ``M`` (Fortran, upper triangle) on ``cols`` and the
    diagonal ``free_diag`` on ``free`` (:class:`NormalMatrix` with ``free_columns``)."""

    def __init__(self, M: np.ndarray, cols: np.ndarray, free: np.ndarray,
                 free_diag: np.ndarray) -> None:
        self.M, self.cols, self.free, self.free_diag = M, cols, free, free_diag


class SplitFactor:
    """The factor of a :class:`SplitMatrix`: ``factor`` on its columns, a diagonal on the
    free ones; :meth:`solve` takes and returns full-length vectors."""

    def __init__(self, factor: Factor, K: SplitMatrix, free_diag: np.ndarray) -> None:
        self.factor, self.cols, self.free, self.free_diag = factor, K.cols, K.free, free_diag

    @property
    def regularization(self) -> float:
        return self.factor.regularization

    @property
    def precision(self) -> str:
        return self.factor.precision

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        """``K^{-1} rhs`` for ``rhs`` of shape (n,) or (n, k)."""
        rhs = np.asarray(rhs, dtype=np.float64)
        out = np.empty(rhs.shape)
        out[self.cols] = self.factor.solve(rhs[self.cols])
        d = self.free_diag if rhs.ndim == 1 else self.free_diag[:, None]
        out[self.free] = rhs[self.free] / d
        return out


def _cholesky_split(K: SplitMatrix, **kwargs) -> SplitFactor | None:
    """Factor a :class:`SplitMatrix`: the dense block by :func:`cholesky`, the free diagonal
    with that block's shift (a non-positive entry, singular in the full matrix too, takes
    the first shift of :func:`cholesky`'s rule)."""
    F = cholesky(K.M, **kwargs)
    if F is None:
        return None
    fd = K.free_diag + F.regularization
    if np.any(fd <= 0):
        scale = 1e-14 * max(float(K.M.diagonal().max(initial=0.0)), 1.0)
        fd = np.where(fd > 0, fd, max(F.regularization, scale))
    return SplitFactor(F, K, fd)


def cholesky(K, *, work: np.ndarray | None = None, max_tries: int = _MAX_REGULARIZATIONS,
             info: dict | None = None, single: SinglePrecision | None = None) -> Factor | None:
    r"""Regularised Cholesky factor of the upper triangle of ``K``, or None.

    Tries :math:`K`, then :math:`K + \delta I` with :math:`\delta = 10^{-14}\max(1, \max_i
    K_{ii})` growing 100x per try, ``max_tries`` tries in all. ``K`` is not modified: the
    factorisation runs in ``work`` (a preallocated Fortran buffer of the same shape, filled by
    copy) when given. ``info["regularizations"]`` counts the shifts used. A torch tensor ``K``
    is factored with torch on its device.

    With ``single`` (a :class:`SinglePrecision` still enabled), ``K`` is first factored in
    float32, unshifted; the factor's solves refine against ``K``, so ``K`` must stay unchanged
    while the factor is in use (every method here factors, solves, then updates).

    A :class:`SplitMatrix` gives a :class:`SplitFactor` (its dense block factored as above).
    """
    if isinstance(K, SplitMatrix):
        return _cholesky_split(K, work=work, max_tries=max_tries, info=info, single=single)
    if not isinstance(K, np.ndarray):
        return _cholesky_torch(K, max_tries, info)
    n = K.shape[0]
    if single is not None and single.enabled:
        np.copyto(single.work, K, casting="same_kind")
        U, code = lapack.spotrf(single.work, lower=0, clean=0, overwrite_a=1)
        if code == 0:
            single.n_single += 1
            return Factor(U, 0.0, single=(K, single, work, max_tries, info))
        single.enabled = False
    if work is None:
        work = np.empty((n, n), order="F")
    diag0 = K.diagonal().copy()
    shift, scale = 0.0, 1e-14 * max(float(diag0.max(initial=0.0)), 1.0)
    for attempt in range(max_tries):
        np.copyto(work, K)
        if shift:
            work[np.diag_indices(n)] = diag0 + shift
        U, code = lapack.dpotrf(work, lower=0, clean=0, overwrite_a=1)
        if code == 0:
            return Factor(U, shift)
        if info is not None:
            info["regularizations"] = info.get("regularizations", 0) + 1
        shift = scale * 100.0**attempt
    return None


def _cholesky_torch(K, max_tries: int, info: dict | None) -> Factor | None:
    import torch

    Kt = torch.triu(K) + torch.triu(K, 1).T  # symmetric from the upper triangle
    diag0 = torch.diagonal(Kt).clone()
    scale = 1e-14 * max(float(diag0.max()), 1.0)
    shift = 0.0
    for attempt in range(max_tries):
        if shift:
            torch.diagonal(Kt).copy_(diag0 + shift)
        U, code = torch.linalg.cholesky_ex(Kt, upper=True)
        if int(code) == 0:
            return Factor(U, shift, torch_device=str(K.device))
        if info is not None:
            info["regularizations"] = info.get("regularizations", 0) + 1
        shift = scale * 100.0**attempt
    return None


# --------------------------------------------------------------------------- low-rank terms


class LowRank:
    r"""A symmetric low-rank term :math:`U U^T - \sum_k v_k v_k^T` (eq. 6's Hessian
    :math:`W^T(\operatorname{diag} p - p p^T) W = (W^T \operatorname{diag}\sqrt{p})(\dots)^T
    - (W^T p)(W^T p)^T`), added into the normal matrix by ``dsyrk``/``dsyr`` on its upper
    triangle in place, without forming the d x d matrix.
    """

    def __init__(self, U: np.ndarray, minus: tuple[np.ndarray, ...] = ()) -> None:
        self.U = np.asfortranarray(U, dtype=np.float64)
        self.minus = tuple(np.asarray(v, dtype=np.float64) for v in minus)

    def add_upper(self, M: np.ndarray) -> None:
        """``M += U U^T - sum v v^T`` on the upper triangle of the Fortran matrix ``M``."""
        blas.dsyrk(1.0, self.U, beta=1.0, c=M, trans=0, lower=0, overwrite_c=1)
        for v in self.minus:
            blas.dsyr(-1.0, v, lower=0, a=M, overwrite_a=1)

    def dense(self) -> np.ndarray:
        """The full symmetric matrix."""
        out = self.U @ self.U.T
        for v in self.minus:
            out -= np.outer(v, v)
        return out


# --------------------------------------------------------------------------- the normal matrix


def weighted_gram(B: np.ndarray, w: np.ndarray, *, out: np.ndarray | None = None,
                  keep: np.ndarray | None = None, buf: np.ndarray | None = None,
                  beta: float = 0.0) -> np.ndarray:
    r"""Upper triangle of :math:`B_K^T \operatorname{diag}(w_K) B_K + \beta C` by ``syrk``.

    ``K`` is ``keep`` (row indices) or every row. ``out`` (:math:`C`, Fortran, ``n x n``) is
    written in place; ``buf`` (C order, at least ``len(K) x n``) holds the scaled rows.
    Only the upper triangle of the result is meaningful.
    """
    k = B.shape[0] if keep is None else keep.size
    n = B.shape[1]
    if out is None:
        out = np.zeros((n, n), order="F")
    if k == 0:
        if beta == 0.0:
            out.fill(0.0)
        return out
    if buf is None:
        buf = np.empty((k, n))
    Wk = buf[:k]
    root = np.sqrt(w if keep is None else w[keep])
    if keep is None:
        np.multiply(B, root[:, None], out=Wk)
    else:
        np.take(B, keep, axis=0, out=Wk, mode="clip")  # "raise" would buffer a copy
        Wk *= root[:, None]
    return blas.dsyrk(1.0, Wk.T, beta=beta, c=out, trans=0, lower=0, overwrite_c=1)


class NormalMatrix:
    r"""The barrier normal matrix :math:`G^T \operatorname{diag}(d) G + \operatorname{diag}(e) + H`.

    ``G`` (dense or sparse, shape (m, n)) is split once. Rows whose support (set of non-zero
    columns) has at least 3 and at most half the columns and is shared by at least two rows
    form *support groups*: a group of ``k`` rows on ``s`` columns adds its ``s x s`` block
    :math:`B^T \operatorname{diag}(d_B) B` (``k s^2`` flops instead of ``k n^2``). On the
    Table 3 CNN (Appendix E of Zhang & Wu, ICLR 2020) these are the units of one convolution
    layer at one position: the third layer's 1,152 rows see 675 of 3,072 inputs in 9
    supports. Of the other rows, those with more than ``dense_row_fraction * n`` non-zeros
    form a dense block (BLAS ``syrk``); rows with a single non-zero outside the *border*
    columns (columns present in more than half the sparse rows, e.g. the radius column of
    eq. 5) are *narrow* rows (a diagonal plus a border, by
    ``bincount``); the remaining sparse rows (convolution rows) stay CSR, with their transposed
    pattern built once and the weighted data written into a preallocated array. ``update``
    writes the matrix into one preallocated Fortran buffer.

    Parameters
    ----------
    G : ndarray or scipy.sparse matrix of shape (m, n)
    dense_row_fraction : float, default=0.05
    device : {None, "numpy", "cpu", "cuda"}, default=None
        ``None``/``"numpy"``: numpy and LAPACK; ``"cpu"``/``"cuda"``: the dense block lives on
        that torch device and :meth:`update` returns a torch tensor (factor it with
        :func:`cholesky`).
    free_columns : ndarray of int, optional
        Columns of ``G`` that are all zero (numpy path only). The matrix is then block
        diagonal (when ``extra`` is zero on them too, as :meth:`update` checks): a diagonal
        block on these columns and the rest, so :meth:`update` returns a
        :class:`SplitMatrix` and the Cholesky factorisation runs on the rest only. On the
        Table 3 CNN 189 of 3,072 pixels (the last row and column of each channel) are seen by
        no unit: a 2,883 x 2,883 factor, 0.83x the flops of the full one.
    """

    def __init__(self, G, *, dense_row_fraction: float = 0.05, device: str | None = None,
                 free_columns: np.ndarray | None = None):
        m, n = G.shape
        self.shape = (m, n)
        self.device = resolve_device(device)
        if sparse.issparse(G):
            G = sparse.csr_matrix(G, dtype=np.float64)
            G.sum_duplicates()
            nnz = np.diff(G.indptr)
        else:
            G = np.asarray(G, dtype=np.float64)
            nnz = np.count_nonzero(G, axis=1)
        # columns split off (all zero in G): every piece below lives on the other columns
        self.cols = self.free = None
        if free_columns is not None and len(free_columns) and self.device is None:
            keep = np.ones(n, dtype=bool)
            keep[np.asarray(free_columns, dtype=np.intp)] = False
            self.cols, self.free = np.flatnonzero(keep), np.flatnonzero(~keep)
        n_r = n if self.cols is None else self.cols.size
        grouped = self._find_groups(G, nnz, n)
        is_dense = (nnz > dense_row_fraction * n) & ~grouped
        self.dense_idx = np.flatnonzero(is_dense)
        rest = np.flatnonzero(~is_dense & ~grouped)
        if sparse.issparse(G):
            self.Gd = np.ascontiguousarray(G[self.dense_idx].toarray())
            Gs = G[rest]
        else:
            self.Gd = np.ascontiguousarray(G[self.dense_idx])
            Gs = sparse.csr_matrix(G[rest])
        if self.cols is not None:
            self.Gd = np.ascontiguousarray(self.Gd[:, self.cols])
            Gs = Gs[:, self.cols]
        self._split_sparse(Gs, rest, n_r)
        self._norms2 = None
        self._gd2 = None
        self._buf = np.empty_like(self.Gd)
        self.M = np.zeros((n_r, n_r), order="F")
        self.work = np.empty((n_r, n_r), order="F")
        self.single = single_precision_state(n_r, self.device)  # float32 factors (cholesky)
        if self.device is not None:
            import torch

            self._Gd_t = torch.as_tensor(self.Gd, device=self.device)

    # ---- construction
    def _find_groups(self, G, nnz: np.ndarray, n: int) -> np.ndarray:
        """Support groups (class docstring); returns the mask of the rows they take.

        Candidate rows are keyed by their support: the column indices of a CSR row, or (dense
        ``G``, which is never copied whole) the non-zero count and a random projection of the
        non-zero mask. A group is then checked exactly: a row stays in it only if all of its
        ``nnz`` non-zeros lie in the first row's support of the same size.
        """
        grouped = np.zeros(G.shape[0], dtype=bool)
        self._groups = []  # (rows, columns, B: k x s rows on those columns, C order)
        cand = np.flatnonzero((nnz >= _GROUP_MIN_NNZ) & (nnz <= _GROUP_MAX_FRACTION * n))
        by_support: dict = {}
        if cand.size >= _GROUP_MIN_ROWS and sparse.issparse(G):
            Gc = G[cand]  # canonical CSR (sorted indices, no duplicates: see __init__)
            ptr, ind = Gc.indptr, Gc.indices
            for r in range(cand.size):
                by_support.setdefault(ind[ptr[r] : ptr[r + 1]].tobytes(), []).append(cand[r])
        elif cand.size >= _GROUP_MIN_ROWS:
            probe = np.random.default_rng(0).standard_normal(n)
            sig = np.empty(G.shape[0])
            for a in range(0, G.shape[0], 1024):  # row blocks: views, no copy of G
                sig[a : a + 1024] = (G[a : a + 1024] != 0) @ probe
            for r in cand:
                by_support.setdefault((int(nnz[r]), float(sig[r])), []).append(r)
        for members in by_support.values():
            if len(members) < _GROUP_MIN_ROWS:
                continue
            rows = np.asarray(members, dtype=np.intp)
            first = G[rows[0]]
            cols = (first.indices if sparse.issparse(G) else np.flatnonzero(first)).astype(np.intp)
            B = G[rows][:, cols].toarray() if sparse.issparse(G) else G[np.ix_(rows, cols)]
            exact = np.count_nonzero(B, axis=1) == nnz[rows]  # support == cols, row by row
            if cols.size != nnz[rows[0]] or exact.sum() < _GROUP_MIN_ROWS:
                continue
            self._groups.append((rows[exact], cols, np.ascontiguousarray(B[exact])))
            grouped[rows[exact]] = True
        if self.cols is not None:  # group supports never hold a free (all-zero) column
            index = np.full(n, -1, dtype=np.intp)
            index[self.cols] = np.arange(self.cols.size)
            self._groups = [(r, index[c], B) for r, c, B in self._groups]
        # the s x s blocks, row-major one after another, and their (row, column) in M: one
        # COO addition per update (overlapping supports add up)
        sizes = [cols.size**2 for _, cols, _ in self._groups]
        self._g_off = np.concatenate([[0], np.cumsum(sizes)]).astype(np.intp)
        self._g_buf = np.empty(int(self._g_off[-1]))
        self._g_scratch = np.empty(max([B.size for _, _, B in self._groups], default=0))
        self._g_i = np.concatenate([np.repeat(c, c.size) for _, c, _ in self._groups]
                                   or [np.zeros(0)]).astype(np.int32)
        self._g_j = np.concatenate([np.tile(c, c.size) for _, c, _ in self._groups]
                                   or [np.zeros(0)]).astype(np.int32)
        self.group_idx = (np.concatenate([g[0] for g in self._groups]) if self._groups
                          else np.zeros(0, dtype=np.intp))
        self._Gg = None  # the grouped rows in group_idx order, as CSR built from the blocks
        if self._groups:
            data = np.concatenate([B.ravel() for _, _, B in self._groups])
            indices = np.concatenate([np.tile(c, r.size) for r, c, _ in self._groups])
            lengths = np.concatenate([np.full(r.size, c.size) for r, c, _ in self._groups])
            indptr = np.concatenate([[0], np.cumsum(lengths)])
            n_r = n if self.cols is None else self.cols.size
            self._Gg = sparse.csr_matrix((data, indices, indptr),
                                         shape=(self.group_idx.size, n_r))
        return grouped

    def _split_sparse(self, Gs: sparse.csr_matrix, rest: np.ndarray, n: int) -> None:
        """Narrow rows (one column outside the border) and general CSR rows."""
        Gs = Gs.tocsr()
        col_count = np.bincount(Gs.indices, minlength=n)
        border = np.flatnonzero(col_count > max(0.5 * Gs.shape[0], 1)) if Gs.shape[0] else []
        self.border = np.asarray(border, dtype=np.intp)
        is_border = np.zeros(n, dtype=bool)
        is_border[self.border] = True
        inner = ~is_border[Gs.indices]
        row_of = np.repeat(np.arange(Gs.shape[0]), np.diff(Gs.indptr))
        inner_per_row = np.bincount(row_of[inner], minlength=Gs.shape[0])
        narrow = inner_per_row <= 1
        self.narrow_idx = rest[narrow]
        self.sparse_idx = rest[~narrow]
        Gn = Gs[np.flatnonzero(narrow)]
        rown = np.repeat(np.arange(Gn.shape[0]), np.diff(Gn.indptr))
        inn = ~is_border[Gn.indices]
        self._n_col = np.full(Gn.shape[0], -1, dtype=np.intp)  # main column (-1: border only)
        self._n_val = np.zeros(Gn.shape[0])
        self._n_col[rown[inn]] = Gn.indices[inn]
        self._n_val[rown[inn]] = Gn.data[inn]
        pos = {c: i for i, c in enumerate(self.border)}
        self._n_border = np.zeros((Gn.shape[0], self.border.size))  # border values per row
        bmask = ~inn
        if bmask.any():
            self._n_border[rown[bmask], [pos[c] for c in Gn.indices[bmask]]] = Gn.data[bmask]
        self._Gn = Gn
        self.Gs = Gs[np.flatnonzero(~narrow)]
        self.GsT = self.Gs.T.tocsr()
        self.GsT.sort_indices()
        self._wbuf = np.empty(self.GsT.nnz)
        # column blocks of G_s^T D G_s: row blocks of G_s^T with their own data buffers, so that
        # each sparse product (the only fresh allocation of an update) is a fraction of P
        n_blocks = int(min(_SPARSE_BLOCKS, max(1, self.GsT.shape[0])))
        edges = np.linspace(0, self.GsT.shape[0], n_blocks + 1).astype(np.intp)
        self._blocks = []
        for r0, r1 in zip(edges[:-1], edges[1:], strict=True):
            if r1 > r0:
                blk = self.GsT[r0:r1].copy()  # same pattern, data rewritten at every update
                lo, hi = self.GsT.indptr[r0], self.GsT.indptr[r1]
                self._blocks.append((r0, r1, blk, slice(lo, hi)))

    # ---- products with G
    def matvec(self, y: np.ndarray) -> np.ndarray:
        """``G @ y`` in the original row order."""
        if self.cols is not None:
            y = y[self.cols]
        out = np.empty(self.shape[0])
        out[self.dense_idx] = self.Gd @ y
        out[self.sparse_idx] = self.Gs @ y
        out[self.narrow_idx] = self._Gn @ y
        if self._Gg is not None:
            out[self.group_idx] = self._Gg @ y
        return out

    def rmatvec(self, v: np.ndarray) -> np.ndarray:
        """``G.T @ v``."""
        out = (self.Gd.T @ v[self.dense_idx] + self.GsT @ v[self.sparse_idx]
               + self._Gn.T @ v[self.narrow_idx])
        if self._Gg is not None:
            out += self._Gg.T @ v[self.group_idx]
        if self.cols is not None:
            full = np.zeros(self.shape[1])
            full[self.cols] = out
            return full
        return out

    def row_norms2(self) -> np.ndarray:
        """Squared norms of the dense rows (cached)."""
        if self._norms2 is None:
            self._norms2 = np.einsum("ij,ij->i", self.Gd, self.Gd)
        return self._norms2

    # ---- the kernel
    def prepare_reduction(self) -> None:
        """Build the caches of reduced updates (row norms, squared entries) now, once."""
        self.row_norms2()
        self._squares()

    def heaviest(self, d: np.ndarray, n_keep: int) -> np.ndarray | None:
        """Indices (into the dense block) of the ``n_keep`` dense rows of largest weight
        ``d_i ||g_i||^2``, or None when every dense row is kept."""
        nd = self.dense_idx.size
        if n_keep >= nd:
            return None
        wt = d[self.dense_idx] * self.row_norms2()
        return np.sort(np.argpartition(wt, nd - n_keep)[nd - n_keep :])

    def update(self, d: np.ndarray, *, diag: np.ndarray | None = None, extra=None,
               keep: np.ndarray | None = None):
        r"""Write :math:`G^T D G + \operatorname{diag}(\text{diag}) + \text{extra}` in place.

        Parameters
        ----------
        d : ndarray of shape (m,)
            Row weights (non-negative).
        diag : ndarray of shape (n,), optional
            Extra diagonal (box rows handled by the caller).
        extra : ndarray of shape (n, n) or LowRank, optional
            Extra symmetric term added to the upper triangle (e.g. eq. 6's Hessian).
        keep : ndarray of int, optional
            Dense rows (indices into the dense block, from :meth:`heaviest`) entering exactly;
            the other dense rows add only their diagonal :math:`\sum_i d_i g_{ij}^2`.

        Returns
        -------
        ndarray (Fortran, upper triangle valid), SplitMatrix or torch tensor
            The preallocated buffer :attr:`M` (a torch tensor on the torch path); with free
            columns a :class:`SplitMatrix` of :attr:`M` and the free columns' diagonal
            (factor either with :func:`cholesky`).
        """
        dd = d[self.dense_idx]
        if self.device is not None:
            return self._update_torch(d, dd, diag, extra, keep)
        M = self.M
        free_diag = None
        if self.cols is not None:
            diag, extra, free_diag = self._split_terms(diag, extra)
        weighted_gram(self.Gd, dd, out=M, keep=keep, buf=self._buf)
        self._add_rest(M, d, dd, diag, extra, keep)
        return M if free_diag is None else SplitMatrix(M, self.cols, self.free, free_diag)

    def _split_terms(self, diag, extra):
        """``diag`` and ``extra`` on the kept columns, and the free columns' diagonal.

        The free columns are zero in ``G``; ``extra`` must be zero on them too (eq. 6's Hessian
        and the nearest optimum's terms are products with the logit Jacobian, zero where no
        hidden unit sees the input), so the matrix is block diagonal with a diagonal block.
        """
        cols, free = self.cols, self.free
        free_diag = np.zeros(free.size) if diag is None else np.array(diag, dtype=np.float64)[free]
        if isinstance(extra, LowRank):
            if np.any(extra.U[free]) or any(np.any(v[free]) for v in extra.minus):
                raise ValueError("extra couples the free columns of the normal matrix; build it "
                                 "without free_columns.")
            extra = LowRank(extra.U[cols], tuple(v[cols] for v in extra.minus))
        elif extra is not None:
            extra = np.asarray(extra)
            if np.any(extra[free]) or np.any(extra[:, free]):
                raise ValueError("extra couples the free columns of the normal matrix; build it "
                                 "without free_columns.")
            extra = extra[np.ix_(cols, cols)]
        return (None if diag is None else np.asarray(diag)[cols]), extra, free_diag

    def _add_rest(self, M, d, dd, diag, extra, keep) -> None:
        """Group, sparse, narrow, dropped-dense, diagonal and extra terms, added into ``M``."""
        n = M.shape[0]
        for (rows, cols, B), off in zip(self._groups, self._g_off, strict=False):
            # full symmetric blocks (the torch path needs both triangles)
            Bw = self._g_scratch[: B.size].reshape(B.shape)
            np.multiply(B, d[rows][:, None], out=Bw)
            block = self._g_buf[off : off + cols.size**2].reshape(cols.size, cols.size)
            np.matmul(B.T, Bw, out=block)
            if _coo_add_into is None:  # pragma: no cover
                M[np.ix_(cols, cols)] += block
        if self._groups and _coo_add_into is not None:  # M.T: C-contiguous, blocks symmetric
            _coo_add_into(n, n, self._g_buf.size, self._g_i, self._g_j, self._g_buf, M.T, 0)
        if self.sparse_idx.size:
            ds = d[self.sparse_idx]
            np.take(ds, self.GsT.indices, out=self._wbuf, mode="clip")
            np.multiply(self.GsT.data, self._wbuf, out=self._wbuf)
            MT = M.T  # C-contiguous view: rows r0:r1 of M.T are columns r0:r1 of M
            for r0, r1, blk, nz in self._blocks:
                blk.data[:] = self._wbuf[nz]
                P = (blk @ self.Gs).tocsr()  # rows r0:r1 of the sparse product
                if _csr_add_into is not None:
                    _csr_add_into(r1 - r0, n, P.indptr, P.indices, P.data, MT[r0:r1])
                else:  # pragma: no cover
                    MT[r0:r1] += P.toarray()
        diagonal = np.zeros(n) if diag is None else np.array(diag, dtype=np.float64)
        if self.narrow_idx.size:
            dn = d[self.narrow_idx]
            main = self._n_col >= 0
            diagonal += np.bincount(self._n_col[main], weights=dn[main] * self._n_val[main] ** 2,
                                    minlength=n)
            if self.border.size:
                Bw = self._n_border * dn[:, None]
                cross = np.zeros((n, self.border.size))
                np.add.at(cross, self._n_col[main], Bw[main] * self._n_val[main, None])
                B = self.border
                M[:, B] += cross  # (j, b) and (b, j): main columns are never border columns
                M[B, :] += cross.T
                M[np.ix_(B, B)] += self._n_border.T @ Bw
        if keep is not None:  # dropped dense rows: their diagonal only
            dropped = dd.copy()
            dropped[keep] = 0.0
            diagonal += self._squares().T @ dropped
        M[np.diag_indices(n)] += diagonal
        if isinstance(extra, LowRank):
            extra.add_upper(M)
        elif extra is not None:  # symmetric: add it in M's own (Fortran) memory order
            M += extra.T if extra.flags.c_contiguous else extra

    def _squares(self) -> np.ndarray:
        if self._gd2 is None:
            self._gd2 = self.Gd**2
        return self._gd2

    def _update_torch(self, d, dd, diag, extra, keep):
        import torch

        Gd = self._Gd_t if keep is None else self._Gd_t[torch.as_tensor(keep, device=self.device)]
        w = dd if keep is None else dd[keep]
        W = Gd * torch.as_tensor(np.sqrt(w), device=self.device)[:, None]
        Mt = W.T @ W
        M = self.M
        M.fill(0.0)
        if isinstance(extra, LowRank):
            extra = extra.dense()
        self._add_rest(M, d, dd, diag, extra, keep)
        Mt += torch.as_tensor(M, device=self.device)  # symmetric: every term added both ways
        return Mt
