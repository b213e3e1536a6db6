"""Exceptions raised by lrtools."""

from __future__ import annotations


class LRToolsError(Exception):
    """Base class of every lrtools error."""


class SolverError(LRToolsError):
    """A convex program failed, or its answer failed verification.

    The message names the program, the solver, its status and the problem size.
    """


class CacheError(LRToolsError):
    """A cached result on disk is unreadable; the message names the file to delete."""


class DataUnavailableError(LRToolsError):
    """A data set is neither on disk nor downloadable; the message says where to put it."""


class UnsupportedModelError(LRToolsError, TypeError):
    """The model cannot be represented exactly (a layer type, a custom forward, BatchNorm
    without running statistics, ...); the message names the module and what to do."""


class InputShapeError(LRToolsError, ValueError):
    """An input does not have the model's input shape; the message gives the expected and the
    received shape and a fix (scikit-learn style)."""


class RunnerError(LRToolsError):
    """A user-facing problem with a profile, a parameter or a chapter name."""


class SpecError(LRToolsError, ValueError):
    """An architecture spec or a weights file (chapter "Your network", :mod:`lrtools.netspec`)
    that lrtools cannot use; the message says what is wrong, what was expected and found, and
    how to fix it."""


class DataFallbackWarning(UserWarning):
    """A real data set was unavailable and an offline stand-in is used; the message (and the
    data set's ``fallback_reason``) names the missing or invalid file."""
