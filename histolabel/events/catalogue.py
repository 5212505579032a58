"""One pydantic model per event type: its data fields, schema version and upcasters, and for an
event of the project stream how it changes the project's state (`fold`). The class name is the
type stored with every event (never rename one); defining the class registers it.

An event's `data` is validated against its model on the way in and upcast from older schema
versions on the way out. Label events' effect on a superpixel's entry lives with the entry's
storage shape, in histolabel/projections/labels.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from histolabel.events.envelope import StoredEvent
from histolabel.events.fields import (
    MAX_IDS_PER_EVENT,
    CategoryName,
    CertaintyMetric,
    Color,
    FeatureKind,
    Identifier,
    JobCause,
    JobId,
    JobKindName,
    LabelSource,
    ProjectName,
    ProjectSettings,
    Reason,
    ReviewAction,
    Role,
    Site,
    SlideName,
    SourceUri,
    SuperpixelId,
    UserId,
    check_hotkey,
)
from histolabel.projections.state import Category, Member, ProjectState, SlideInfo, TrainingRun, add_failure


class Actor(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    user: UserId
    site: Site


EVENT_TYPES: dict[str, type[EventData]] = {}


class EventData(BaseModel):
    """Base of every event payload. A subclass is an event type, registered under its class name
    (the bases below, which set `BASE`, are not)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    VERSION: ClassVar[int] = 1
    # Upcasters turn a payload of version N into one of version N+1.
    UPCASTERS: ClassVar[dict[int, Callable[[dict[str, Any]], dict[str, Any]]]] = {}
    BASE: ClassVar[bool] = True

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if cls.__dict__.get("BASE", False):
            return
        if cls.__name__ in EVENT_TYPES:
            raise TypeError(f"event type {cls.__name__} is defined twice")
        EVENT_TYPES[cls.__name__] = cls


@dataclass(frozen=True)
class NewEvent:
    """An event a decision asks to append: the stream it goes on and its typed data. The stored
    type is the model's class name and `v` its VERSION."""

    stream: str
    data: EventData

    def __post_init__(self) -> None:
        if EVENT_TYPES.get(self.type) is not type(self.data):
            raise TypeError(f"{self.type} is not a registered event type")

    @property
    def type(self) -> str:
        return type(self.data).__name__


class ProjectEvent(EventData):
    """An event of the project stream (`P#{project}`)."""

    BASE: ClassVar[bool] = True

    @staticmethod
    def fold(state: ProjectState, d: dict[str, Any], event: StoredEvent) -> None:
        """Change `state` (in place) by this event. `d` is its data as stored, upcast to this
        version and not validated again: a fold reads what was written (validating would cost
        every read and add to the state the defaults of fields an older event never had);
        `event` is the envelope (`at`, `actor_user`)."""
        raise NotImplementedError(f"{event.type} has no fold")


class ProjectCreated(ProjectEvent):
    project_id: Identifier
    name: ProjectName
    settings: ProjectSettings

    @staticmethod
    def fold(state: ProjectState, d: dict[str, Any], event: StoredEvent) -> None:
        state.project_id = d["project_id"]
        state.name = d["name"]
        state.created_at = event.at
        state.settings = ProjectSettings(**d["settings"])


class SettingsChanged(ProjectEvent):
    settings: ProjectSettings

    @staticmethod
    def fold(state: ProjectState, d: dict[str, Any], event: StoredEvent) -> None:
        state.settings = ProjectSettings(**d["settings"])


class MemberAdded(ProjectEvent):
    user: UserId
    role: Role
    site: Site

    @staticmethod
    def fold(state: ProjectState, d: dict[str, Any], event: StoredEvent) -> None:
        state.members[d["user"]] = Member(role=d["role"], site=d["site"], since=event.at)


class RoleChanged(ProjectEvent):
    user: UserId
    role: Role

    @staticmethod
    def fold(state: ProjectState, d: dict[str, Any], event: StoredEvent) -> None:
        state.members[d["user"]].role = d["role"]


class MemberRemoved(ProjectEvent):
    user: UserId

    @staticmethod
    def fold(state: ProjectState, d: dict[str, Any], event: StoredEvent) -> None:
        state.members.pop(d["user"], None)


class CategoryAdded(ProjectEvent):
    category_id: Identifier
    name: CategoryName
    color: Color
    hotkey: str | None = None

    @field_validator("hotkey")
    @classmethod
    def _hotkey(cls, v: str | None) -> str | None:
        return check_hotkey(v)

    @staticmethod
    def fold(state: ProjectState, d: dict[str, Any], event: StoredEvent) -> None:
        state.categories[d["category_id"]] = Category(
            id=d["category_id"], name=d["name"], color=d["color"], hotkey=d.get("hotkey")
        )


class CategoryRenamed(ProjectEvent):
    category_id: Identifier
    name: CategoryName

    @staticmethod
    def fold(state: ProjectState, d: dict[str, Any], event: StoredEvent) -> None:
        state.categories[d["category_id"]].name = d["name"]


class CategoryRecolored(ProjectEvent):
    category_id: Identifier
    color: Color

    @staticmethod
    def fold(state: ProjectState, d: dict[str, Any], event: StoredEvent) -> None:
        state.categories[d["category_id"]].color = d["color"]


class CategoryHotkeySet(ProjectEvent):
    category_id: Identifier
    hotkey: str | None

    @field_validator("hotkey")
    @classmethod
    def _hotkey(cls, v: str | None) -> str | None:
        return check_hotkey(v)

    @staticmethod
    def fold(state: ProjectState, d: dict[str, Any], event: StoredEvent) -> None:
        state.categories[d["category_id"]].hotkey = d["hotkey"]


class CategoryExcluded(ProjectEvent):
    category_id: Identifier

    @staticmethod
    def fold(state: ProjectState, d: dict[str, Any], event: StoredEvent) -> None:
        state.categories[d["category_id"]].excluded = True


class CategoryIncluded(ProjectEvent):
    category_id: Identifier

    @staticmethod
    def fold(state: ProjectState, d: dict[str, Any], event: StoredEvent) -> None:
        state.categories[d["category_id"]].excluded = False


class CategoriesMerged(ProjectEvent):
    sources: list[Identifier] = Field(min_length=1, max_length=100)
    target: Identifier

    @model_validator(mode="after")
    def _target_not_a_source(self) -> CategoriesMerged:
        if self.target in self.sources:
            raise ValueError("target must not be one of the sources")
        if len(set(self.sources)) != len(self.sources):
            raise ValueError("sources must be distinct")
        return self

    @staticmethod
    def fold(state: ProjectState, d: dict[str, Any], event: StoredEvent) -> None:
        for source in d["sources"]:
            state.categories[source].merged_into = d["target"]
            state.categories[source].hotkey = None


class CategoryDeleted(ProjectEvent):
    category_id: Identifier
    # Labels in a deleted category become unlabeled; the count is recorded so the
    # consequence is explicit in the history.
    labels_cleared: int = Field(default=0, ge=0)

    @staticmethod
    def fold(state: ProjectState, d: dict[str, Any], event: StoredEvent) -> None:
        state.categories[d["category_id"]].deleted = True
        state.categories[d["category_id"]].hotkey = None


class SlideRegistered(ProjectEvent):
    slide_id: Identifier
    name: SlideName
    source_uri: SourceUri

    @staticmethod
    def fold(state: ProjectState, d: dict[str, Any], event: StoredEvent) -> None:
        state.slides[d["slide_id"]] = SlideInfo(
            slide_id=d["slide_id"], name=d["name"], source_uri=d["source_uri"], registered_at=event.at
        )


class SlideIngested(ProjectEvent):
    slide_id: Identifier
    zarr_uri: str
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    levels: int = Field(ge=1)
    mpp: float | None = None
    magnification: float | None = None
    tissue_mask_uri: str | None = None
    source_bytes: int = Field(default=0, ge=0)
    pyramid_bytes: int = Field(default=0, ge=0)

    @staticmethod
    def fold(state: ProjectState, d: dict[str, Any], event: StoredEvent) -> None:
        state.slides[d["slide_id"]].ingest = {**d, "at": event.at}


class SegmentationCompleted(ProjectEvent):
    VERSION: ClassVar[int] = 2
    # v1 knew only SLIC; v2 also records imported segmentations (source "import"), which have
    # no superpixel size or compactness, and what the import kept and dropped.
    UPCASTERS: ClassVar[dict[int, Callable[[dict[str, Any]], dict[str, Any]]]] = {
        1: lambda d: {**d, "source": "slic"}
    }
    slide_id: Identifier
    count: int = Field(ge=0)
    labels_uri: str
    table_uri: str
    superpixel_size: float | None = Field(default=None, gt=0)
    magnification: float | None = None
    compactness: float | None = Field(default=None, gt=0)
    tile_size: int = Field(default=0, ge=0)
    source: Literal["slic", "import"] = "slic"
    format: Literal["geojson", "histomics", "tiff", "ngff"] | None = None
    file_name: Annotated[str, StringConstraints(max_length=255)] | None = None
    file_sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")] | None = None
    objects_uri: str | None = None  # imported geometry and external ids, for export
    level: int = Field(default=0, ge=0)
    # objects read, and per reason those dropped or changed (see histolabel.imports.objects)
    objects_read: int = Field(default=0, ge=0)
    dropped: dict[str, Annotated[int, Field(ge=0)]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _slic_has_parameters(self) -> SegmentationCompleted:
        if self.source == "slic" and (self.superpixel_size is None or self.compactness is None):
            raise ValueError("a SLIC segmentation records its superpixel_size and compactness")
        return self

    @staticmethod
    def fold(state: ProjectState, d: dict[str, Any], event: StoredEvent) -> None:
        state.slides[d["slide_id"]].segmentation = {**d, "at": event.at}


class FeaturesCompleted(ProjectEvent):
    slide_id: Identifier
    kind: FeatureKind
    uri: str
    dim: int = Field(gt=0)

    @staticmethod
    def fold(state: ProjectState, d: dict[str, Any], event: StoredEvent) -> None:
        state.slides[d["slide_id"]].features[d["kind"]] = {**d, "at": event.at}


class JobSubmitted(ProjectEvent):
    job: JobKindName
    job_id: JobId
    slide_id: Identifier | None = None
    # A train job's request: the run then answers for the id the runner returned.
    request_id: Identifier | None = None

    @staticmethod
    def fold(state: ProjectState, d: dict[str, Any], event: StoredEvent) -> None:
        state.jobs[d["job_id"]] = {**d, "at": event.at, "by": event.actor_user}
        run = state.training.get(d.get("request_id") or "")
        if run is not None and run.status in ("requested", "started"):
            run.job_id = d["job_id"]  # the runner's id, which GET .../jobs/{id} answers for


class JobFailed(ProjectEvent):
    job: JobKindName
    slide_id: Identifier | None = None
    reason: Reason
    # The runner's id of the job that reported (AWS_BATCH_JOB_ID), so its JobEnded adds no twin.
    job_id: JobId | None = None

    @staticmethod
    def fold(state: ProjectState, d: dict[str, Any], event: StoredEvent) -> None:
        if d.get("slide_id") in state.slides:
            add_failure(state.slides[d["slide_id"]], {**d, "at": event.at})


class JobEnded(ProjectEvent):
    """A job's terminal state as its runner saw it (AWS Batch, or the local runner), however
    it ended: exit, signal, timeout, out of memory, host termination."""

    job: JobKindName
    job_id: JobId
    status: Literal["SUCCEEDED", "FAILED"]
    cause: JobCause
    reason: Reason
    exit_code: int | None = None
    slide_id: Identifier | None = None
    request_id: Identifier | None = None

    @staticmethod
    def fold(state: ProjectState, d: dict[str, Any], event: StoredEvent) -> None:
        at = event.at
        job = state.jobs.setdefault(d["job_id"], {"job": d["job"], "job_id": d["job_id"], "at": at})
        job.update({k: d[k] for k in ("status", "cause", "reason", "exit_code")}, ended_at=at)
        if d["status"] == "FAILED" and d.get("slide_id") in state.slides:
            failure = {k: d.get(k) for k in ("job", "slide_id", "reason", "job_id", "cause", "exit_code")}
            add_failure(state.slides[d["slide_id"]], {**failure, "at": at})
        run = state.training.get(d.get("request_id") or "")
        if run is not None and run.status in ("requested", "started"):
            # The job is over and reported no model: whatever its exit status, the run has failed,
            # so nothing waits on it and a new run may start.
            run.status = "failed"
            run.reason_failed = d["reason"] if d["status"] == "FAILED" else "the job ended without a model"


class LabelEvent(EventData):
    """An event of a slide's label streams: it names superpixels of one slide."""

    BASE: ClassVar[bool] = True
    slide_id: Identifier
    ids: list[SuperpixelId] = Field(min_length=1, max_length=MAX_IDS_PER_EVENT)

    @field_validator("ids")
    @classmethod
    def _distinct(cls, ids: list[int]) -> list[int]:
        if len(set(ids)) != len(ids):
            raise ValueError("superpixel ids must be distinct")
        return ids


class SuperpixelsLabeled(LabelEvent):
    VERSION: ClassVar[int] = 2
    # v1 carried no source: every label then came from a click.
    UPCASTERS: ClassVar[dict[int, Callable[[dict[str, Any]], dict[str, Any]]]] = {
        1: lambda d: {**d, "source": "click"}
    }
    category_id: Identifier
    source: LabelSource


class SuperpixelsUnlabeled(LabelEvent):
    source: LabelSource = "click"


class LabelsReviewed(LabelEvent):
    action: ReviewAction
    category_id: Identifier | None = None

    @model_validator(mode="after")
    def _category_only_for_change(self) -> LabelsReviewed:
        if (self.action == "change") != (self.category_id is not None):
            raise ValueError("category_id is required for 'change' and not allowed otherwise")
        return self


class TrainingRequested(ProjectEvent):
    request_id: Identifier
    reason: Literal["manual", "threshold"]
    labels_total: int = Field(ge=0)

    @staticmethod
    def fold(state: ProjectState, d: dict[str, Any], event: StoredEvent) -> None:
        state.training[d["request_id"]] = TrainingRun(
            request_id=d["request_id"],
            reason=d["reason"],
            labels_total=d["labels_total"],
            requested_at=event.at,
            requested_by=event.actor_user,
        )
        state.last_request_labels_total = max(state.last_request_labels_total, d["labels_total"])


class TrainingStarted(ProjectEvent):
    request_id: Identifier
    job_id: JobId

    @staticmethod
    def fold(state: ProjectState, d: dict[str, Any], event: StoredEvent) -> None:
        run = state.training[d["request_id"]]
        run.status, run.job_id = "started", d["job_id"]


class TrainingCompleted(ProjectEvent):
    request_id: Identifier
    model_version: int = Field(ge=1)
    model_uri: str
    metrics: dict[str, Any]
    label_count: int = Field(default=0, ge=0)

    @staticmethod
    def fold(state: ProjectState, d: dict[str, Any], event: StoredEvent) -> None:
        run = state.training[d["request_id"]]
        run.status, run.model_version = "completed", d["model_version"]
        state.models.append({**d, "at": event.at})
        state.selected_model = None  # a new model is the one in use until an owner chooses again


class TrainingFailed(ProjectEvent):
    request_id: Identifier
    reason: Reason

    @staticmethod
    def fold(state: ProjectState, d: dict[str, Any], event: StoredEvent) -> None:
        run = state.training[d["request_id"]]
        run.status, run.reason_failed = "failed", d["reason"]


class SlideRemoved(ProjectEvent):
    """An owner took a slide out of the project (a failed upload, a wrong file); its events stay
    in the log, and its id is never used again."""

    slide_id: Identifier

    @staticmethod
    def fold(state: ProjectState, d: dict[str, Any], event: StoredEvent) -> None:
        state.slides.pop(d["slide_id"], None)
        state.removed_slides.append(d["slide_id"])


class ModelSelected(ProjectEvent):
    """An owner chose which trained model version the project uses (the queue and overlay follow
    once its predictions are published)."""

    model_version: int = Field(ge=1)

    @staticmethod
    def fold(state: ProjectState, d: dict[str, Any], event: StoredEvent) -> None:
        state.selected_model = d["model_version"]


class PredictionsPublished(ProjectEvent):
    model_version: int = Field(ge=1)
    uri_prefix: str
    slides: list[Identifier]
    metric: CertaintyMetric

    @staticmethod
    def fold(state: ProjectState, d: dict[str, Any], event: StoredEvent) -> None:
        state.predictions = {**d, "at": event.at}


LABEL_EVENT_TYPES = frozenset(name for name, model in EVENT_TYPES.items() if issubclass(model, LabelEvent))


class UnknownEventType(ValueError):
    pass


def model_for(event_type: str) -> type[EventData]:
    try:
        return EVENT_TYPES[event_type]
    except KeyError:
        raise UnknownEventType(f"unknown event type {event_type!r}") from None


def upcast(event_type: str, version: int, data: dict[str, Any]) -> dict[str, Any]:
    """Bring a stored payload up to the current schema version."""
    model = model_for(event_type)
    if version > model.VERSION:
        raise ValueError(f"{event_type} v{version} is newer than this code (v{model.VERSION})")
    while version < model.VERSION:
        data = model.UPCASTERS[version](data)
        version += 1
    return data
