"""Training: class-balanced cross-entropy, early stopping on a stratified held-out split, a
per-class held-out score, then (for the linear head) a refit on every label for the chosen
number of epochs, so no label is wasted on validation alone."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from histolabel.learning.models import LinearHead, ModelKind, build, device, threads_for


class TrainingError(ValueError):
    """Labels or features that cannot train a model; the message is the reason to report."""


@dataclass(frozen=True)
class TrainConfig:
    model_kind: ModelKind = "linear"
    max_epochs: int = 300
    patience: int = 10
    lr: float = 0.05
    weight_decay: float = 1e-3
    batch_size: int = 4096
    val_fraction: float = 0.2
    refit: bool = True
    # Past this many labels the held-out fifth costs the model little, and a refit is skipped.
    refit_below: int = 2000
    balance: bool = True
    dropout: float | None = None
    width: int = 32
    seed: int = 0


@dataclass
class TrainResult:
    model: nn.Module
    metrics: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)


def stratified_split(
    y: NDArray[np.int64], fraction: float, seed: int
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Train/val indices; a class gets val items only when it keeps at least one for training."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_val = round(fraction * idx.size) if idx.size >= 2 else 0
        n_val = min(n_val, idx.size - 1)
        val.append(idx[:n_val])
        train.append(idx[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def per_class_scores(
    y_true: NDArray[np.int64], y_pred: NDArray[np.int64], class_ids: list[str]
) -> dict[str, Any]:
    out: dict[str, Any] = {"per_class": {}}
    f1s = []
    for i, cid in enumerate(class_ids):
        tp = int(((y_pred == i) & (y_true == i)).sum())
        fp = int(((y_pred == i) & (y_true != i)).sum())
        fn = int(((y_pred != i) & (y_true == i)).sum())
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out["per_class"][cid] = {"precision": precision, "recall": recall, "f1": f1, "support": tp + fn}
        if tp + fn:
            f1s.append(f1)
    out["macro_f1"] = float(np.mean(f1s)) if f1s else 0.0
    out["accuracy"] = float((y_true == y_pred).mean()) if y_true.size else 0.0
    return out


def check_labels(x: NDArray[Any], y: NDArray[np.int64], class_ids: list[str]) -> None:
    if len(class_ids) < 2:
        raise TrainingError(f"training needs at least 2 trainable categories, found {len(class_ids)}")
    if y.size == 0:
        raise TrainingError("no labeled superpixels to train on")
    if x.shape[0] != y.shape[0]:
        raise TrainingError(f"{x.shape[0]} feature rows for {y.shape[0]} labels")
    present = np.unique(y)
    if present.size < 2:
        raise TrainingError(
            f"labels cover only one category ({class_ids[int(present[0])]!r}); label at least two categories"
        )
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        raise TrainingError("features contain NaN or infinite values")


def _class_weights(y: NDArray[np.int64], n_classes: int, balance: bool = True) -> torch.Tensor:
    if not balance:
        return torch.ones(n_classes)
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    w = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / max((counts > 0).sum(), 1), 0.0)
    return torch.tensor(w, dtype=torch.float32)


def _fit(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    weights: torch.Tensor,
    cfg: TrainConfig,
    epochs: int,
    x_val: torch.Tensor | None = None,
    y_val: torch.Tensor | None = None,
) -> tuple[nn.Module, int]:
    """Train up to `epochs`; with a val set, stop after `patience` epochs without improvement and
    return the best-val weights and epoch count."""
    work = min(x.shape[0], cfg.batch_size) * int(np.prod(x.shape[1:])) * (64 if x.ndim > 2 else 1)
    with threads_for(work):
        return _fit_loop(model, x, y, weights, cfg, epochs, x_val, y_val)


def _fit_loop(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    weights: torch.Tensor,
    cfg: TrainConfig,
    epochs: int,
    x_val: torch.Tensor | None,
    y_val: torch.Tensor | None,
) -> tuple[nn.Module, int]:
    dev = next(model.parameters()).device
    loss_fn = nn.CrossEntropyLoss(weight=weights.to(dev))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    n = x.shape[0]
    best_loss, best_state, best_epoch, since = float("inf"), None, epochs, 0
    val_loss_fn = nn.CrossEntropyLoss(weight=weights.to(dev))
    for epoch in range(1, epochs + 1):
        model.train()
        perm = torch.randperm(n, generator=gen) if n > cfg.batch_size else torch.arange(n)
        for start in range(0, n, cfg.batch_size):
            idx = perm[start : start + cfg.batch_size]
            xb, yb = x[idx].to(dev), y[idx].to(dev)
            if xb.shape[0] < 2 and any(isinstance(m, nn.BatchNorm2d) for m in model.modules()):
                continue
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
        if x_val is not None and y_val is not None and x_val.shape[0]:
            model.eval()
            with torch.no_grad():
                vl = float(val_loss_fn(model(x_val.to(dev)), y_val.to(dev)))
            if vl < best_loss - 1e-5:
                best_loss, best_state, best_epoch, since = vl, copy.deepcopy(model.state_dict()), epoch, 0
            else:
                since += 1
                if since >= cfg.patience:
                    break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return model, best_epoch


def train(
    x: NDArray[Any],
    y: NDArray[np.int64],
    class_ids: list[str],
    cfg: TrainConfig | None = None,
) -> TrainResult:
    """Train a classifier on rows `x` (vectors [n, d] or uint8 patches [n, 3, h, w]) with integer
    labels `y` indexing `class_ids`."""
    cfg = cfg or TrainConfig()
    y = np.asarray(y, dtype=np.int64)
    check_labels(x, y, class_ids)
    torch.manual_seed(cfg.seed)
    dev = device()
    n_classes = len(class_ids)
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32) if cfg.model_kind == "linear" else np.asarray(x))
    yt = torch.as_tensor(y)
    tr, va = stratified_split(y, cfg.val_fraction, cfg.seed)
    dim = int(xt.shape[1]) if cfg.model_kind == "linear" else 0

    def fresh() -> nn.Module:
        m = build(cfg.model_kind, n_classes, dim=dim, dropout=cfg.dropout, width=cfg.width)
        return m.to(dev)

    model = fresh()
    if isinstance(model, LinearHead):
        model.set_standardization(xt[tr])
    weights = _class_weights(y[tr], n_classes, cfg.balance)
    model, epochs = _fit(model, xt[tr], yt[tr], weights, cfg, cfg.max_epochs, xt[va], yt[va])
    if va.size:
        with torch.no_grad():
            pred = model(xt[va].to(dev)).argmax(dim=1).cpu().numpy()
        scores = per_class_scores(y[va], pred, class_ids)
    else:
        scores = per_class_scores(y[:0], y[:0], class_ids)
    refit = cfg.refit and va.size > 0 and cfg.model_kind == "linear" and y.size < cfg.refit_below
    if refit:
        model = fresh()
        assert isinstance(model, LinearHead)
        model.set_standardization(xt)
        model, _ = _fit(model, xt, yt, _class_weights(y, n_classes, cfg.balance), cfg, epochs)
    metrics: dict[str, Any] = {
        **{cid: v for cid, v in scores["per_class"].items()},
        "macro_f1": scores["macro_f1"],
        "accuracy": scores["accuracy"],
        "n_train": int(y.size if refit else tr.size),
        "n_val": int(va.size),
        "epochs": int(epochs),
    }
    meta = {
        "model_kind": cfg.model_kind,
        "class_ids": list(class_ids),
        "dim": dim,
        "dropout": cfg.dropout,
        "width": cfg.width,
    }
    return TrainResult(model=model.cpu(), metrics=metrics, meta=meta)
