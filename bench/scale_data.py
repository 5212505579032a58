"""Scale generator: a consortium project of N slides x M superpixels, written into the local
cloud (or any AWS endpoint the environment names) in the product's own shapes.

- Superpixels: a real SLIC segmentation of a crop of the shared CMU-1 slide (the segment job's
  TableBuilder makes its table), tiled side by side until a slide has M superpixels; each slide's
  `superpixels.parquet` is written by the segment job's writer (`pyramids.write_table`). With
  `--label-pyramids K` the first K slides also get the tiled label image as the NGFF label
  pyramid the segment job publishes (`publish_label_pyramid`), which the export job reads.
- Project stream: ProjectCreated, categories, members, then per slide SlideRegistered,
  SlideIngested and SegmentationCompleted, through the service as the API and jobs append them.
- Labels: `--labeled` of each slide's superpixels, in clusters of neighbouring ids (annotators
  label regions, not scattered cells), a tenth of the clusters labeled again by a second
  annotator and a twentieth approved by a reviewer; appended through LabelSuperpixels /
  ReviewLabels decisions (one transaction per batch of events), then projected by the product's
  own `projections rebuild`.
- Predictions: per slide the predict job's table (id, prob_<category>, certainty, batch,
  batch_rank) and the merged project ranking the queue serves, then PredictionsPublished.

    python bench/scale_data.py [--quick] [--slides 5] [--superpixels 10000] [--labeled 0.02]

Prints how long each part took and `name: value` lines.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from histolabel.composition import service_from_env

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "functions")]

SOURCE = ROOT.parent / "shared" / "data" / "slides" / "CMU-1-Small-Region.svs"
BASE_SIDE = 512  # px of the real crop every slide is tiled from
BASE_SUPERPIXELS = 1000  # SLIC's n_segments on it: ~16 px superpixels
CATEGORIES = (("tumor", "#d62728", 0.5), ("stroma", "#2ca02c", 0.35), ("background", "#7f7f7f", 0.15))
EVENTS_PER_APPEND = 24  # label events per transaction (DynamoDB allows 100 items, MACs aside)


@dataclass(frozen=True)
class Base:
    """One real segmented crop: its label image and its superpixel table's columns."""

    labels: np.ndarray  # uint32 (BASE_SIDE, BASE_SIDE), ids 1..count
    count: int
    columns: dict[str, np.ndarray]  # the segment job's table, as numpy columns


@cache
def base_tile() -> Base:
    """SLIC on a real H&E crop, relabeled dense 1..n; the table from the segment job's builder."""
    import tifffile
    from skimage.segmentation import slic

    from histolabel.segmentation.table import TableBuilder

    with tifffile.TiffFile(SOURCE) as tif:
        rgb = tif.pages[0].asarray()
    y0, x0 = (rgb.shape[0] - BASE_SIDE) // 2, (rgb.shape[1] - BASE_SIDE) // 2
    crop = rgb[y0 : y0 + BASE_SIDE, x0 : x0 + BASE_SIDE, :3]
    raw = slic(crop, n_segments=BASE_SUPERPIXELS, compactness=10, start_label=1)
    _, dense = np.unique(raw, return_inverse=True)
    labels = (dense.reshape(raw.shape) + 1).astype(np.uint32)
    count = int(labels.max())
    builder = TableBuilder(count, 0)
    builder.add(labels, 0, 0)
    table = builder.table()
    return Base(labels, count, {c: table.column(c).to_numpy() for c in table.column_names})


def tiles_for(superpixels: int) -> tuple[int, int]:
    """(tiles, columns of tiles) for a slide of `superpixels` tiled from the base crop."""
    n = -(-superpixels // base_tile().count)
    return n, max(1, int(np.ceil(np.sqrt(n))))


def slide_table(superpixels: int) -> Any:
    """The superpixel table of a slide of `superpixels` ids: the base table tiled on a grid, ids
    offset by the tile's place, cut at `superpixels` (level-0 px, the segment job's columns)."""
    import pyarrow as pa

    base = base_tile()
    n_tiles, cols = tiles_for(superpixels)
    t = np.repeat(np.arange(n_tiles), base.count)[:superpixels]
    dy, dx = (t // cols) * BASE_SIDE, (t % cols) * BASE_SIDE
    k = np.tile(np.arange(base.count), n_tiles)[:superpixels]
    c = base.columns
    return pa.table(
        {
            "id": pa.array(np.arange(1, superpixels + 1), pa.uint32()),
            "y0": c["y0"][k] + dy,
            "x0": c["x0"][k] + dx,
            "y1": c["y1"][k] + dy,
            "x1": c["x1"][k] + dx,
            "cy": c["cy"][k] + dy,
            "cx": c["cx"][k] + dx,
            "area": c["area"][k],
            "level": pa.array(np.zeros(superpixels, np.uint8), pa.uint8()),
        }
    )


def slide_shape(superpixels: int) -> tuple[int, int]:
    n_tiles, cols = tiles_for(superpixels)
    return -(-n_tiles // cols) * BASE_SIDE, cols * BASE_SIDE


def label_block(superpixels: int, y: int, x: int, h: int, w: int) -> np.ndarray:
    """The tiled label image's window (y, x, h, w): the base crop repeated, ids offset per tile,
    0 past the last superpixel."""
    base = base_tile()
    _, cols = tiles_for(superpixels)
    yy, xx = np.arange(y, y + h), np.arange(x, x + w)
    tile = (yy // BASE_SIDE)[:, None] * cols + (xx // BASE_SIDE)[None, :]
    ids = base.labels[(yy % BASE_SIDE)[:, None], (xx % BASE_SIDE)[None, :]].astype(np.int64)
    ids = ids + tile * base.count
    ids[ids > superpixels] = 0
    return ids.astype(np.uint32)


def write_label_pyramid(image_uri: str, superpixels: int) -> str:
    """The tiled label image as the segment job publishes it (labels/superpixels beside the
    image, level 0 written a shard at a time, downsampled, attributes last). Returns its URI."""
    from histolabel.adapters import pyramids
    from histolabel.segmentation.output import create_label_pyramid, publish_label_pyramid
    from histolabel.segmentation.table import TableBuilder

    h, w = slide_shape(superpixels)
    image = pyramids.open_group(image_uri, "w")
    group = create_label_pyramid(image, h, w)
    level0: Any = group["0"]
    step = 2048
    builder = TableBuilder(superpixels, 0)
    for y in range(0, h, step):
        for x in range(0, w, step):
            block = label_block(superpixels, y, x, min(step, h - y), min(step, w - x))
            level0[0, y : y + block.shape[0], x : x + block.shape[1]] = block
            builder.add(block, y, x)
    publish_label_pyramid(image, h, w, builder, None, {"source": "scale-generator"})
    return f"{image_uri.rstrip('/')}/labels/superpixels"


def label_clusters(
    rng: np.random.Generator, superpixels: int, share: float
) -> Iterator[tuple[np.ndarray, int]]:
    """(ids, category index) per cluster of neighbouring superpixels until `share` of the slide
    is labeled: the ids cut into runs of consecutive SLIC ids (raster neighbours) of log-normal
    sizes around 40, runs taken in random order, the category drawn per cluster."""
    want = round(share * superpixels)
    sizes = np.clip(rng.lognormal(np.log(40), 0.6, superpixels // 4 + 1), 4, 400).astype(np.int64)
    ends = np.cumsum(sizes)
    ends = np.append(ends[ends < superpixels], superpixels)
    starts = np.concatenate([[0], ends[:-1]])
    weights = np.array([w for *_, w in CATEGORIES])
    done = 0
    for k in rng.permutation(len(ends)):
        if done >= want:
            return
        ids = np.arange(starts[k], min(ends[k], starts[k] + want - done)) + 1
        done += len(ids)
        yield ids, int(rng.choice(len(CATEGORIES), p=weights / weights.sum()))


def slide_predictions(rng: np.random.Generator, superpixels: int, categories: list[str]) -> Any:
    """The predict job's table for one slide: Dirichlet probabilities, confidence certainty."""
    import pyarrow as pa

    probs = rng.dirichlet(np.full(len(categories), 0.6), superpixels).astype(np.float32)
    cols: dict[str, Any] = {"id": np.arange(1, superpixels + 1, dtype=np.int64)}
    for i, cid in enumerate(categories):
        cols[f"prob_{cid}"] = probs[:, i]
    cols["certainty"] = probs.max(axis=1)
    cols["batch"] = np.full(superpixels, -1, np.int32)
    cols["batch_rank"] = np.zeros(superpixels, np.int32)
    return pa.table(cols)


@dataclass
class ScaleProject:
    project_id: str
    slides: list[str]
    superpixels: int
    annotators: list[str]
    reviewer: str
    owner: str = "owner"
    labels: int = 0
    events: int = 0
    timings: dict[str, float] = field(default_factory=dict)


def generate(
    svc: Any,
    slides: int,
    superpixels: int,
    *,
    labeled: float = 0.02,
    annotators: int = 8,
    predictions: bool = True,
    label_pyramids: int = 0,
    seed: int = 0,
    project_id: str | None = None,
    files: bool = True,
) -> ScaleProject:
    """Write the project into the stores `svc` talks to (its settings name the data bucket);
    without `files` only events and projections (for a service on in-memory stores)."""
    from histolabel.adapters import pyramids
    from histolabel.audit.rebuild import rebuild
    from histolabel.commands import (
        AddCategory,
        AddMember,
        CreateProject,
        LabelSuperpixels,
        RegisterSlide,
        ReviewLabels,
    )
    from histolabel.events.catalogue import Actor

    rng = np.random.default_rng(seed)
    pid = project_id or f"scale{uuid.uuid4().hex[:8]}"
    owner = Actor(user="owner", site="hq")
    people = [f"annotator{n:03d}" for n in range(annotators)]
    out = ScaleProject(pid, [f"s{n:04d}" for n in range(slides)], superpixels, people, "reviewer")
    t0 = time.perf_counter()
    base_tile()
    out.timings["base_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    svc.execute(CreateProject(project_id=pid, name=f"scale {slides}x{superpixels}"), owner)
    for name, color, _w in CATEGORIES:
        svc.execute(AddCategory(project_id=pid, name=name, color=color), owner)
    state = svc.project_state(pid)
    by_name = {c.name: c.id for c in state.categories.values()}
    cats = [by_name[name] for name, *_ in CATEGORIES]
    for n, user in enumerate(people):
        svc.execute(AddMember(project_id=pid, user=user, role="annotator", site=f"site{n % 5}"), owner)
    svc.execute(AddMember(project_id=pid, user=out.reviewer, role="reviewer", site="hq"), owner)
    bucket = svc.settings.data_bucket
    table = slide_table(superpixels) if files else None
    h, w = slide_shape(superpixels)
    for n, sid in enumerate(out.slides):
        prefix = f"s3://{bucket}/projects/{pid}/slides/{sid}"
        svc.execute(
            RegisterSlide(
                project_id=pid, slide_id=sid, name=f"{sid}.svs", source_uri=f"{prefix}/source/{sid}.svs"
            ),
            owner,
        )
        image_uri = f"{prefix}/image.ome.zarr"
        svc.record_job_event(
            pid, "SlideIngested",
            {"slide_id": sid, "zarr_uri": image_uri, "width": w, "height": h, "levels": 1}, job="ingest",
        )  # fmt: skip
        table_uri = f"{prefix}/superpixels.parquet"
        if files:
            pyramids.write_table(table, table_uri)
        labels_uri = (
            write_label_pyramid(image_uri, superpixels)
            if n < label_pyramids
            else f"{image_uri}/labels/superpixels"
        )
        seg = {"slide_id": sid, "count": superpixels, "labels_uri": labels_uri, "table_uri": table_uri,
               "superpixel_size": 16.0, "compactness": 10.0, "tile_size": 2048}  # fmt: skip
        svc.record_job_event(pid, "SegmentationCompleted", seg, job="segment")
    out.timings["slides_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    state = svc.project_state(pid)
    site = {u: m.site for u, m in state.members.items()}
    for sid in out.slides:
        pending: dict[str, list[Any]] = {}
        for ids, k in label_clusters(rng, superpixels, labeled):
            who = people[int(rng.integers(len(people)))]
            pending.setdefault(who, []).append(
                LabelSuperpixels(project_id=pid, slide_id=sid, ids=ids.tolist(), category_id=cats[k])
            )
            out.labels += len(ids)
            if rng.random() < 0.1:  # a second opinion, sometimes a different one
                other = people[int(rng.integers(len(people)))]
                k2 = k if rng.random() < 0.8 else int(rng.integers(len(cats)))
                pending.setdefault(other, []).append(
                    LabelSuperpixels(project_id=pid, slide_id=sid, ids=ids.tolist(), category_id=cats[k2])
                )
            if rng.random() < 0.05:
                pending.setdefault(out.reviewer, []).append(
                    ReviewLabels(project_id=pid, slide_id=sid, ids=ids.tolist(), action="approve")
                )
        # Reviews after every label of the slide, as a reviewer comes after the annotators.
        order = sorted(pending, key=lambda u: u == out.reviewer)
        for user in order:
            commands = pending[user]
            actor = Actor(user=user, site=site[user])
            for start in range(0, len(commands), EVENTS_PER_APPEND):
                batch = commands[start : start + EVENTS_PER_APPEND]

                def decide(s: Any, batch: list[Any] = batch, user: str = user) -> list[Any]:
                    return [e for c in batch for e in c.decide(s, user, site[user])]

                out.events += len(svc.append_decided(pid, decide, actor, None).events)
    out.timings["label_events_s"] = time.perf_counter() - t0

    if predictions:
        t0 = time.perf_counter()
        publish_predictions(svc, out, seed)
        out.timings["predictions_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    rebuild(svc, pid, write=True)  # the projections, as `histolabel projections rebuild` writes them
    out.timings["projections_s"] = time.perf_counter() - t0
    return out


def publish_predictions(svc: Any, made: ScaleProject, seed: int = 0, version: int = 1) -> None:
    """Model `version` as a training run records it (requested, started, completed), then its
    predictions of every slide as the predict job writes them (per-slide tables and the merged
    ranking, through the job's own publish_ranking) and PredictionsPublished."""
    from gpu_jobs.predict import publish_ranking
    from histolabel.adapters import artifacts
    from histolabel.api.ranking import ranking_table
    from histolabel.api.tables import Predictions
    from histolabel.events.catalogue import Actor

    rng = np.random.default_rng(seed + 1000 * version)
    svc.request_training(made.project_id, Actor(user=made.owner, site="hq"))
    state = svc.project_state(made.project_id)
    request = next(r for r, run in state.training.items() if run.status == "requested")
    model_uri = f"{artifacts.model_prefix(made.project_id, version)}/model.safetensors"
    svc.record_job_event(
        made.project_id, "TrainingStarted", {"request_id": request, "job_id": "scale"}, "train"
    )
    done = {"request_id": request, "model_version": version, "model_uri": model_uri, "metrics": {}}
    svc.record_job_event(made.project_id, "TrainingCompleted", done, "train")
    cats = [c.id for c in state.categories.values()]
    uri_prefix = artifacts.predictions_prefix(made.project_id, version)
    preds = {}
    for sid in made.slides:
        table = slide_predictions(rng, made.superpixels, cats)
        artifacts.write_predictions(f"{uri_prefix}/{sid}.parquet", table)
        preds[sid] = Predictions.from_arrow(table)
    publish_ranking(made.project_id, state, uri_prefix, ranking_table(preds, {}))
    data = {"model_version": version, "uri_prefix": uri_prefix, "slides": made.slides, "metric": "confidence"}
    svc.record_job_event(made.project_id, "PredictionsPublished", data, job="predict")


@contextmanager
def local_cloud(stage: str = "scale") -> Iterator[Any]:
    """A moto server provisioned like `histolabel local up`, and a service on it."""
    from histolabel.adapters.provision import provision
    from histolabel.config import Settings, get_settings, settings_from_env
    from histolabel.localcloud.stack import local_environment, start_server

    server = start_server(log_path=Path(tempfile.mkdtemp()) / "moto.log")
    saved = dict(os.environ)
    try:
        os.environ.update(local_environment(server.endpoint, Settings(stage=stage)))
        get_settings.cache_clear()
        settings = settings_from_env()
        provision(settings)
        yield service_from_env(settings)
    finally:
        server.stop()
        os.environ.clear()
        os.environ.update(saved)
        get_settings.cache_clear()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2 slides x 5000 superpixels")
    ap.add_argument("--slides", type=int, default=5)
    ap.add_argument("--superpixels", type=int, default=10_000)
    ap.add_argument("--labeled", type=float, default=0.02, help="share of each slide labeled")
    ap.add_argument("--label-pyramids", type=int, default=0, help="slides that get a label pyramid")
    args = ap.parse_args(argv)
    if args.quick:
        args.slides, args.superpixels = 2, 5000
    if args.slides < 1 or args.superpixels < 1 or not 0 <= args.labeled <= 1:
        print("error: --slides and --superpixels must be positive, --labeled within 0..1", file=sys.stderr)
        return 2
    with local_cloud() as svc:
        t0 = time.perf_counter()
        made = generate(svc, args.slides, args.superpixels, labeled=args.labeled,
                        label_pyramids=args.label_pyramids)  # fmt: skip
        wall = time.perf_counter() - t0
    for name, value in made.timings.items():
        print(f"{name}: {value:.2f}")
    print(f"slides: {len(made.slides)}")
    print(f"superpixels_per_slide: {made.superpixels}")
    print(f"labels: {made.labels}")
    print(f"label_events: {made.events}")
    print(f"generate_s: {wall:.2f}")
    print(f"superpixels_per_s: {len(made.slides) * made.superpixels / wall:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
