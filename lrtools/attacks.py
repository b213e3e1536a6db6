r"""Projected gradient descent (PGD) adversarial examples (Madry et al., 2018), Section 3.2.

The paper's *adversarial regions* are the regions of the last point of the segment from a test
point to its PGD adversarial example that keeps the test point's class. PGD maximises the
cross-entropy loss inside the :math:`\ell_\infty` ball of radius ``eps`` around ``x`` (and inside
the input box):

.. math::

    x_{k+1} = \Pi_{B_\infty(x, \epsilon) \cap [\ell, u]}
              \big(x_k + \alpha\, \mathrm{sign}(\nabla_x L(f(x_k), y))\big),

starting from ``x`` or from a uniform random point of the ball (``random_start``).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ._forward import ReLUNetwork
from ._validation import check_array, check_scalar

__all__ = ["pgd"]


def pgd(
    model: nn.Module,
    X: np.ndarray,
    y: np.ndarray,
    *,
    eps: float = 0.3,
    step_size: float = 0.01,
    steps: int = 40,
    random_start: bool = True,
    box: tuple[float, float] = (-1.0, 1.0),
    seed: int = 0,
) -> np.ndarray:
    """L-infinity PGD adversarial examples of a batch (untargeted).

    Parameters
    ----------
    model : torch.nn.Sequential
        A supported ReLU network, used in eval mode (float64), not modified.
    X : array-like of shape (n, *input_shape)
        Clean inputs in the box.
    y : ndarray of shape (n,)
        Their labels.
    eps : float, default=0.3
        Radius of the L-infinity ball, in input units (the box [-1, 1] has width 2).
    step_size : float, default=0.01
        Step ``alpha`` of each signed-gradient ascent step.
    steps : int, default=40
        Number of steps.
    random_start : bool, default=True
        Start from a uniform point of the ball (Madry et al.) instead of ``X``.
    box : tuple of float, default=(-1.0, 1.0)
        Input domain the examples are projected onto.
    seed : int, default=0
        Seed of the random start.

    Returns
    -------
    ndarray of shape (n, *input_shape)
        Adversarial examples (float64); not all of them need to be misclassified.
    """
    check_scalar(eps, "eps", float, min_val=0.0, include_min=False)
    check_scalar(step_size, "step_size", float, min_val=0.0, include_min=False)
    check_scalar(steps, "steps", int, min_val=1)
    net = ReLUNetwork(model)
    X = np.ascontiguousarray(net.spec.batch(X, "X"))
    y = check_array(y, "y", ndim=1, dtype=np.int64)
    if len(X) != len(y):
        raise ValueError(f"X and y must have the same length; got {len(X)} and {len(y)}.")
    x0 = torch.from_numpy(X)
    target = torch.from_numpy(y)
    lo, hi = box
    gen = torch.Generator().manual_seed(seed)
    x = x0.clone()
    if random_start:
        x = x + (torch.rand(x.shape, generator=gen, dtype=x.dtype) * 2 - 1) * eps
        x = x.clamp(lo, hi)
    loss_fn = nn.CrossEntropyLoss(reduction="sum")
    for _ in range(steps):
        x.requires_grad_(True)
        loss = loss_fn(net.forward(x), target)
        (grad,) = torch.autograd.grad(loss, x)
        with torch.no_grad():
            x = x + step_size * grad.sign()
            x = torch.max(torch.min(x, x0 + eps), x0 - eps).clamp(lo, hi)
    return x.detach().numpy()
