"""PGD: stays in the L-infinity ball and the box, and raises the loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lrtools.attacks import pgd
from lrtools.models import build_mlp
from lrtools.regions import predict


def _loss(net, X, y):
    z = predict(net, X)
    z = z - z.max(1, keepdims=True)
    return float(-(z[np.arange(len(y)), y] - np.log(np.exp(z).sum(1))).mean())


def test_pgd_respects_ball_and_box_and_increases_loss():
    torch.manual_seed(0)
    net = build_mlp(10, [32, 32], 3, seed=0).eval()
    rng = np.random.default_rng(0)
    X = rng.uniform(-0.95, 0.95, (40, 10))
    y = predict(net, X).argmax(1)
    adv = pgd(net, X, y, eps=0.1, step_size=0.02, steps=20, random_start=True)
    assert np.abs(adv - X).max() <= 0.1 + 1e-12
    assert adv.min() >= -1 and adv.max() <= 1
    assert _loss(net, adv, y) > _loss(net, X, y)
    np.testing.assert_array_equal(adv, pgd(net, X, y, eps=0.1, step_size=0.02, steps=20))


def test_pgd_validates_input():
    net = build_mlp(4, [4], 2)
    with pytest.raises(ValueError, match="same length"):
        pgd(net, np.zeros((3, 4)), np.zeros(2, dtype=int))
    with pytest.raises(ValueError, match="eps == -0.1"):
        pgd(net, np.zeros((2, 4)), np.zeros(2, dtype=int), eps=-0.1)
