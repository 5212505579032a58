"""What a prediction round publishes for the queue: each slide's certainty under the project's
metric and, for BatchBALD, one greedy acquisition across all slides of the labels until the
next retrain. One greedy run means every pick is conditioned on every earlier pick; it is
numbered in display batches of `bb_publish_batch`, and the queue serves it in pick order
(batch, then rank).

`Acquisition` takes the slides one at a time (`add`: the slide's certainty, and its BALD
candidates merged into the pool kept across slides), then `picks` runs the joint BatchBALD on
that pool. Only the pool's MC columns outlive a slide (`bb_candidates` x samples x classes), so
the predict job holds one slide's MC array at a time however many slides the project has. The
predict job streams through it; the simulation calls it through `rank_slides`."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from histolabel.learning import batchbald, certainty, defaults
from histolabel.learning.queue import SlideScores


@dataclass(frozen=True)
class Pick:
    slide_id: str
    row: int  # superpixel id - 1
    batch: int
    batch_rank: int


class Acquisition:
    """One prediction round's acquisition, a slide at a time, slides in sorted id order (the
    order that breaks BALD ties, as the queue's order does)."""

    def __init__(self, metric: certainty.Metric, size: int, *, seed: int = 0) -> None:
        self.metric, self.size, self.seed = metric, size, seed
        self.slides: list[str] = []
        self._slide = np.empty(0, np.int64)  # index into self.slides
        self._row = np.empty(0, np.int64)
        self._bald = np.empty(0, np.float64)
        self._columns: NDArray[np.floating] | None = None  # [samples, pool, classes]
        self._joint: bool | None = None

    def add(self, slide_id: str, mc: NDArray[np.floating], labeled: Collection[int] = ()) -> SlideScores:
        """`mc`: the slide's MC-dropout probabilities [samples, n, classes] (row i = superpixel
        i+1); `labeled`: its ids already labeled (never acquired). Returns its certainty with no
        batch yet (`picks` gives those)."""
        if self.slides and slide_id <= self.slides[-1]:
            raise ValueError(f"slides must come in sorted order: {slide_id!r} after {self.slides[-1]!r}")
        if self._joint is None:  # every slide has the same number of samples
            self._joint = self.metric == "batchbald" and self.size > 0 and mc.shape[0] >= 2
        n = mc.shape[1]
        scores = SlideScores(
            slide_id, certainty.certainty(self.metric, mc), np.full(n, -1, np.int32), np.zeros(n, np.int32)
        )
        self.slides.append(slide_id)
        if not self._joint:
            return scores
        # BALD per slide; only the top candidates across all slides form the joint MC array, so
        # millions of superpixels never do. A stable sort of the pool so far followed by this
        # slide's candidates keeps the order one sort of every slide's candidates would give.
        cap = defaults.ACQUISITION.bb_candidates
        b = certainty.bald(mc)
        done = np.fromiter(labeled, np.int64)
        b[done[(done >= 1) & (done <= b.size)] - 1] = -np.inf
        rows = np.argsort(-b, kind="stable")[:cap]
        rows = rows[np.isfinite(b[rows])]
        bald = np.concatenate([self._bald, b[rows]])
        keep = np.argsort(-bald, kind="stable")[:cap]
        self._bald = bald[keep]
        self._slide = np.concatenate([self._slide, np.full(rows.size, len(self.slides) - 1)])[keep]
        self._row = np.concatenate([self._row, rows])[keep]
        cols = mc[:, rows]
        if self._columns is not None:
            cols = np.concatenate([self._columns, cols], axis=1)
        self._columns = cols[:, keep]
        return scores

    def picks(self) -> list[Pick]:
        """The joint BatchBALD over the pool, in pick order (empty unless the metric is
        batchbald, with a size, two or more samples and a candidate)."""
        if not self._joint or self._columns is None or self._row.size == 0:
            return []
        cfg = defaults.ACQUISITION
        acq = batchbald.select(
            self._columns, self.size, prefilter=None, max_configs=cfg.bb_configs, seed=self.seed
        )
        return [
            Pick(self.slides[int(self._slide[i])], int(self._row[i]), pick // cfg.bb_publish_batch,
                 pick % cfg.bb_publish_batch)
            for pick, i in enumerate(acq.indices.tolist())
        ]  # fmt: skip


def apply_picks(scores: Mapping[str, SlideScores], picks: list[Pick]) -> None:
    for p in picks:
        s = scores[p.slide_id]
        assert s.batch is not None and s.batch_rank is not None
        s.batch[p.row], s.batch_rank[p.row] = p.batch, p.batch_rank


def rank_slides(
    mc: Mapping[str, NDArray[np.floating]],
    labeled: Mapping[str, Collection[int]],
    metric: certainty.Metric,
    size: int,
    *,
    seed: int = 0,
) -> dict[str, SlideScores]:
    """Every slide at once through `Acquisition`. `mc[slide]`: MC-dropout probabilities
    [samples, n, classes] (row i = superpixel i+1); `labeled[slide]`: superpixel ids already
    labeled (never acquired); `size`: how many BatchBALD picks (defaults.acquisition_size of the
    project's retrain threshold)."""
    acq = Acquisition(metric, size, seed=seed)
    out = {s: acq.add(s, mc[s], labeled.get(s, ())) for s in sorted(mc)}
    apply_picks(out, acq.picks())
    return out
