"""Predict job: class probabilities and the project's certainty for every superpixel of every
slide, from the current (or a given) model version.

    python -m gpu_jobs.predict --project P [--version V] [--samples 12] [--batchbald-batches 8]

Writes predictions/{version}/{slide}.parquet (id, prob_<category>..., certainty, batch,
batch_rank) and emits PredictionsPublished. Certainty is the project's metric (confidence,
margin, negative entropy, or -BALD); for BatchBALD the first batches are acquired greedily
across all slides together, and the queue keeps each batch together.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from gpu_jobs.common import JobError, parser, progress_bar, record, record_failure, run

IN_MEMORY_BYTES = 512 << 20  # feature arrays up to this size are read whole


def predict_project(
    project_id: str,
    version: int | None = None,
    *,
    samples: int = 12,
    bb_batches: int = 8,
    bb_size: int = 32,
    progress: str = "auto",
) -> dict[str, Any]:
    from histolabel.adapters import artifacts
    from histolabel.learning import batchbald, certainty, models
    from histolabel.learning.features import Standardized, column_stats
    from histolabel.service import HistoLabel

    svc = HistoLabel.from_env()
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
    slides = sorted(s for s, info in state.slides.items() if kind in info.features)
    if not slides:
        raise JobError(f"no slide of {project_id} has {kind} features; run the embed job")
    mc_all: dict[str, np.ndarray] = {}
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
            mc_all[slide_id] = models.predict_mc(model, x, samples=samples, batch_size=batch, seed=version)
            update(1)
    batch_of: dict[str, np.ndarray] = {s: np.full(mc.shape[1], -1, np.int32) for s, mc in mc_all.items()}
    rank_of: dict[str, np.ndarray] = {s: np.zeros(mc.shape[1], np.int32) for s, mc in mc_all.items()}
    if metric == "batchbald" and samples > 1:
        # BALD per slide, then only the top candidates across all slides are gathered for the
        # greedy joint-entropy acquisition: millions of superpixels never form one MC array.
        keep = max(2000, 4 * bb_batches * bb_size)
        cand_slide, cand_row, cand_bald = [], [], []
        for si, slide_id in enumerate(slides):
            b_slide = certainty.bald(mc_all[slide_id])
            # Labeled superpixels (any category) never enter a batch: the queue leaves them out.
            done = np.fromiter(svc.slide_labels_fresh(project_id, slide_id).current(), np.int64)
            b_slide[done[(done >= 1) & (done <= b_slide.size)] - 1] = -np.inf
            rows = np.argsort(-b_slide, kind="stable")[:keep]
            rows = rows[np.isfinite(b_slide[rows])]
            cand_slide.append(np.full(rows.size, si))
            cand_row.append(rows)
            cand_bald.append(b_slide[rows])
        order = np.argsort(-np.concatenate(cand_bald), kind="stable")[:keep]
        c_slide, c_row = np.concatenate(cand_slide)[order], np.concatenate(cand_row)[order]
        pool = np.stack([mc_all[slides[si]][:, r] for si, r in zip(c_slide, c_row, strict=True)], axis=1)
        taken = np.zeros(pool.shape[1], bool)
        for b in range(bb_batches):
            acq = batchbald.select(pool, bb_size, exclude=taken, prefilter=None, seed=version * 1000 + b)
            if acq.indices.size == 0:
                break
            taken[acq.indices] = True
            for r, i in enumerate(acq.indices.tolist()):
                batch_of[slides[c_slide[i]]][c_row[i]] = b
                rank_of[slides[c_slide[i]]][c_row[i]] = r
    uri_prefix = artifacts.predictions_prefix(project_id, version)
    for slide_id in slides:
        mc = mc_all[slide_id]
        mean = mc.mean(axis=0)
        cols: dict[str, Any] = {"id": np.arange(1, mc.shape[1] + 1, dtype=np.int64)}
        for i, cid in enumerate(class_ids):
            cols[f"prob_{cid}"] = mean[:, i]
        cols["certainty"] = certainty.certainty(metric, mc)
        cols["batch"] = batch_of[slide_id]
        cols["batch_rank"] = rank_of[slide_id]
        artifacts.write_predictions(f"{uri_prefix}/{slide_id}.parquet", pa.table(cols))
    return {"model_version": version, "uri_prefix": uri_prefix, "slides": slides, "metric": metric}


def main(argv: Sequence[str] | None = None) -> int:
    p = parser("predict", "Predict every superpixel of the project with a trained model.")
    p.add_argument("--version", type=int, help="model version (default: the current model)")
    p.add_argument("--samples", type=int, default=12, help="MC-dropout samples (default 12)")
    p.add_argument("--batchbald-batches", type=int, default=8, help="BatchBALD batches to acquire")
    p.add_argument("--batchbald-size", type=int, default=32)
    args = p.parse_args(argv)
    if args.samples < 1 or args.batchbald_batches < 0 or args.batchbald_size < 1:
        p.error("--samples and --batchbald-size must be at least 1, --batchbald-batches at least 0")
    try:
        data = predict_project(
            args.project, args.version, samples=args.samples, bb_batches=args.batchbald_batches,
            bb_size=args.batchbald_size, progress=args.progress,
        )  # fmt: skip
    except JobError as exc:
        if not args.no_events:
            record_failure(args.project, "predict", None, str(exc))
        raise
    if not args.no_events:
        record(args.project, "PredictionsPublished", data, "predict")
    print(
        f"predictions of model v{data['model_version']} ({data['metric']}) for {len(data['slides'])} slide(s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
