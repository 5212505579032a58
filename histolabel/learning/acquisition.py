"""What a prediction round publishes for the queue: each slide's certainty under the project's
metric and, for BatchBALD, one greedy acquisition across all slides of the labels until the
next retrain. One greedy run means every pick is conditioned on every earlier pick; it is
numbered in display batches of `bb_publish_batch`, and the queue serves it in pick order
(batch, then rank). The predict job and the simulation both call `rank_slides`."""

from __future__ import annotations

from collections.abc import Collection, Mapping

import numpy as np
from numpy.typing import NDArray

from histolabel.learning import batchbald, certainty, defaults
from histolabel.learning.queue import SlideScores


def rank_slides(
    mc: Mapping[str, NDArray[np.floating]],
    labeled: Mapping[str, Collection[int]],
    metric: certainty.Metric,
    size: int,
    *,
    seed: int = 0,
) -> dict[str, SlideScores]:
    """`mc[slide]`: MC-dropout probabilities [samples, n, classes] (row i = superpixel i+1);
    `labeled[slide]`: superpixel ids already labeled (never acquired); `size`: how many
    BatchBALD picks (defaults.acquisition_size of the project's retrain threshold)."""
    cfg = defaults.ACQUISITION
    slides = sorted(mc)
    out = {
        s: SlideScores(
            s,
            certainty.certainty(metric, mc[s]),
            np.full(mc[s].shape[1], -1, np.int32),
            np.zeros(mc[s].shape[1], np.int32),
        )
        for s in slides
    }
    if metric != "batchbald" or size <= 0 or not slides or mc[slides[0]].shape[0] < 2:
        return out
    # BALD per slide; only the top candidates across all slides form the joint MC array, so
    # millions of superpixels never do.
    cand_slide, cand_row, cand_bald = [], [], []
    for si, s in enumerate(slides):
        b = certainty.bald(mc[s])
        done = np.fromiter(labeled.get(s, ()), np.int64)
        b[done[(done >= 1) & (done <= b.size)] - 1] = -np.inf
        rows = np.argsort(-b, kind="stable")[: cfg.bb_candidates]
        rows = rows[np.isfinite(b[rows])]
        cand_slide.append(np.full(rows.size, si))
        cand_row.append(rows)
        cand_bald.append(b[rows])
    order = np.argsort(-np.concatenate(cand_bald), kind="stable")[: cfg.bb_candidates]
    c_slide, c_row = np.concatenate(cand_slide)[order], np.concatenate(cand_row)[order]
    if c_slide.size == 0:
        return out
    pool = np.stack([mc[slides[si]][:, r] for si, r in zip(c_slide, c_row, strict=True)], axis=1)
    acq = batchbald.select(pool, size, prefilter=None, max_configs=cfg.bb_configs, seed=seed)
    for pick, i in enumerate(acq.indices.tolist()):
        scores = out[slides[c_slide[i]]]
        assert scores.batch is not None and scores.batch_rank is not None
        scores.batch[c_row[i]] = pick // cfg.bb_publish_batch
        scores.batch_rank[c_row[i]] = pick % cfg.bb_publish_batch
    return out
