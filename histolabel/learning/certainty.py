"""Certainty metrics over class probabilities. Every metric returns a *certainty*: the queue
serves the lowest values first, so a superpixel the model knows least about comes first."""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import NDArray

Metric = Literal["confidence", "margin", "entropy", "batchbald"]
METRICS: tuple[Metric, ...] = ("confidence", "margin", "entropy", "batchbald")
_EPS = 1e-12


def _as_probs(probs: NDArray[np.floating]) -> NDArray[np.floating]:
    p = np.asarray(probs)
    if p.ndim != 2 or p.shape[1] < 2:
        raise ValueError(f"probabilities must be [n, classes>=2], got shape {p.shape}")
    return p


def confidence(probs: NDArray[np.floating]) -> NDArray[np.float32]:
    """The probability of the most likely class."""
    return _as_probs(probs).max(axis=1).astype(np.float32)


def margin(probs: NDArray[np.floating]) -> NDArray[np.float32]:
    """Top-1 minus top-2 probability."""
    p = _as_probs(probs)
    if p.shape[1] == 2:
        return np.abs(p[:, 0] - p[:, 1]).astype(np.float32)
    top2 = np.partition(p, p.shape[1] - 2, axis=1)[:, -2:]
    return (top2[:, 1] - top2[:, 0]).astype(np.float32)


def entropy(probs: NDArray[np.floating]) -> NDArray[np.float32]:
    """Shannon entropy in nats (uncertainty, not certainty)."""
    p = _as_probs(probs).astype(np.float32, copy=False)
    return -(p * np.log(np.maximum(p, _EPS))).sum(axis=1)


def negative_entropy(probs: NDArray[np.floating]) -> NDArray[np.float32]:
    return -entropy(probs)


def bald(mc_probs: NDArray[np.floating]) -> NDArray[np.float32]:
    """Mutual information between label and weights, from MC-dropout samples [k, n, classes]:
    H(mean_k p) - mean_k H(p_k)."""
    mc = np.asarray(mc_probs, dtype=np.float32)
    if mc.ndim != 3:
        raise ValueError(f"MC probabilities must be [samples, n, classes], got shape {mc.shape}")
    mean_entropy = -(mc * np.log(np.maximum(mc, _EPS))).sum(axis=2).mean(axis=0)
    return np.maximum(entropy(mc.mean(axis=0)) - mean_entropy, 0.0)


def certainty(metric: Metric, mc_probs: NDArray[np.floating]) -> NDArray[np.float32]:
    """Per-superpixel certainty for `metric` from MC samples [k, n, classes] (k may be 1).
    For BatchBALD the per-item value is -BALD; batches come from `batchbald.select`."""
    mc = np.asarray(mc_probs)
    if mc.ndim == 2:
        mc = mc[None]
    if metric == "batchbald":
        return -bald(mc)
    mean = mc.mean(axis=0)
    if metric == "confidence":
        return confidence(mean)
    if metric == "margin":
        return margin(mean)
    if metric == "entropy":
        return negative_entropy(mean)
    raise ValueError(f"unknown certainty metric {metric!r}; expected one of {', '.join(METRICS)}")


def least_certain(values: NDArray[np.floating], k: int | None = None) -> NDArray[np.int64]:
    """Indices ordered from least to most certain; ties broken by index, so the order is
    stable for the same input. With `k`, only the first k (partition, then sort k)."""
    v = np.asarray(values)
    n = v.shape[0]
    if k is None or k >= n:
        return np.argsort(v, kind="stable").astype(np.int64)
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    part = np.argpartition(v, k - 1)[:k]
    # Ties at the cut: take every item equal to the k-th value, then keep the lowest indices.
    kth = v[part].max()
    cand = np.flatnonzero(v <= kth)
    order = np.lexsort((cand, v[cand]))
    return cand[order[:k]].astype(np.int64)
