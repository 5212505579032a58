"""Train job: a classifier from the project's labels, saved to S3 with a new version.

    python -m gpu_jobs.train --project P --request R [--no-predict] [--max-epochs N]

Labels come from the label projection (merges resolved, excluded and deleted categories left
out); features from FeaturesCompleted (settings.feature_kind for the linear head, masked
patches for the CNN); trained by the loop's rule (histolabel.learning.training.fit_labels).
Emits TrainingCompleted with per-class metrics (k-fold below the hold-out size; `heldout`,
`heldout_n` and `few_heldout` say where they come from), or TrainingFailed with the reason
(one category, no labels, missing features): the previous model then stays the current one.
On success it predicts every superpixel (gpu_jobs.predict).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from gpu_jobs.common import Timings, exit_now, parser, record, run
from histolabel.composition import service_from_env


class TrainingRefused(ValueError):
    pass


def feature_kind_for(settings: Any) -> str:
    if settings.model_kind == "cnn":
        return "patch"
    if settings.feature_kind == "patch":
        raise TrainingRefused(
            "the linear head needs vector features (handcrafted or foundation), not patches"
        )
    return str(settings.feature_kind)


def assemble(
    labels: dict[str, dict[int, str]], feature_uris: dict[str, str], class_ids: list[str], kind: str
) -> tuple[np.ndarray, np.ndarray]:
    """Rows and class indices for every labeled superpixel of every slide."""
    from histolabel.adapters import artifacts
    from histolabel.learning.features import standardize_with, stats_and_rows
    from histolabel.learning.training import TrainingError

    missing = sorted(s for s in labels if s not in feature_uris)
    if missing:
        raise TrainingError(
            f"{kind} features are missing for slide(s) {', '.join(missing)}; run the embed job"
        )
    index = {c: i for i, c in enumerate(class_ids)}
    xs, ys = [], []
    for slide_id in sorted(labels):
        # In id order: the model depends on the label set, not on the order labels came in
        # (row order decides which dropout draws a row gets), so a replay of the same labels
        # (`histolabel simulate` of a real project) trains the same model.
        ids = np.fromiter(sorted(labels[slide_id]), np.int64)
        array = artifacts.open_features(feature_uris[slide_id])
        bad = ids[(ids < 1) | (ids > array.shape[0])]
        if bad.size:
            raise TrainingError(
                f"labels on slide {slide_id} name superpixels beyond its features ({bad[:3].tolist()})"
            )
        # Only the labeled rows: a slide's patches or 1024-d vectors need not fit in memory. For
        # vectors they come out of the one pass, a chunk at a time, that the slide's statistics
        # read (each slide's features read once); patches read only the chunks that hold them.
        if kind == "patch":
            rows = artifacts.feature_rows(array, ids - 1)
        else:
            mean, scale, rows = stats_and_rows(array, ids - 1)
            rows = standardize_with(rows, mean, scale)
        xs.append(rows)
        ys.append(np.array([index[labels[slide_id][int(i)]] for i in ids], np.int64))
    if not xs:
        raise TrainingError("no labeled superpixels to train on")
    return np.concatenate(xs), np.concatenate(ys)


def train_project(
    project_id: str,
    request_id: str,
    *,
    max_epochs: int | None = None,
    seed: int = 0,
    timings: Timings | None = None,
) -> dict[str, Any]:
    """Train and save; returns TrainingCompleted data. Raises TrainingError with the reason."""
    from histolabel.adapters import artifacts
    from histolabel.learning import models, training

    timings = timings or Timings()
    timings.lap("imports")
    svc = service_from_env()
    state = svc.require_project(project_id)
    if request_id not in state.training:
        raise TrainingRefused(f"training request {request_id!r} does not exist in {project_id}")
    class_ids = [c.id for c in state.trainable_categories()]
    if len(class_ids) < 2:
        raise training.TrainingError(
            f"training needs at least 2 trainable categories, the project has {len(class_ids)}"
        )
    try:
        kind = feature_kind_for(state.settings)
    except TrainingRefused as exc:
        raise training.TrainingError(str(exc)) from None
    labels = svc.training_labels(project_id)
    total = sum(len(v) for v in labels.values())
    if total == 0:
        raise training.TrainingError("no labeled superpixels in trainable categories")
    uris = {s: info.features[kind]["uri"] for s, info in state.slides.items() if kind in info.features}
    timings.lap("labels")
    x, y = assemble(labels, uris, class_ids, kind)
    timings.lap("features")
    if max_epochs is None:
        result = training.fit_labels(x, y, class_ids, state.settings.model_kind, seed=seed)
    else:  # an operator's cap on the loop's rule (histolabel.learning.training.config_for)
        cfg = training.config_for(state.settings.model_kind, seed=seed, max_epochs=max_epochs)
        result = training.train(x, y, class_ids, cfg)
    timings.lap("fit")
    version = max((int(m["model_version"]) for m in state.models), default=0) + 1
    while artifacts.exists(f"{artifacts.model_prefix(project_id, version)}/meta.json"):
        version += 1  # a concurrent run took it; never overwrite a published model
    meta = {
        **result.meta,
        "feature_kind": kind,
        "version": version,
        "request_id": request_id,
        "metrics": result.metrics,
        "label_count": total,
        "per_slide_standardized": kind != "patch",
    }
    uri = artifacts.write_model(project_id, version, models.to_bytes(result.model), meta)
    timings.lap("save")
    return {
        "request_id": request_id,
        "model_version": version,
        "model_uri": uri,
        "metrics": result.metrics,
        "label_count": total,
    }


def main(argv: Sequence[str] | None = None) -> int:
    timings = Timings()
    from histolabel.learning.training import TrainingError

    p = parser("train", "Train the project's classifier from its labels.")
    p.add_argument("--request", required=True, help="the TrainingRequested request id")
    p.add_argument("--max-epochs", type=int, help="cap on epochs (default: the loop's rule by label count)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-predict", action="store_true", help="do not predict after training")
    args = p.parse_args(argv)
    if args.max_epochs is not None and args.max_epochs < 1:
        p.error("--max-epochs must be at least 1")
    try:
        data = train_project(
            args.project, args.request, max_epochs=args.max_epochs, seed=args.seed, timings=timings
        )
    except TrainingError as exc:
        if not args.no_events:
            record(
                args.project,
                "TrainingFailed",
                {"request_id": args.request, "reason": str(exc)[:2000]},
                "train",
            )
        print(f"training failed: {exc}", file=sys.stderr)
        return 1
    if not args.no_events:
        record(args.project, "TrainingCompleted", data, "train")
        timings.lap("record")
    m = data["metrics"]
    f1 = "n/a" if m["macro_f1"] is None else f"{m['macro_f1']:.3f}"
    few = " (too few to trust)" if m["few_heldout"] else ""
    print(
        f"model v{data['model_version']}: macro F1 {f1} on {m['heldout_n']} {m['heldout']}{few},"
        f" {data['model_uri']}",
        flush=True,
    )
    if args.no_predict:
        print(timings.line(), flush=True)
        return 0
    from gpu_jobs.predict import main as predict_main

    # In this process: the modules, the service and its cached project state are already here
    # (a second job would import torch and read the project again before it could rank).
    return predict_main(
        ["--project", args.project, "--version", str(data["model_version"]), "--progress", args.progress]
        + (["--no-events"] if args.no_events else []),
        timings=timings,
    )


if __name__ == "__main__":
    exit_now(run(main))
