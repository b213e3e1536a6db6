"""Shared fixtures: small seeded networks of every variant, and an isolated cache folder."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lrtools.models import build_cnn, build_mlp

torch.set_num_threads(1)  # tests run two per core pair (pytest -n 2): no thread oversubscription


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Every test writes its cache under its own temporary folder."""
    monkeypatch.setenv("LRTOOLS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("LRTOOLS_DATA_DIR", str(tmp_path / "data"))


def warm_bn(net: torch.nn.Module, input_shape: tuple[int, ...], seed: int = 0) -> torch.nn.Module:
    """Give BatchNorm layers non-trivial running statistics, then switch to eval mode."""
    g = torch.Generator().manual_seed(seed)
    net.train()
    with torch.no_grad():
        for _ in range(5):
            net(torch.rand((64, *input_shape), generator=g) * 1.6 - 0.8)
    return net.eval()


def with_biases(net: torch.nn.Module, seed: int, scale: float = 0.3) -> torch.nn.Module:
    """Random biases (the builders zero them) so regions are not cones through the origin;
    returns the network in eval mode."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.Linear | torch.nn.Conv2d):
                m.bias.copy_(scale * torch.randn(m.bias.shape, generator=g))
    return net.eval()


@pytest.fixture(params=["vanilla", "bn", "dropout"])
def small_mlp(request):
    """A 12-input MLP of each variant with warmed BatchNorm statistics."""
    net = build_mlp(12, [16, 12, 8], 4, variant=request.param, seed=1)
    return warm_bn(net, (12,))


@pytest.fixture(params=["vanilla", "bn", "dropout"])
def small_cnn(request):
    """A small CNN (1x9x9 input) of each variant with warmed BatchNorm statistics."""
    net = build_cnn(1, 9, channels=(3, 4), dense=6, n_classes=3, variant=request.param, seed=2)
    return warm_bn(net, (1, 9, 9))


@pytest.fixture
def rng():
    return np.random.default_rng(0)


BOOK_SOURCES = ("_config.yml", "_toc.yml", "book", "notebooks", "params", "_static")


def copy_book_sources(dest):
    """The book's sources (no executed chapters, no build) copied into ``dest``."""
    import shutil
    from pathlib import Path

    src, dest = Path(__file__).resolve().parents[1], Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for name in BOOK_SOURCES:
        if (src / name).is_dir():
            shutil.copytree(
                src / name, dest / name, ignore=shutil.ignore_patterns("chapters", "_generated")
            )
        else:
            shutil.copy(src / name, dest / name)
    return dest


@pytest.fixture(scope="session")
def smoke_book(tmp_path_factory):
    """The smoke book, built once per test process: ``(root, env)``.

    ``root`` holds the sources, ``book/chapters`` (executed notebooks) and ``_build/html``;
    ``env`` the cache and data folders it was built with (stand-in data, its own cache). The
    tests that use it carry ``pytest.mark.xdist_group("smoke_book")`` so that ``pytest -n 2
    --dist loadgroup`` (``make test``) runs them in one worker and builds the book once.
    """
    import os

    from lrtools.runner import main

    root = copy_book_sources(tmp_path_factory.mktemp("smoke-book"))
    scratch = tmp_path_factory.mktemp("smoke-data")
    env = {"LRTOOLS_CACHE_DIR": str(scratch / "cache"), "LRTOOLS_DATA_DIR": str(scratch / "data")}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        assert main(["--root", str(root), "build", "--profile", "smoke"]) == 0
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return root, env
