r"""The rows of a region: the input Jacobian of every hidden unit, with a compressed conv prefix.

A region's row :math:`i` is the gradient :math:`\nabla_x h_i` of a pre-activation, sign-flipped
for inactive units (eq. 2-4 of [1]); :func:`lrtools.regions.linear_region` gets all of them by
pushing the ``d`` basis directions of the input through the network with the masks frozen
(Appendix B). On a CNN that push is mostly zeros: a unit of a convolution sees a patch of the
input (the Table 3 CNN's three stride-2 3x3 convolutions see 3x3, 7x7 and 15x15 pixels), yet
the identity push convolves all 3,072 directions at every layer (1.2 of the 2.4 CPU-s of a
region; the transposing copy into the rows another 0.8 s).

Column compression (Curtis, Powell and Reid [2]) pushes fewer directions on the prefix of
convolution and BatchNorm2d layers that comes before the first dense layer: pixels are
coloured so that no unit of that prefix sees two pixels of one colour, and one direction per
input channel and colour (the sum of its pixels' basis directions) is pushed. The entry of
unit ``i`` for pixel ``p`` is then the pushed value of ``p``'s colour at ``i``: exactly one
term of the sum can be nonzero there, the others are exact zeros. The Table 3 CNN needs 15 x 15
colours, so 675 directions instead of 3,072. The layers after the prefix take the rows
of the prefix's last layer as their directions, as in the plain push. Deeper layers see more
pixels: the prefix is the longest one whose colouring pays.

The pixels a unit sees (its pattern) depend only on the convolutions' geometry, not on the
weights, masks or point: they are computed once per geometry (a push of the position identity
through all-ones kernels) and kept. A pattern is a superset of the true nonzeros (zero weights,
BatchNorm scales, channel groups and masks only remove entries), which keeps the colouring
valid. Convolutions with another padding mode than zeros end the prefix, and the plain push is
used when compression would not push at least 2x fewer directions.

References
----------
.. [1] X. Zhang and D. Wu, ICLR 2020.
.. [2] A. R. Curtis, M. J. D. Powell and J. K. Reid, "On the estimation of sparse Jacobian
   matrices", IMA J. Appl. Math. 13 (1974) 117-119.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn
from torch.nn import functional as F

from ._forward import ReLUNetwork

__all__ = ["region_rows"]

#: Compress only when it pushes at least this many times fewer directions.
_MIN_SAVING = 2.0
#: Larger images keep the plain push (the pattern's position identity is n_pix^2 floats).
_MAX_PIXELS = 4096
_PLANS: dict[tuple, _Plan | None] = {}  # geometry -> plan (few geometries per process)


@dataclass(frozen=True)
class _Plan:
    """Column compression of the first ``n_local`` hidden layers for one input shape."""

    n_local: int
    colour: np.ndarray  # (H0 * W0,) colour of each pixel position
    n_colours: int
    pairs: tuple  # per local layer: (positions q, pixels p) of its pattern's nonzeros


def _is_local(piece_module: nn.Module) -> bool:
    if isinstance(piece_module, nn.Conv2d):
        return piece_module.padding_mode == "zeros"
    return isinstance(piece_module, nn.BatchNorm2d)


def _geometry(net: ReLUNetwork, shape: tuple[int, ...]) -> tuple:
    """The hyperparameters that fix the patterns: the local prefix's convolutions."""
    layers = []
    for seg in net.segments[: net.n_hidden_layers]:
        if not seg or not all(_is_local(p.module) for p in seg):
            break
        layers.append(tuple((m.kernel_size, m.stride, m.padding, m.dilation)
                            for m in (p.module for p in seg) if isinstance(m, nn.Conv2d)))
    return (shape, tuple(layers))


def _build_plan(geometry: tuple) -> _Plan | None:
    shape, layers = geometry
    if len(shape) != 3 or not layers or shape[1] * shape[2] > _MAX_PIXELS:
        return None
    H, W = shape[1:]
    n_pix = H * W
    # the position identity pushed through all-ones kernels: nonzero where a unit sees a pixel
    v = torch.eye(n_pix, dtype=torch.float64).reshape(n_pix, 1, H, W)
    patterns = []
    for convs in layers:
        for kernel, stride, padding, dilation in convs:
            ones = torch.ones((1, 1, *kernel), dtype=torch.float64)
            v = (F.conv2d(v, ones, stride=stride, padding=padding, dilation=dilation) > 0)
            v = v.to(torch.float64)
        patterns.append(sp.csr_matrix(v.reshape(n_pix, -1).T.numpy()))  # (HW_l, n_pix)
    # the longest prefix that pays: deeper layers see more pixels and need more colours
    for n_local in range(len(patterns), 0, -1):
        colour = _colouring(sp.vstack(patterns[:n_local]).tocsc())
        n_colours = int(colour.max()) + 1
        if n_colours * _MIN_SAVING <= n_pix:
            pairs = tuple(tuple(np.nonzero(P.toarray())) for P in patterns[:n_local])
            return _Plan(n_local, colour, n_colours, pairs)
    return None


def _colouring(seen: sp.csc_matrix) -> np.ndarray:
    """Greedy colouring of the pixels (columns of ``seen``) in C order: two pixels that a
    unit (row) sees together get different colours."""
    n_pix = seen.shape[1]
    conflict = (seen.T @ seen).tocsr()
    colour = np.full(n_pix, -1, dtype=np.int64)
    for p in range(n_pix):
        nbr = colour[conflict.indices[conflict.indptr[p] : conflict.indptr[p + 1]]]
        used = np.zeros(n_pix + 1, dtype=bool)
        used[nbr[nbr >= 0]] = True
        colour[p] = int(np.argmin(used))
    return colour


def _plan(net: ReLUNetwork, shape: tuple[int, ...]) -> _Plan | None:
    geometry = _geometry(net, shape)
    if geometry not in _PLANS:
        _PLANS[geometry] = _build_plan(geometry)
    return _PLANS[geometry]


def _frozen(v: torch.Tensor, D: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The ReLU with its mask frozen at ``v``, as :meth:`ReLUNetwork.push` applies it."""
    mk = (v > 0).to(v.dtype)
    return v * mk, D * mk.unsqueeze(1)


def _signs(h: np.ndarray) -> np.ndarray:
    return np.where(h > 0, 1.0, -1.0)


def _dense_rows(A: np.ndarray, start: int, h: np.ndarray, D: torch.Tensor) -> None:
    """Write ``sign * grad`` of the units ``h`` into ``A`` from their directions (1, d, ...)."""
    rows = torch.from_numpy(A[start : start + h.size])
    rows.copy_(D.reshape(A.shape[1], -1).T)  # torch's transposing copy: 4x numpy's here
    rows.mul_(torch.from_numpy(_signs(h))[:, None])


def _local_rows(A: np.ndarray, start: int, h: np.ndarray, D: torch.Tensor, plan: _Plan,
                layer: int) -> None:
    """Write ``sign * grad`` of a prefix layer's units into ``A`` from the compressed push.

    ``D`` (1, C0 * n_colours, C_l, H_l, W_l): direction ``c * n_colours + g`` is the sum of the
    basis directions of channel ``c``'s pixels of colour ``g``. Entry (unit (o, q), input
    (c, p)) is ``D[c, colour[p], o, q]`` for the pixels ``p`` of position ``q``'s pattern and
    zero elsewhere (``A`` must be zero there).
    """
    C0, n_pix = A.shape[1] // plan.colour.size, plan.colour.size
    C_l = D.shape[2]
    hw = h.size // C_l
    q, p = plan.pairs[layer]
    Dl = D.reshape(C0, plan.n_colours, C_l, hw).numpy()
    vals = Dl[:, plan.colour[p], :, q]  # (nnz, C0, C_l)
    sign = _signs(h).reshape(C_l, hw)[:, q].T  # (nnz, C_l)
    A4 = A[start : start + h.size].reshape(C_l, hw, C0, n_pix)
    A4[:, q, :, p] = vals.transpose(0, 2, 1) * sign[:, :, None]


def _compressed_directions(plan: _Plan, shape: tuple[int, ...]) -> torch.Tensor:
    C0 = shape[0]
    n_pix = plan.colour.size
    D = torch.zeros((1, C0 * plan.n_colours, C0, n_pix), dtype=torch.float64)
    pix = torch.arange(n_pix)
    colour = torch.from_numpy(plan.colour)
    for c in range(C0):
        D[0, c * plan.n_colours + colour, c, pix] = 1.0
    return D.reshape(1, C0 * plan.n_colours, *shape)


def region_rows(net: ReLUNetwork, x: torch.Tensor, *, compress: bool = True):
    r"""The rows of the region of ``x`` (float64 tensor of the input shape) and its logit map.

    Returns ``(A, h, J, z)``: ``A`` (m, d) holds :math:`\operatorname{sgn}(h_i)\nabla_x h_i`
    for every hidden unit in layer order (C, H, W order within a layer), ``h`` the list of
    each hidden layer's pre-activations (flat), ``J`` (M, d) the logits' Jacobian and
    ``z`` (M,) the logits at ``x``. With ``compress`` the convolutional prefix is
    column-compressed when that pays (module docstring); ``compress=False`` pushes the whole
    identity. Both give the same rows up to the rounding of the convolutions' sums.
    """
    shape = tuple(x.shape)
    d = x.numel()
    plan = _plan(net, shape) if compress else None
    v = x[None]
    hs, start = [], 0
    if plan is None:
        A, first = None, 0
        D = torch.eye(d, dtype=torch.float64).reshape(1, d, *shape)
    else:
        A = np.zeros((sum(net.layer_sizes(shape)), d))  # calloc: zero pages until written
        D = _compressed_directions(plan, shape)
        for layer in range(plan.n_local):
            v, D = net.segment(layer, v, D)
            hs.append(v.reshape(-1).numpy().copy())
            _local_rows(A, start, hs[-1], D, plan, layer)
            start += hs[-1].size
            v, D = _frozen(v, D)
        first = plan.n_local
        # the rest is pushed from the last prefix layer's rows, masked (sign +1 where active)
        last = torch.from_numpy(A[start - hs[-1].size : start])
        active = torch.from_numpy((hs[-1] > 0).astype(np.float64))
        D = (last * active[:, None]).T.contiguous().reshape(1, d, *v.shape[1:])
    out = net.push(v, D, record=True, start=first)
    if A is None:
        A = np.empty((sum(t.numel() for t, _ in out.relu_inputs), d))
    for t, Dt in out.relu_inputs:
        hs.append(t.reshape(-1).numpy().copy())
        _dense_rows(A, start, hs[-1], Dt)
        start += hs[-1].size
    J = out.directions.reshape(d, -1).T.numpy().copy()
    return A, hs, J, out.value.reshape(-1).numpy().copy()
