"""One pydantic model per event type. An event's `data` is validated against its model on
the way in and upcast from older schema versions on the way out."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

Identifier = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
UserId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@:+-]{0,127}$")]
Color = Annotated[str, StringConstraints(pattern=r"^#[0-9a-fA-F]{6}$")]
Role = Literal["owner", "annotator", "reviewer", "auditor"]
CertaintyMetric = Literal["confidence", "margin", "entropy", "batchbald"]
# "imported": vectors computed elsewhere and imported per object (histolabel import features).
FeatureKind = Literal["handcrafted", "patch", "foundation", "imported"]
ModelKind = Literal["linear", "cnn"]
LabelSource = Literal["click", "brush", "guided", "bulk", "import"]
ReviewAction = Literal["approve", "change", "clear"]

# One key, optionally with modifiers: "1", "q", "shift+a", "ctrl+alt+3".
HOTKEY = re.compile(r"^((ctrl|alt|shift|meta)\+){0,3}([a-z0-9]|f[1-9]|f1[0-2])$")
MAX_IDS_PER_EVENT = 4096


class Actor(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    user: UserId
    site: Annotated[str, StringConstraints(min_length=1, max_length=64)]


class EventData(BaseModel):
    """Base of every event payload."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    VERSION: ClassVar[int] = 1
    # Upcasters turn a payload of version N into one of version N+1.
    UPCASTERS: ClassVar[dict[int, Callable[[dict[str, Any]], dict[str, Any]]]] = {}


class ProjectSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    superpixel_size: int = Field(
        default=64, ge=8, le=1024, description="SLIC region side, px at magnification"
    )
    magnification: float = Field(default=20.0, gt=0, le=100)
    compactness: float = Field(default=10.0, gt=0, le=1000)
    certainty_metric: CertaintyMetric = "confidence"
    feature_kind: FeatureKind = "handcrafted"
    model_kind: ModelKind = "linear"
    retrain_threshold: int = Field(default=50, ge=1, le=100_000)
    label_overlap: float = Field(
        default=0.0,
        ge=0,
        le=1,
        strict=True,
        description="share of superpixels the guided queue gives two annotators",
    )


class ProjectCreated(EventData):
    project_id: Identifier
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    settings: ProjectSettings


class SettingsChanged(EventData):
    settings: ProjectSettings


class MemberAdded(EventData):
    user: UserId
    role: Role
    site: Annotated[str, StringConstraints(min_length=1, max_length=64)]


class RoleChanged(EventData):
    user: UserId
    role: Role


class MemberRemoved(EventData):
    user: UserId


class CategoryAdded(EventData):
    category_id: Identifier
    name: Annotated[str, StringConstraints(min_length=1, max_length=100, strip_whitespace=True)]
    color: Color
    hotkey: str | None = None

    @field_validator("hotkey")
    @classmethod
    def _hotkey(cls, v: str | None) -> str | None:
        return check_hotkey(v)


class CategoryRenamed(EventData):
    category_id: Identifier
    name: Annotated[str, StringConstraints(min_length=1, max_length=100, strip_whitespace=True)]


class CategoryRecolored(EventData):
    category_id: Identifier
    color: Color


class CategoryHotkeySet(EventData):
    category_id: Identifier
    hotkey: str | None

    @field_validator("hotkey")
    @classmethod
    def _hotkey(cls, v: str | None) -> str | None:
        return check_hotkey(v)


class CategoryExcluded(EventData):
    category_id: Identifier


class CategoryIncluded(EventData):
    category_id: Identifier


class CategoriesMerged(EventData):
    sources: list[Identifier] = Field(min_length=1, max_length=100)
    target: Identifier

    @model_validator(mode="after")
    def _target_not_a_source(self) -> CategoriesMerged:
        if self.target in self.sources:
            raise ValueError("target must not be one of the sources")
        if len(set(self.sources)) != len(self.sources):
            raise ValueError("sources must be distinct")
        return self


class CategoryDeleted(EventData):
    category_id: Identifier
    # Labels in a deleted category become unlabeled; the count is recorded so the
    # consequence is explicit in the history.
    labels_cleared: int = Field(default=0, ge=0)


class SlideRegistered(EventData):
    slide_id: Identifier
    name: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    source_uri: Annotated[str, StringConstraints(pattern=r"^s3://[a-z0-9.-]{3,63}/.+")]


class SlideIngested(EventData):
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


class SegmentationCompleted(EventData):
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


class FeaturesCompleted(EventData):
    slide_id: Identifier
    kind: FeatureKind
    uri: str
    dim: int = Field(gt=0)


JobKindName = Literal[
    "ingest", "segment", "embed", "train", "predict",
    "import_segmentation", "import_labels", "import_features", "export",
]  # fmt: skip


JobId = Annotated[str, StringConstraints(min_length=1, max_length=200)]
JobCause = Literal["succeeded", "exit", "signal", "timeout", "oom", "host", "cancelled", "unknown"]


class JobSubmitted(EventData):
    job: JobKindName
    job_id: JobId
    slide_id: Identifier | None = None
    # A train job's request: the run then answers for the id the runner returned.
    request_id: Identifier | None = None


class JobFailed(EventData):
    job: JobKindName
    slide_id: Identifier | None = None
    reason: Annotated[str, StringConstraints(min_length=1, max_length=2000)]
    # The runner's id of the job that reported (AWS_BATCH_JOB_ID), so its JobEnded adds no twin.
    job_id: JobId | None = None


class JobEnded(EventData):
    """A job's terminal state as its runner saw it (AWS Batch, or the local runner), however
    it ended: exit, signal, timeout, out of memory, host termination."""

    job: JobKindName
    job_id: JobId
    status: Literal["SUCCEEDED", "FAILED"]
    cause: JobCause
    reason: Annotated[str, StringConstraints(min_length=1, max_length=2000)]
    exit_code: int | None = None
    slide_id: Identifier | None = None
    request_id: Identifier | None = None


class _Ids(EventData):
    slide_id: Identifier
    ids: list[Annotated[int, Field(ge=1, le=2**32 - 1)]] = Field(min_length=1, max_length=MAX_IDS_PER_EVENT)

    @field_validator("ids")
    @classmethod
    def _distinct(cls, ids: list[int]) -> list[int]:
        if len(set(ids)) != len(ids):
            raise ValueError("superpixel ids must be distinct")
        return ids


class SuperpixelsLabeled(_Ids):
    VERSION: ClassVar[int] = 2
    # v1 carried no source: every label then came from a click.
    UPCASTERS: ClassVar[dict[int, Callable[[dict[str, Any]], dict[str, Any]]]] = {
        1: lambda d: {**d, "source": "click"}
    }
    category_id: Identifier
    source: LabelSource


class SuperpixelsUnlabeled(_Ids):
    source: LabelSource = "click"


class LabelsReviewed(_Ids):
    action: ReviewAction
    category_id: Identifier | None = None

    @model_validator(mode="after")
    def _category_only_for_change(self) -> LabelsReviewed:
        if (self.action == "change") != (self.category_id is not None):
            raise ValueError("category_id is required for 'change' and not allowed otherwise")
        return self


class TrainingRequested(EventData):
    request_id: Identifier
    reason: Literal["manual", "threshold"]
    labels_total: int = Field(ge=0)


class TrainingStarted(EventData):
    request_id: Identifier
    job_id: Annotated[str, StringConstraints(min_length=1, max_length=200)]


class TrainingCompleted(EventData):
    request_id: Identifier
    model_version: int = Field(ge=1)
    model_uri: str
    metrics: dict[str, Any]
    label_count: int = Field(default=0, ge=0)


class TrainingFailed(EventData):
    request_id: Identifier
    reason: Annotated[str, StringConstraints(min_length=1, max_length=2000)]


class SlideRemoved(EventData):
    """An owner took a slide out of the project (a failed upload, a wrong file); its events stay
    in the log, and its id is never used again."""

    slide_id: Identifier


class ModelSelected(EventData):
    """An owner chose which trained model version the project uses (the queue and overlay follow
    once its predictions are published)."""

    model_version: int = Field(ge=1)


class PredictionsPublished(EventData):
    model_version: int = Field(ge=1)
    uri_prefix: str
    slides: list[Identifier]
    metric: CertaintyMetric


def check_hotkey(value: str | None) -> str | None:
    if value is None:
        return None
    v = value.strip().lower()
    if not HOTKEY.match(v):
        raise ValueError(f"hotkey {value!r} is not a key with optional ctrl/alt/shift/meta modifiers")
    return v


EVENT_TYPES: dict[str, type[EventData]] = {
    cls.__name__: cls
    for cls in (
        ProjectCreated,
        SettingsChanged,
        MemberAdded,
        RoleChanged,
        MemberRemoved,
        CategoryAdded,
        CategoryRenamed,
        CategoryRecolored,
        CategoryHotkeySet,
        CategoryExcluded,
        CategoryIncluded,
        CategoriesMerged,
        CategoryDeleted,
        SlideRegistered,
        SlideIngested,
        SegmentationCompleted,
        FeaturesCompleted,
        JobSubmitted,
        JobFailed,
        JobEnded,
        SuperpixelsLabeled,
        SuperpixelsUnlabeled,
        LabelsReviewed,
        TrainingRequested,
        TrainingStarted,
        TrainingCompleted,
        TrainingFailed,
        PredictionsPublished,
        SlideRemoved,
        ModelSelected,
    )
}
LABEL_EVENT_TYPES = frozenset({"SuperpixelsLabeled", "SuperpixelsUnlabeled", "LabelsReviewed"})


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
