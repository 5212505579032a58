"""Training: class-balanced cross-entropy with weight decay, chosen by label count
(`config_for`, from histolabel.learning.defaults):

- below `holdout_from` labels: every label trains for a fixed epoch budget; the metrics come
  from k-fold cross-validation (each label scored by a model that did not see it);
- from `holdout_from` on: early stopping on a stratified held-out split (at most `max_val`
  items), then (for the linear head, below `refit_below`) a refit on every label for the chosen
  number of epochs. An optimiser-step budget keeps 10^5 labels fast.

Metrics say where they come from (`heldout`, `heldout_n`) and flag `few_heldout` when fewer
items than the defaults' `few_heldout` scored them."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from histolabel.learning import defaults
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
    # Below this many labels: no split, `fixed_epochs` on every label, k-fold metrics.
    holdout_from: int = 0
    fixed_epochs: int = 150
    cv_folds: int = 5
    max_val: int = 5000
    max_steps: int = 0  # 0: no step budget


def config_for(
    model_kind: ModelKind = "linear", *, seed: int = 0, max_epochs: int | None = None
) -> TrainConfig:
    """The product's training configuration (train job and simulation alike)."""
    d = defaults.TRAINING
    if model_kind == "cnn":
        cfg = TrainConfig(
            model_kind="cnn", max_epochs=300, lr=d.cnn_lr, batch_size=d.cnn_batch, patience=d.cnn_patience,
            fixed_epochs=d.cnn_epochs, cv_folds=0,  # k CNNs per retrain cost too much on CPU
            weight_decay=d.weight_decay, holdout_from=d.holdout_from, max_val=d.max_val,
            max_steps=d.max_steps, seed=seed,
        )  # fmt: skip
    else:
        cfg = TrainConfig(
            model_kind="linear", lr=d.linear_lr, weight_decay=d.weight_decay, fixed_epochs=d.linear_epochs,
            cv_folds=d.cv_folds, holdout_from=d.holdout_from, max_val=d.max_val, max_steps=d.max_steps,
            seed=seed,
        )  # fmt: skip
    if max_epochs is not None:
        cfg = replace(cfg, max_epochs=max_epochs, fixed_epochs=min(cfg.fixed_epochs, max_epochs))
    return cfg


def fit_labels(
    x: NDArray[Any],
    y: NDArray[np.int64],
    class_ids: list[str],
    model_kind: ModelKind = "linear",
    *,
    seed: int = 0,
) -> TrainResult:
    """The one training call of the loop: the train job and `histolabel simulate` both train here."""
    return train(x, y, class_ids, config_for(model_kind, seed=seed))


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
    dim = int(xt.shape[1]) if cfg.model_kind == "linear" else 0

    def fresh(rows: torch.Tensor) -> nn.Module:
        m = build(cfg.model_kind, n_classes, dim=dim, dropout=cfg.dropout, width=cfg.width).to(dev)
        if isinstance(m, LinearHead):
            m.set_standardization(rows)
        return m

    def fit_all(
        rows: NDArray[np.int64], epochs: int, val: NDArray[np.int64] | None = None
    ) -> tuple[nn.Module, int]:
        w = _class_weights(y[rows], n_classes, cfg.balance)
        xv, yv = (xt[val], yt[val]) if val is not None else (None, None)
        return _fit(fresh(xt[rows]), xt[rows], yt[rows], w, cfg, epochs, xv, yv)

    everything = np.arange(y.size)
    if y.size < cfg.holdout_from:
        # Too few labels to spare a validation set: train on all for the fixed budget, score by
        # k-fold cross-validation.
        epochs = min(cfg.fixed_epochs, cfg.max_epochs)
        folds = _folds(y, cfg.cv_folds, cfg.seed)
        if cfg.model_kind == "linear" and y.size <= cfg.batch_size:
            # The final model and the k fold models trained as one stacked model: the same
            # full-batch steps (AdamW is elementwise), one pass of small ops instead of k + 1,
            # which on loaded cores was most of a retrain's training time.
            rows = [everything, *(tr for tr, _te in folds)]
            model, *fold_models = _fit_linear_together(xt, yt, rows, cfg, epochs, n_classes, dev)
        else:
            model, _ = fit_all(everything, epochs)
            fold_models = [fit_all(tr, epochs)[0] for tr, _te in folds]
        tests = [te for _tr, te in folds]
        truth, pred = _scored_folds(y, list(zip(fold_models, tests, strict=True)), xt, dev)
        source = "cross-validation" if truth.size else "none"
        n_train = int(y.size)
    else:
        fraction = min(cfg.val_fraction, cfg.max_val / y.size)
        tr, va = stratified_split(y, fraction, cfg.seed)
        max_epochs = cfg.max_epochs
        if cfg.max_steps:
            steps_per_epoch = -(-tr.size // cfg.batch_size)
            max_epochs = max(1, min(max_epochs, cfg.max_steps // steps_per_epoch))
        model, epochs = fit_all(tr, max_epochs, va)
        truth, pred = y[va], _predict(model, xt[va], dev)
        source = "held-out split" if va.size else "none"
        n_train = int(tr.size)
        if cfg.refit and va.size and cfg.model_kind == "linear" and y.size < cfg.refit_below:
            model, _ = fit_all(everything, epochs)
            n_train = int(y.size)
    scores = per_class_scores(truth, pred, class_ids)
    heldout_n = int(truth.size)
    metrics: dict[str, Any] = {
        **{cid: v for cid, v in scores["per_class"].items()},
        "macro_f1": scores["macro_f1"] if heldout_n else None,
        "accuracy": scores["accuracy"] if heldout_n else None,
        "n_train": n_train,
        "n_val": heldout_n,
        "heldout_n": heldout_n,
        "heldout": source,
        "few_heldout": heldout_n < defaults.TRAINING.few_heldout,
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


def _predict(model: nn.Module, x: torch.Tensor, dev: torch.device) -> NDArray[np.int64]:
    if x.shape[0] == 0:
        return np.empty(0, np.int64)
    model.eval()
    with torch.no_grad():
        return model(x.to(dev)).argmax(dim=1).cpu().numpy().astype(np.int64)


def _folds(y: NDArray[np.int64], folds: int, seed: int) -> list[tuple[NDArray[np.int64], NDArray[np.int64]]]:
    """(train rows, test rows) of stratified folds that can train (two classes in the train
    rows, a non-empty test); classes with fewer labels than folds spread over as many folds as
    they have labels."""
    if folds < 2:
        return []
    rng = np.random.default_rng(seed)
    fold = np.empty(y.size, np.int64)
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        fold[idx] = np.arange(idx.size) % folds
    out = []
    for f in range(folds):
        test = np.flatnonzero(fold == f)
        train_rows = np.flatnonzero(fold != f)
        if test.size and np.unique(y[train_rows]).size >= 2:
            out.append((train_rows, test))
    return out


def _scored_folds(
    y: NDArray[np.int64],
    fitted: list[tuple[nn.Module, NDArray[np.int64]]],
    xt: torch.Tensor,
    dev: torch.device,
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Every label predicted by a model trained without it."""
    pred = np.full(y.size, -1, np.int64)
    for model, test in fitted:
        pred[test] = _predict(model, xt[test], dev)
    scored = pred >= 0
    return y[scored], pred[scored]


class _AdamW:
    """torch.optim.AdamW's update (decoupled weight decay, bias-corrected moments, defaults
    betas 0.9/0.999, eps 1e-8), for the stacked linear heads. Not torch.optim itself: building
    any torch optimizer imports torch._dynamo and sympy (add_param_group is wrapped to disable
    dynamo), 820 modules and 10 s of a retrain on loaded cores, measured; the small-set path
    needs none of it. tests/learning/test_models.py pins it to torch's AdamW."""

    def __init__(self, params: list[torch.Tensor], lr: float, weight_decay: float) -> None:
        self.params, self.lr, self.wd = params, lr, weight_decay
        self.m = [torch.zeros_like(q) for q in params]
        self.v = [torch.zeros_like(q) for q in params]
        self.t = 0

    @torch.no_grad()
    def __call__(self, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8) -> None:
        self.t += 1
        c1, c2 = 1 - beta1**self.t, (1 - beta2**self.t) ** 0.5
        for q, m, v in zip(self.params, self.m, self.v, strict=True):
            assert q.grad is not None
            q.mul_(1 - self.lr * self.wd)
            m.lerp_(q.grad, 1 - beta1)
            v.mul_(beta2).addcmul_(q.grad, q.grad, value=1 - beta2)
            q.addcdiv_(m, (v.sqrt() / c2).add_(eps), value=-self.lr / c1)


def _fit_linear_together(
    xt: torch.Tensor,
    yt: torch.Tensor,
    row_sets: list[NDArray[np.int64]],
    cfg: TrainConfig,
    epochs: int,
    n_classes: int,
    dev: torch.device,
) -> list[nn.Module]:
    """Linear heads, one per row set, trained side by side as one stacked model for `epochs`
    full-batch steps: each head has the standardization, class weights, initialization,
    dropout rate and weighted cross-entropy it would have alone (`_fit` of `fresh(rows)`), and
    since the loss is a sum of the heads' own losses and AdamW is elementwise, each head's
    steps are its own."""
    k, (n, dim) = len(row_sets), xt.shape
    p = 0.25 if cfg.dropout is None else cfg.dropout
    x, y = xt.to(dev), yt.to(dev)
    member = torch.zeros(k, n, device=dev)
    mean, scale = torch.zeros(k, dim, device=dev), torch.ones(k, dim, device=dev)
    class_w = torch.zeros(k, n_classes, device=dev)
    heads = [LinearHead(dim, n_classes, p) for _ in row_sets]  # as build("linear", ...) makes them
    for i, (rows, head) in enumerate(zip(row_sets, heads, strict=True)):
        r = torch.as_tensor(rows)
        member[i, r.to(dev)] = 1.0
        head.set_standardization(xt[r])
        mean[i], scale[i] = head.mean.to(dev), head.scale.to(dev)
        class_w[i] = _class_weights(yt[r].numpy(), n_classes, cfg.balance).to(dev)
    weight = torch.stack([h.fc.weight.detach().t() for h in heads]).to(dev).requires_grad_()
    bias = torch.stack([h.fc.bias.detach() for h in heads]).to(dev).requires_grad_()
    sample_w = member * class_w[:, y]  # [k, n]: a row's class weight in the heads it trains
    denom = sample_w.sum(dim=1)
    z = (x[None] - mean[:, None]) / scale[:, None]  # [k, n, dim]
    step = _AdamW([weight, bias], lr=cfg.lr, weight_decay=cfg.weight_decay)
    with threads_for(k * n * dim):
        for _ in range(epochs):
            weight.grad = bias.grad = None
            dropped = z * (torch.rand_like(z) >= p) * (1.0 / (1.0 - p)) if p > 0 else z
            logits = torch.baddbmm(bias[:, None], dropped, weight)
            nll = -torch.log_softmax(logits, dim=2).gather(2, y[None, :, None].expand(k, n, 1))[..., 0]
            loss = ((sample_w * nll).sum(dim=1) / denom).sum()
            loss.backward()
            step()
    for i, head in enumerate(heads):
        with torch.no_grad():
            head.fc.weight.copy_(weight[i].detach().t().cpu())
            head.fc.bias.copy_(bias[i].detach().cpu())
        head.to(dev).eval()
    return list(heads)
