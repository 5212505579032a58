"""Routes: slides and jobs."""

from __future__ import annotations

import re
import uuid
from typing import Any, cast

import numpy as np
from chalice import Response

from chalicelib import data, views
from chalicelib.context import SERVICES, Call, Handler, fresh
from chalicelib.responses import json_or_copy
from histolabel import confinement
from histolabel.api.views import slide_out
from histolabel.commands import (
    CommandRejected,
    RegisterSlide,
)
from histolabel.config import get_settings
from histolabel.imports import api as imports
from histolabel.job_starts import start_job
from histolabel.jobs import JobKind
from histolabel.pipeline import slide_job_args

JOB_OUTCOME_FIELDS = ("status", "cause", "reason", "exit_code", "ended_at")


def _register_slide(c: Call) -> Any:
    b, pid = c.body, c.project.project_id
    sid = b.slide_id or f"s{uuid.uuid4().hex[:10]}"
    upload = None
    if b.filename is not None:
        key = f"{data.slide_prefix(pid, sid)}/source/{b.filename}"
        source_uri = data.data_uri(key)
        upload = {"url": data.presign_put(key), "method": "PUT", "expires_in": data.PRESIGN_TTL_S}
    else:
        # Knowing another project's object URI must not be enough to copy it into this one.
        source_uri = confinement.require_source(b.source_uri, pid, get_settings())
    c.svc.execute(RegisterSlide(project_id=pid, name=b.name, source_uri=source_uri, slide_id=sid), c.actor)
    return {"slide": slide_out(fresh(c).slides[sid]), "upload": upload}


def _get_slide(c: Call) -> Any:
    views.require_slide(c.project, c.params["slide_id"])
    return slide_out(c.project.slides[c.params["slide_id"]])


def _start_job(c: Call) -> Any:
    return slide_job(c, c.params["slide_id"], c.body.job)


def slide_job(c: Call, sid: str, job: JobKind, state: Any = None) -> Any:
    """Submit a slide step; `state`: the project as it stands after this call's own writes."""
    state = state or c.project
    pid = state.project_id
    views.require_slide(state, sid)
    args = slide_job_args(job, state, sid)  # the same arguments the pipeline chains with
    job_id = start_job(c.svc, SERVICES.submitter, c.actor, pid, job, args, sid)
    return {"job_id": job_id, "job": job, "slide_id": sid}


def _import_role(c: Call, kind: str) -> None:
    role = c.project.role_of(c.user)
    if role not in imports.ROLES[kind]:
        needs = imports.ROLES[kind]
        raise CommandRejected("forbidden", f"role {role!r} may not import {kind}; needs {needs}", "kind", 403)


def _import_upload(c: Call) -> Any:
    pid, sid, body = c.project.project_id, c.params["slide_id"], c.body
    views.require_slide(c.project, sid)
    _import_role(c, body.kind)
    if (problem := imports.too_large(body.size)) is not None:
        # A declared size over the document's maximum: a field's wrong value (the body is small).
        raise CommandRejected("too_large", problem, "size", 422)
    import_id = imports.new_import_id()
    key = imports.upload_key(pid, sid, import_id, body.filename)
    return {"import_id": import_id, "upload_url": data.presign_put(key), "key": key}


def _import_start(c: Call) -> Any:
    pid, sid, body, import_id = c.project.project_id, c.params["slide_id"], c.body, c.params["import_id"]
    views.require_slide(c.project, sid)
    _import_role(c, body.kind)
    if not re.fullmatch(r"[0-9a-f]{32}", import_id):
        raise CommandRejected("invalid", f"import id {import_id!r} is not one this API gave", "import_id")
    slide = c.project.slides[sid]
    if body.kind == "segmentation" and slide.ingest is None:
        raise CommandRejected("invalid", f"slide {sid!r} must be ingested before an import", "slide_id", 409)
    if body.kind != "segmentation" and slide.segmentation is None:
        raise CommandRejected("invalid", f"slide {sid!r} has no superpixels to import {body.kind} for",
                              "slide_id", 409)  # fmt: skip
    key = imports.upload_key(pid, sid, import_id, body.filename)
    size = data.object_size(key)
    if size is None:
        raise CommandRejected("not_found", f"nothing was uploaded as {body.filename!r} for this import",
                              "filename", 404)  # fmt: skip
    if (problem := imports.too_large(size)) is not None:
        data.delete(key)
        raise CommandRejected("too_large", problem, "size", 413)
    job = cast(JobKind, f"import_{body.kind}")
    args = imports.job_args(body.kind, pid, sid, data.data_uri(key), body.options, c.user, c.actor.site)
    job_id = start_job(c.svc, SERVICES.submitter, c.actor, pid, job, args, sid)
    return {"job_id": job_id, "job": job, "slide_id": sid}


def _job_status(c: Call) -> Any:
    job_id = c.params["job_id"]
    state = fresh(c)
    if not state.owns_job(job_id):
        raise CommandRejected("not_found", f"job {job_id!r} is not a job of this project", "job_id", 404)
    status = SERVICES.submitter.status(job_id)
    # How it ended, as recorded on the project (JobEnded): outlives the runner's memory of it.
    ended = {k: v for k, v in state.jobs.get(job_id, {}).items() if k in JOB_OUTCOME_FIELDS}
    if status.get("status") == "UNKNOWN":
        if not ended:
            raise CommandRejected("not_found", f"job {job_id!r} is unknown", "job_id", 404)
        status = {"job_id": job_id, "status": ended["status"]}
    return {**status, "outcome": ended or None}


def _data_key(c: Call, key: str) -> str:
    parts = key.split("/")
    if key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise CommandRejected("invalid", f"key {key!r} must be a relative path without '.' or '..'", "key")
    return f"{data.slide_prefix(c.project.project_id, c.params['slide_id'])}/{key}"


def _slide_data(c: Call) -> Any:
    views.require_slide(c.project, c.params["slide_id"])
    url = data.presign_get(_data_key(c, c.query.key))
    return Response(
        body="", status_code=302, headers={"Location": url, "Cache-Control": "private, max-age=600"}
    )


def _slide_data_urls(c: Call) -> Any:
    views.require_slide(c.project, c.params["slide_id"])
    keys = {k: _data_key(c, k) for k in c.body.keys}
    return {"urls": {k: data.presign_get(v) for k, v in keys.items()}, "expires_in": data.PRESIGN_TTL_S}


def _slide_predictions(c: Call) -> Any:
    state, sid = c.project, c.params["slide_id"]
    version, pred = views.slide_predictions(state, sid)
    # Class ids as the project knows them now: merged categories count as their target; a deleted
    # one has no colour (class -1).
    resolved = [state.resolve(cat) for cat in pred.categories]
    categories = list(dict.fromkeys(r for r in resolved if r is not None))
    remap = np.array([categories.index(r) if r is not None else -1 for r in resolved], np.int64)
    top = pred.probs.argmax(axis=1) if len(pred.ids) else np.zeros(0, np.int64)
    cert = np.round(pred.certainty.astype(np.float64), 5)
    out = {
        "model_version": version,
        "slide_id": sid,
        "categories": categories,
        "ids": pred.ids.tolist(),
        "classes": remap[top].tolist(),
        "certainty": [v if np.isfinite(v) else None for v in cert.tolist()],
    }
    return json_or_copy(out, f"projects/{state.project_id}/exports/predictions/{sid}/v{version}")


HANDLERS: dict[str, Handler] = {
    "register_slide": _register_slide,
    "list_slides": lambda c: {"slides": [slide_out(s) for s in c.project.slides.values()]},
    "get_slide": _get_slide,
    "start_job": _start_job,
    "import_upload": _import_upload,
    "import_start": _import_start,
    "job_status": _job_status,
    "slide_data": _slide_data,
    "slide_data_urls": _slide_data_urls,
    "slide_predictions": _slide_predictions,
}
