"""Routes: self-service: browser upload, slide removal, invitations, jobs, models."""

from __future__ import annotations

import uuid
from typing import Any

from chalicelib import data, views
from chalicelib.context import SERVICES, Call, Handler, fresh
from chalicelib.routes.slides import slide_job
from histolabel.api import selfservice
from histolabel.api.views import slide_out
from histolabel.commands import (
    AddMember,
    CommandRejected,
    RegisterSlide,
    RemoveSlide,
    SelectModel,
)
from histolabel.job_starts import start_job


def _upload_key(c: Call, slide_id: str, filename: str) -> str:
    return f"{data.slide_prefix(c.project.project_id, slide_id)}/source/{filename}"


def _create_upload(c: Call) -> Any:
    b = c.body
    sid = f"s{uuid.uuid4().hex[:10]}"
    part_size, parts = selfservice.part_plan(b.size)
    upload_id = data.create_multipart(_upload_key(c, sid, b.filename))
    return {"upload_id": upload_id, "slide_id": sid, "filename": b.filename, "part_size": part_size,
            "parts": parts}  # fmt: skip


def _uploaded(c: Call) -> tuple[str, list[dict[str, Any]]]:
    b = c.body
    if b.slide_id in c.project.slides or b.slide_id in c.project.removed_slides:
        raise CommandRejected("conflict", f"slide {b.slide_id!r} is already registered", "slide_id", 409)
    key = _upload_key(c, b.slide_id, b.filename)
    parts = data.uploaded_parts(key, b.upload_id)
    if parts is None:
        raise CommandRejected(
            "not_found", "no such upload (finished, expired or never begun)", "upload_id", 404
        )
    return key, parts


def _upload_parts(c: Call) -> Any:
    key, done = _uploaded(c)
    urls = {str(n): data.presign_part(key, c.body.upload_id, n) for n in c.body.part_numbers}
    return {"urls": urls, "done": sorted(p["PartNumber"] for p in done), "expires_in": data.PRESIGN_TTL_S}


def _complete_upload(c: Call) -> Any:
    b, pid = c.body, c.project.project_id
    key, parts = _uploaded(c)
    if not parts:
        raise CommandRejected("invalid", "no part of this upload has arrived yet", "upload_id", 409)
    register = RegisterSlide(project_id=pid, name=b.name or b.filename, source_uri=data.data_uri(key),
                             slide_id=b.slide_id)  # fmt: skip
    register.authorize(c.project, c.user)
    register.decide(c.project, c.user, c.actor.site)  # refuse before S3 assembles the object
    data.complete_multipart(key, b.upload_id, sorted(parts, key=lambda p: p["PartNumber"]))
    c.svc.execute(register, c.actor)
    # The pipeline's first step starts here; segment and embed follow it.
    started = slide_job(c, b.slide_id, "ingest", fresh(c))
    return {"slide": slide_out(fresh(c).slides[b.slide_id]), "job_id": started["job_id"]}


def _remove_slide(c: Call) -> Any:
    sid = c.params["slide_id"]
    c.svc.execute(RemoveSlide(project_id=c.project.project_id, slide_id=sid), c.actor)
    return {"removed": sid}


def _superpixel_estimate(c: Call) -> Any:
    from histolabel.segmentation import estimate, sizing
    from histolabel.segmentation.output import choose_level

    sid, q = c.params["slide_id"], c.query
    views.require_slide(c.project, sid)
    ingest = c.project.slides[sid].ingest
    if ingest is None:
        raise CommandRejected("invalid", f"slide {sid!r} is not ingested yet", "slide_id", 409)
    meta = {"histolabel": {"magnification": ingest.get("magnification"), "mpp": ingest.get("mpp")}}
    level = choose_level(meta, int(ingest["levels"]), q.magnification)
    compactness = c.query.compactness or c.project.settings.compactness
    rule = sizing.Size(q.superpixel_size, q.magnification)  # the size rule the job applies (--unit auto)
    w, h = int(ingest["width"]), int(ingest["height"])
    try:
        shape, image, tissue, tissue_px = data.segmentation_inputs(ingest["zarr_uri"], level.index)
        px = sizing.superpixel_px(shape[1], shape[0], level.mpp, rule)
        count = estimate.expected_count(shape, image, tissue, tissue_px, px, compactness)
        fraction, method = tissue_px / (shape[0] * shape[1]), "sampled"
    except (OSError, KeyError, ValueError):
        # The pyramid cannot be read: fall back to the area ratio over the whole slide.
        factor = 2**level.index
        px = sizing.superpixel_px(max(1, w // factor), max(1, h // factor), level.mpp, rule)
        fraction, method = 1.0, "area"
        count = selfservice.expected_superpixel_count(w, h, factor, fraction, px)
    return {"count": count, "method": method, "level": level.index, "magnification": level.magnification,
            "superpixel_px": px, "tissue_fraction": round(fraction, 4), "width": w, "height": h}  # fmt: skip


def _invite(c: Call) -> Any:
    b = c.body
    user = SERVICES.directory(b.email)
    password = None
    if user is None:
        invite = getattr(SERVICES.directory, "invite", None)
        if invite is None:
            raise CommandRejected("unavailable", "this user pool cannot create users", "email", 503)
        user, password = invite(b.email)
    if user in c.project.members:
        raise CommandRejected("conflict", f"{b.email} is already a member", "email", 409)
    c.svc.execute(AddMember(project_id=c.project.project_id, user=user, role=b.role, site=b.site), c.actor)
    return {"user": user, "role": b.role, "created": password is not None, "temporary_password": password}


def _list_jobs(c: Call) -> Any:
    state = c.project
    rows = []
    # Training runs as the project recorded them (the trigger names their jobs itself).
    for r in state.training.values():
        model = next((m for m in state.models if m["model_version"] == r.model_version), None)
        rows.append(selfservice.training_row(r.model_dump(), model["at"] if model else None))
    for job in sorted(state.jobs.values(), key=lambda j: j.get("at", ""), reverse=True)[:200]:
        try:
            status = SERVICES.submitter.status(job["job_id"])
        except Exception as exc:
            status = {"status": "UNKNOWN", "reason": f"status unavailable: {type(exc).__name__}"}
        row = selfservice.job_row(job, status)
        if row["status"] == "UNKNOWN" and job.get("slide_id") in state.slides:
            failures = state.slides[job["slide_id"]].failures
            reason = next((f["reason"] for f in reversed(failures) if f.get("job") == job["job"]), None)
            row["reason"] = row["reason"] or reason
        rows.append(row)
    rows.sort(key=lambda r: r["submitted_at"] or "", reverse=True)
    return {"jobs": rows}


def _retry_job(c: Call) -> Any:
    job = c.project.jobs.get(c.params["job_id"])
    if job is None or job.get("slide_id") is None:
        raise CommandRejected("not_found", f"job {c.params['job_id']!r} is not a slide job of this project",
                              "job_id", 404)  # fmt: skip
    return slide_job(c, job["slide_id"], job["job"])


def _cancel_job(c: Call) -> Any:
    from histolabel.runtime.job_events_lambda import record_outcome

    job_id, state = c.params["job_id"], fresh(c)
    runner = SERVICES.submitter.status(job_id) if state.owns_job(job_id) else {}
    outcome = selfservice.cancel_outcome(state, job_id, str(runner.get("status", "")), c.user)
    SERVICES.submitter.cancel(job_id, f"cancelled by {c.user}")
    # Recorded now, by who cancelled; the runner's own report of the end then adds no twin.
    record_outcome(c.svc, outcome, c.actor)
    return {"job_id": job_id, "job": outcome.context.job, "status": "FAILED", "cause": "cancelled",
            "reason": outcome.reason}  # fmt: skip


def _job_log(c: Call) -> Any:
    job_id = c.params["job_id"]
    if not c.project.owns_job(job_id):
        raise CommandRejected("not_found", f"job {job_id!r} is not a job of this project", "job_id", 404)
    return {"job_id": job_id, **SERVICES.submitter.log(job_id)}


def _select_model(c: Call) -> Any:
    pid = c.project.project_id
    raw = c.params["version"]
    if not raw.isdigit() or int(raw) < 1:
        raise CommandRejected("invalid", "the model version is a positive whole number", "version")
    version = int(raw)
    c.svc.execute(SelectModel(project_id=pid, model_version=version), c.actor)
    job_id = None
    published = c.project.predictions
    if not published or int(published["model_version"]) != version:
        # Predictions of the chosen version, so the queue and the overlay follow it.
        args = ["--project", pid, "--version", str(version), "--progress", "off"]
        job_id = start_job(c.svc, SERVICES.submitter, c.actor, pid, "predict", args)
    return {"model_version": version, "job_id": job_id}


HANDLERS: dict[str, Handler] = {
    "create_upload": _create_upload,
    "upload_parts": _upload_parts,
    "complete_upload": _complete_upload,
    "remove_slide": _remove_slide,
    "superpixel_estimate": _superpixel_estimate,
    "invite": _invite,
    "list_jobs": _list_jobs,
    "retry_job": _retry_job,
    "cancel_job": _cancel_job,
    "job_log": _job_log,
    "select_model": _select_model,
}
