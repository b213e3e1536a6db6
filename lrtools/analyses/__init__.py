"""Per-point measurements composed from regions and solvers; every function returns a table.

Modules: ``study`` (a chapter's data, models and cached tables), ``claims`` (the paper's
claims, published numbers and their catalogues), ``scorecard`` (bootstrap intervals and
verdicts), ``boundary``, ``class_regions``, ``surrounding``, ``inradius``, ``nonredundant``,
``angles``, ``architecture``, ``partition``. They are imported on use, e.g.
``from lrtools.analyses import claims``.
"""
