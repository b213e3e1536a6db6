r"""H-representation of a convex polytope: the numpy-only object every solver takes.

A linear region of a ReLU network (eq. 4 of [1]) is the polytope

.. math::

    S = \{x \in \mathbb{R}^d : A x + b \ge 0,\; \ell \le x \le u\},

where row :math:`i` of ``A`` is :math:`w_i^T` (eq. 2) and ``b[i]`` is :math:`b_i` (eq. 3), and
:math:`[\ell, u]` is the input box (``[-1, 1]^d`` in the paper). Solvers in
:mod:`lrtools.solvers` receive a :class:`Polytope` and never see torch.

References
----------
.. [1] X. Zhang and D. Wu, "Empirical Studies on the Properties of Linear Regions in Deep
   Neural Networks", ICLR 2020.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ._validation import check_array

__all__ = ["Polytope"]


@dataclass(frozen=True, eq=False)
class Polytope:
    """Convex polytope ``{x : A x + b >= 0, lo <= x <= hi}`` in float64.

    Parameters
    ----------
    A : ndarray of shape (m, d)
        Inward normals :math:`w_i^T` of the hyperplanes (eq. 2 of [1]). May be a
        ``scipy.sparse`` matrix for convolutional networks.
    b : ndarray of shape (m,)
        Offsets :math:`b_i` (eq. 3).
    lo, hi : ndarray of shape (d,)
        The input box.
    """

    A: np.ndarray
    b: np.ndarray
    lo: np.ndarray
    hi: np.ndarray

    def __post_init__(self) -> None:
        A = self.A
        if not hasattr(A, "tocsr"):
            A = check_array(A, "A", ndim=2)
        m, d = A.shape
        b = check_array(self.b, "b", shape=(m,))
        lo = check_array(self.lo, "lo", shape=(d,))
        hi = check_array(self.hi, "hi", shape=(d,))
        if np.any(lo > hi):
            raise ValueError("lo must be <= hi elementwise; got a box with lo > hi.")
        object.__setattr__(self, "A", A)
        object.__setattr__(self, "b", b)
        object.__setattr__(self, "lo", lo)
        object.__setattr__(self, "hi", hi)

    @classmethod
    def from_box(cls, A, b, low: float = -1.0, high: float = 1.0) -> Polytope:
        """Build a polytope with the scalar box ``[low, high]^d``."""
        d = A.shape[1]
        return cls(A, b, np.full(d, float(low)), np.full(d, float(high)))

    @property
    def dim(self) -> int:
        """Dimension ``d`` of the ambient space."""
        return int(self.A.shape[1])

    @property
    def n_rows(self) -> int:
        """Number of hyperplane rows ``m`` (box rows not counted)."""
        return int(self.A.shape[0])

    @cached_property
    def row_norms(self) -> np.ndarray:
        """Euclidean norms ``||w_i||`` of the rows, shape (m,); computed once (``A`` is not to
        be modified in place), without an ``m x d`` temporary for dense ``A``."""
        if hasattr(self.A, "multiply"):
            return np.sqrt(np.asarray(self.A.multiply(self.A).sum(axis=1)).ravel())
        return np.sqrt(np.einsum("ij,ij->i", self.A, self.A))

    def slack(self, x: np.ndarray) -> np.ndarray:
        """Hyperplane slacks ``A x + b``; shape (m,) for one point, (n, m) for (n, d) points."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim == 1:
            return self.A @ x + self.b
        return (self.A @ x.T).T + self.b

    def box_slack(self, x: np.ndarray) -> np.ndarray:
        """Smallest box slack ``min(x - lo, hi - x)`` per point."""
        x = np.asarray(x, dtype=np.float64)
        return np.minimum(x - self.lo, self.hi - x).min(axis=-1)

    def contains(self, x: np.ndarray, tol: float = 1e-9) -> np.ndarray | bool:
        """Whether ``x`` (one point or rows of points) satisfies every inequality within ``tol``."""
        x = np.asarray(x, dtype=np.float64)
        s = self.slack(x)
        inside = (s.min(axis=-1) if self.n_rows else 0.0) >= -tol
        return np.logical_and(inside, self.box_slack(x) >= -tol)

    def with_rows(self, keep: np.ndarray) -> Polytope:
        """The polytope with only the hyperplane rows selected by ``keep`` (mask or indices)."""
        return Polytope(self.A[keep], self.b[keep], self.lo, self.hi)

    def as_leq(self) -> tuple[np.ndarray, np.ndarray]:
        """All inequalities, box included, as ``G x <= h`` (dense), for LP solvers."""
        d = self.dim
        A = self.A.toarray() if hasattr(self.A, "toarray") else self.A
        eye = np.eye(d)
        G = np.vstack([-A, eye, -eye])
        h = np.concatenate([self.b, self.hi, -self.lo])
        return G, h
