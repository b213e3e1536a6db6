r"""The one layer rule: which torch layers lrtools supports, and the network as affine pieces.

Every computation of lrtools sees a model through this module. A supported model is an
``nn.Sequential`` (nested Sequentials are flattened) of

    Linear, Conv2d, BatchNorm1d, BatchNorm2d (with running statistics), Dropout, Flatten,
    Identity, ReLU,

used in eval mode: BatchNorm is the affine map of its running statistics and Dropout is the
identity. Between two ReLUs the network is then affine, :math:`y = L y_{in} + c`, and on the
region of an input (Appendix B of [1]) it is the composition of these maps with the ReLU masks
frozen. :class:`ReLUNetwork` holds the float64 pieces and provides

* :meth:`ReLUNetwork.forward` and :meth:`ReLUNetwork.preactivations`: the model's own forward
  pass (its modules, in float64), the reference every result is checked against;
* :meth:`ReLUNetwork.push`: the frozen-mask push kernel. Values go through the modules (so
  they are bit-identical to the forward pass), and a batch of directions goes through the
  linear parts only (``F.linear`` without bias, the convolution without bias, the BatchNorm
  scale). Regions push the identity (the rows of eq. 2-4 and the logit map of eq. 7), walks one
  direction per point (eq. 11), slices the two directions of a plane (Fig. 1, 2, 8);
* :class:`InputSpec`: what one input of the model looks like, read from its first layers, so
  every public function checks the shapes it is given.

Anything that cannot be represented exactly is rejected when the network is built, with a
message that names the module and what to do: a Sequential subclass or any module with its own
``forward`` (e.g. a residual block, whose ``forward`` flattening would ignore), forward hooks,
BatchNorm without running statistics, ``Flatten`` over other dimensions than all but the
batch, and layers of other types.

References
----------
.. [1] X. Zhang and D. Wu, "Empirical Studies on the Properties of Linear Regions in Deep
   Neural Networks", ICLR 2020.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ._validation import check_array
from .exceptions import InputShapeError, UnsupportedModelError

__all__ = [
    "SUPPORTED_LAYERS",
    "CHUNK",
    "InputSpec",
    "LayerInfo",
    "Pushed",
    "ReLUNetwork",
    "leaf_layers",
    "layer_infos",
    "input_spec",
    "has_batchnorm",
]

SUPPORTED_LAYERS = (
    nn.Linear,
    nn.Conv2d,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.Dropout,
    nn.Flatten,
    nn.Identity,
    nn.ReLU,
)
_BATCHNORM = (nn.BatchNorm1d, nn.BatchNorm2d)
_IDENTITY_IN_EVAL = (nn.Dropout, nn.Identity)

#: Inputs (points, cells, regions) pushed through the layers at once: bounds the memory of the
#: intermediate tensors of a CNN.
CHUNK = 512


# --------------------------------------------------------------------------------------------
# Validation of the model: the layer rule
# --------------------------------------------------------------------------------------------


def _supported_names() -> str:
    return ", ".join(c.__name__ for c in SUPPORTED_LAYERS)


def _base(m: nn.Module) -> type | None:
    """The supported class ``m`` is an instance of (None if none)."""
    return next((c for c in SUPPORTED_LAYERS if isinstance(m, c)), None)


def _check_hooks(m: nn.Module, where: str) -> None:
    if m._forward_hooks or m._forward_pre_hooks:
        raise UnsupportedModelError(
            f"{where} has forward hooks, which lrtools cannot follow (they may change what the "
            "layer computes). Remove them (handle.remove()) before analysing the model."
        )


def _check_leaf(m: nn.Module, where: str) -> None:
    base = _base(m)
    if base is None:
        raise UnsupportedModelError(
            f"{where.split(' (')[0]}: {type(m).__name__} is not supported by lrtools; supported "
            f"layers are {_supported_names()} (piecewise-linear networks with ReLU only). "
            "Rewrite the model with these layers."
        )
    if type(m).forward is not base.forward:
        raise UnsupportedModelError(
            f"{where} overrides forward(), so what it computes is not the {base.__name__} "
            "that lrtools would represent. Use a plain nn." + base.__name__ + "."
        )
    _check_hooks(m, where)
    if isinstance(m, _BATCHNORM) and (not m.track_running_stats or m.running_mean is None):
        raise UnsupportedModelError(
            f"{where} has no running statistics (track_running_stats=False), so in eval mode it "
            "normalises with the statistics of each batch and is not an affine map of its "
            "input. Build it with track_running_stats=True and train the model again."
        )
    if isinstance(m, nn.Flatten) and (m.start_dim != 1 or m.end_dim != -1):
        raise UnsupportedModelError(
            f"{where} flattens dimensions {m.start_dim}..{m.end_dim}; lrtools supports only "
            "nn.Flatten() (start_dim=1, end_dim=-1: every dimension but the batch)."
        )


def _leaves(model: nn.Module, prefix: str) -> Iterator[nn.Module]:
    for name, m in model.named_children():
        where = f"{prefix}{name}"
        if isinstance(m, nn.Sequential):
            if type(m).forward is not nn.Sequential.forward:
                raise UnsupportedModelError(
                    f"layer {where!r} ({type(m).__name__}) is an nn.Sequential subclass with its "
                    "own forward() (e.g. a residual block); lrtools would only see its layers "
                    "in order and miss what forward() adds. Supported models are plain "
                    "nn.Sequential chains; unroll the block or rewrite it as one."
                )
            _check_hooks(m, f"layer {where!r} ({type(m).__name__})")
            yield from _leaves(m, where + ".")
        else:
            _check_leaf(m, f"layer {where!r} ({type(m).__name__})")
            yield m


def leaf_layers(model: nn.Module) -> list[nn.Module]:
    """The model's layers in order, nested Sequentials flattened, after the layer rule.

    Parameters
    ----------
    model : torch.nn.Sequential
        The network (not modified).

    Returns
    -------
    list of torch.nn.Module
        The model's own leaf modules (not copies).

    Raises
    ------
    UnsupportedModelError
        (a ``TypeError``) if the model or one of its modules cannot be represented exactly; the
        message names the module and says what to do.
    """
    if not isinstance(model, nn.Module) or not isinstance(model, nn.Sequential):
        raise UnsupportedModelError(
            f"model must be a torch.nn.Sequential of supported layers; got "
            f"{type(model).__name__}. Wrap your layers in nn.Sequential(...)."
        )
    if type(model).forward is not nn.Sequential.forward:
        raise UnsupportedModelError(
            f"model is a {type(model).__name__}, an nn.Sequential subclass with its own "
            "forward(); lrtools would only see its layers in order. Pass a plain nn.Sequential."
        )
    _check_hooks(model, f"model ({type(model).__name__})")
    return list(_leaves(model, ""))


def has_batchnorm(model: nn.Module) -> bool:
    """Whether the (supported) model has a BatchNorm layer."""
    return any(isinstance(m, _BATCHNORM) for m in leaf_layers(model))


# --------------------------------------------------------------------------------------------
# The input contract
# --------------------------------------------------------------------------------------------


def _shape_text(shape: tuple) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


@dataclass(frozen=True)
class InputSpec:
    """What one input of a model looks like, read from its first shape-fixing layer.

    Attributes
    ----------
    kind : {"vector", "image", "any"}
        ``"vector"``: the first layer is Linear or BatchNorm1d, one input has shape ``(size,)``;
        ``"image"``: Conv2d or BatchNorm2d, one input has shape ``(channels, H, W)``;
        ``"any"``: the model starts with Flatten, one input is any array of ``size`` values
        (e.g. ``(784,)`` or ``(1, 28, 28)`` for an MNIST MLP).
    size : int or None
        Number of input values (``"vector"`` and ``"any"``).
    channels : int or None
        Number of input channels (``"image"``).

    Notes
    -----
    One input (a point) is ``input_shape`` or ``(1, *input_shape)``; a batch is
    ``(n, *input_shape)``. Anything else raises :class:`~lrtools.exceptions.InputShapeError`
    (a ``ValueError``) naming the expected and the received shape and a fix.
    """

    kind: str
    size: int | None = None
    channels: int | None = None

    def describe(self, lead: str = "") -> str:
        """The expected shape of one input (``lead``: with that leading dimension), in words."""
        head = f"{lead}, " if lead else ""
        if self.kind == "vector":
            return f"({head}{self.size})" if lead else _shape_text((self.size,))
        if self.kind == "image":
            return f"({head}{self.channels}, H, W)"
        return f"({head}...) holding {self.size} values per input, e.g. ({head}{self.size})"

    def _fits(self, shape: tuple[int, ...]) -> bool:
        if self.kind == "vector":
            return shape == (self.size,)
        if self.kind == "image":
            return len(shape) == 3 and shape[0] == self.channels and min(shape) > 0
        return len(shape) >= 1 and int(np.prod(shape)) == self.size

    def _error(self, name: str, shape: tuple, what: str, fix: str) -> InputShapeError:
        return InputShapeError(
            f"{name} must be {what} to fit the model; got shape {_shape_text(shape)}. "
            f"{fix}".rstrip()
        )

    def point(self, x, name: str = "x") -> np.ndarray:
        """One input as a float64 array of shape ``input_shape`` (a leading 1 is dropped)."""
        x = check_array(x, name)
        shape = tuple(x.shape)
        if self.kind != "any" and len(shape) >= 2 and shape[0] == 1 and self._fits(shape[1:]):
            return x[0]
        if self._fits(shape):
            return x
        want = f"one input of shape {self.describe()}"
        if self.kind != "any":
            want += f" or {self.describe('1')}"
        if len(shape) >= 2 and self._fits(shape[1:]):
            fix = f"It is a batch of {shape[0]} inputs: pass one of them, e.g. {name}[0]."
        elif x.size == (self.size or -1):
            fix = f"Use {name}.reshape({self.size})."
        else:
            fix = "Pass one input of the model's input shape, without the batch dimension."
        raise self._error(name, shape, want, fix)

    def batch(self, X, name: str = "X") -> np.ndarray:
        """A batch as a finite float64 array of shape ``(n, *input_shape)``."""
        X = check_array(X, name)
        self.check_batch_shape(X.shape, name)
        return X

    def check_batch_shape(self, shape, name: str = "X") -> None:
        """Check that ``shape`` is that of a batch ``(n, *input_shape)`` (no data converted)."""
        shape = tuple(int(s) for s in shape)
        if len(shape) >= 2 and self._fits(shape[1:]):
            return
        if self._fits(shape):
            fix = f"It is a single input: use {name}[None] for a batch of one."
        else:
            fix = f"Each input must have shape {self.describe()}; stack them along a first axis."
        raise self._error(name, shape, f"a batch of shape {self.describe('n')}", fix)

    def check_shape(self, shape, name: str = "input_shape") -> tuple[int, ...]:
        """Check the shape of one input (without the batch dimension); return it as a tuple."""
        shape = tuple(int(s) for s in shape)
        if not self._fits(shape):
            raise self._error(
                name, shape, f"the shape of one input, {self.describe()},",
                "Pass the shape of one input without the batch dimension.",
            )  # fmt: skip
        return shape


def _spec(layers: list[nn.Module]) -> InputSpec:
    flatten = False
    for m in layers:
        if isinstance(m, (*_IDENTITY_IN_EVAL, nn.ReLU)):
            continue
        if isinstance(m, nn.Flatten) and not flatten:
            flatten = True
            continue
        if isinstance(m, nn.Linear | nn.BatchNorm1d):
            size = m.in_features if isinstance(m, nn.Linear) else m.num_features
            return InputSpec("any" if flatten else "vector", size=int(size))
        if isinstance(m, nn.Conv2d | nn.BatchNorm2d) and not flatten:
            size = m.in_channels if isinstance(m, nn.Conv2d) else m.num_features
            return InputSpec("image", channels=int(size))
        break
    raise UnsupportedModelError(
        "the model's input shape cannot be read: it must begin (after Identity/Dropout) with "
        "Linear, BatchNorm1d, Conv2d, BatchNorm2d, or Flatten followed by Linear."
    )


def input_spec(model: nn.Module) -> InputSpec:
    """The input contract of a supported model (see :class:`InputSpec`)."""
    return _spec(leaf_layers(model))


# --------------------------------------------------------------------------------------------
# Per-layer descriptions (for tables such as Table 3)
# --------------------------------------------------------------------------------------------


class LayerInfo(NamedTuple):
    """One leaf layer: its kind, hyper-parameters, output shape and trainable parameters.

    ``kind`` is one of ``"linear"``, ``"conv"``, ``"batchnorm"``, ``"relu"``, ``"dropout"``,
    ``"flatten"``, ``"identity"``; ``params`` holds the hyper-parameters of that kind
    (``out_features``; ``out_channels``, ``kernel_size``, ``stride``, ``padding``;
    ``num_features``; ``p``).
    """

    kind: str
    params: dict
    output_shape: tuple[int, ...]
    trainable: int


_KINDS = {
    nn.Linear: "linear",
    nn.Conv2d: "conv",
    nn.BatchNorm1d: "batchnorm",
    nn.BatchNorm2d: "batchnorm",
    nn.ReLU: "relu",
    nn.Dropout: "dropout",
    nn.Flatten: "flatten",
    nn.Identity: "identity",
}


def _pair(v) -> tuple[int, int] | str:
    return v if isinstance(v, str) else (v, v) if isinstance(v, int) else tuple(v)


def _params(m: nn.Module) -> dict:
    if isinstance(m, nn.Linear):
        return {"out_features": m.out_features}
    if isinstance(m, nn.Conv2d):
        return {"out_channels": m.out_channels, "kernel_size": _pair(m.kernel_size),
                "stride": _pair(m.stride), "padding": _pair(m.padding)}  # fmt: skip
    if isinstance(m, _BATCHNORM):
        return {"num_features": m.num_features}
    if isinstance(m, nn.Dropout):
        return {"p": float(m.p)}
    return {}


def layer_infos(model: nn.Module, input_shape) -> list[LayerInfo]:
    """Kind, hyper-parameters, output shape and trainable parameters of every leaf layer.

    Output shapes (without the batch dimension) come from a float64 eval pass of one zero
    input of ``input_shape`` through the model's modules.

    Raises
    ------
    UnsupportedModelError
        For an unsupported model (see :func:`leaf_layers`).
    InputShapeError
        If ``input_shape`` does not fit the model.
    """
    net = ReLUNetwork(model)
    shape = net.spec.check_shape(input_shape)
    h = torch.zeros((1, *shape), dtype=torch.float64)
    out = []
    with torch.no_grad(), net.fitting(shape):
        for m, copy64 in zip(net.layers, net.modules, strict=True):
            h = torch.relu(h) if isinstance(copy64, nn.ReLU) else copy64(h)
            trainable = sum(p.numel() for p in m.parameters(recurse=False) if p.requires_grad)
            out.append(LayerInfo(_KINDS[_base(m)], _params(m), tuple(h.shape[1:]), int(trainable)))
    return out


# --------------------------------------------------------------------------------------------
# The affine pieces and the frozen-mask push kernel
# --------------------------------------------------------------------------------------------


def _bcast(t: torch.Tensor, ndim: int) -> torch.Tensor:
    """A per-channel vector shaped to broadcast over (batch, C, *spatial) of ``ndim`` dims."""
    return t.reshape(1, -1, *([1] * (ndim - 2)))


def _bn_scale(m: nn.Module) -> torch.Tensor:
    scale = 1.0 / torch.sqrt(m.running_var + m.eps)
    return scale * m.weight if m.weight is not None else scale


class _Piece:
    """One affine layer: ``value`` is the module itself, ``linear`` its linear part."""

    __slots__ = ("module", "linear")

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        if isinstance(module, nn.Linear):
            self.linear = lambda y: F.linear(y, module.weight)
        elif isinstance(module, nn.Conv2d):
            self.linear = lambda y: module._conv_forward(y, module.weight, None)
        elif isinstance(module, _BATCHNORM):
            scale = _bn_scale(module)
            self.linear = lambda y: y * _bcast(scale, y.ndim)
        else:  # Flatten
            self.linear = lambda y: y.flatten(1)


class Pushed(NamedTuple):
    """Result of :meth:`ReLUNetwork.push`.

    Attributes
    ----------
    value : torch.Tensor of shape (B, *out_shape)
        The output (logits) with the masks frozen.
    directions : torch.Tensor of shape (B, k, *out_shape) or None
        The directions mapped by the linear parts (the derivatives of ``value``).
    masks : list of torch.Tensor
        The mask of each hidden layer, bool of shape (B, n_l) (units flattened in C, H, W order).
    relu_inputs : list of (torch.Tensor, torch.Tensor or None)
        The value (B, *shape_l) and directions entering each ReLU (``record=True`` only).
    """

    value: torch.Tensor
    directions: torch.Tensor | None
    masks: list[torch.Tensor]
    relu_inputs: list[tuple[torch.Tensor, torch.Tensor | None]]


#: ``decide(l, value, directions) -> mask`` picks the mask of hidden layer ``l`` (bool, shaped
#: like ``value``) from the value and the directions entering its ReLU.
MaskRule = Callable[[int, torch.Tensor, "torch.Tensor | None"], torch.Tensor]


def _sign_rule(_l: int, v: torch.Tensor, _D) -> torch.Tensor:
    return v > 0


class ReLUNetwork:
    """A supported model as float64 eval-mode affine pieces between its ReLUs.

    Parameters
    ----------
    model : torch.nn.Sequential
        The network; it is validated by the layer rule (:func:`leaf_layers`) and copied to
        float64 in eval mode. The model itself is not modified.

    Attributes
    ----------
    layers : list of torch.nn.Module
        The model's leaf layers (the originals).
    modules : list of torch.nn.Module
        Their float64 eval-mode copies (parameters without gradients).
    segments : list of list
        ``segments[l]`` maps the input of the network (``l = 0``) or the output of ReLU
        ``l - 1`` to the input of ReLU ``l``; the last one ends at the logits.
    spec : InputSpec
        The input contract.
    n_hidden_layers : int
        Number of ReLUs.
    """

    def __init__(self, model: nn.Module) -> None:
        self.layers = leaf_layers(model)
        self.spec = _spec(self.layers)
        self.modules = [copy.deepcopy(m).double().eval() for m in self.layers]
        for p in (p for m in self.modules for p in m.parameters()):
            p.requires_grad_(False)
        self.segments: list[list[_Piece]] = [[]]
        for m in self.modules:
            if isinstance(m, nn.ReLU):
                self.segments.append([])
            elif not isinstance(m, _IDENTITY_IN_EVAL):
                self.segments[-1].append(_Piece(m))
        self.n_hidden_layers = len(self.segments) - 1

    def require_relu(self) -> ReLUNetwork:
        """Raise ``ValueError`` if the network has no ReLU (a single linear region, all of R^d)."""
        if self.n_hidden_layers == 0:
            raise ValueError("model has no ReLU layer, so it has a single linear region (R^d).")
        return self

    @contextmanager
    def fitting(self, shape: tuple[int, ...]):
        """Turn torch's shape errors inside the block into a clear ``InputShapeError``."""
        try:
            yield
        except RuntimeError as exc:  # in a validated network only a shape mismatch raises it
            raise InputShapeError(
                f"inputs of shape {_shape_text(shape)} do not fit the model ({exc}). One input "
                f"must have shape {self.spec.describe()}: e.g. (784,) for an MLP on MNIST or "
                "(3, 32, 32) for the CNN of Table 3."
            ) from exc

    # -- the model's own forward pass ---------------------------------------------------------
    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """Logits (n, M) of a float64 batch by the modules themselves (differentiable)."""
        with self.fitting(tuple(X.shape[1:])):
            v = X
            for m in self.modules:
                v = torch.relu(v) if isinstance(m, nn.ReLU) else m(v)
        return v.reshape(X.shape[0], -1)

    def preactivations(self, X: torch.Tensor) -> list[torch.Tensor]:
        """Tensors entering each ReLU, flattened to (n, n_l), by the modules themselves."""
        out = []
        with self.fitting(tuple(X.shape[1:])):
            v = X
            for m in self.modules:
                if isinstance(m, nn.ReLU):
                    out.append(v.reshape(v.shape[0], -1))
                    v = torch.relu(v)
                else:
                    v = m(v)
        return out

    # -- the frozen-mask push ------------------------------------------------------------------
    def segment(
        self, index: int, v: torch.Tensor, D: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Apply the affine pieces of segment ``index`` to values ``v`` and directions ``D``.

        ``v`` has shape (B, *shape); ``D`` (B, k, *shape) holds ``k`` directions per value, or
        is None. Values go through the modules, directions through the linear parts only.
        """
        for piece in self.segments[index]:
            if D is not None:
                B, k = D.shape[:2]
                flat = piece.linear(D.reshape(B * k, *D.shape[2:]))
                D = flat.reshape(B, k, *flat.shape[1:])
            v = piece.module(v)
        return v, D

    def push(
        self,
        v: torch.Tensor,
        D: torch.Tensor | None = None,
        *,
        decide: MaskRule | None = None,
        masks: torch.Tensor | None = None,
        record: bool = False,
        first: tuple[torch.Tensor, torch.Tensor | None] | None = None,
        start: int = 0,
    ) -> Pushed:
        r"""Push values and directions through the network with the ReLU masks frozen.

        Parameters
        ----------
        v : torch.Tensor of shape (B, *input_shape)
            Values (float64).
        D : torch.Tensor of shape (B, k, *input_shape), optional
            ``k`` directions per value; after the push they are the directional derivatives of
            the output (its linear map on the region).
        decide : callable, optional
            ``decide(l, value, directions) -> mask`` for hidden layer ``l``; default: unit
            active iff its value is > 0 (the activation pattern of ``v``).
        masks : torch.Tensor of bool, shape (B, n_hidden), optional
            Fixed masks of every hidden unit, layers concatenated (instead of ``decide``).
        record : bool, default=False
            Keep the value and directions entering each ReLU.
        first : (torch.Tensor, torch.Tensor or None), optional
            The value and directions entering the first ReLU, ``segment(0, v, D)``, when the
            caller has them already (a walk along ``x0 + a e``: segment 0 is affine, so its
            output is ``v0 + a D0`` on the whole segment); ``v`` then only fixes the input
            shape.
        start : int, default=0
            Begin at segment ``start``: ``v`` and ``D`` are the output of ReLU ``start - 1``
            (masks applied), and only hidden layers ``start, start + 1, ...`` are decided
            and recorded (:mod:`lrtools._jacobian` pushes the convolutional prefix itself).
            Not with ``masks`` or ``first``.

        Returns
        -------
        Pushed

        Notes
        -----
        With masks :math:`m_l` frozen, hidden layer :math:`l` maps
        :math:`y \mapsto m_l \odot (L_l y + c_l)`, so values and directions follow

        .. math::

            v_{l+1} = m_l \odot (L_l v_l + c_l), \qquad D_{l+1} = m_l \odot L_l D_l.
        """
        if start and (masks is not None or first is not None):
            raise ValueError("push(start=...) takes neither masks nor first.")
        rule = decide or _sign_rule
        offset, decided, inputs = 0, [], []
        with self.fitting(tuple(v.shape[1:])):
            for layer in range(start, self.n_hidden_layers):
                v, D = first if layer == 0 and first is not None else self.segment(layer, v, D)
                if record:
                    inputs.append((v, D))
                if masks is not None:
                    n_l = v[0].numel()
                    mask = masks[:, offset : offset + n_l].reshape(v.shape)
                    offset += n_l
                else:
                    mask = rule(layer, v, D)
                decided.append(mask.reshape(v.shape[0], -1))
                mk = mask.to(v.dtype)
                v = v * mk
                D = None if D is None else D * mk.unsqueeze(1)
            v, D = self.segment(self.n_hidden_layers, v, D)
        return Pushed(v, D, decided, inputs)

    def layer_sizes(self, shape: tuple[int, ...]) -> list[int]:
        """Hidden units of each hidden layer for inputs of ``shape``."""
        with torch.no_grad():
            h = self.preactivations(torch.zeros((1, *shape), dtype=torch.float64))
        return [int(p.shape[1]) for p in h]
