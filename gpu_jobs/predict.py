"""Predict job: class probabilities and the project's certainty for every superpixel of every
slide, from the current (or a given) model version.

    python -m gpu_jobs.predict --project P [--version V] [--samples 12] [--acquire N]

Writes predictions/{version}/{slide}.parquet (id, prob_<category>..., certainty, batch,
batch_rank) and emits PredictionsPublished. Certainty is the project's metric (confidence,
margin, negative entropy, or -BALD); for BatchBALD one greedy acquisition across all slides
picks the labels until the next retrain (the project's retrain threshold), each pick
conditioned on the earlier ones (histolabel.learning.acquisition), and the queue serves them in
pick order.

Slides go one at a time: a slide's MC-dropout array lives while its table is written (with no
batches yet); what outlives it is the BatchBALD pool's columns and the rows that can reach the
merged ranking, both bounded whatever the slide count. After the joint acquisition only the
slides that received picks are written again. (Timings: `mc` is the per-slide pass with its
writes, `rank` the joint BatchBALD, `write` the picked slides and the ranking.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from gpu_jobs.common import JobError, Timings, exit_now, parser, progress_bar, record, record_failure, run
from histolabel.composition import service_from_env
from histolabel.config import get_settings
from histolabel.confinement import OutsideProject, require_in_project

if TYPE_CHECKING:
    from histolabel.api.tables import SuperpixelTable
    from histolabel.learning.acquisition import Pick
    from histolabel.learning.queue import SlideScores
    from histolabel.projections.state import ProjectState

IN_MEMORY_BYTES = 512 << 20  # feature arrays up to this size are read whole


def prediction_table(mean: np.ndarray, class_ids: list[str], scores: SlideScores) -> pa.Table:
    """One slide's published table: id, prob_<category>..., certainty, batch, batch_rank."""
    cols: dict[str, Any] = {"id": np.arange(1, mean.shape[0] + 1, dtype=np.int64)}
    for i, cid in enumerate(class_ids):
        cols[f"prob_{cid}"] = mean[:, i]
    cols["certainty"] = scores.certainty
    cols["batch"] = scores.batch
    cols["batch_rank"] = scores.batch_rank
    return pa.table(cols)


def with_picks(table: pa.Table, picks: Sequence[Pick]) -> pa.Table:
    """A slide's table with its BatchBALD picks' batch and batch_rank set (row = id - 1)."""
    batch = table.column("batch").to_numpy().copy()
    rank = table.column("batch_rank").to_numpy().copy()
    for p in picks:
        batch[p.row], rank[p.row] = p.batch, p.batch_rank
    table = table.set_column(table.column_names.index("batch"), "batch", pa.array(batch))
    return table.set_column(table.column_names.index("batch_rank"), "batch_rank", pa.array(rank))


def publish_ranking(project_id: str, state: ProjectState, uri_prefix: str, table: pa.Table) -> None:
    """The merged ranking the queue serves (histolabel/api/queue.py), beside the slides' tables:
    its first items across every slide with their geometry, so a queue request reads one small
    table, not every slide's."""
    from histolabel.adapters import artifacts
    from histolabel.api.ranking import RANKING_FILE, with_geometry

    ranked = with_geometry(table, lambda sid, ids: ranked_geometry(project_id, state, sid, ids))
    artifacts.write_predictions(f"{uri_prefix}/{RANKING_FILE}", ranked)


def ranked_geometry(project_id: str, state: ProjectState, slide_id: str, ids: list[int]) -> SuperpixelTable:
    """The rows of `ids` of a slide's superpixel table (only the row groups holding them); none
    where it cannot be read, as the API treats geometry: the queue then reads it itself."""
    from histolabel.adapters import pyramids
    from histolabel.api.tables import GEOMETRY, SuperpixelTable

    seg = state.slides[slide_id].segmentation or {}
    try:  # the state names what the project's jobs wrote; never read another project's object
        uri = require_in_project(seg.get("table_uri", ""), project_id, get_settings())
        return SuperpixelTable.from_arrow(pyramids.read_rows(uri, ids, list(GEOMETRY)))
    except (OutsideProject, OSError, ValueError):
        return SuperpixelTable.empty()


def predict_project(
    project_id: str,
    version: int | None = None,
    *,
    samples: int | None = None,
    acquire: int | None = None,
    progress: str = "auto",
    timings: Timings | None = None,
) -> dict[str, Any]:
    from histolabel.adapters import artifacts
    from histolabel.api.ranking import RankingBuilder
    from histolabel.api.tables import Predictions
    from histolabel.learning import acquisition, defaults, models
    from histolabel.learning.features import Standardized, column_stats

    timings = timings or Timings()
    timings.lap("imports")
    svc = service_from_env()
    state = svc.require_project(project_id)
    if version is None:
        if state.current_model is None:
            raise JobError(f"project {project_id} has no trained model yet")
        version = int(state.current_model["model_version"])
    prefix = artifacts.model_prefix(project_id, version)
    if not artifacts.exists(f"{prefix}/meta.json"):
        raise JobError(f"model version {version} of {project_id} is not on S3 ({prefix})")
    weights, meta = artifacts.read_model(prefix)
    model = models.from_bytes(weights, meta).to(models.device())
    kind, class_ids = meta["feature_kind"], list(meta["class_ids"])
    metric = state.settings.certainty_metric
    samples = defaults.ACQUISITION.mc_samples if samples is None else samples
    slides = sorted(s for s, info in state.slides.items() if kind in info.features)
    if not slides:
        raise JobError(f"no slide of {project_id} has {kind} features; run the embed job")
    timings.lap("model")
    size = defaults.acquisition_size(state.settings.retrain_threshold) if acquire is None else acquire
    # One slide at a time: its MC array lives only while its table is written; what outlives it
    # is bounded whatever the slide count (the BatchBALD pool and the ranking's candidates).
    acq = acquisition.Acquisition(metric, size, seed=version)
    ranking = RankingBuilder(reserve=size if metric == "batchbald" else 0)
    uri_prefix = artifacts.predictions_prefix(project_id, version)
    with progress_bar(len(slides), "predict", progress, unit="slide") as update:
        for slide_id in slides:
            # A large array is read a batch at a time by predict_mc (a slide of a million 1024-d
            # vectors is 4 GiB); a small one at once, which saves re-reading its chunks.
            x = artifacts.open_features(state.slides[slide_id].features[kind]["uri"])
            if x.nbytes <= IN_MEMORY_BYTES:
                x = np.asarray(x[...])
            if meta.get("per_slide_standardized"):
                x = Standardized(x, *column_stats(x))
            batch = 262144 if kind != "patch" else 4096
            mc = models.predict_mc(model, x, samples=samples, batch_size=batch, seed=version)
            del x
            # Labeled superpixels (any category) are never acquired: the queue leaves them out.
            labeled = (
                set(svc.slide_labels_fresh(project_id, slide_id).current())
                if metric == "batchbald"
                else set()
            )
            scores = acq.add(slide_id, mc, labeled)
            table = prediction_table(mc.mean(axis=0), class_ids, scores)
            del mc
            artifacts.write_predictions(f"{uri_prefix}/{slide_id}.parquet", table)
            ranking.add(slide_id, Predictions.from_arrow(table), labeled)
            update(1)
    timings.lap("mc")
    picks = acq.picks()
    timings.lap("rank")
    # The slides that received picks are written again with their batches.
    by_slide: dict[str, list[acquisition.Pick]] = {}
    for p in picks:
        by_slide.setdefault(p.slide_id, []).append(p)
    for slide_id, mine in by_slide.items():
        uri = f"{uri_prefix}/{slide_id}.parquet"
        table = with_picks(artifacts.read_predictions(uri), mine)
        artifacts.write_predictions(uri, table)
        ranking.add_picks(slide_id, Predictions.from_arrow(table))
    publish_ranking(project_id, state, uri_prefix, ranking.table())
    timings.lap("write")
    return {"model_version": version, "uri_prefix": uri_prefix, "slides": slides, "metric": metric}


def main(argv: Sequence[str] | None = None, timings: Timings | None = None) -> int:
    timings = timings or Timings()
    p = parser("predict", "Predict every superpixel of the project with a trained model.")
    p.add_argument("--version", type=int, help="model version (default: the current model)")
    p.add_argument("--samples", type=int, help="MC-dropout samples (default: the loop's, learning.defaults)")
    p.add_argument("--acquire", type=int, help="BatchBALD picks (default: the project's retrain threshold)")
    args = p.parse_args(argv)
    if (args.samples is not None and args.samples < 1) or (args.acquire is not None and args.acquire < 0):
        p.error("--samples must be at least 1 and --acquire at least 0")
    try:
        data = predict_project(
            args.project, args.version, samples=args.samples, acquire=args.acquire, progress=args.progress,
            timings=timings,
        )  # fmt: skip
    except JobError as exc:
        if not args.no_events:
            record_failure(args.project, "predict", None, str(exc))
        raise
    if not args.no_events:
        record(args.project, "PredictionsPublished", data, "predict")
        timings.lap("publish")
    print(
        f"predictions of model v{data['model_version']} ({data['metric']}) for {len(data['slides'])} slide(s)"
    )
    print(timings.line(), flush=True)
    return 0


if __name__ == "__main__":
    exit_now(run(main))
