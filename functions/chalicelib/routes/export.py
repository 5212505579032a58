"""Routes: export."""

from __future__ import annotations

import json
import tempfile
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from chalice import Response

from chalicelib import data, views
from chalicelib.context import SERVICES, Call, Handler, error, fresh
from chalicelib.responses import see_other
from histolabel.api import export
from histolabel.commands import (
    CommandRejected,
)
from histolabel.imports import api as imports
from histolabel.job_starts import start_job
from histolabel.runtime.export_anchor_lambda import anchor_on_export

EXPORT_TYPES = {
    "geojson": "application/geo+json",
    "csv": "text/csv",
    "parquet": "application/vnd.apache.parquet",
}


def _deliver(c: Call, body: str | bytes, content_type: str, filename: str) -> Response:
    """The export in the response, or, past what a Lambda response may carry, a 303 to a copy in
    the data bucket (expired by the bucket's lifecycle rule)."""
    raw = body.encode() if isinstance(body, str) else body
    disposition = f'attachment; filename="{filename}"'
    if len(raw) <= data.inline_response_limit():
        if content_type == EXPORT_TYPES["parquet"]:
            accept = c.headers.get("accept", "")
            if content_type not in accept and "*/*" not in accept:
                # API Gateway returns binary bodies only to requests that accept a binary type.
                return error(
                    406, "not_acceptable", f"send 'Accept: {content_type}' to receive Parquet", "Accept"
                )
        return Response(
            body=body,
            status_code=200,
            headers={"Content-Disposition": disposition, "Content-Type": content_type},
        )
    key = f"projects/{c.project.project_id}/exports/{uuid.uuid4().hex}/{filename}"
    data.put_export(key, raw, content_type, disposition)
    return see_other(key)


def _export(c: Call) -> Any:
    q, state = c.query, c.project
    anchor_on_export(c.svc, state.project_id)  # the audit trail is anchored at every export
    rows = views.query_rows(c)
    if q.anonymize:
        rows = export.anonymize(rows)
    filename = f"{state.project_id}.{q.format}"
    names = {cat.id: cat.name for cat in state.categories.values()}
    if q.format == "csv":
        return _deliver(c, export.to_csv(rows, names), "text/csv", filename)
    if q.format == "parquet":
        return _deliver(c, export.to_parquet(rows, names), EXPORT_TYPES["parquet"], filename)
    # Every outline of a slide from one pass over its label pyramid, a window per tile.
    rings: dict[str, dict[int, list[list[float]]]] = {}
    by_slide: dict[str, list[int]] = {}
    for row in rows:
        by_slide.setdefault(row["slide_id"], []).append(int(row["id"]))
    own = data.imported_objects(state, by_slide)  # imported objects keep their geometry and ids
    for slide_id, ids in by_slide.items():
        seg = state.slides[slide_id].segmentation
        if seg is None or slide_id in own:
            continue
        labels_uri = views.own(state, seg["labels_uri"])
        try:
            reader = data.LabelReader(labels_uri)
        except (OSError, ValueError, KeyError) as exc:
            raise CommandRejected(
                "unavailable", f"the label pyramid of slide {slide_id!r} cannot be read: {exc}", "slide", 409
            ) from None
        table = views.table_for(state, slide_id)
        found = table.rows(np.array(ids))
        boxes = {sp: table.bbox[r] for sp, r in zip(ids, found.tolist(), strict=True) if r >= 0}
        rings[slide_id] = reader.outlines(boxes)

    def ring_of(slide_id: str, sp: int) -> list[list[float]]:
        return rings.get(slide_id, {}).get(sp, [])

    colors = {cat.id: cat.color for cat in state.categories.values()}
    return _deliver(
        c,
        json.dumps(export.to_geojson(rows, ring_of, colors, names, lambda s, i: own.get(s, {}).get(i))),
        EXPORT_TYPES["geojson"],
        filename,
    )


def _slide_mask(c: Call) -> Any:
    from histolabel import masks

    state, sid = c.project, c.params["slide_id"]
    seg = views.require_slide(state, sid, segmented=True)
    assert seg is not None
    try:
        attrs, shape, read = data.label_level0(views.own(state, seg["labels_uri"]))
    except (OSError, ValueError, KeyError) as exc:
        raise CommandRejected("unavailable", f"the label pyramid of slide {sid!r} cannot be read: {exc}",
                              "slide_id", 409) from None  # fmt: skip
    anchor_on_export(c.svc, state.project_id)  # the audit trail is anchored at every export
    current = views.current_labels(c.svc, state.project_id, sid).current()
    mask = masks.slide_mask(state, sid, current, attrs, shape)
    filename = imports.mask_filename(sid)
    with tempfile.TemporaryDirectory() as tmp:  # Lambda's /tmp; the TIFF is written tile by tile
        path = Path(tmp) / filename
        masks.write_tiff(path, read, mask.shape, mask.lut, mask.values, mask.mpp)
        raw = path.read_bytes()
    # Always a copy in the data bucket: a mask is binary and may outgrow a Lambda response.
    key = f"projects/{state.project_id}/exports/{uuid.uuid4().hex}/{filename}"
    data.put_export(key, raw, "image/tiff", f'attachment; filename="{filename}"')
    return Response(
        body="", status_code=302, headers={"Location": data.presign_get(key), "Cache-Control": "no-store"}
    )


def _start_export(c: Call) -> Any:
    b, pid = c.body, c.project.project_id
    if b.slide is not None:
        views.require_slide(c.project, b.slide)
    anchor_on_export(c.svc, pid)  # the audit trail is anchored at every export
    args = ["--project", pid, "--format", b.format, "--progress", "off"]
    args += ["--slide", b.slide] if b.slide else []
    args += ["--anonymize"] if b.anonymize else []
    job_id = start_job(c.svc, SERVICES.submitter, c.actor, pid, "export", args)
    return {"job_id": job_id, "format": b.format, "status_path": f"/projects/{pid}/exports/{job_id}"}


def _export_status(c: Call) -> Any:
    from histolabel.adapters import exports as files
    from histolabel.exports import PROGRESS, export_prefix
    from histolabel.resources import EXPORT_TTL_DAYS

    job_id, state = c.params["job_id"], fresh(c)
    if state.jobs.get(job_id, {}).get("job") != "export":
        raise CommandRejected("not_found", f"job {job_id!r} is not an export of this project", "job_id", 404)
    ended = state.jobs[job_id]
    status = SERVICES.submitter.status(job_id).get("status", "UNKNOWN")
    if status == "UNKNOWN" and ended.get("status"):
        status = ended["status"]
    progress = files.get_json(f"{export_prefix(state.project_id, job_id)}/{PROGRESS}") or {}
    out: dict[str, Any] = {"job_id": job_id, "status": status, "state": progress.get("state", "queued")}
    shown = ("format", "slides", "slides_done", "rows", "bytes", "seconds", "cpu_s")
    out.update({k: progress[k] for k in shown if k in progress})
    if status == "FAILED" and progress.get("state") != "done":
        out["state"], out["reason"] = "failed", ended.get("reason") or "the export job failed"
    elif progress.get("state") == "done":
        out.update(
            url=data.presign_get(progress["key"]), expires_in=data.PRESIGN_TTL_S, expires_days=EXPORT_TTL_DAYS
        )
    return out


HANDLERS: dict[str, Handler] = {
    "export": _export,
    "slide_mask": _slide_mask,
    "start_export": _start_export,
    "export_status": _export_status,
}
