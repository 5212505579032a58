"""The two classifiers: a linear head on feature vectors and a small CNN on masked patches.
Both keep dropout active at prediction time when asked (MC dropout), which is what BatchBALD
samples from. Saved as safetensors (weights) plus a JSON dict (architecture and class ids)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import numpy as np
import torch
from numpy.typing import NDArray
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

ModelKind = Literal["linear", "cnn"]
FORMAT = "histolabel-model/1"


class Dropout(nn.Dropout):
    """Inverted dropout from a uniform draw: torch's CPU dropout (bernoulli_) is ~4x slower than
    rand_like, and the linear head's training is mostly dropout."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.p >= 1.0:
            return torch.zeros_like(x)
        return x * (torch.rand_like(x) >= self.p) * (1.0 / (1.0 - self.p))


class LinearHead(nn.Module):
    """Standardize, drop out inputs, one linear layer."""

    mean: torch.Tensor
    scale: torch.Tensor

    def __init__(self, dim: int, n_classes: int, dropout: float = 0.25) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("scale", torch.ones(dim))
        self.dropout = Dropout(dropout)
        self.fc = nn.Linear(dim, n_classes)

    def set_standardization(self, x: torch.Tensor) -> None:
        self.mean.copy_(x.mean(dim=0))
        self.scale.copy_(x.std(dim=0).clamp_min(1e-6) if x.shape[0] > 1 else torch.ones_like(self.scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout((x - self.mean) / self.scale))


class SmallCNN(nn.Module):
    """Four conv blocks, global average pooling, dropout, linear; input uint8-range RGB patches."""

    def __init__(self, n_classes: int, width: int = 32, dropout: float = 0.5) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        ch_in = 3
        for ch in (width, width * 2, width * 4, width * 4):
            layers += [nn.Conv2d(ch_in, ch, 3, padding=1, bias=False), nn.BatchNorm2d(ch), nn.ReLU(True)]
            layers.append(nn.MaxPool2d(2))
            ch_in = ch
        self.features = nn.Sequential(*layers)
        self.dropout = Dropout(dropout)
        self.fc = nn.Linear(ch_in, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x.float() / 127.5 - 1.0).mean(dim=(2, 3))
        return self.fc(self.dropout(h))


def build(
    kind: ModelKind, n_classes: int, *, dim: int = 0, dropout: float | None = None, width: int = 32
) -> nn.Module:
    if n_classes < 2:
        raise ValueError(f"a classifier needs at least 2 classes, got {n_classes}")
    if kind == "linear":
        if dim <= 0:
            raise ValueError("a linear head needs the feature dimension")
        return LinearHead(dim, n_classes, 0.25 if dropout is None else dropout)
    if kind == "cnn":
        return SmallCNN(n_classes, width, 0.5 if dropout is None else dropout)
    raise ValueError(f"unknown model kind {kind!r}; expected linear or cnn")


@contextmanager
def threads_for(work: int) -> Iterator[None]:
    """One intra-op thread unless the tensors are large: on a busy machine torch's thread pool
    spins on small ops (measured on 2 loaded cores: a 29-d linear head 60x and a small CNN on
    32x32 patches 20x slower with 2 threads than with 1)."""
    before = torch.get_num_threads()
    if work < 64_000_000:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _mc_mode(model: nn.Module, on: bool) -> None:
    model.eval()
    if on:
        for m in model.modules():
            if isinstance(m, nn.Dropout):
                m.train()


def predict_mc(
    model: nn.Module,
    x: NDArray[Any] | torch.Tensor | Any,
    *,
    samples: int = 12,
    batch_size: int = 262144,
    seed: int = 0,
) -> NDArray[np.float32]:
    """Class probabilities [samples, n, classes]; samples=1 gives the deterministic prediction.
    Dropout masks are seeded, so the same model on the same input gives the same samples.
    `x` may also be any sliceable array (a Zarr array of patches): then only one batch of it is
    in memory at a time."""
    dev = next(model.parameters()).device
    lazy = not isinstance(x, np.ndarray | torch.Tensor)
    xt: Any = x if lazy else torch.as_tensor(x)
    n = int(xt.shape[0])
    out = None
    # Samples ride in one batch (the input repeated), so a chunk holds batch_size rows in all.
    batch_size = max(1, batch_size // max(samples, 1))
    work = int(np.prod(xt.shape)) * samples * (64 if len(xt.shape) > 2 else 1)
    with (
        torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []),
        torch.no_grad(),
        threads_for(work),
    ):
        torch.manual_seed(seed)
        _mc_mode(model, samples > 1)
        for start in range(0, n, batch_size):
            part = xt[start : start + batch_size]
            xb = (torch.as_tensor(np.asarray(part)) if lazy else part).to(dev)
            if samples > 1:
                logits = model(xb.repeat(samples, *([1] * (xb.ndim - 1))))
                probs = torch.softmax(logits.float(), dim=1).reshape(samples, xb.shape[0], -1)
            else:
                probs = torch.softmax(model(xb).float(), dim=1)[None]
            if out is None:
                out = np.empty((probs.shape[0], n, probs.shape[2]), np.float32)
            out[:, start : start + xb.shape[0]] = probs.cpu().numpy()
    model.eval()
    if out is None:
        return np.empty((max(samples, 1), 0, 0), np.float32)
    return out


def to_bytes(model: nn.Module) -> bytes:
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    return st_save(state, metadata={"format": FORMAT})


def from_bytes(data: bytes, meta: dict[str, Any]) -> nn.Module:
    """Rebuild a model from its safetensors bytes and the JSON metadata saved next to it."""
    try:
        kind = meta["model_kind"]
        classes = meta["class_ids"]
    except KeyError as exc:
        raise ValueError(f"model metadata lacks {exc.args[0]!r}") from None
    model = build(
        kind,
        len(classes),
        dim=int(meta.get("dim", 0)),
        dropout=meta.get("dropout"),
        width=int(meta.get("width", 32)),
    )
    model.load_state_dict(st_load(data))
    model.eval()
    return model
