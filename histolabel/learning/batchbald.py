"""BatchBALD (Kirsch et al., 2019): greedy acquisition of a batch maximizing the mutual
information between the batch's joint labels and the model weights, from MC-dropout samples.

The joint distribution of the chosen labels is a mixture of k product distributions (one per
MC sample). Its configurations are enumerated exactly while they fit in `max_configs`, and
sampled from the mixture afterwards (importance-weighted, seeded, so reruns agree). Candidates
are pre-filtered by BALD, so pools of millions cost one vectorized pass plus a small greedy loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray

from histolabel.learning.certainty import bald
from histolabel.learning.models import threads_for

_EPS = 1e-12


@dataclass(frozen=True)
class Acquisition:
    indices: NDArray[np.int64]  # into the pool, in acquisition order
    scores: NDArray[np.float64]  # BatchBALD value of the batch after each pick (nats)


def joint_entropy_exact(mc_probs: NDArray[np.floating], idx: list[int] | NDArray[np.int64]) -> float:
    """H(y_idx) by enumerating every configuration (brute force; small pools only)."""
    mc = np.asarray(mc_probs, dtype=np.float64)
    k = mc.shape[0]
    sel = mc[:, list(idx), :]  # [k, n, c]
    joint = np.ones((k, 1))
    for i in range(sel.shape[1]):
        joint = (joint[:, :, None] * sel[:, i, None, :]).reshape(k, -1)
    p = joint.mean(axis=0)
    return float(-(p * np.log(np.maximum(p, _EPS))).sum())


def conditional_entropy(mc_probs: NDArray[np.floating]) -> NDArray[np.float64]:
    """E_w H(y_i | w) per pool item."""
    mc = np.asarray(mc_probs, dtype=np.float64)
    return -(mc * np.log(np.maximum(mc, _EPS))).sum(axis=2).mean(axis=0)


def select(
    mc_probs: NDArray[np.floating],
    batch_size: int,
    *,
    prefilter: int | None = 2000,
    max_configs: int = 2048,
    seed: int = 0,
    exclude: NDArray[np.bool_] | None = None,
    dtype: torch.dtype = torch.float32,
) -> Acquisition:
    """Greedy BatchBALD batch of `batch_size` pool indices from MC samples [k, n, classes]."""
    mc_all = np.asarray(mc_probs)
    if mc_all.ndim != 3:
        raise ValueError(f"MC probabilities must be [samples, n, classes], got shape {mc_all.shape}")
    k, n, c = mc_all.shape
    pool = np.arange(n)
    if exclude is not None:
        pool = pool[~np.asarray(exclude, dtype=bool)]
    batch_size = min(batch_size, pool.size)
    if batch_size <= 0:
        return Acquisition(np.empty(0, np.int64), np.empty(0))
    if prefilter is not None and pool.size > max(prefilter, batch_size):
        b = bald(mc_all[:, pool, :])
        keep = np.argpartition(-b, prefilter - 1)[:prefilter]
        pool = np.sort(pool[keep])
    # Each greedy step touches [configs x candidates x classes] values.
    with torch.no_grad(), threads_for(max_configs * pool.size * c):
        probs64 = np.ascontiguousarray(mc_all[:, pool, :], dtype=np.float64)
        probs = torch.from_numpy(probs64).to(dtype)  # [k, m, c]
        m = probs.shape[1]
        cond = torch.from_numpy(conditional_entropy(probs64)).to(dtype)  # [m]
        flat = probs.reshape(k, m * c)
        gen = np.random.default_rng(seed)
        # configs: P(config | w_j) for the chosen labels so far, [n_configs, k]; weights = 1/q for
        # sampled configs (q = mixture probability), 1 for enumerated ones.
        configs = torch.ones(1, k, dtype=dtype)
        sampled = False
        chosen: list[int] = []
        scores: list[float] = []
        cond_sum = 0.0
        available = torch.ones(m, dtype=torch.bool)
        for _ in range(batch_size):
            joint = (configs @ flat).reshape(-1, m, c) / k  # [n_configs, m, c] joint probs
            plogp = joint * torch.log(joint.clamp_min(_EPS))
            if sampled:
                q = configs.mean(dim=1)  # [n_configs]
                h = -(plogp / q[:, None, None]).sum(dim=2).mean(dim=0)
            else:
                h = -plogp.sum(dim=(0, 2))
            gain = h - cond - cond_sum
            gain[~available] = -torch.inf
            best = int(torch.argmax(gain))
            chosen.append(best)
            scores.append(float(gain[best]))
            available[best] = False
            cond_sum += float(cond[best])
            pb = probs[:, best, :]  # [k, c]
            if not sampled and configs.shape[0] * c <= max_configs:
                configs = (configs[:, None, :] * pb.T[None, :, :]).reshape(-1, k)
            else:
                configs = _sample_configs(probs[:, chosen, :], max_configs, gen)
                sampled = True
    idx = pool[np.asarray(chosen, dtype=np.int64)]
    return Acquisition(idx.astype(np.int64), np.asarray(scores))


def _sample_configs(sel: torch.Tensor, n_samples: int, gen: np.random.Generator) -> torch.Tensor:
    """Draw label configurations of the chosen items from the MC mixture; return P(config|w_j)."""
    k, n, c = sel.shape
    which = gen.integers(0, k, size=n_samples)
    cum = sel.cumsum(dim=2).numpy()  # [k, n, c]
    u = gen.random((n_samples, n))
    labels = (u[:, :, None] > cum[which][:, :, :]).sum(axis=2).clip(0, c - 1)  # [s, n]
    # P(config | w_j) = prod_i sel[j, i, label_i]
    logp = torch.log(sel.clamp_min(_EPS))  # [k, n, c]
    lab = torch.from_numpy(labels)
    gathered = logp[:, torch.arange(n)[None, :].expand(n_samples, n), lab]  # [k, s, n]
    return torch.exp(gathered.sum(dim=2)).T.contiguous()  # [s, k]
