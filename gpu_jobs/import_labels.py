"""Import job: labels made elsewhere become label events of the importing member.

    python -m gpu_jobs.import_labels --project P --slide S --source s3://.../FILE
        --user U [--site X] [--sha256 HEX] [--category NAME --color #rrggbb] [--min-cover 0.5]

GeoJSON / Histomics objects are matched to the slide's imported objects by id (or, on
superpixels they were not imported as, by overlap: --match), a CSV by
superpixel id or external id, a mask image (TIFF) labels what it covers. The whole file is
read and checked first; then missing categories are created (by name, with the file's colour)
and the labels are appended as SuperpixelsLabeled with source "import", split as bulk labels
are (4,096 ids an event). Every command carries an idempotency key made from the file's hash,
so importing the same file again — or rerunning a job that died midway — writes nothing twice.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gpu_jobs.common import JobError, parser, progress_bar, record_failure, run
from gpu_jobs.import_segmentation import file_sha256
from histolabel.composition import service_from_env
from histolabel.imports.errors import ImportRefused, check_size


def plan_labels(
    source_uri: str, seg: dict[str, Any], ingest: dict[str, Any], category: str | None, color: str | None,
    min_cover: float, match: str = "auto",
) -> tuple[dict[str, np.ndarray], dict[str, str | None], int]:  # fmt: skip
    """name -> superpixel ids, name -> colour, objects or rows without a category."""
    from histolabel.adapters import pyramids
    from histolabel.imports import label_image
    from histolabel.imports import labels as core
    from histolabel.imports.polygons import read_objects
    from histolabel.slides.pyramid import blocks

    name = source_uri.rsplit("/", 1)[-1]
    check_size(pyramids.object_size(source_uri), name)
    count = int(seg["count"])
    plan = core.LabelPlan()
    index: list[core.IdIndex] = []

    def id_index() -> core.IdIndex:
        if not index:
            index.append(core.IdIndex(pyramids.read_table(seg["table_uri"])))
        return index[0]

    with pyramids.open_source(source_uri) as fh:
        first = fh.read(8)
        fh.seek(0)
        lower = name.lower()
        if lower.endswith((".tif", ".tiff")) or first[:4] in (b"II*\0", b"MM\0*", b"II+\0"):
            if not category:
                raise ImportRefused("a mask image labels one category: give --category", name)
            cat = plan.category(category, color, "--category")
            labels_group: Any = pyramids.open_group(seg["labels_uri"], "r")
            labels0: Any = labels_group["0"]
            label_shape = (int(labels0.shape[-2]), int(labels0.shape[-1]))
            image: Any = pyramids.open_group(ingest["zarr_uri"], "r")
            keys = sorted((k for k in image.array_keys() if k.isdigit()), key=int)
            shapes = [tuple(int(s) for s in image[k].shape[-2:]) for k in keys]
            mask, _ = label_image.match_level(label_image.open_tiff(fh, name), shapes, name)  # type: ignore[arg-type]

            def read_labels(y0: int, x0: int, y1: int, x1: int) -> np.ndarray:
                return np.asarray(labels0[0, y0:y1, x0:x1])

            inside, area = core.mask_cover(
                read_labels, label_shape, mask, mask.shape, count, blocks(*label_shape)
            )
            share = inside[1:] / np.maximum(area[1:], 1)
            plan.add(cat, np.flatnonzero((area[1:] > 0) & (share >= min_cover)) + 1)
        elif lower.endswith((".csv", ".tsv", ".txt")):
            core.from_csv(fh, name, count, id_index, plan)
        elif match == "id" or (match == "auto" and _has_external_ids(seg["table_uri"])):
            core.from_objects(read_objects(fh, name), id_index(), plan)
        else:  # polygons on superpixels they were not the source of: by overlap
            import tempfile

            from histolabel.imports.spool import Spool

            labels_group = pyramids.open_group(seg["labels_uri"], "r")
            labels0 = labels_group["0"]
            label_shape = (int(labels0.shape[-2]), int(labels0.shape[-1]))

            def read_sp(y0: int, x0: int, y1: int, x1: int) -> np.ndarray:
                return np.asarray(labels0[0, y0:y1, x0:x1])

            with tempfile.TemporaryDirectory(prefix="histolabel-labels-") as tmp:
                spool = Spool(Path(tmp), 2 ** int(seg.get("level") or 0), label_shape)
                core.from_overlap(read_objects(fh, name), plan, spool, read_sp, count,
                                  (int(ingest["width"]), int(ingest["height"])), min_cover)  # fmt: skip
    return plan.finish(count), plan.colors, plan.skipped


def _has_external_ids(table_uri: str) -> bool:
    """Whether the slide's superpixels are imported objects with ids of their own."""
    import pyarrow.parquet as pq

    from histolabel.adapters import pyramids

    with pyramids.open_source(table_uri) as fh:
        return "external_id" in pq.read_schema(fh).names


def import_labels(
    project_id: str, slide_id: str, source_uri: str, user: str, site: str, digest: str | None = None,
    category: str | None = None, color: str | None = None, min_cover: float = 0.5, progress: str = "auto",
    match: str = "auto",
) -> dict[str, Any]:  # fmt: skip
    from histolabel.adapters.s3 import S3PathError, require_in_bucket
    from histolabel.commands import MAX_IDS_PER_COMMAND, AddCategory, LabelSuperpixels
    from histolabel.events.catalogue import Actor
    from histolabel.imports.labels import file_key

    try:
        require_in_bucket(source_uri)
    except S3PathError as exc:
        raise JobError(str(exc)) from exc
    svc = service_from_env()
    actor = Actor(user=user, site=site)
    state = svc.require_project(project_id)
    slide = state.slides.get(slide_id)
    if slide is None:
        raise JobError(f"slide {slide_id!r} is not registered in {project_id}")
    if slide.segmentation is None or slide.ingest is None:
        raise JobError(f"slide {slide_id!r} has no superpixels yet: segment or import a segmentation first")
    role = state.role_of(user)
    if role not in ("owner", "annotator"):
        raise JobError(f"{user} ({role or 'not a member'}) may not label in {project_id}")
    by_name, colors, skipped = plan_labels(
        source_uri, slide.segmentation, slide.ingest, category, color, min_cover, match
    )
    if not by_name:
        raise ImportRefused("holds no classified objects or rows to import", source_uri.rsplit("/", 1)[-1])
    stem = file_key(digest or file_sha256(source_uri), slide_id)
    existing = {c.name.casefold(): c.id for c in state.live_categories()}
    created: list[str] = []
    for name in sorted(by_name):
        if name.casefold() not in existing:
            key = f"{stem}-c-{len(created)}"
            svc.execute(AddCategory(project_id=project_id, name=name, color=colors.get(name)), actor, key)
            state = svc.project_state(project_id)
            existing = {c.name.casefold(): c.id for c in state.live_categories()}
            created.append(name)
    total = sum(len(v) for v in by_name.values())
    written = duplicates = 0
    with progress_bar(total, "import labels", progress, unit="sp") as update:
        for k, name in enumerate(sorted(by_name)):
            ids = by_name[name]
            for part, start in enumerate(range(0, len(ids), MAX_IDS_PER_COMMAND)):
                chunk = ids[start : start + MAX_IDS_PER_COMMAND].tolist()
                cmd = LabelSuperpixels(project_id=project_id, slide_id=slide_id, ids=chunk,
                                       category_id=existing[name.casefold()], source="import")  # fmt: skip
                result = svc.execute(cmd, actor, f"{stem}-l-{k}-{part}")
                written += 0 if result.duplicate else result.appended
                duplicates += result.duplicate
                update(len(chunk))
    return {"labeled": total, "categories_created": created, "events": written, "repeat": duplicates > 0,
            "skipped": skipped, "by_category": {n: len(v) for n, v in by_name.items()}}  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    p = parser("import_labels", "Import labels made elsewhere as label events of a member.")
    p.add_argument("--source", required=True, help="s3:// URI of the uploaded file")
    p.add_argument("--user", required=True, help="the importing member (labels are theirs)")
    p.add_argument("--site", default="import")
    p.add_argument("--sha256", help="the file's sha256 (default: computed)")
    p.add_argument("--category", help="mask image: the category it labels")
    p.add_argument("--color", help="mask image: the category's colour if it is created")
    p.add_argument("--min-cover", type=float, default=0.5)
    p.add_argument("--match", choices=["auto", "id", "overlap"], default="auto",
                   help="objects to superpixels: by id (imported objects), by overlap, or auto: by id "
                   "where the slide's superpixels were imported, else by overlap")  # fmt: skip
    args = p.parse_args(argv)
    if not args.slide:
        p.error("--slide is required")
    if not 0 < args.min_cover <= 1:
        p.error("--min-cover must be in (0, 1]")
    try:
        out = import_labels(
            args.project, args.slide, args.source, args.user, args.site, args.sha256, args.category,
            args.color, args.min_cover, args.progress, args.match,
        )  # fmt: skip
    except (JobError, ValueError) as exc:
        if not args.no_events:
            record_failure(args.project, "import_labels", args.slide, str(exc))
        raise
    made = ", ".join(out["categories_created"]) or "none"
    print(
        f"imported {out['labeled']} labels into {args.slide} as {args.user} ({out['events']} events"
        f"{', a repeat: nothing new' if out['repeat'] and not out['events'] else ''}); "
        f"categories created: {made}; without a category: {out['skipped']}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
