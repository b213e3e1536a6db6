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
