"""The guided-labeling order across all slides of a project: BatchBALD batches first (each
kept together, in acquisition order), then every other superpixel from least to most certain.
Labeled and skipped superpixels are left out. Ties break by slide id, then superpixel id, so the
order is the same whenever the inputs are."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from histolabel.learning.certainty import least_certain


@dataclass(frozen=True)
class SlideScores:
    slide_id: str
    certainty: NDArray[np.float32]  # row i = superpixel id i+1
    batch: NDArray[np.int32] | None = None  # BatchBALD batch number, -1 when in none
    batch_rank: NDArray[np.int32] | None = None  # position inside its batch


@dataclass(frozen=True)
class QueueItem:
    slide_id: str
    superpixel_id: int
    certainty: float
    batch: int  # -1 when not part of a BatchBALD batch


def guided_order(
    slides: Sequence[SlideScores],
    labeled: Mapping[str, Collection[int]],
    *,
    skip: Mapping[str, Collection[int]] | None = None,
    limit: int | None = None,
) -> list[QueueItem]:
    ordered = sorted(slides, key=lambda s: s.slide_id)
    if not ordered:
        return []
    sizes = [s.certainty.shape[0] for s in ordered]
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    cert = np.concatenate([np.asarray(s.certainty, np.float32) for s in ordered])
    batch = np.concatenate(
        [
            np.full(n, -1, np.int64) if s.batch is None else np.asarray(s.batch, np.int64)
            for s, n in zip(ordered, sizes, strict=True)
        ]
    )
    rank = np.concatenate(
        [
            np.zeros(n, np.int64) if s.batch_rank is None else np.asarray(s.batch_rank, np.int64)
            for s, n in zip(ordered, sizes, strict=True)
        ]
    )
    out_mask = np.zeros(cert.size, bool)
    for i, s in enumerate(ordered):
        for source in (labeled, skip or {}):
            ids = np.fromiter(source.get(s.slide_id, ()), np.int64)
            ids = ids[(ids >= 1) & (ids <= sizes[i])]
            out_mask[offsets[i] + ids - 1] = True
    out_mask |= ~np.isfinite(cert)
    in_batch = np.flatnonzero((batch >= 0) & ~out_mask)
    first = in_batch[np.lexsort((in_batch, rank[in_batch], batch[in_batch]))]
    rest_cert = np.where(out_mask | (batch >= 0), np.inf, cert)
    n_rest = int((rest_cert < np.inf).sum())
    want = n_rest if limit is None else max(min(limit - first.size, n_rest), 0)
    rest = least_certain(rest_cert, want)[:want]
    idx = np.concatenate([first, rest])
    if limit is not None:
        idx = idx[:limit]
    slide_of = np.searchsorted(offsets, idx, side="right") - 1
    return [
        QueueItem(ordered[si].slide_id, int(i - offsets[si] + 1), float(cert[i]), int(batch[i]))
        for i, si in zip(idx.tolist(), slide_of.tolist(), strict=True)
    ]
