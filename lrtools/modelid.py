"""The identity of a model's weights: one digest of its ``state_dict``.

Used to key cached results by the weights they were computed from (book models in
:mod:`lrtools.netspec`, a point's region reused by the parts of one Table 2 point in
:mod:`lrtools.analyses.class_regions`).
"""

from __future__ import annotations

import hashlib

from torch import nn

__all__ = ["weights_digest"]


def weights_digest(model: nn.Module) -> str:
    """SHA-256 (16 hex digits) of a model's state_dict: the identity of its weights.

    Every parameter and buffer enters with its name, dtype and shape (BatchNorm running
    statistics included), so two models agree only if their weights are bit-identical.
    """
    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        a = v.detach().cpu().contiguous().numpy()
        h.update(f"{k}:{a.dtype}:{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]
