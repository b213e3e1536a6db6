r"""The two-spirals toy data set of Appendix A (Fig. 7) in :math:`[-1, 1]^2`.

Class 0 follows the spiral :math:`r(\theta) = \theta / \theta_{max}`,
:math:`(r\cos\theta, r\sin\theta)` for :math:`\theta \in [\theta_0, 2\pi\,\mathrm{turns}]`;
class 1 is the same spiral rotated by :math:`\pi`. Gaussian noise of standard deviation
``noise`` is added and points are clipped to the box, so the data live in the input domain
of eq. (5).
"""

from __future__ import annotations

import numpy as np

from .._validation import check_scalar
from .base import Dataset, split_indices

__all__ = ["make_spirals"]


def make_spirals(
    n_samples: int = 2000,
    *,
    noise: float = 0.02,
    turns: float = 1.5,
    test_fraction: float = 0.25,
    radius: float = 0.9,
    seed: int = 0,
) -> Dataset:
    """Two interleaved spirals, one per class, seeded and split into train/test.

    Parameters
    ----------
    n_samples : int, default=2000
        Total number of points (half per class).
    noise : float, default=0.02
        Standard deviation of the isotropic Gaussian noise.
    turns : float, default=1.5
        Number of turns of each spiral.
    test_fraction : float, default=0.25
        Fraction of points held out as the test set.
    radius : float, default=0.9
        Outer radius of the spirals (must leave the points inside ``[-1, 1]^2``).
    seed : int, default=0
        Seed of the sampling and of the split.

    Returns
    -------
    Dataset
        ``X`` of shape (n, 2) float32 in ``[-1, 1]``, ``y`` in {0, 1}.
    """
    check_scalar(n_samples, "n_samples", int, min_val=4)
    check_scalar(noise, "noise", (int, float), min_val=0.0)
    check_scalar(turns, "turns", (int, float), min_val=0.1)
    check_scalar(
        test_fraction,
        "test_fraction",
        float,
        min_val=0.0,
        max_val=1.0,
        include_min=False,
        include_max=False,
    )
    check_scalar(radius, "radius", (int, float), min_val=0.0, max_val=1.0, include_min=False)
    check_scalar(seed, "seed", int)
    rng = np.random.default_rng(seed)
    n0 = n_samples // 2
    n1 = n_samples - n0
    theta_max = 2 * np.pi * turns
    theta_min = 0.15 * theta_max

    def arm(n: int, phase: float) -> np.ndarray:
        # uniform in arc length approximately: sqrt spacing in theta
        u = rng.uniform(0, 1, n)
        theta = np.sqrt(theta_min**2 + u * (theta_max**2 - theta_min**2))
        r = radius * theta / theta_max
        return np.stack([r * np.cos(theta + phase), r * np.sin(theta + phase)], axis=1)

    X = np.concatenate([arm(n0, 0.0), arm(n1, np.pi)])
    X = np.clip(X + noise * rng.standard_normal(X.shape), -1.0, 1.0).astype(np.float32)
    y = np.concatenate([np.zeros(n0, np.int64), np.ones(n1, np.int64)])
    train, test = split_indices(n_samples, test_fraction, rng)
    return Dataset(
        name="spirals",
        X_train=X[train],
        y_train=y[train],
        X_test=X[test],
        y_test=y[test],
        classes=("spiral A", "spiral B"),
        standin=False,
        source=(
            f"Synthetic two-spirals set (Appendix A): {n_samples} points, {turns} turns, "
            f"noise {noise}, seed {seed}."
        ),
    )
