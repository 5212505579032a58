"""The project's folded state: settings, members, categories (merges, exclusions, deletions
resolved), slides and their processing, training runs, jobs and models. Plain values; each event
type says how it changes them (`fold` in histolabel/events/catalogue.py)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from histolabel.events.envelope import GENESIS_HASH
from histolabel.events.fields import ProjectSettings


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


MAX_FAILURES_KEPT = 20  # per slide: the latest say what to retry; the event log keeps them all


def add_failure(slide: SlideInfo, failure: dict[str, Any]) -> None:
    job_id = failure.get("job_id")
    if job_id and any(f.get("job_id") == job_id for f in slide.failures):
        return  # the job reported its own failure before its runner did
    slide.failures.append(failure)
    del slide.failures[:-MAX_FAILURES_KEPT]
