"""Shared set-up of the learning job tests: a project whose slide is a real MoNuSeg crop,
written to S3 as if ingested and segmented."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import zarr

from histolabel.commands import AddCategory, CreateProject, LabelSuperpixels, RegisterSlide
from histolabel.events.catalogue import Actor, ProjectSettings
from histolabel.segmentation.table import TableBuilder

OWNER = Actor(user="olivia", site="nyc")
SIZE = 320


def write_slide(svc, project_id: str, slide_id: str, rgb: np.ndarray, labels: np.ndarray) -> None:
    from histolabel.adapters import artifacts
    from histolabel.adapters.s3 import zarr_store

    base = f"{artifacts.project_prefix(project_id)}/slides/{slide_id}"
    image = zarr.open_group(store=zarr_store(f"{base}/image.ome.zarr", mode="w"), mode="w")
    image.create_array("0", data=np.moveaxis(rgb, -1, 0), chunks=(3, 128, 128))
    image.create_array("1", data=np.moveaxis(rgb[::2, ::2], -1, 0), chunks=(3, 128, 128))
    image.create_group("labels")
    lab = zarr.open_group(store=zarr_store(f"{base}/image.ome.zarr/labels/superpixels", mode="w"), mode="w")
    lab.create_array("0", data=labels[None], chunks=(1, 128, 128))
    n = int(labels.max())
    builder = TableBuilder(n, level=0)  # the segment job's own table: every column it writes
    builder.add(labels, 0, 0)
    sink = pa.BufferOutputStream()
    pq.write_table(builder.table(), sink)
    artifacts.write_bytes(f"{base}/superpixels.parquet", sink.getvalue().to_pybytes())
    h, w = labels.shape
    register_segmented(svc, project_id, slide_id, f"{base}/source/x.tif", (h, w, 2), n)


def register_segmented(
    svc, project_id: str, slide_id: str, source_uri: str, size: tuple[int, int, int], count: int
) -> None:
    """Register the slide and record it ingested (`size`: height, width, levels) and segmented
    into `count` superpixels, at the artifact paths the jobs write."""
    from histolabel.adapters import artifacts

    base = f"{artifacts.project_prefix(project_id)}/slides/{slide_id}"
    h, w, levels = size
    zarr_uri = f"{base}/image.ome.zarr"
    svc.execute(
        RegisterSlide(project_id=project_id, slide_id=slide_id, name=slide_id, source_uri=source_uri), OWNER
    )
    svc.record_job_event(
        project_id, "SlideIngested",
        {"slide_id": slide_id, "zarr_uri": zarr_uri, "width": w, "height": h, "levels": levels},
        job="ingest",
    )  # fmt: skip
    svc.record_job_event(
        project_id, "SegmentationCompleted",
        {"slide_id": slide_id, "count": count, "labels_uri": f"{zarr_uri}/labels/superpixels",
         "table_uri": f"{base}/superpixels.parquet", "superpixel_size": 20, "compactness": 10},
        job="segment",
    )  # fmt: skip


def make_project(
    svc,
    project_id: str,
    crop,
    metric: str = "margin",
    categories=("stroma", "nucleus"),
    model_kind: str = "linear",
) -> None:
    settings = ProjectSettings(certainty_metric=metric, feature_kind="handcrafted", model_kind=model_kind)
    svc.execute(CreateProject(project_id=project_id, name="learn", settings=settings), OWNER)
    for name in categories:
        svc.execute(AddCategory(project_id=project_id, name=name, category_id=name), OWNER)
    write_slide(svc, project_id, "s1", crop[0], crop[1])


def label(svc, project_id: str, truth: np.ndarray, per_class: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for c, name in enumerate(("stroma", "nucleus")):
        ids = rng.permutation(np.flatnonzero(truth == c) + 1)[:per_class]
        svc.execute(
            LabelSuperpixels(project_id=project_id, slide_id="s1", ids=ids.tolist(), category_id=name), OWNER
        )


def request(svc, project_id: str) -> str:
    svc.request_training(project_id, OWNER)
    state = svc.project_state(project_id)
    return next(r.request_id for r in state.training.values() if r.status == "requested")


class ArrayWindows:
    """Window readers of an in-memory image and labels that pickle (for pooled embedding)."""

    def __init__(self, rgb: np.ndarray, labels: np.ndarray) -> None:
        self.image, self.labels_array = rgb, labels

    def rgb(self, y0: int, x0: int, y1: int, x1: int) -> np.ndarray:
        return np.ascontiguousarray(self.image[y0:y1, x0:x1])

    def labels(self, y0: int, x0: int, y1: int, x1: int) -> np.ndarray:
        return self.labels_array[y0:y1, x0:x1]
