"""Input validation at the public boundary (scikit-learn style messages).

Every message names the argument, what was expected, what was received and a fix.
"""

from __future__ import annotations

from collections.abc import Iterable
from numbers import Real
from typing import Any

import numpy as np


def check_choice(value: Any, name: str, choices: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``choices``, else raise ``ValueError``."""
    choices = list(choices)
    if value not in choices:
        raise ValueError(f"{name} == {value!r} is not supported; choose one of {choices}.")
    return value


def check_scalar(
    x: Any,
    name: str,
    target_type: type | tuple[type, ...] = Real,
    *,
    min_val: float | None = None,
    max_val: float | None = None,
    include_min: bool = True,
    include_max: bool = True,
) -> Any:
    """Check the type and bounds of a scalar parameter (cf. ``sklearn.utils.check_scalar``)."""
    if isinstance(x, bool) or not isinstance(x, target_type):
        raise TypeError(
            f"{name} must be an instance of {target_type}; got {type(x).__name__} {x!r}."
        )
    if min_val is not None:
        bad = x < min_val if include_min else x <= min_val
        if bad:
            op = ">=" if include_min else ">"
            raise ValueError(f"{name} == {x}, must be {op} {min_val}.")
    if max_val is not None:
        bad = x > max_val if include_max else x >= max_val
        if bad:
            op = "<=" if include_max else "<"
            raise ValueError(f"{name} == {x}, must be {op} {max_val}.")
    return x


def check_array(
    x: Any,
    name: str,
    *,
    ndim: int | None = None,
    shape: tuple[int | None, ...] | None = None,
    dtype: Any = np.float64,
    hint: str = "",
) -> np.ndarray:
    """Convert ``x`` to a finite numpy array and check its dimensions.

    Parameters
    ----------
    x : array-like
        The input.
    name : str
        The argument's name, used in messages.
    ndim : int, optional
        Required number of dimensions.
    shape : tuple of int or None, optional
        Required shape; ``None`` entries match any size.
    dtype : numpy dtype, default=float64
        The dtype to convert to.
    hint : str, optional
        A fix appended to shape errors.
    """
    try:
        arr = np.asarray(x, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be array-like of numbers; got {type(x).__name__}.") from exc
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(
            f"{name} must have {ndim} dimension(s); got shape {arr.shape}. {hint}".rstrip()
        )
    if shape is not None:
        ok = len(shape) == arr.ndim and all(
            s is None or s == a for s, a in zip(shape, arr.shape, strict=True)
        )
        if not ok:
            want = "(" + ", ".join("n" if s is None else str(s) for s in shape) + ")"
            raise ValueError(f"{name} must have shape {want}; got {arr.shape}. {hint}".rstrip())
    if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values; remove or impute them.")
    return arr
