"""The project stream's fold: settings, members, categories (merges, exclusions, deletions
resolved), slides and their processing, training requests and models."""

from __future__ import annotations

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
    elif t == "JobFailed":
        failure = {**d, "at": event.at}
        if d.get("slide_id") in state.slides:
            state.slides[d["slide_id"]].failures.append(failure)
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


def fold_project(events: list[StoredEvent], state: ProjectState | None = None) -> ProjectState:
    state = state if state is not None else ProjectState()
    for event in events:
        apply_project_event(state, event)
    return state
