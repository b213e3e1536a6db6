"""Seeded training with early stopping; trained weights cached by a hash of every parameter.

Section 3.1 / Appendix A / Appendix E.1 of the paper: Adam (beta1 = 0.9, beta2 = 0.999), batch
size 256 (MNIST, CIFAR), early stopping on held-out data. A rebuild with identical parameters
(model spec, training config and data fingerprint) loads the weights instead of retraining.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from ._forward import has_batchnorm, input_spec
from ._threads import one_torch_thread
from ._validation import check_choice, check_scalar
from .cache import atomic_write, cache_path
from .codeid import code_identity
from .datasets.base import Dataset, split_indices
from .exceptions import CacheError
from .models import VARIANTS, build_cnn, build_mlp
from .progress import bar as progress_bar

__all__ = ["ModelSpec", "TrainConfig", "TrainedModel", "accuracy", "fit", "fit_job",
           "fit_cache_path", "save_fitted", "train_cached", "train_job"]

OPTIMIZERS = ("adam", "sgd")


@dataclass(frozen=True)
class ModelSpec:
    """What network to build (a cache-key component).

    Parameters
    ----------
    arch : {"mlp", "cnn"}
        ``"mlp"``: :func:`lrtools.models.build_mlp`, after a ``Flatten`` for image inputs;
        ``"cnn"``: :func:`lrtools.models.build_cnn` (Table 3).
    widths : tuple of int
        Hidden widths of an MLP, or the convolution channels of a CNN.
    variant : {"vanilla", "bn", "dropout"}
    drop_rate : float, default=0.2
    dense : int, default=1024
        Width of the CNN's hidden dense layer (``arch="cnn"`` only).
    init_seed : int, default=0
    """

    arch: str
    widths: tuple[int, ...]
    variant: str = "vanilla"
    drop_rate: float = 0.2
    dense: int = 1024
    init_seed: int = 0

    def __post_init__(self) -> None:
        check_choice(self.arch, "arch", ("mlp", "cnn"))
        check_choice(self.variant, "variant", VARIANTS)
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))

    def build(self, input_shape: tuple[int, ...], n_classes: int) -> nn.Sequential:
        """Instantiate the (untrained, seeded) network for inputs of ``input_shape``."""
        if self.arch == "mlp":
            net = build_mlp(
                int(np.prod(input_shape)),
                self.widths,
                n_classes,
                variant=self.variant,
                drop_rate=self.drop_rate,
                seed=self.init_seed,
            )
            # images are vectorised by a leading Flatten (Section 3.1: "vectorized MNIST")
            return nn.Sequential(nn.Flatten(), *net) if len(input_shape) > 1 else net
        c, h, w = input_shape
        if h != w:
            raise ValueError(f"build_cnn needs square images; got input shape {input_shape}.")
        return build_cnn(
            c,
            h,
            self.widths,
            self.dense,
            n_classes,
            variant=self.variant,
            drop_rate=self.drop_rate,
            seed=self.init_seed,
        )


@dataclass(frozen=True)
class TrainConfig:
    """How to train (a cache-key component).

    Parameters
    ----------
    lr : float, default=1e-3
    optimizer : {"adam", "sgd"}, default="adam"
        Adam with ``betas`` (the paper), or SGD with momentum 0.9.
    betas : tuple of float, default=(0.9, 0.999)
    batch_size : int, default=256
    max_epochs : int, default=100
    patience : int, default=10
        Early stopping: stop after this many epochs without a lower validation loss, and
        restore the best weights.
    val_fraction : float, default=0.1
        Fraction of the training set held out for early stopping.
    seed : int, default=0
        Seed of the validation split and of the batch order.
    max_train : int or None, default=None
        Use at most this many training examples (a seeded subset); None uses all.
    """

    lr: float = 1e-3
    optimizer: str = "adam"
    betas: tuple[float, float] = (0.9, 0.999)
    batch_size: int = 256
    max_epochs: int = 100
    patience: int = 10
    val_fraction: float = 0.1
    seed: int = 0
    max_train: int | None = None

    def __post_init__(self) -> None:
        check_scalar(self.lr, "lr", float, min_val=0.0, include_min=False)
        check_choice(self.optimizer, "optimizer", OPTIMIZERS)
        check_scalar(self.batch_size, "batch_size", int, min_val=1)
        check_scalar(self.max_epochs, "max_epochs", int, min_val=1)
        check_scalar(self.patience, "patience", int, min_val=1)
        check_scalar(
            self.val_fraction, "val_fraction", float, min_val=0.0, max_val=0.9, include_min=False
        )
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))


@dataclass
class TrainedModel:
    """A trained network in eval mode with its training history.

    Attributes
    ----------
    model : torch.nn.Sequential
    history : pandas.DataFrame
        One row per epoch: ``train_loss``, ``val_loss``, ``val_acc``, ``seconds`` (wall-clock
        time of the epoch's optimisation steps) and ``n_images`` (training images seen).
    test_accuracy : float
        Accuracy on the data set's test split, in eval mode.
    from_cache : bool
        Whether the weights were loaded from the cache instead of trained.
    key_path : str
        The cache file of these weights.
    """

    model: nn.Sequential
    history: pd.DataFrame
    test_accuracy: float
    from_cache: bool
    key_path: str

    @property
    def cache_id(self) -> str:
        """Identity of these weights (the cache key of the model), for the keys of results
        measured on them: changes whenever the model's spec, training or data change."""
        return Path(self.key_path).stem

    @property
    def seconds_per_image(self) -> float:
        """Training wall-clock seconds per training image seen (for scaling to a full data set)."""
        return float(self.history["seconds"].sum() / self.history["n_images"].sum())


@torch.no_grad()
def accuracy(model: nn.Module, X: np.ndarray, y: np.ndarray, batch: int = 4096) -> float:
    """Fraction of ``X`` classified as ``y`` by ``model`` in eval mode."""
    X = np.asarray(X)
    input_spec(model).check_batch_shape(X.shape, "X")
    y = np.asarray(y)
    if y.shape != (len(X),):
        raise ValueError(f"y must have shape ({len(X)},), one label per input; got {y.shape}.")
    was_training = model.training
    model.eval()
    correct = 0
    for i in range(0, len(X), batch):
        xb = torch.as_tensor(np.ascontiguousarray(X[i : i + batch], dtype=np.float32))
        correct += int((model(xb).argmax(1).numpy() == y[i : i + batch]).sum())
    model.train(was_training)
    return correct / max(len(X), 1)


def _batch(model: nn.Module, X, name: str = "X") -> np.ndarray:
    """``X`` as float32 after checking that it is a batch of the model's inputs."""
    X = np.asarray(X)
    input_spec(model).check_batch_shape(X.shape, name)
    return np.ascontiguousarray(X, dtype=np.float32)


def _make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=cfg.betas)
    return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9)


def _train(model: nn.Sequential, data: Dataset, cfg: TrainConfig, progress: bool) -> pd.DataFrame:
    """Train in place with one torch thread, so that the weights are the same bit for bit
    whether the model is trained in this process or in a worker (:func:`train_job`)."""
    with one_torch_thread():
        return _train_loop(model, data, cfg, progress)


def _train_loop(model: nn.Sequential, data: Dataset, cfg: TrainConfig, progress: bool
                ) -> pd.DataFrame:  # fmt: skip
    rng = np.random.default_rng(cfg.seed)
    X, y = data.X_train, data.y_train
    if cfg.max_train is not None and cfg.max_train < len(X):
        keep = np.sort(rng.permutation(len(X))[: cfg.max_train])
        X, y = X[keep], y[keep]
    tr, va = split_indices(len(X), cfg.val_fraction, rng)
    Xtr, ytr = torch.as_tensor(_batch(model, X[tr], "X_train")), torch.as_tensor(y[tr])
    Xva, yva = torch.as_tensor(_batch(model, X[va], "X_train")), torch.as_tensor(y[va])
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = _make_optimizer(model, cfg)
    skip_singletons = has_batchnorm(model)  # BatchNorm cannot train on a batch of one
    loss_fn = nn.CrossEntropyLoss()
    best, best_state, stale, rows = math.inf, copy.deepcopy(model.state_dict()), 0, []
    bar = progress_bar(range(cfg.max_epochs), desc="training", disable=not progress)
    for epoch in bar:
        model.train()
        total, t0 = 0.0, time.perf_counter()
        for idx in torch.randperm(len(Xtr), generator=gen).split(cfg.batch_size):
            if len(idx) < 2 and skip_singletons:
                continue
            opt.zero_grad()
            loss = loss_fn(model(Xtr[idx]), ytr[idx])
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        seconds = time.perf_counter() - t0
        model.eval()
        with torch.no_grad():
            out = model(Xva)
            val_loss = float(loss_fn(out, yva))
            val_acc = float((out.argmax(1) == yva).float().mean())
        rows.append(
            {
                "epoch": epoch + 1,
                "train_loss": total / len(Xtr),
                "val_loss": val_loss,
                "val_acc": val_acc,
                "seconds": seconds,
                "n_images": len(Xtr),
            }
        )
        bar.set_postfix(val_loss=f"{val_loss:.4f}", val_acc=f"{val_acc:.3f}")
        if val_loss < best - 1e-7:
            best, best_state, stale = val_loss, copy.deepcopy(model.state_dict()), 0
        else:
            stale += 1
            if stale >= cfg.patience:
                break
    model.load_state_dict(best_state)
    model.eval()
    return pd.DataFrame(rows)


def train_cached(
    model: nn.Sequential,
    data: Dataset,
    config: TrainConfig,
    key: dict,
    *,
    use_cache: bool = True,
    progress: bool = True,
) -> TrainedModel:
    """Train ``model`` in place with the loop of :func:`fit`, or load its weights from the cache.

    Adam (or SGD) on a seeded subset and validation split of ``data``'s training set, early
    stopping on the validation loss with the best weights restored (Section 3.1). The cache
    key is ``key`` (what describes the network and its training) plus the data's fingerprint,
    the torch version and the identity of the training code (:func:`lrtools.store.code_identity`
    of :func:`fit`), so a change to any of them retrains. :func:`fit` and
    :func:`lrtools.netspec.train_spec` both train through here.

    Raises
    ------
    CacheError
        If a cached entry exists but cannot be loaded (the message names the file to delete).
    """
    path = _cache_path(key, config, data)
    if use_cache and path.exists():
        try:
            blob = torch.load(path, weights_only=True)
            model.load_state_dict(blob["state_dict"])
            history = pd.DataFrame(blob["history"])
        except Exception as exc:
            raise CacheError(
                f"cached model {path} is unreadable ({type(exc).__name__}: {exc}). Delete that "
                "file and run again to retrain it."
            ) from exc
        model.eval()
        return TrainedModel(
            model, history, accuracy(model, data.X_test, data.y_test), True, str(path)
        )
    history = _train(model, data, config, progress)
    if use_cache:
        save_fitted(path, {"state_dict": model.state_dict(),
                           "history": history.to_dict(orient="list")})  # fmt: skip
    return TrainedModel(model, history, accuracy(model, data.X_test, data.y_test), False, str(path))


def _cache_path(key: dict, config: TrainConfig, data: Dataset) -> Path:
    """The cache file of a trained network (see :func:`train_cached` for the key)."""
    params = {
        **key,
        "config": asdict(config),
        "data": data.fingerprint(),
        "torch": torch.__version__.split("+")[0],
        "code": code_identity(fit),  # the training code and its lrtools imports (lrtools.store)
    }
    return cache_path("models", params, "pt")


def save_fitted(path: str | Path, blob: dict) -> None:
    """Write a trained network's ``{"state_dict", "history"}`` to its cache file atomically."""
    atomic_write(Path(path), lambda p: torch.save(blob, p))


def _fit_key(spec: ModelSpec) -> dict:
    return {"spec": asdict(spec),
            "format": 2}  # bump when the network a spec builds changes (2: Flatten before MLPs)


def fit_cache_path(spec: ModelSpec, data: Dataset, config: TrainConfig) -> Path:
    """Where :func:`fit` keeps (or finds) the trained ``spec``; it exists once trained."""
    return _cache_path(_fit_key(spec), config, data)


def fit_job(spec: ModelSpec, data: Dataset, config: TrainConfig) -> tuple[nn.Sequential,
                                                                          TrainConfig]:
    """The task of :func:`train_job` for ``spec``: its freshly initialised network and config."""
    return spec.build(data.input_shape, data.n_classes), config


def train_job(data: Dataset, job: tuple[nn.Sequential, TrainConfig]) -> dict:
    """Train one network of :func:`fit_job` (in a worker): its cache blob.

    The same loop, seeds and single torch thread as :func:`fit`, so writing the blob with
    :func:`save_fitted` at :func:`fit_cache_path` gives exactly what :func:`fit` would have
    trained; ``data`` comes first so that a pool can ship it once per worker.
    """
    model, config = job
    history = _train(model, data, config, progress=False)
    return {"state_dict": model.state_dict(), "history": history.to_dict(orient="list")}


def fit(
    spec: ModelSpec,
    data: Dataset,
    config: TrainConfig,
    *,
    use_cache: bool = True,
    progress: bool = True,
) -> TrainedModel:
    """Train ``spec`` on ``data`` with ``config``, or load it from the cache.

    The cache key hashes every field of ``spec`` and ``config``, the data's fingerprint and the
    training code's identity (:func:`train_cached`), so changing any of them retrains, and
    nothing else does.

    Raises
    ------
    CacheError
        If a cached entry exists but cannot be loaded (the message names the file to delete).
    """
    return train_cached(spec.build(data.input_shape, data.n_classes), data, config,
                        _fit_key(spec), use_cache=use_cache, progress=progress)  # fmt: skip
