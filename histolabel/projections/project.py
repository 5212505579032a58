"""The project stream's fold: settings, members, categories (merges, exclusions, deletions
resolved), slides and their processing, training requests and models."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, Field

from histolabel.events.catalogue import ProjectSettings, upcast
from histolabel.events.envelope import GENESIS_HASH, StoredEvent


class Member(BaseModel):
    role: str
    site: str
    since: str


class Category(BaseModel):
    id: str
    name: str
    color: str
    hotkey: str | None = None
    excluded: bool = False
    deleted: bool = False
    merged_into: str | None = None


class SlideInfo(BaseModel):
    slide_id: str
    name: str
    source_uri: str
    registered_at: str
    ingest: dict[str, Any] | None = None
    segmentation: dict[str, Any] | None = None
    features: dict[str, dict[str, Any]] = Field(default_factory=dict)
    failures: list[dict[str, Any]] = Field(default_factory=list)


class TrainingRun(BaseModel):
    request_id: str
    reason: str
    labels_total: int
    requested_at: str
    requested_by: str
    status: str = "requested"  # requested | started | completed | failed
    job_id: str | None = None
    model_version: int | None = None
    reason_failed: str | None = None


class ProjectState(BaseModel):
    project_id: str = ""
    name: str = ""
    created_at: str = ""
    settings: ProjectSettings = Field(default_factory=ProjectSettings)
    members: dict[str, Member] = Field(default_factory=dict)
    categories: dict[str, Category] = Field(default_factory=dict)
    slides: dict[str, SlideInfo] = Field(default_factory=dict)
    training: dict[str, TrainingRun] = Field(default_factory=dict)
    jobs: dict[str, dict[str, Any]] = Field(default_factory=dict)
    models: list[dict[str, Any]] = Field(default_factory=list)
    predictions: dict[str, Any] | None = None
    last_request_labels_total: int = 0
    removed_slides: list[str] = Field(default_factory=list)
    selected_model: int | None = None
    seq: int = 0
    hash: str = GENESIS_HASH

    @property
    def exists(self) -> bool:
        return self.seq > 0

    def resolve(self, category_id: str | None) -> str | None:
        """Follow merges to the surviving category; None when it was deleted or is unknown."""
        seen = set()
        while category_id is not None and category_id not in seen:
            seen.add(category_id)
            cat = self.categories.get(category_id)
            if cat is None or cat.deleted:
                return None
            if cat.merged_into is None:
                return category_id
            category_id = cat.merged_into
        return None

    def live_categories(self) -> list[Category]:
        return [c for c in self.categories.values() if not c.deleted and c.merged_into is None]

    def trainable_categories(self) -> list[Category]:
        return [c for c in self.live_categories() if not c.excluded]

    @property
    def current_model(self) -> dict[str, Any] | None:
        """The version an owner chose (ModelSelected), else the newest."""
        chosen = [m for m in self.models if m["model_version"] == self.selected_model]
        return chosen[-1] if chosen else (self.models[-1] if self.models else None)

    def owns_job(self, job_id: str) -> bool:
        return job_id in self.jobs or any(r.job_id == job_id for r in self.training.values())

    def role_of(self, user: str) -> str | None:
        member = self.members.get(user)
        return member.role if member else None


def apply_project_event(state: ProjectState, event: StoredEvent) -> ProjectState:
    """Fold one project-stream event into `state` (updated in place and returned)."""
    d = upcast(event.type, event.v, event.payload)
    t = event.type
    if t == "ProjectCreated":
        state.project_id = d["project_id"]
        state.name = d["name"]
        state.created_at = event.at
        state.settings = ProjectSettings(**d["settings"])
    elif t == "SettingsChanged":
        state.settings = ProjectSettings(**d["settings"])
    elif t == "MemberAdded":
        state.members[d["user"]] = Member(role=d["role"], site=d["site"], since=event.at)
    elif t == "RoleChanged":
        state.members[d["user"]].role = d["role"]
    elif t == "MemberRemoved":
        state.members.pop(d["user"], None)
    elif t == "CategoryAdded":
        state.categories[d["category_id"]] = Category(
            id=d["category_id"], name=d["name"], color=d["color"], hotkey=d.get("hotkey")
        )
    elif t == "CategoryRenamed":
        state.categories[d["category_id"]].name = d["name"]
    elif t == "CategoryRecolored":
        state.categories[d["category_id"]].color = d["color"]
    elif t == "CategoryHotkeySet":
        state.categories[d["category_id"]].hotkey = d["hotkey"]
    elif t == "CategoryExcluded":
        state.categories[d["category_id"]].excluded = True
    elif t == "CategoryIncluded":
        state.categories[d["category_id"]].excluded = False
    elif t == "CategoriesMerged":
        for source in d["sources"]:
            state.categories[source].merged_into = d["target"]
            state.categories[source].hotkey = None
    elif t == "CategoryDeleted":
        state.categories[d["category_id"]].deleted = True
        state.categories[d["category_id"]].hotkey = None
    elif t == "SlideRegistered":
        state.slides[d["slide_id"]] = SlideInfo(
            slide_id=d["slide_id"], name=d["name"], source_uri=d["source_uri"], registered_at=event.at
        )
    elif t == "SlideIngested":
        state.slides[d["slide_id"]].ingest = {**d, "at": event.at}
    elif t == "SegmentationCompleted":
        state.slides[d["slide_id"]].segmentation = {**d, "at": event.at}
    elif t == "FeaturesCompleted":
        state.slides[d["slide_id"]].features[d["kind"]] = {**d, "at": event.at}
    elif t == "JobSubmitted":
        state.jobs[d["job_id"]] = {**d, "at": event.at, "by": event.actor_user}
        run = state.training.get(d.get("request_id") or "")
        if run is not None and run.status in ("requested", "started"):
            run.job_id = d["job_id"]  # the runner's id, which GET .../jobs/{id} answers for
    elif t == "JobFailed":
        if d.get("slide_id") in state.slides:
            _add_failure(state.slides[d["slide_id"]], {**d, "at": event.at})
    elif t == "JobEnded":
        _job_ended(state, d, event.at)
    elif t == "TrainingRequested":
        state.training[d["request_id"]] = TrainingRun(
            request_id=d["request_id"],
            reason=d["reason"],
            labels_total=d["labels_total"],
            requested_at=event.at,
            requested_by=event.actor_user,
        )
        state.last_request_labels_total = max(state.last_request_labels_total, d["labels_total"])
    elif t == "TrainingStarted":
        run = state.training[d["request_id"]]
        run.status, run.job_id = "started", d["job_id"]
    elif t == "TrainingCompleted":
        run = state.training[d["request_id"]]
        run.status, run.model_version = "completed", d["model_version"]
        state.models.append({**d, "at": event.at})
        state.selected_model = None  # a new model is the one in use until an owner chooses again
    elif t == "TrainingFailed":
        run = state.training[d["request_id"]]
        run.status, run.reason_failed = "failed", d["reason"]
    elif t == "PredictionsPublished":
        state.predictions = {**d, "at": event.at}
    elif t == "SlideRemoved":
        state.slides.pop(d["slide_id"], None)
        state.removed_slides.append(d["slide_id"])
    elif t == "ModelSelected":
        state.selected_model = d["model_version"]
    state.seq = event.seq
    state.hash = event.hash
    return state


MAX_FAILURES_KEPT = 20  # per slide: the latest say what to retry; the event log keeps them all


def _add_failure(slide: SlideInfo, failure: dict[str, Any]) -> None:
    job_id = failure.get("job_id")
    if job_id and any(f.get("job_id") == job_id for f in slide.failures):
        return  # the job reported its own failure before its runner did
    slide.failures.append(failure)
    del slide.failures[:-MAX_FAILURES_KEPT]


def _job_ended(state: ProjectState, d: dict[str, Any], at: str) -> None:
    job = state.jobs.setdefault(d["job_id"], {"job": d["job"], "job_id": d["job_id"], "at": at})
    job.update({k: d[k] for k in ("status", "cause", "reason", "exit_code")}, ended_at=at)
    if d["status"] == "FAILED" and d.get("slide_id") in state.slides:
        failure = {k: d.get(k) for k in ("job", "slide_id", "reason", "job_id", "cause", "exit_code")}
        _add_failure(state.slides[d["slide_id"]], {**failure, "at": at})
    run = state.training.get(d.get("request_id") or "")
    if run is not None and run.status in ("requested", "started"):
        # The job is over and reported no model: whatever its exit status, the run has failed,
        # so nothing waits on it and a new run may start.
        run.status = "failed"
        run.reason_failed = d["reason"] if d["status"] == "FAILED" else "the job ended without a model"


def fold_project(events: list[StoredEvent], state: ProjectState | None = None) -> ProjectState:
    state = state if state is not None else ProjectState()
    for event in events:
        apply_project_event(state, event)
    return state


# ---- storage shape -------------------------------------------------------------------------
# A project's state is stored as many small items, not one that grows with every slide, job and
# training run: the head (settings, members, categories, checkpoint) and one item per slide, run,
# job and model, and the latest predictions. Keys hold each entry's place in its (append-only)
# collection, so items sort back into the order the fold made them in.

HEAD = "state"
PREDICTIONS = "predictions"
PARTS = {"slides": "S#", "training": "T#", "jobs": "J#", "models": "M#"}
_EXCLUDED_FROM_HEAD = set(PARTS) | {"predictions"}


def head_body(state: ProjectState) -> str:
    return state.model_dump_json(exclude=_EXCLUDED_FROM_HEAD)


def state_items(state: ProjectState) -> dict[str, str]:
    """Sort key -> JSON body of each stored item of `state`."""
    items = {HEAD: head_body(state)}
    for i, slide in enumerate(state.slides.values()):
        items[f"S#{i:06d}"] = slide.model_dump_json()
    for i, run in enumerate(state.training.values()):
        items[f"T#{i:06d}"] = run.model_dump_json()
    for i, (job_id, job) in enumerate(state.jobs.items()):
        items[f"J#{i:06d}"] = json.dumps({"job_id": job_id, "job": job}, separators=(",", ":"))
    for i, model in enumerate(state.models):
        items[f"M#{i:06d}"] = json.dumps(model, separators=(",", ":"))
    if state.predictions is not None:
        items[PREDICTIONS] = json.dumps(state.predictions, separators=(",", ":"))
    return items


def state_from_items(items: dict[str, str]) -> ProjectState:
    """The state `state_items` stored; items other than a project's own are ignored."""
    state = ProjectState.model_validate_json(items[HEAD])
    for key in sorted(items):
        body = items[key]
        if key.startswith("S#"):
            slide = SlideInfo.model_validate_json(body)
            state.slides[slide.slide_id] = slide
        elif key.startswith("T#"):
            run = TrainingRun.model_validate_json(body)
            state.training[run.request_id] = run
        elif key.startswith("J#"):
            entry = json.loads(body)
            state.jobs[entry["job_id"]] = entry["job"]
        elif key.startswith("M#"):
            state.models.append(json.loads(body))
        elif key == PREDICTIONS:
            state.predictions = json.loads(body)
    return state
