"""Embed job: per-superpixel features of one slide, stored as Zarr on S3 beside the slide.

    python -m gpu_jobs.embed --project P --slide S [--kind handcrafted|patch|foundation]
        [--weights /path/or/s3://.../uni.safetensors] [--patch-size 64] [--tile 2048]

handcrafted: HED/Lab colour, texture, shape and context vectors (no weights needed).
patch: masked uint8 patches [n, 3, s, s] for the small CNN.
foundation: CLS vectors of a timm-layout ViT (UNI-style) on context crops; the weights come
from --weights or HISTOLABEL_FOUNDATION_WEIGHTS (local path or s3:// URI), never downloaded.
Emits FeaturesCompleted {slide_id, kind, uri, dim}.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from gpu_jobs.common import JobError, parser, progress_bar, record, record_failure, run
from gpu_jobs.windows import SlideWindows
from histolabel.composition import service_from_env
from histolabel.config import get_settings, settings_from_env
from histolabel.confinement import OutsideProject, require_in_project

KINDS = ("handcrafted", "patch", "foundation")


def _label_level(image: Any, labels0: Any) -> int:
    """The image level whose size matches the superpixel labels' full resolution."""
    want = tuple(labels0.shape[-2:])
    for key in sorted((k for k in image.array_keys() if k.isdigit()), key=int):
        if tuple(image[key].shape[-2:]) == want:
            return int(key)
    raise JobError(f"no image level matches the superpixel labels' size {want}")


def load_foundation(weights: str) -> Any:
    from histolabel.learning import vit

    if weights.startswith("s3://"):
        from histolabel.adapters import artifacts

        name = weights.rsplit("/", 1)[-1]
        side = None
        for cand in (weights.rsplit(".", 1)[0] + ".json", weights.rsplit("/", 1)[0] + "/config.json"):
            if artifacts.exists(cand):
                side = artifacts.read_bytes(cand).decode()
                break
        return vit.load_bytes(artifacts.read_bytes(weights), name, side)
    return vit.load_local(weights)


def embed_slide(
    project_id: str,
    slide_id: str,
    kind: str,
    *,
    weights: str | None = None,
    patch_size: int = 64,
    context: float = 2.0,
    tile: int = 2048,
    progress: str = "auto",
    workers: int | None = None,
) -> dict[str, Any]:
    """Compute and store one kind of features; returns the FeaturesCompleted data."""
    from histolabel.adapters import artifacts, pyramids
    from histolabel.cpus import available_cpus
    from histolabel.learning import embedding, features

    if kind not in KINDS:
        raise JobError(f"unknown feature kind {kind!r}; expected one of {', '.join(KINDS)}")
    if patch_size < 8 or patch_size > 512:
        raise JobError("--patch-size must be between 8 and 512")
    if tile < 256:
        raise JobError("--tile must be at least 256")
    model: Any = None
    if kind == "foundation":
        weights = weights or settings_from_env().foundation_weights
        if not weights:
            raise JobError("foundation features need --weights or HISTOLABEL_FOUNDATION_WEIGHTS")
        try:
            model = load_foundation(weights)
        except (OSError, ValueError, KeyError) as exc:
            raise JobError(f"cannot load foundation weights {weights}: {exc}") from exc
    state = service_from_env().require_project(project_id)
    slide = state.slides.get(slide_id)
    if slide is None:
        raise JobError(f"slide {slide_id!r} is not registered in {project_id}")
    if slide.ingest is None or slide.segmentation is None:
        raise JobError(f"slide {slide_id!r} must be ingested and segmented first")
    seg = slide.segmentation
    try:  # the state names what the project's jobs wrote; never read another project's object
        for uri in (slide.ingest["zarr_uri"], seg["labels_uri"], seg["table_uri"]):
            require_in_project(uri, project_id, get_settings())
    except OutsideProject as exc:
        raise JobError(exc.detail) from exc
    count = int(seg["count"])
    if count == 0:
        raise JobError(f"slide {slide_id!r} has no superpixels")
    image = pyramids.open_group(slide.ingest["zarr_uri"], "r")
    labels_arr: Any = pyramids.open_group(seg["labels_uri"], "r")["0"]
    level = _label_level(image, labels_arr)
    shape = (int(labels_arr.shape[-2]), int(labels_arr.shape[-1]))
    windows = SlideWindows(slide.ingest["zarr_uri"], level, seg["labels_uri"])
    rgb, lab = windows.rgb, windows.labels

    if kind == "handcrafted":
        smallest: Any = image[max((k for k in image.array_keys() if k.isdigit()), key=int)]
        low = np.moveaxis(np.asarray(smallest[...]), 0, -1)[..., :3]
        th = features.otsu(features.pixel_channels(low)[0])
        with progress_bar(shape[0] * shape[1], "embed handcrafted", progress) as update:
            values = embedding.handcrafted_slide(
                rgb, lab, shape, count, h_threshold=th, tile=tile, progress=update,
                workers=workers or available_cpus(),
            )  # fmt: skip
        uri = artifacts.features_uri(project_id, slide_id, kind)
        artifacts.write_features(uri, values, {"kind": kind, "slide_id": slide_id, "count": count})
        return {"slide_id": slide_id, "kind": kind, "uri": uri, "dim": int(np.prod(values.shape[1:]))}
    else:
        table = pyramids.read_table(seg["table_uri"])
        factor = 2 ** int(table.column("level")[0].as_py()) if table.num_rows else 1
        bboxes = np.zeros((count, 4), np.int64)
        ids = table.column("id").to_numpy().astype(np.int64)
        cols = [table.column(c).to_numpy() for c in ("y0", "x0", "y1", "x1")]
        box = np.stack(cols, axis=1).astype(np.int64)
        box[:, :2] //= factor
        box[:, 2:] = -(-box[:, 2:] // factor)  # end-exclusive ends round up at the labels' level
        bboxes[ids - 1] = box
        # Rows stream to S3 a chunk at a time: a million 64 px patches would be 12 GiB at once.
        uri = artifacts.features_uri(project_id, slide_id, kind)
        writer = artifacts.FeatureWriter(uri, count, embedding.present(bboxes))
        with progress_bar(count, f"embed {kind}", progress, unit="sp") as update:
            if kind == "patch":
                embedding.patches_slide(
                    rgb, lab, shape, bboxes, size=patch_size, tile=tile, progress=update, sink=writer.put
                )
                empty: tuple[tuple[int, ...], Any] = ((3, patch_size, patch_size), np.uint8)
            else:
                from histolabel.learning import vit

                embedding.patches_slide(
                    rgb, None, shape, bboxes, size=model.cfg.img_size, scale=context, tile=tile,
                    embed=lambda crops: vit.embed(model, crops), progress=update, sink=writer.put,
                )  # fmt: skip
                empty = ((int(model.cfg.embed_dim),), np.float32)
        row = writer.close({"kind": kind, "slide_id": slide_id, "count": count}, empty)
        return {"slide_id": slide_id, "kind": kind, "uri": uri, "dim": int(np.prod(row))}


def main(argv: Sequence[str] | None = None) -> int:
    p = parser("embed", "Per-superpixel features of a segmented slide.")
    p.add_argument("--kind", choices=KINDS, help="default: the project's feature kind")
    p.add_argument("--weights", help="foundation-model weights: local path or s3:// URI")
    p.add_argument("--patch-size", type=int, default=64, help="masked patch side (default 64)")
    p.add_argument("--context", type=float, default=2.0, help="foundation crop side / bbox side")
    p.add_argument("--tile", type=int, default=2048)
    p.add_argument("--workers", type=int, help="processes for handcrafted features (default: the job's CPUs)")
    args = p.parse_args(argv)
    if not args.slide:
        p.error("--slide is required")
    kind = args.kind
    try:
        if kind is None:
            kind = service_from_env().require_project(args.project).settings.feature_kind
        data = embed_slide(
            args.project, args.slide, kind, weights=args.weights, patch_size=args.patch_size,
            context=args.context, tile=args.tile, progress=args.progress, workers=args.workers,
        )  # fmt: skip
    except JobError as exc:
        if not args.no_events:
            record_failure(args.project, "embed", args.slide, str(exc))
        raise
    if not args.no_events:
        record(args.project, "FeaturesCompleted", data, "embed")
    print(f"{data['kind']} features of {args.slide}: dim {data['dim']} at {data['uri']}")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
