r"""Your own network: a YAML architecture spec, its weights, or its training on a data set.

The chapter "Your network" runs the paper's per-network analyses on a network that is not one
of the book's models. Such a network is described by a small YAML file::

    name: my MLP
    input_shape: [1, 28, 28]   # one input, without the batch dimension
    layers:
      - flatten
      - linear: 64             # out_features; in_features is read from the previous layer
      - relu
      - dropout: 0.2
      - linear: 10             # the logits

A layer is a name (``relu``, ``flatten``, ``batchnorm``, ``dropout``, ``identity``) or a
one-key mapping from the name to its main size (``linear: 64``, ``conv2d: 8``, ``dropout:
0.2``) or to its arguments (``conv2d: {out_channels: 8, kernel_size: 3, stride: 2}``). Input
sizes (``in_features``, ``in_channels``, ``num_features``) are read from the shape entering the
layer; when they are written they must agree with it. ``batchnorm`` is BatchNorm1d on vectors
and BatchNorm2d on images. The torch class names (``Linear``, ``Conv2d``, ``BatchNorm1d``, ...)
are accepted too.

Which layers exist is decided in one place, the layer rule of :mod:`lrtools._forward`
(:data:`~lrtools._forward.SUPPORTED_LAYERS`): the spec's names map onto those classes, and the
built network is validated by that rule and its input contract, so a spec can only describe a
network that every analysis of lrtools represents exactly (eq. 1-4 of [1]).

Weights are a ``state_dict`` saved with ``torch.save(model.state_dict(), path)`` and read with
``torch.load(path, weights_only=True)`` only: a file holding any other pickled object is
refused, never unpickled. Their keys and shapes are checked against the spec before they are
loaded. Without weights, :func:`train_spec` trains the spec with
:mod:`lrtools.training`'s loop (Adam, early stopping; Section 3.1), cached like the book's
models.

Every problem is a :class:`SpecError` (an :class:`~lrtools.exceptions.LRToolsError` and a
``ValueError``) that says what is wrong, what was expected, what was found and how to fix it.

References
----------
.. [1] X. Zhang and D. Wu, "Empirical Studies on the Properties of Linear Regions in Deep
   Neural Networks", ICLR 2020.
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml
from torch import nn

from ._forward import SUPPORTED_LAYERS, has_batchnorm, input_spec, layer_infos, leaf_layers
from .cache import atomic_write, cache_path
from .datasets.base import Dataset
from .exceptions import InputShapeError, SpecError, UnsupportedModelError
from .modelid import weights_digest
from .training import TrainConfig, TrainedModel, accuracy, train_cached

__all__ = [
    "SpecError",
    "LAYER_NAMES",
    "Layer",
    "NetSpec",
    "load_spec",
    "parse_spec",
    "load_weights",
    "weights_digest",
    "check_fits",
    "user_model",
    "train_spec",
    "run_key",
]


# --------------------------------------------------------------------------------------------
# The spec's layer names, mapped onto the layer rule's classes
# --------------------------------------------------------------------------------------------

#: Spec name -> the supported torch classes it builds (``batchnorm``: 1d or 2d by the shape).
_CLASSES: dict[str, tuple[type[nn.Module], ...]] = {
    "linear": (nn.Linear,),
    "conv2d": (nn.Conv2d,),
    "batchnorm": (nn.BatchNorm1d, nn.BatchNorm2d),
    "dropout": (nn.Dropout,),
    "flatten": (nn.Flatten,),
    "identity": (nn.Identity,),
    "relu": (nn.ReLU,),
}
if {c for cs in _CLASSES.values() for c in cs} != set(SUPPORTED_LAYERS):  # pragma: no cover
    raise ImportError(
        "lrtools.netspec's layer names no longer match lrtools._forward.SUPPORTED_LAYERS; "
        "update _CLASSES in lrtools/netspec.py together with the layer rule."
    )

#: The layer names a spec may use (each maps onto a class of the layer rule).
LAYER_NAMES = tuple(_CLASSES)

#: Other spellings: torch's class names, lower-cased.
_ALIASES = {"conv": "conv2d", "batchnorm1d": "batchnorm", "batchnorm2d": "batchnorm",
            "bn": "batchnorm"}  # fmt: skip

#: The main size of each layer (the value of ``linear: 64``) and the arguments it accepts.
_MAIN = {"linear": "out_features", "conv2d": "out_channels", "dropout": "p",
         "batchnorm": "num_features"}  # fmt: skip
_ARGS = {
    "linear": {"out_features", "in_features", "bias"},
    "conv2d": {"out_channels", "in_channels", "kernel_size", "stride", "padding", "bias"},
    "batchnorm": {"num_features", "eps", "momentum", "affine"},
    "dropout": {"p"},
    "flatten": set(),
    "identity": set(),
    "relu": set(),
}
_REQUIRED = {"linear": ("out_features",), "conv2d": ("out_channels", "kernel_size")}
_TOP_KEYS = {"name", "input_shape", "layers", "n_classes", "description"}


def _shape(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def _supported_text() -> str:
    classes = ", ".join(c.__name__ for c in SUPPORTED_LAYERS)
    return f"{', '.join(LAYER_NAMES)} (the layer rule's {classes})"


def _is_int(v: Any) -> bool:
    return isinstance(v, int | np.integer) and not isinstance(v, bool)


def _positive_int(v: Any, what: str, example: str) -> int:
    if not _is_int(v) or v < 1:
        raise SpecError(f"{what} must be a positive integer; got {v!r}. E.g. {example}.")
    return int(v)


def _int_pair(v: Any, what: str, minimum: int) -> tuple[int, int]:
    pair = [v, v] if _is_int(v) else list(v) if isinstance(v, list | tuple) else None
    if pair is None or len(pair) != 2 or not all(_is_int(p) and p >= minimum for p in pair):
        raise SpecError(
            f"{what} must be an integer >= {minimum} or a pair of them; got {v!r}. "
            f"E.g. 3 or [3, 3]."
        )
    return int(pair[0]), int(pair[1])


@dataclass(frozen=True)
class Layer:
    """One normalised layer of a spec: its name and its arguments (sizes included)."""

    kind: str
    args: tuple[tuple[str, Any], ...] = ()

    @property
    def kw(self) -> dict[str, Any]:
        return dict(self.args)

    def text(self) -> str:
        """The layer as a spec line (``linear: 64``, ``conv2d: {out_channels: 8, ...}``)."""
        kw = self.kw
        if not kw:
            return self.kind
        if list(kw) == [_MAIN.get(self.kind)]:
            return f"{self.kind}: {kw[_MAIN[self.kind]]}"
        return f"{self.kind}: {{" + ", ".join(f"{k}: {v}" for k, v in kw.items()) + "}"


def _normalise(entry: Any, i: int) -> Layer:
    where = f"layer {i + 1}"
    if isinstance(entry, str):
        name, value = entry, None
    elif isinstance(entry, Mapping) and len(entry) == 1:
        name, value = next(iter(entry.items()))
    else:
        raise SpecError(
            f"{where} is {entry!r}; each layer must be a name such as relu or a one-key mapping "
            "such as {linear: 64} or {conv2d: {out_channels: 8, kernel_size: 3}}."
        )
    key = str(name).strip().lower()
    kind = _ALIASES.get(key, key)
    if kind not in _CLASSES:
        raise SpecError(
            f"{where}: {name!r} is not a layer lrtools supports. Supported layers are "
            f"{_supported_text()}: piecewise-linear networks with ReLU only, whose regions are "
            "exact polytopes. Rewrite the network with these layers (e.g. a pooling layer as a "
            "strided conv2d)."
        )
    if value is None:
        args: dict[str, Any] = {}
    elif isinstance(value, Mapping):
        args = {str(k): v for k, v in value.items()}
    elif kind in _MAIN:
        args = {_MAIN[kind]: value}
    else:
        raise SpecError(f"{where} ({kind}) takes no size; got {value!r}. Write it as '- {kind}'.")
    unknown = sorted(set(args) - _ARGS[kind])
    if unknown:
        raise SpecError(
            f"{where} ({kind}) has unknown argument(s) {unknown}; it accepts "
            f"{sorted(_ARGS[kind]) or 'none'}."
        )
    missing = [a for a in _REQUIRED.get(kind, ()) if a not in args]
    if missing:
        example = (
            "{linear: 64}" if kind == "linear" else "{conv2d: {out_channels: 8, kernel_size: 3}}"
        )
        raise SpecError(f"{where} ({kind}) needs {missing}; e.g. {example}.")
    return Layer(kind, tuple(sorted(args.items())))


def _check_given(layer: Layer, where: str, arg: str, inferred: int) -> None:
    given = layer.kw.get(arg)
    if given is not None and given != inferred:
        raise SpecError(
            f"{where} ({layer.kind}) says {arg}={given!r}, but the shape entering it gives "
            f"{inferred}. Remove {arg} (it is read from the previous layer) or fix the sizes "
            "of the layers before it."
        )


def _module(layer: Layer, shape: tuple[int, ...], where: str) -> tuple[nn.Module, tuple]:
    """The torch module of ``layer`` for inputs of ``shape``, and its output shape."""
    kw, kind = layer.kw, layer.kind
    if kind in ("relu", "identity", "dropout"):
        if kind == "relu":
            return nn.ReLU(), shape
        if kind == "identity":
            return nn.Identity(), shape
        p = kw.get("p", 0.5)
        if isinstance(p, bool) or not isinstance(p, int | float) or not 0 <= p < 1:
            raise SpecError(f"{where} (dropout): p must be a number in [0, 1); got {p!r}.")
        return nn.Dropout(float(p)), shape
    if kind == "flatten":
        return nn.Flatten(), (int(np.prod(shape)),)
    if kind == "linear":
        if len(shape) != 1:
            raise SpecError(
                f"{where} (linear) needs a vector input, but the shape entering it is "
                f"{_shape(shape)}. Insert '- flatten' before it."
            )
        _check_given(layer, where, "in_features", shape[0])
        out = _positive_int(kw["out_features"], f"{where} (linear): out_features", "linear: 64")
        return nn.Linear(shape[0], out, bias=bool(kw.get("bias", True))), (out,)
    if kind == "conv2d":
        if len(shape) != 3:
            raise SpecError(
                f"{where} (conv2d) needs an image input (channels, height, width), but the "
                f"shape entering it is {_shape(shape)}. Give the spec an input_shape such as "
                "[1, 28, 28], and put convolutions before any flatten."
            )
        _check_given(layer, where, "in_channels", shape[0])
        out = _positive_int(kw["out_channels"], f"{where} (conv2d): out_channels", "8")
        k = _int_pair(kw["kernel_size"], f"{where} (conv2d): kernel_size", 1)
        s = _int_pair(kw.get("stride", 1), f"{where} (conv2d): stride", 1)
        p = _int_pair(kw.get("padding", 0), f"{where} (conv2d): padding", 0)
        hw = tuple((shape[1 + a] + 2 * p[a] - k[a]) // s[a] + 1 for a in range(2))
        if min(hw) < 1:
            raise SpecError(
                f"{where} (conv2d): a {k[0]}x{k[1]} kernel (stride {s}, padding {p}) does not fit "
                f"the {shape[1]}x{shape[2]} image entering it. Use a smaller kernel, padding or "
                "fewer convolutions before it."
            )
        conv = nn.Conv2d(shape[0], out, k, stride=s, padding=p, bias=bool(kw.get("bias", True)))
        return conv, (out, *hw)
    # batchnorm
    if len(shape) not in (1, 3):
        raise SpecError(
            f"{where} (batchnorm) needs a vector or an image (C, H, W) input; the shape "
            f"entering it is {_shape(shape)}."
        )
    _check_given(layer, where, "num_features", shape[0])
    extra = {k: kw[k] for k in ("eps", "momentum", "affine") if k in kw}
    cls = nn.BatchNorm1d if len(shape) == 1 else nn.BatchNorm2d
    try:
        return cls(shape[0], **extra), shape
    except (TypeError, ValueError) as exc:
        raise SpecError(f"{where} (batchnorm): invalid arguments {extra} ({exc}).") from exc


@dataclass(frozen=True)
class NetSpec:
    """A parsed architecture spec (see the module notes for the YAML form).

    Attributes
    ----------
    name : str
        A label for tables and figures.
    input_shape : tuple of int
        One input, without the batch dimension: ``(d,)`` for vectors, ``(C, H, W)`` for images.
    layers : tuple of Layer
        The normalised layers, in order.
    n_classes : int
        Number of logits (the size of the last layer's output).
    output_shapes : tuple of tuple of int
        The shape leaving each layer.
    """

    name: str
    input_shape: tuple[int, ...]
    layers: tuple[Layer, ...]
    n_classes: int
    output_shapes: tuple[tuple[int, ...], ...]

    def to_dict(self) -> dict[str, Any]:
        """The spec as plain values (a cache-key component; loads back with :func:`parse_spec`)."""
        return {
            "name": self.name,
            "input_shape": list(self.input_shape),
            "layers": [layer.kind if not layer.args else {layer.kind: layer.kw}
                       for layer in self.layers],
        }  # fmt: skip

    def build(self, seed: int = 0) -> nn.Sequential:
        """A fresh network of this spec (torch's default initialisation, seeded), in eval mode.

        Its ``state_dict`` keys are ``"<index>.weight"``, ... with one index per spec layer
        (ReLU, Flatten and Dropout count as layers, as in any ``nn.Sequential``).
        """
        torch.manual_seed(int(seed))
        shape, modules = self.input_shape, []
        for i, layer in enumerate(self.layers):
            m, shape = _module(layer, shape, f"layer {i + 1}")
            modules.append(m)
        return nn.Sequential(*modules).eval()

    def layer_table(self) -> pd.DataFrame:
        """One row per layer: the spec line, the torch module, output shape and parameters."""
        model = self.build()
        infos = layer_infos(model, self.input_shape)
        return pd.DataFrame(
            {
                "layer": range(1, len(self.layers) + 1),
                "spec": [layer.text() for layer in self.layers],
                "torch module": [repr(m) for m in model],
                "output shape": [_shape(info.output_shape) for info in infos],
                "parameters": [info.trainable for info in infos],
            }
        ).set_index("layer")

    @property
    def n_hidden_layers(self) -> int:
        """Number of ReLU layers (hidden layers of eq. 1)."""
        return sum(layer.kind == "relu" for layer in self.layers)


def parse_spec(data: Any, *, origin: str = "the spec") -> NetSpec:
    """Check a spec given as a mapping (parsed YAML) and return it as a :class:`NetSpec`.

    Raises
    ------
    SpecError
        For a malformed spec, an unknown layer (not in the layer rule), an argument of the
        wrong kind, sizes that disagree with the shape entering a layer, a layer that does not
        fit its input (``linear`` on an image, a kernel larger than the image), an output that
        is not a vector of logits, or a network the layer rule rejects.
    """
    if not isinstance(data, Mapping):
        raise SpecError(
            f"{origin} must be a mapping with the keys input_shape and layers (and optionally "
            f"name, n_classes, description); got a {type(data).__name__}: {data!r}."
        )
    unknown = sorted(set(map(str, data)) - _TOP_KEYS)
    if unknown:
        raise SpecError(f"{origin} has unknown key(s) {unknown}; the keys are {sorted(_TOP_KEYS)}.")
    for key in ("input_shape", "layers"):
        if key not in data:
            raise SpecError(
                f"{origin} has no {key!r}. Write e.g. 'input_shape: [1, 28, 28]' and a "
                "'layers:' list such as [flatten, {linear: 64}, relu, {linear: 10}]."
            )
    raw_shape = data["input_shape"]
    if (
        not isinstance(raw_shape, list | tuple)
        or len(raw_shape) not in (1, 3)
        or not all(_is_int(s) and s >= 1 for s in raw_shape)
    ):
        raise SpecError(
            f"{origin}: input_shape must be the shape of one input without the batch "
            f"dimension, [d] for vectors or [channels, height, width] for images; got "
            f"{raw_shape!r}. E.g. [2] for the spirals, [1, 28, 28] for MNIST, [3, 32, 32] for "
            "CIFAR-10."
        )
    input_shape = tuple(int(s) for s in raw_shape)
    entries = data["layers"]
    if not isinstance(entries, list) or not entries:
        raise SpecError(f"{origin}: layers must be a non-empty list; got {entries!r}.")
    layers = tuple(_normalise(e, i) for i, e in enumerate(entries))
    shape, shapes = input_shape, []
    for i, layer in enumerate(layers):
        _, shape = _module(layer, shape, f"layer {i + 1}")
        shapes.append(shape)
    if len(shape) != 1 or shape[0] < 2:
        raise SpecError(
            f"{origin}: the network's output has shape {_shape(shape)}, but it must be a vector "
            "of at least 2 logits (one per class). End the layers with flatten (for images) "
            "and a linear layer with out_features = the number of classes."
        )
    n_classes = shape[0]
    given = data.get("n_classes")
    if given is not None and given != n_classes:
        raise SpecError(
            f"{origin} says n_classes: {given!r}, but its last layer has {n_classes} outputs. "
            "Make the last linear layer's out_features equal to the number of classes."
        )
    name = str(data.get("name") or "your network")
    spec = NetSpec(name, input_shape, layers, n_classes, tuple(shapes))
    model = spec.build()
    try:  # the one layer rule and input contract of lrtools._forward
        leaf_layers(model)
        input_spec(model).check_shape(input_shape)
    except (UnsupportedModelError, InputShapeError) as exc:
        raise SpecError(f"{origin}: lrtools cannot represent this network: {exc}") from exc
    if spec.n_hidden_layers == 0:
        raise SpecError(
            f"{origin} has no relu layer, so its network is affine and has a single linear "
            "region (all of R^d); add relu after the hidden layers."
        )
    return spec


def load_spec(source: str | Path | Mapping) -> NetSpec:
    """Read a spec: a YAML file (a path ending in ``.yaml``/``.yml``), YAML text, or a mapping.

    Raises
    ------
    SpecError
        If the file does not exist or is not valid YAML, or the spec is invalid (see
        :func:`parse_spec`).
    """
    if isinstance(source, Mapping):
        return parse_spec(source, origin="the inline spec")
    text = str(source)
    if isinstance(source, Path) or (
        "\n" not in text and text.strip().lower().endswith((".yaml", ".yml"))
    ):
        path = Path(text)
        if not path.is_file():
            raise SpecError(
                f"spec file {text} does not exist. Pass the path of a YAML spec (relative to the "
                "repository root), e.g. params/specs/example_mlp.yaml."
            )
        text, origin = path.read_text(), f"spec {text}"
    else:
        origin = "the inline spec"
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(f"{origin} is not valid YAML: {problem}{where}.") from exc
    return parse_spec(data, origin=origin)


# --------------------------------------------------------------------------------------------
# Weights: a state_dict, loaded with weights_only=True and checked against the spec
# --------------------------------------------------------------------------------------------

_OPTIONAL_KEYS = ("num_batches_tracked",)  # BatchNorm's counter: unused in eval mode


def _save_hint() -> str:
    return "Save the weights with torch.save(model.state_dict(), path)"


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise SpecError(
            f"weights file {path} does not exist. {_save_hint()}, or pass weights=None to train "
            "the spec on the chosen data set."
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if not zipfile.is_zipfile(path):  # not torch.save's format (or a damaged file)
            raise SpecError(
                f"weights file {path} cannot be read by torch.load(weights_only=True): it is not "
                f"a file written by torch.save, or it is damaged. {_save_hint()}."
            ) from exc
        text = str(exc)
        detail = text.split("WeightsUnpickler error:", 1)[-1].strip().splitlines()
        found = detail and "WeightsUnpickler" in text
        detail = detail[0].split(" Please")[0][:160] if found else "an object"
        raise SpecError(
            f"weights file {path} is not a plain state_dict: torch.load(weights_only=True) "
            f"refused it because it holds a pickled Python object ({detail}). lrtools never "
            f"unpickles arbitrary objects. {_save_hint()} (the tensors only, not the model "
            "object)."
        ) from exc
    except Exception as exc:  # e.g. a truncated zip archive
        raise SpecError(
            f"weights file {path} cannot be read by torch.load ({type(exc).__name__}: "
            f"{str(exc)[:160]}). {_save_hint()}."
        ) from exc
    if not isinstance(obj, Mapping):
        raise SpecError(
            f"weights file {path} holds a {type(obj).__name__}, not a state_dict (a mapping of "
            f"parameter names to tensors). {_save_hint()}."
        )
    nested = [k for k, v in obj.items() if isinstance(v, Mapping)]
    bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        hint = (
            f" It looks like a checkpoint with the entries {sorted(map(str, obj))[:8]}: save "
            f"its {nested[0]!r} entry alone."
            if nested
            else ""
        )
        raise SpecError(
            f"weights file {path} is not a state_dict: the entries {sorted(map(str, bad))[:8]} "
            f"are not tensors.{hint} {_save_hint()}."
        )
    return {str(k): v for k, v in obj.items()}


def _list(keys) -> str:
    keys = sorted(keys)
    return str(keys[:8])[:-1] + (f", ... ({len(keys)} in all)]" if len(keys) > 8 else "]")


def _key_problem(expected: dict, got: dict, path: Path) -> str | None:
    missing = [k for k in expected if k not in got and not k.endswith(_OPTIONAL_KEYS)]
    extra = [k for k in got if k not in expected]
    if not missing and not extra:
        return None
    lines = [f"weights file {path} does not match the spec's layers."]
    if missing:
        lines.append(f"Missing (expected by the spec): {_list(missing)}.")
    if extra:
        lines.append(f"Unexpected (in the file, not in the spec): {_list(extra)}.")
    prefixes = {k.split(".", 1)[0] + "." for k in got if "." in k}
    if len(prefixes) == 1 and not next(iter(prefixes))[:-1].isdigit():
        p = next(iter(prefixes))
        lines.append(
            f"Every key in the file starts with {p!r} (a wrapped model): save the inner "
            f"nn.Sequential's state_dict, or strip the prefix: "
            f"{{k.removeprefix({p!r}): v for k, v in sd.items()}}."
        )
    else:
        lines.append(
            "Keys are '<index>.<name>' with one index per spec layer, counting relu, flatten "
            "and dropout; write the spec with exactly the layers of your nn.Sequential, in the "
            "same order."
        )
    return " ".join(lines)


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a ``state_dict`` file into ``model`` (built from a spec), after checking it.

    The file is read with ``torch.load(path, weights_only=True)`` only, so it can hold tensors
    and plain containers but no arbitrary Python object. Every key of the model must be in it
    (BatchNorm's ``num_batches_tracked`` may be missing) and nothing else; every tensor must
    have the model's shape and finite floating values.

    Parameters
    ----------
    model : torch.nn.Sequential
        The network of the spec (:meth:`NetSpec.build`); modified in place.
    path : str or Path
        The file written by ``torch.save(model.state_dict(), path)``.

    Returns
    -------
    torch.nn.Sequential
        ``model``, with the weights, in eval mode.

    Raises
    ------
    SpecError
        If the file is missing, is not a state_dict (including any pickled object other than
        tensors), or its keys, shapes or values do not fit the spec; the message lists what
        was expected and what was found.
    """
    path = Path(path)
    got = _read_state_dict(path)
    expected = model.state_dict()
    problem = _key_problem(expected, got, path)
    if problem:
        raise SpecError(problem)
    wrong = [
        f"{k!r}: expected {_shape(tuple(v.shape))}, got {_shape(tuple(got[k].shape))}"
        for k, v in expected.items()
        if k in got and tuple(got[k].shape) != tuple(v.shape)
    ]
    if wrong:
        raise SpecError(
            f"weights file {path} has tensors of the wrong shape for the spec: "
            f"{'; '.join(wrong[:6])}{' ...' if len(wrong) > 6 else ''}. Check the sizes in the "
            "spec (out_features, out_channels, kernel_size) against the network that was saved."
        )
    state = {}
    for k, v in expected.items():
        if k not in got:
            state[k] = v  # an optional counter
            continue
        t = got[k]
        if v.is_floating_point():
            if not (t.is_floating_point() and bool(torch.isfinite(t).all())):
                raise SpecError(
                    f"weights file {path}: {k!r} must hold finite floating-point values; got "
                    f"{t.dtype}{' with NaN or inf' if t.is_floating_point() else ''}."
                )
            t = t.to(v.dtype)
        state[k] = t
    model.load_state_dict(state, strict=True)
    return model.eval()


# --------------------------------------------------------------------------------------------
# The network as a trained model of lrtools (for lrtools.analyses.study)
# --------------------------------------------------------------------------------------------


def check_fits(spec: NetSpec, data: Dataset) -> None:
    """Raise :class:`SpecError` unless the spec's input shape and classes are the data's."""
    if spec.input_shape != data.input_shape:
        fix = f"write input_shape: {list(data.input_shape)}" + (
            " and start the layers with flatten" if len(data.input_shape) == 3 else ""
        )
        raise SpecError(
            f"the spec's input_shape {_shape(spec.input_shape)} does not fit the {data.name} "
            f"data set, whose inputs have shape {_shape(data.input_shape)}: {fix} (or choose "
            "the data set the network was made for)."
        )
    if spec.n_classes != data.n_classes:
        raise SpecError(
            f"the spec's network has {spec.n_classes} logits, but {data.name} has "
            f"{data.n_classes} classes. Make the last linear layer's out_features "
            f"{data.n_classes}, or choose the data set the network was made for."
        )


def run_key(spec: NetSpec, lr: float = 0.0, seed: int = 0) -> tuple[str, float, int]:
    """The ``(variant, lr, seed)`` run under which the study functions label the network.

    The variant is ``"bn"`` when the spec has batchnorm, ``"dropout"`` when it has dropout,
    else ``"vanilla"``; ``lr`` is the training learning rate (0.0 for given weights) and
    ``seed`` the training seed (as in :attr:`lrtools.analyses.study.StudyConfig.runs`).
    """
    kinds = {layer.kind for layer in spec.layers}
    variant = "bn" if "batchnorm" in kinds else "dropout" if "dropout" in kinds else "vanilla"
    return variant, float(lr), int(seed)


def _trained(model, history, data, path, from_cache) -> TrainedModel:
    model.eval()
    return TrainedModel(model, history, accuracy(model, data.X_test, data.y_test), from_cache,
                        str(path))  # fmt: skip


def user_model(spec: NetSpec, weights: str | Path, data: Dataset) -> TrainedModel:
    """The spec with the weights of ``weights``, as a :class:`~lrtools.training.TrainedModel`.

    Its cache identity (``cache_id``) is a hash of the spec and of the weights' values, so
    results measured on it are recomputed whenever either changes; a copy of the checked
    ``state_dict`` is stored under that key in the cache.

    Raises
    ------
    SpecError
        If the spec does not fit ``data`` (:func:`check_fits`) or the weights do not fit the
        spec (:func:`load_weights`).
    """
    check_fits(spec, data)
    model = load_weights(spec.build(), weights)
    key = {"netspec": spec.to_dict(), "weights": weights_digest(model), "format": 1}
    path = cache_path("user-models", key, "pt")
    if not path.exists():
        atomic_write(path, lambda p: torch.save(model.state_dict(), p))
    return _trained(model, pd.DataFrame(), data, path, True)


def train_spec(
    spec: NetSpec,
    data: Dataset,
    config: TrainConfig,
    *,
    use_cache: bool = True,
    progress: bool = True,
) -> TrainedModel:
    """Train the spec on ``data`` with ``config`` (a :class:`~lrtools.training.TrainConfig`).

    The training loop and its cache are :func:`lrtools.training.train_cached`, those of
    :func:`~lrtools.training.fit` (Adam, early stopping on a validation split, best weights
    restored; Section 3.1), started from :meth:`NetSpec.build` seeded by ``config.seed``. The
    weights are cached under a hash of the spec, the configuration, the data's fingerprint and
    the training code.

    Returns
    -------
    lrtools.training.TrainedModel
    """
    check_fits(spec, data)
    model = spec.build(seed=config.seed).train()
    if has_batchnorm(model) and config.batch_size < 2:
        raise SpecError("a spec with batchnorm needs batch_size >= 2 to train.")
    return train_cached(model, data, config, {"netspec": spec.to_dict(), "format": 1},
                        use_cache=use_cache, progress=progress)  # fmt: skip
