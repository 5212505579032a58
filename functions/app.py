"""The HistoLabel HTTP API: thin Chalice routes over histolabel/. Who may call what is in
histolabel/api/routes.py; checks, parsing and errors in chalicelib/context.py."""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import uuid
from typing import Any

import numpy as np
from botocore.exceptions import ClientError
from chalice import Chalice, CORSConfig, Response
from chalicelib import data, views
from chalicelib.context import RETRY_AFTER_S, SERVICES, Call, error, login_config, run

from histolabel import confinement
from histolabel.adapters import aws
from histolabel.api import agreement, audit, changes, export, queue, review, selfservice
from histolabel.api.openapi import openapi_document
from histolabel.api.views import category_out, project_out, resolved_entries, slide_out
from histolabel.commands import (
    IDEMPOTENCY_KEY_PATTERN,
    AddCategory,
    AddMember,
    ChangeRole,
    ChangeSettings,
    CommandRejected,
    CreateProject,
    DeleteCategory,
    ExcludeCategory,
    IncludeCategory,
    LabelSuperpixels,
    MergeCategories,
    RecolorCategory,
    RecordJobSubmitted,
    RegisterSlide,
    RemoveMember,
    RemoveSlide,
    RenameCategory,
    ReviewLabels,
    SelectModel,
    SetHotkey,
    UnlabelSuperpixels,
)
from histolabel.config import get_settings
from histolabel.events.catalogue import Actor
from histolabel.events.envelope import label_stream, project_stream, verify_chain
from histolabel.events.streams import stream_events
from histolabel.imports import api as imports
from histolabel.jobs import job_name
from histolabel.leases import LEASE_S
from histolabel.pipeline import slide_job_args
from histolabel.runtime.export_anchor import anchor_on_export

if "AWS_LAMBDA_FUNCTION_NAME" in os.environ:  # the API's Lambda: give up on a store within seconds
    os.environ.setdefault(aws.PROFILE_ENV, "api")

app = Chalice(app_name="histolabel")
app.api.binary_types.append("application/vnd.apache.parquet")
# The web app is served from another origin; it sends the idempotency key as a header.
app.api.cors = CORSConfig(allow_origin="*", allow_headers=["Idempotency-Key"], max_age=600)

EXPORT_TYPES = {
    "geojson": "application/geo+json",
    "csv": "text/csv",
    "parquet": "application/vnd.apache.parquet",
}


JOB_OUTCOME_FIELDS = ("status", "cause", "reason", "exit_code", "ended_at")


def _fresh(c: Call) -> Any:
    return c.svc.project_state(c.project.project_id)


# ---- open --------------------------------------------------------------------------------


def _health(c: Call) -> Any:
    from histolabel.adapters.health import check
    from histolabel.eventstore import InMemoryEventStore

    if isinstance(c.svc.events, InMemoryEventStore):  # an in-process service has no stores to reach
        return {"status": "ok", "checks": {"stores": "in memory"}}
    report = check(c.svc.settings)
    if report["status"] != "ok":  # load balancers and the web client read the status code
        headers = {"Content-Type": "application/json", "Retry-After": str(RETRY_AFTER_S)}
        return Response(body=json.dumps(report), status_code=503, headers=headers)
    return report


@app.route("/health", methods=["GET"])
def health() -> Any:
    return run(app, "health", _health, {})


@app.route("/config", methods=["GET"])
def config() -> Any:
    return run(app, "config", lambda c: login_config(), {})


@app.route("/openapi.json", methods=["GET"])
def openapi() -> Any:
    return run(app, "openapi", lambda c: openapi_document(), {})


def _me(c: Call) -> Any:
    # ID tokens carry the email when the pool's client reads it; otherwise ask the pool (a
    # nicety: the id identifies the caller either way).
    email = c.identity.claims.get("email")  # type: ignore[union-attr]
    if not email:
        try:
            email = _person(c.user)["email"]
        except ClientError:
            email = None
    return {"user": c.user, "email": email}


@app.route("/me", methods=["GET"])
def me() -> Any:
    return run(app, "me", _me, {})


# ---- projects and members ----------------------------------------------------------------


def _create_project(c: Call) -> Any:
    b = c.body
    actor = Actor(user=c.user, site=b.site)
    c.svc.execute(CreateProject(project_id=b.project_id, name=b.name, settings=b.settings), actor)
    return project_out(c.svc.project_state(b.project_id), c.user)


def _list_projects(c: Call) -> Any:
    # Membership from the projections (a project created a moment ago may lag by the projector's
    # delay); the role from the event stream, so a removed member is never shown the project.
    out = []
    for projected in c.svc.projections.list_projects():
        if projected.role_of(c.user) is None:
            continue
        state = c.svc.project_state(projected.project_id)
        role = state.role_of(c.user)
        if role is not None:
            out.append({"project_id": state.project_id, "name": state.name, "role": role})
    return {"projects": out}


@app.route("/projects", methods=["GET"])
def list_projects() -> Any:
    return run(app, "list_projects", _list_projects, {})


@app.route("/projects", methods=["POST"])
def create_project() -> Any:
    return run(app, "create_project", _create_project, {})


@app.route("/projects/{project_id}", methods=["GET"])
def get_project(project_id: str) -> Any:
    return run(app, "get_project", lambda c: project_out(c.project, c.user), {"project_id": project_id})


def _change_settings(c: Call) -> Any:
    c.svc.execute(ChangeSettings(project_id=c.project.project_id, settings=c.body.settings), c.actor)
    return project_out(_fresh(c), c.user)


@app.route("/projects/{project_id}/settings", methods=["PUT"])
def change_settings(project_id: str) -> Any:
    return run(app, "change_settings", _change_settings, {"project_id": project_id})


def _member(c: Call, user: str) -> dict[str, Any]:
    m = _fresh(c).members[user]
    return {"user": user, **m.model_dump()}


def _add_member(c: Call) -> Any:
    b = c.body
    # A member is someone who can sign in: a typo must not make a member nobody can be.
    user = SERVICES.directory(b.user)
    if user is None:
        raise CommandRejected(
            "not_found",
            f"no user {b.user!r} in the user pool (by username or email); create them first: "
            "python -m infra add-user",
            "user",
            404,
        )
    c.svc.execute(AddMember(project_id=c.project.project_id, user=user, role=b.role, site=b.site), c.actor)
    return _member(c, user)


@app.route("/projects/{project_id}/members", methods=["POST"])
def add_member(project_id: str) -> Any:
    return run(app, "add_member", _add_member, {"project_id": project_id})


_PEOPLE_TTL_S = 300.0
_people_cache: dict[str, tuple[float, dict[str, str | None]]] = {}


def _person(user: str) -> dict[str, str | None]:
    now = time.monotonic()
    hit = _people_cache.get(user)
    if hit is None or hit[0] < now:
        hit = (now + _PEOPLE_TTL_S, SERVICES.directory.describe(user))
        _people_cache[user] = hit
    return hit[1]


def _people(c: Call) -> Any:
    # Member ids are the pool's usernames, opaque where people sign in by email: the app shows
    # names and emails instead. Only the project's members are described, to its members.
    return {"people": {user: _person(user) for user in sorted(c.project.members)}}


@app.route("/projects/{project_id}/people", methods=["GET"])
def people(project_id: str) -> Any:
    return run(app, "people", _people, {"project_id": project_id})


def _change_role(c: Call) -> Any:
    user = c.params["user"]
    c.svc.execute(ChangeRole(project_id=c.project.project_id, user=user, role=c.body.role), c.actor)
    return _member(c, user)


@app.route("/projects/{project_id}/members/{user}", methods=["PATCH"])
def change_role(project_id: str, user: str) -> Any:
    return run(app, "change_role", _change_role, {"project_id": project_id, "user": user})


def _remove_member(c: Call) -> Any:
    user = c.params["user"]
    c.svc.execute(RemoveMember(project_id=c.project.project_id, user=user), c.actor)
    return {"removed": user}


@app.route("/projects/{project_id}/members/{user}", methods=["DELETE"])
def remove_member(project_id: str, user: str) -> Any:
    return run(app, "remove_member", _remove_member, {"project_id": project_id, "user": user})


# ---- categories ----------------------------------------------------------------------------


def _category(c: Call, category_id: str) -> Any:
    return category_out(_fresh(c).categories[category_id])


def _add_category(c: Call) -> Any:
    b = c.body
    pid = c.project.project_id
    before = set(c.project.categories)
    cmd = AddCategory(project_id=pid, name=b.name, color=b.color, hotkey=b.hotkey, category_id=b.category_id)
    c.svc.execute(cmd, c.actor)
    state = _fresh(c)
    new = b.category_id or next(cid for cid in state.categories if cid not in before)
    return category_out(state.categories[new])


@app.route("/projects/{project_id}/categories", methods=["POST"])
def add_category(project_id: str) -> Any:
    return run(app, "add_category", _add_category, {"project_id": project_id})


def _update_category(c: Call) -> Any:
    pid, cid, b = c.project.project_id, c.params["category_id"], c.body
    given = b.model_fields_set
    commands: list[Any] = []
    if "name" in given and b.name is not None:
        commands.append(RenameCategory(project_id=pid, category_id=cid, name=b.name))
    if "color" in given and b.color is not None:
        commands.append(RecolorCategory(project_id=pid, category_id=cid, color=b.color))
    if "hotkey" in given:
        commands.append(SetHotkey(project_id=pid, category_id=cid, hotkey=b.hotkey))
    if not commands:
        raise CommandRejected("invalid", "give at least one of name, color, hotkey")
    # Decide every change against the same state first, so a bad one writes none of them.
    for cmd in commands:
        cmd.authorize(c.project, c.user)
        cmd.decide(c.project, c.user, c.actor.site)
    for cmd in commands:
        c.svc.execute(cmd, c.actor)
    return _category(c, cid)


@app.route("/projects/{project_id}/categories/{category_id}", methods=["PATCH"])
def update_category(project_id: str, category_id: str) -> Any:
    return run(
        app, "update_category", _update_category, {"project_id": project_id, "category_id": category_id}
    )


def _toggle(kind: type) -> Any:
    def handler(c: Call) -> Any:
        cid = c.params["category_id"]
        c.svc.execute(kind(project_id=c.project.project_id, category_id=cid), c.actor)
        return _category(c, cid)

    return handler


@app.route("/projects/{project_id}/categories/{category_id}/exclude", methods=["POST"])
def exclude_category(project_id: str, category_id: str) -> Any:
    params = {"project_id": project_id, "category_id": category_id}
    return run(app, "exclude_category", _toggle(ExcludeCategory), params)


@app.route("/projects/{project_id}/categories/{category_id}/include", methods=["POST"])
def include_category(project_id: str, category_id: str) -> Any:
    params = {"project_id": project_id, "category_id": category_id}
    return run(app, "include_category", _toggle(IncludeCategory), params)


def _merge(c: Call) -> Any:
    b = c.body
    c.svc.execute(
        MergeCategories(project_id=c.project.project_id, sources=b.sources, target=b.target), c.actor
    )
    return _category(c, b.target)


@app.route("/projects/{project_id}/categories/merge", methods=["POST"])
def merge_categories(project_id: str) -> Any:
    return run(app, "merge_categories", _merge, {"project_id": project_id})


def _delete_category(c: Call) -> Any:
    cid, pid = c.params["category_id"], c.project.project_id
    # The count recorded in the event is the labels currently shown in this category.
    cleared = sum(views.current_labels(c.svc, pid, s).counts.get(cid, 0) for s in c.project.slides)
    c.svc.execute(DeleteCategory(project_id=pid, category_id=cid, labels_cleared=cleared), c.actor)
    return {"deleted": cid, "labels_cleared": cleared}


@app.route("/projects/{project_id}/categories/{category_id}", methods=["DELETE"])
def delete_category(project_id: str, category_id: str) -> Any:
    return run(
        app, "delete_category", _delete_category, {"project_id": project_id, "category_id": category_id}
    )


# ---- slides and jobs -----------------------------------------------------------------------


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
    return {"slide": slide_out(_fresh(c).slides[sid]), "upload": upload}


@app.route("/projects/{project_id}/slides", methods=["POST"])
def register_slide(project_id: str) -> Any:
    return run(app, "register_slide", _register_slide, {"project_id": project_id})


@app.route("/projects/{project_id}/slides", methods=["GET"])
def list_slides(project_id: str) -> Any:
    return run(
        app, "list_slides", lambda c: {"slides": [slide_out(s) for s in c.project.slides.values()]},
        {"project_id": project_id},
    )  # fmt: skip


def _get_slide(c: Call) -> Any:
    views.require_slide(c.project, c.params["slide_id"])
    return slide_out(c.project.slides[c.params["slide_id"]])


@app.route("/projects/{project_id}/slides/{slide_id}", methods=["GET"])
def get_slide(project_id: str, slide_id: str) -> Any:
    return run(app, "get_slide", _get_slide, {"project_id": project_id, "slide_id": slide_id})


def _start_job(c: Call) -> Any:
    return _slide_job(c, c.params["slide_id"], c.body.job)


def _slide_job(c: Call, sid: str, job: str, state: Any = None) -> Any:
    """Submit a slide step; `state`: the project as it stands after this call's own writes."""
    state = state or c.project
    pid = state.project_id
    views.require_slide(state, sid)
    args = slide_job_args(job, state, sid)  # the same arguments the pipeline chains with
    job_id = SERVICES.submitter.submit(job, args, job_name(job, pid, sid))
    c.svc.execute(RecordJobSubmitted(project_id=pid, job=job, job_id=job_id, slide_id=sid), c.actor)
    return {"job_id": job_id, "job": job, "slide_id": sid}


@app.route("/projects/{project_id}/slides/{slide_id}/jobs", methods=["POST"])
def start_job(project_id: str, slide_id: str) -> Any:
    return run(app, "start_job", _start_job, {"project_id": project_id, "slide_id": slide_id})


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
        raise CommandRejected("too_large", problem, "size", 413)
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
    job = f"import_{body.kind}"
    args = imports.job_args(body.kind, pid, sid, data.data_uri(key), body.options, c.user, c.actor.site)
    job_id = SERVICES.submitter.submit(job, args, job_name(job, pid, sid))
    c.svc.execute(RecordJobSubmitted(project_id=pid, job=job, job_id=job_id, slide_id=sid), c.actor)
    return {"job_id": job_id, "job": job, "slide_id": sid}


@app.route("/projects/{project_id}/slides/{slide_id}/imports", methods=["POST"])
def import_upload(project_id: str, slide_id: str) -> Any:
    return run(app, "import_upload", _import_upload, {"project_id": project_id, "slide_id": slide_id})


@app.route("/projects/{project_id}/slides/{slide_id}/imports/{import_id}/start", methods=["POST"])
def import_start(project_id: str, slide_id: str, import_id: str) -> Any:
    params = {"project_id": project_id, "slide_id": slide_id, "import_id": import_id}
    return run(app, "import_start", _import_start, params)


def _job_status(c: Call) -> Any:
    job_id = c.params["job_id"]
    state = _fresh(c)
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


@app.route("/projects/{project_id}/jobs/{job_id}", methods=["GET"])
def job_status(project_id: str, job_id: str) -> Any:
    return run(app, "job_status", _job_status, {"project_id": project_id, "job_id": job_id})


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


@app.route("/projects/{project_id}/slides/{slide_id}/data", methods=["GET"])
def slide_data(project_id: str, slide_id: str) -> Any:
    return run(app, "slide_data", _slide_data, {"project_id": project_id, "slide_id": slide_id})


def _slide_data_urls(c: Call) -> Any:
    views.require_slide(c.project, c.params["slide_id"])
    keys = {k: _data_key(c, k) for k in c.body.keys}
    return {"urls": {k: data.presign_get(v) for k, v in keys.items()}, "expires_in": data.PRESIGN_TTL_S}


@app.route("/projects/{project_id}/slides/{slide_id}/data/urls", methods=["POST"])
def slide_data_urls(project_id: str, slide_id: str) -> Any:
    return run(app, "slide_data_urls", _slide_data_urls, {"project_id": project_id, "slide_id": slide_id})


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
    return _json_or_copy(out, f"projects/{state.project_id}/exports/predictions/{sid}/v{version}")


@app.route("/projects/{project_id}/slides/{slide_id}/predictions", methods=["GET"])
def slide_predictions(project_id: str, slide_id: str) -> Any:
    return run(app, "slide_predictions", _slide_predictions, {"project_id": project_id, "slide_id": slide_id})


# ---- labels --------------------------------------------------------------------------------


def _slide_labels(c: Call) -> Any:
    sid = c.params["slide_id"]
    views.require_slide(c.project, sid)
    labels = views.current_labels(c.svc, c.project.project_id, sid)
    entries, counts = resolved_entries(labels.entries, c.project.resolve)
    out = {"slide_id": sid, "seq": labels.seq, "cursor": changes.encode_cursor(labels.cursor()),
           "counts": counts, "entries": entries}  # fmt: skip
    return _json_or_copy(out, f"projects/{c.project.project_id}/exports/labels/{sid}/seq{labels.seq}")


@app.route("/projects/{project_id}/slides/{slide_id}/labels", methods=["GET"])
def slide_labels(project_id: str, slide_id: str) -> Any:
    return run(app, "slide_labels", _slide_labels, {"project_id": project_id, "slide_id": slide_id})


def _idempotency_key(c: Call) -> tuple[str | None, str]:
    """The request's idempotency key (the header, else the body's field; the body's pattern was
    checked by its schema) and the name of where it came from."""
    header, body = c.headers.get("idempotency-key"), c.body.idempotency_key
    if header is None:
        return body, "idempotency_key"
    field = "Idempotency-Key"
    if not re.fullmatch(IDEMPOTENCY_KEY_PATTERN, header):
        raise CommandRejected("invalid", "idempotency key: 1-128 of letters, digits, '-', '_'", field)
    if body is not None and body != header:
        raise CommandRejected("invalid", "the Idempotency-Key header and idempotency_key differ", field)
    return header, field


def _write(kind: str) -> Any:
    def handler(c: Call) -> Any:
        b, pid, sid = c.body, c.project.project_id, c.params["slide_id"]
        views.require_slide(c.project, sid, segmented=True)
        ids = b.ids if b.ids is not None else views.ids_in_polygon(c.project, sid, b.polygon)
        cmd: Any
        if kind == "label":
            source = "brush" if b.polygon is not None and b.source == "click" else b.source
            cmd = LabelSuperpixels(
                project_id=pid, slide_id=sid, ids=ids, category_id=b.category_id, source=source
            )
        elif kind == "unlabel":
            source = "brush" if b.polygon is not None and b.source == "click" else b.source
            cmd = UnlabelSuperpixels(project_id=pid, slide_id=sid, ids=ids, source=source)
        else:
            cmd = ReviewLabels(
                project_id=pid, slide_id=sid, ids=ids, action=b.action, category_id=b.category_id
            )
        key, field = _idempotency_key(c)
        try:
            result = c.svc.execute(cmd, c.actor, f"{c.user}:{key}" if key else None)
        except CommandRejected as exc:
            if exc.code == "idempotency_key_reused":
                exc.field = field
            raise
        return {"command_id": result.command_id, "appended": result.appended, "duplicate": result.duplicate,
                "ids": len(ids)}  # fmt: skip

    return handler


@app.route("/projects/{project_id}/slides/{slide_id}/labels", methods=["POST"])
def label(project_id: str, slide_id: str) -> Any:
    return run(app, "label", _write("label"), {"project_id": project_id, "slide_id": slide_id})


@app.route("/projects/{project_id}/slides/{slide_id}/unlabel", methods=["POST"])
def unlabel(project_id: str, slide_id: str) -> Any:
    return run(app, "unlabel", _write("unlabel"), {"project_id": project_id, "slide_id": slide_id})


@app.route("/projects/{project_id}/slides/{slide_id}/review", methods=["POST"])
def review_labels(project_id: str, slide_id: str) -> Any:
    return run(app, "review", _write("review"), {"project_id": project_id, "slide_id": slide_id})


def _changes(c: Call) -> Any:
    state, q = c.project, c.query
    out: dict[str, Any] = {"project_seq": state.seq}
    if q.slide is not None:
        views.require_slide(state, q.slide)
        pid = state.project_id

        def load(buckets: set[int]) -> Any:
            return c.svc.projections.load_slide(pid, q.slide, buckets=buckets)

        out["slide_id"] = q.slide
        out.update(
            changes.label_changes(
                c.svc.events, load, pid, q.slide, q.labels_seq, state.resolve, q.labels_cursor
            )
        )
    return out


@app.route("/projects/{project_id}/changes", methods=["GET"])
def changes_since(project_id: str) -> Any:
    return run(app, "changes", _changes, {"project_id": project_id})


# ---- guided queue, review list, agreement ----------------------------------------------------


def _queue(c: Call) -> Any:
    state, n = c.project, c.query.n
    seg = views.segmented_slides(state)
    entries = {sid: views.current_labels(c.svc, state.project_id, sid).entries for sid in seg}
    overlap = state.settings.label_overlap
    double = {sid: queue.doubled(state.project_id, sid, int(v["count"]), overlap) for sid, v in seg.items()}
    labeled = {sid: queue.done_for(entries[sid], double[sid], c.user) for sid in seg}
    preds = views.model_predictions(state, sorted(seg))
    # A prediction in a category merged into an excluded one counts as excluded too.
    excluded = {
        cid for cid in state.categories
        if (r := state.resolve(cid)) is None or state.categories[r].excluded
    }  # fmt: skip
    # Room for what colleagues hold right now; each handed-out superpixel is leased.
    room = min(5000, 4 * n + 100)
    if preds:
        candidates = queue.uncertainty_queue(preds, labeled, excluded, room)
    else:
        counts = {s: int(v["count"]) for s, v in seg.items()}
        candidates = queue.spread_queue(state.project_id, counts, labeled, room)
    now = time.time()
    leases = c.svc.leases
    items = queue.lease_items(
        candidates,
        labelers=lambda sid, sp: set((entries[sid].get(sp) or {}).get("l") or {}),
        slots=lambda sid, sp: queue.slots_of(double[sid], sp),
        user=c.user,
        take=lambda lease, spent: leases.take(state.project_id, lease, now, spent),
        until=now + LEASE_S,
        n=n,
        held=leases.held(state.project_id, now),
    )
    out = []
    for item in items:
        prediction = state.resolve(item.prediction) if item.prediction else None
        row: dict[str, Any] = {"slide_id": item.slide_id, "id": item.id, "prediction": prediction,
                               "certainty": item.certainty, "bbox": None, "centroid": None}  # fmt: skip
        try:
            table = views.table_for(state, item.slide_id)
            r = int(table.rows(np.array([item.id]))[0])
            if r >= 0:
                row["bbox"] = [int(v) for v in table.bbox[r]]
                row["centroid"] = [float(v) for v in table.centroid[r]]
        except (CommandRejected, OSError, ValueError):
            pass  # geometry is a convenience; the queue still names the superpixel
        out.append(row)
    model = state.current_model
    return {"items": out, "model_version": model["model_version"] if model and preds else None}


@app.route("/projects/{project_id}/queue", methods=["GET"])
def next_in_queue(project_id: str) -> Any:
    return run(app, "queue", _queue, {"project_id": project_id})


def _rows(c: Call) -> list[review.Row]:
    """The review rows of the query's slide (all slides when it names none)."""
    if c.query.slide is not None:
        views.require_slide(c.project, c.query.slide)
    return views.review_rows(c.svc, c.project, c.query.slide)


def _boxes(c: Call, slide_id: str, ids: list[int]) -> dict[int, list[int]]:
    try:
        table = views.table_for(c.project, slide_id)
        rows = table.rows(np.array(ids, np.int64))
    except (CommandRejected, OSError, ValueError):
        return {}  # thumbnails are a convenience; the rows stand without them
    return {sp: [int(v) for v in table.bbox[r]] for sp, r in zip(ids, rows.tolist(), strict=True) if r >= 0}


def _review_list(c: Call) -> Any:
    page = review.review_page(_rows(c), c.query)
    page["items"] = review.with_boxes(page["items"], lambda sid, ids: _boxes(c, sid, ids))
    return page


@app.route("/projects/{project_id}/review", methods=["GET"])
def review_list(project_id: str) -> Any:
    return run(app, "review_list", _review_list, {"project_id": project_id})


def _review_ids(c: Call) -> Any:
    return review.review_ids(_rows(c), c.query)


@app.route("/projects/{project_id}/review/ids", methods=["GET"])
def review_ids(project_id: str) -> Any:
    return run(app, "review_ids", _review_ids, {"project_id": project_id})


def _agreement(c: Call) -> Any:
    state = c.project
    rows = _rows(c)
    cats = [cat.id for cat in state.live_categories()]
    by_user: dict[str, dict[tuple[str, int], str]] = {}
    for r in rows:
        for user, cat in r["labels"].items():
            by_user.setdefault(user, {})[(r["slide_id"], r["id"])] = cat
    labels = {(r["slide_id"], r["id"]): r["label"] for r in rows if r["label"] and r["prediction"]}
    preds = {(r["slide_id"], r["id"]): r["prediction"] for r in rows if r["label"] and r["prediction"]}
    return {
        "users": agreement.user_agreement(by_user, cats),
        "predictions": agreement.pair_agreement(labels, preds, cats) if labels else None,
    }


@app.route("/projects/{project_id}/agreement", methods=["GET"])
def agreement_route(project_id: str) -> Any:
    return run(app, "agreement", _agreement, {"project_id": project_id})


# ---- training --------------------------------------------------------------------------------


def _request_training(c: Call) -> Any:
    result = c.svc.request_training(c.project.project_id, c.actor)
    state = _fresh(c)
    stream = project_stream(state.project_id)
    seq = next(e["seq"] for e in result.events if e["stream"] == stream)
    event = next(iter(c.svc.events.read(stream, after=seq - 1, upto=seq)))
    return {"request_id": event.payload["request_id"]}


@app.route("/projects/{project_id}/training", methods=["POST"])
def request_training(project_id: str) -> Any:
    return run(app, "request_training", _request_training, {"project_id": project_id})


def _training(c: Call) -> Any:
    state = c.project
    total = c.svc.labels_total(state.project_id)
    # Superpixels with a label now, from each slide's projection summary (no buckets read):
    # `labels_total` counts label edits (relabels and every member's), which drives retraining.
    labeled = sum(
        sum(c.svc.projections.load_slide(state.project_id, sid, buckets=set()).counts.values())
        for sid in state.slides
    )
    return {
        "runs": [r.model_dump() for r in state.training.values()],
        "models": state.models,
        "current_model": state.current_model,
        "labels_total": total,
        "labeled_superpixels": labeled,
        "labels_since_request": max(0, total - state.last_request_labels_total),
        "threshold": state.settings.retrain_threshold,
    }


@app.route("/projects/{project_id}/training", methods=["GET"])
def training(project_id: str) -> Any:
    return run(app, "training", _training, {"project_id": project_id})


# ---- audit -------------------------------------------------------------------------------------


def _history(c: Call) -> Any:
    q, pid = c.query, c.project.project_id
    if q.slide is not None:
        views.require_slide(c.project, q.slide)
    if q.slide is None:
        stream = project_stream(pid)
        events = list(c.svc.events.read(stream))
        return audit.history(stream, events, q.after_seq, q.limit, q.superpixel, q.user, q.type)
    streams = stream_events(c.svc.events, pid, q.slide)
    return audit.slide_history(label_stream(pid, q.slide), streams, q.after_seq, q.limit, q.superpixel,
                               q.user, q.type)  # fmt: skip


@app.route("/projects/{project_id}/audit/history", methods=["GET"])
def audit_history(project_id: str) -> Any:
    return run(app, "audit_history", _history, {"project_id": project_id})


def _replay(c: Call) -> Any:
    pid = c.project.project_id
    as_of = audit.normalize_instant(c.query.as_of)
    p_events = list(c.svc.events.read(project_stream(pid)))
    chains = {project_stream(pid): verify_chain(p_events) is None}
    then = audit.replay_project(p_events, as_of)
    slides = {}
    for sid in [c.query.slide] if c.query.slide else sorted(then.slides):
        if sid not in then.slides:
            raise CommandRejected("not_found", f"slide {sid!r} did not exist at {as_of}", "slide", 404)
        streams = stream_events(c.svc.events, pid, sid)
        chains.update({stream: verify_chain(ev) is None for stream, ev in streams.items()})
        slides[sid] = audit.replay_slide(pid, sid, [e for ev in streams.values() for e in ev], as_of)
    return {"as_of": as_of, "project": project_out(then) if then.exists else None, "slides": slides,
            "chains": chains}  # fmt: skip


@app.route("/projects/{project_id}/audit/replay", methods=["GET"])
def audit_replay(project_id: str) -> Any:
    return run(app, "audit_replay", _replay, {"project_id": project_id})


# ---- export ------------------------------------------------------------------------------------


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
    return _see_other(key)


def _json_or_copy(out: dict[str, Any], stem: str) -> Response:
    """`out` as the answer (serialized once), or, when hundreds of thousands of superpixels outgrow a Lambda
    response, a 303 to a copy in the data bucket named by its content, so that every reader of
    the same answer shares one object."""
    text = json.dumps(out, separators=(",", ":"))
    body = text.encode()
    if len(body) <= data.inline_response_limit():
        return Response(body=text, status_code=200, headers={"Content-Type": "application/json"})
    key = f"{stem}-{hashlib.sha256(body).hexdigest()[:16]}.json"
    if not data.exists(key):
        data.put_export(key, body, "application/json")
    return _see_other(key)


def _see_other(key: str) -> Response:
    return Response(
        body="", status_code=303, headers={"Location": data.presign_get(key), "Cache-Control": "no-store"}
    )


def _export(c: Call) -> Any:
    q, state = c.query, c.project
    anchor_on_export(c.svc, state.project_id)  # the audit trail is anchored at every export
    rows = _rows(c)
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


@app.route("/projects/{project_id}/export", methods=["GET"])
def export_route(project_id: str) -> Any:
    return run(app, "export", _export, {"project_id": project_id})


# ---- self-service: browser upload, slide removal, invitations, jobs, models -------------------


def _upload_key(c: Call, slide_id: str, filename: str) -> str:
    return f"{data.slide_prefix(c.project.project_id, slide_id)}/source/{filename}"


def _create_upload(c: Call) -> Any:
    b = c.body
    sid = f"s{uuid.uuid4().hex[:10]}"
    part_size, parts = selfservice.part_plan(b.size)
    upload_id = data.create_multipart(_upload_key(c, sid, b.filename))
    return {"upload_id": upload_id, "slide_id": sid, "filename": b.filename, "part_size": part_size,
            "parts": parts}  # fmt: skip


@app.route("/projects/{project_id}/uploads", methods=["POST"])
def create_upload(project_id: str) -> Any:
    return run(app, "create_upload", _create_upload, {"project_id": project_id})


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


@app.route("/projects/{project_id}/uploads/parts", methods=["POST"])
def upload_parts(project_id: str) -> Any:
    return run(app, "upload_parts", _upload_parts, {"project_id": project_id})


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
    started = _slide_job(c, b.slide_id, "ingest", _fresh(c))
    return {"slide": slide_out(_fresh(c).slides[b.slide_id]), "job_id": started["job_id"]}


@app.route("/projects/{project_id}/uploads/complete", methods=["POST"])
def complete_upload(project_id: str) -> Any:
    return run(app, "complete_upload", _complete_upload, {"project_id": project_id})


def _remove_slide(c: Call) -> Any:
    sid = c.params["slide_id"]
    c.svc.execute(RemoveSlide(project_id=c.project.project_id, slide_id=sid), c.actor)
    return {"removed": sid}


@app.route("/projects/{project_id}/slides/{slide_id}", methods=["DELETE"])
def remove_slide(project_id: str, slide_id: str) -> Any:
    return run(app, "remove_slide", _remove_slide, {"project_id": project_id, "slide_id": slide_id})


def _superpixel_estimate(c: Call) -> Any:
    from histolabel.segmentation.output import choose_level

    sid, q = c.params["slide_id"], c.query
    views.require_slide(c.project, sid)
    ingest = c.project.slides[sid].ingest
    if ingest is None:
        raise CommandRejected("invalid", f"slide {sid!r} is not ingested yet", "slide_id", 409)
    meta = {"histolabel": {"magnification": ingest.get("magnification"), "mpp": ingest.get("mpp")}}
    level = choose_level(meta, int(ingest["levels"]), q.magnification)
    compactness = c.query.compactness or c.project.settings.compactness
    coarse = selfservice.coarse_level(level.index, int(ingest["levels"]), q.superpixel_size)
    w, h = int(ingest["width"]), int(ingest["height"])
    try:
        rgb, tissue = data.coarse_slide(ingest["zarr_uri"], coarse, ingest.get("tissue_mask_uri"))
        fraction = float(tissue.mean())
        count = selfservice.sampled_superpixel_count(
            rgb, tissue, q.superpixel_size, compactness, 2 ** (coarse - level.index)
        )
        method = "sampled"
    except (OSError, KeyError, ValueError):
        # The pyramid cannot be read: fall back to the area ratio over the whole slide.
        fraction = 1.0
        count = selfservice.expected_superpixel_count(w, h, 2**level.index, fraction, q.superpixel_size)
        method = "area"
    return {"count": count, "method": method, "level": level.index, "magnification": level.magnification,
            "tissue_fraction": round(fraction, 4), "width": w, "height": h}  # fmt: skip


@app.route("/projects/{project_id}/slides/{slide_id}/superpixel-estimate", methods=["GET"])
def superpixel_estimate(project_id: str, slide_id: str) -> Any:
    return run(
        app, "superpixel_estimate", _superpixel_estimate, {"project_id": project_id, "slide_id": slide_id}
    )


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


@app.route("/projects/{project_id}/invitations", methods=["POST"])
def invite(project_id: str) -> Any:
    return run(app, "invite", _invite, {"project_id": project_id})


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


@app.route("/projects/{project_id}/jobs", methods=["GET"])
def list_jobs(project_id: str) -> Any:
    return run(app, "list_jobs", _list_jobs, {"project_id": project_id})


def _retry_job(c: Call) -> Any:
    job = c.project.jobs.get(c.params["job_id"])
    if job is None or job.get("slide_id") is None:
        raise CommandRejected("not_found", f"job {c.params['job_id']!r} is not a slide job of this project",
                              "job_id", 404)  # fmt: skip
    return _slide_job(c, job["slide_id"], job["job"])


@app.route("/projects/{project_id}/jobs/{job_id}/retry", methods=["POST"])
def retry_job(project_id: str, job_id: str) -> Any:
    return run(app, "retry_job", _retry_job, {"project_id": project_id, "job_id": job_id})


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
        job_id = SERVICES.submitter.submit("predict", args, job_name("predict", pid))
        c.svc.execute(RecordJobSubmitted(project_id=pid, job="predict", job_id=job_id), c.actor)
    return {"model_version": version, "job_id": job_id}


@app.route("/projects/{project_id}/models/{version}/use", methods=["POST"])
def select_model(project_id: str, version: str) -> Any:
    return run(app, "select_model", _select_model, {"project_id": project_id, "version": version})


# The stream and job-event functions live in functions/handlers/ (light modules, own zips).


__all__ = ["app", "error"]
