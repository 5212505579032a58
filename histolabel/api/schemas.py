"""Request and response bodies of the HTTP API, as pydantic models (the OpenAPI document is
generated from them)."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    TypeAdapter,
    create_model,
    model_validator,
)
from pydantic.fields import FieldInfo

from histolabel.commands import IDEMPOTENCY_KEY_PATTERN, MAX_IDS_PER_COMMAND, CategoryName, refused_in_name
from histolabel.events import fields
from histolabel.events.fields import (
    CertaintyMetric,
    Color,
    FeatureKind,
    Identifier,
    JobKindName,
    LabelSource,
    ModelKind,
    ProjectSettings,
    ReviewAction,
    Role,
    Site,
    UserId,
    check_hotkey,
)


def _hotkey(value: str | None) -> str | None:
    return check_hotkey(value)


# check_hotkey's rule (catalogue.HOTKEY, after strip and lower) as a JSON Schema pattern, so the
# OpenAPI document says what the handler accepts (tests/unit/test_strict_input.py compares them).
HOTKEY_PATTERN = (
    r"^\s*(([Cc][Tt][Rr][Ll]|[Aa][Ll][Tt]|[Ss][Hh][Ii][Ff][Tt]|[Mm][Ee][Tt][Aa])\+){0,3}"
    r"([A-Za-z0-9]|[Ff][1-9]|[Ff]1[0-2])\s*$"
)
Hotkey = Annotated[
    str, StringConstraints(min_length=1, max_length=32, pattern=HOTKEY_PATTERN), AfterValidator(_hotkey)
]


# In bodies, JSON integers only: "1", true and 1.5 are not superpixel 1.
def whole_number(value: Any) -> Any:
    """JSON Schema's integer includes 1.0, so a JSON 1.0 is the integer 1; strings, booleans and
    fractions stay refused (Strict). After Strict and the bounds (so they stay minimum/maximum
    in the document): Annotated[int, Strict(), Field(...), BeforeValidator(whole_number)]."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


SuperpixelId = Annotated[fields.SuperpixelId, Strict(), BeforeValidator(whole_number)]
# In query strings everything is text; the value is parsed as an integer there.
# A relative path inside the slide's data: no leading '/', no empty, '.' or '..' segment.
DATA_KEY_SEGMENT = r"([^/.][^/]*|\.[^/.][^/]*|\.\.[^/]+)"
DATA_KEY_PATTERN = rf"^{DATA_KEY_SEGMENT}(/{DATA_KEY_SEGMENT})*$"
DataKey = Annotated[str, StringConstraints(min_length=1, max_length=512, pattern=DATA_KEY_PATTERN)]
SuperpixelIdParam = fields.SuperpixelId
IdempotencyKey = Annotated[str, StringConstraints(pattern=IDEMPOTENCY_KEY_PATTERN)]
Point = Annotated[list[Annotated[float, Strict(), Field(ge=-1e7, le=1e7)]], Field(min_length=2, max_length=2)]
MAX_POLYGON_POINTS = 10_000
MAX_DATA_KEYS = 1000


def exactly_one(*fields: tuple[str, str]) -> dict[str, Any]:
    """JSON Schema for "exactly one of these (name, JSON type) fields is given and not null"."""
    return {"oneOf": [{"required": [f], "properties": {f: {"type": t}}} for f, t in fields]}


ONE_SELECTION = exactly_one(("ids", "array"), ("polygon", "array"))


def _class(chars: list[int]) -> str:
    """A regex character class of these code points, in ranges; BMP ones as \\uXXXX and the others
    as themselves, which Python's re, Rust's regex (schemathesis' validator) and ECMA-262 all read."""
    runs: list[list[int]] = []
    for cp in chars:
        if runs and runs[-1][1] == cp - 1:
            runs[-1][1] = cp
        else:
            runs.append([cp, cp])

    def one(cp: int) -> str:
        return f"\\u{cp:04X}" if cp < 0x10000 else chr(cp)

    return "[" + "".join(one(a) if a == b else f"{one(a)}-{one(b)}" for a, b in runs) + "]"


@functools.cache
def category_name_pattern() -> str:
    """What a category name accepts, as a JSON Schema pattern, made from the validator's own
    rules: white space it trims (pydantic trims Unicode White_Space, not Python's isspace; all of
    it in the BMP) around 1..max_length characters of which none is refused (refused_in_name)
    and the first and last are not trimmed. Surrogates never reach it (JSON text is UTF-8)."""
    limits = next(m for m in get_args(CategoryName)[1:] if isinstance(m, StringConstraints))
    assert limits.max_length is not None and limits.max_length >= 2
    trim: TypeAdapter[str] = TypeAdapter(Annotated[str, StringConstraints(strip_whitespace=True)])
    scalars = [cp for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF]
    trimmed = [cp for cp in scalars if cp < 0x10000 and not trim.validate_python(chr(cp))]
    stripped = set(trimmed)
    allowed = [cp for cp in scalars if not refused_in_name(chr(cp))]
    edge = [cp for cp in allowed if cp not in stripped]
    w, a, e = _class(trimmed), _class(allowed), _class(edge)
    return f"^{w}*{e}({a}{{0,{limits.max_length - 2}}}{e})?{w}*$"


def _name_schema(schema: dict[str, Any]) -> None:
    # The length limit is on the trimmed name: the pattern holds it, not maxLength.
    schema.pop("maxLength", None)
    schema["pattern"] = category_name_pattern()


# The category name as the document states it (the validator is commands.CategoryName's).
DocumentedName = Annotated[CategoryName, Field(json_schema_extra=_name_schema)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---- requests ------------------------------------------------------------------------------


class ProjectSettingsIn(ProjectSettings):
    """The settings as a request sends them: JSON numbers and booleans only ("64" is not 64 and
    true is not a threshold of 1). Stored settings stay lax, so events read back as written."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    @model_validator(mode="before")
    @classmethod
    def _whole_numbers(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        ints = {name for name, f in cls.model_fields.items() if f.annotation is int}
        return {k: whole_number(v) if k in ints else v for k, v in data.items()}


class CreateProjectIn(Body):
    project_id: Identifier
    name: fields.ProjectName
    site: Site
    settings: ProjectSettingsIn = Field(default_factory=ProjectSettingsIn)


class SettingsIn(Body):
    settings: ProjectSettingsIn


# The same fields, types and bounds, each optional: a change names only what it changes.
ProjectSettingsPatch = create_model(
    "ProjectSettingsPatch",
    __base__=ProjectSettingsIn,
    __doc__="The settings to change; those left out keep their current values.",
    **{
        name: (f.annotation, FieldInfo.merge_field_infos(f, default=None))
        for name, f in ProjectSettingsIn.model_fields.items()
    },
)  # type: ignore[call-overload]


class SettingsPatchIn(Body):
    settings: ProjectSettingsPatch  # type: ignore[valid-type]


class AddMemberIn(Body):
    user: UserId
    role: Role
    site: Site


class ChangeRoleIn(Body):
    role: Role


class AddCategoryIn(Body):
    name: DocumentedName
    color: Color | None = None
    hotkey: Hotkey | None = None
    category_id: Identifier | None = None


class UpdateCategoryIn(Body):
    """Only the fields present change; `hotkey: null` clears the hotkey."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"required": ["name"], "properties": {"name": {"type": "string"}}},
                {"required": ["color"], "properties": {"color": {"type": "string"}}},
                {"required": ["hotkey"]},
            ]
        }
    )

    name: DocumentedName | None = None
    color: Color | None = None
    hotkey: Hotkey | None = None


class MergeCategoriesIn(Body):
    sources: list[Identifier] = Field(min_length=1, max_length=100)
    target: Identifier


class RegisterSlideIn(Body):
    model_config = ConfigDict(json_schema_extra=exactly_one(("filename", "string"), ("source_uri", "string")))

    name: fields.SlideName
    filename: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_. -]{0,200}$")] | None = None
    source_uri: Annotated[fields.SourceUri, StringConstraints(max_length=1024)] | None = None
    slide_id: Identifier | None = None

    @model_validator(mode="after")
    def _one_source(self) -> RegisterSlideIn:
        if (self.filename is None) == (self.source_uri is None):
            raise ValueError("give exactly one of filename (upload) or source_uri (existing S3 object)")
        return self


class StartJobIn(Body):
    job: Literal["ingest", "segment", "embed"]


class ExportJobIn(Body):
    format: Literal["geojson", "csv", "parquet"] = "geojson"
    anonymize: Annotated[bool, Strict()] = False  # a JSON 0 or "yes" is refused, not read as a flag
    slide: Identifier | None = None


class DataUrlsIn(Body):
    keys: list[DataKey] = Field(min_length=1, max_length=MAX_DATA_KEYS)


class _Selection(Body):
    """Superpixels chosen by id (click, bulk, brush as ids) or by a brush polygon."""

    model_config = ConfigDict(json_schema_extra=ONE_SELECTION)

    ids: list[SuperpixelId] | None = Field(default=None, min_length=1, max_length=MAX_IDS_PER_COMMAND)
    polygon: list[Point] | None = Field(
        default=None,
        min_length=3,
        max_length=MAX_POLYGON_POINTS,
        description="[[x, y], ...] in level-0 pixels",
    )
    idempotency_key: IdempotencyKey | None = None

    @model_validator(mode="after")
    def _one_selection(self) -> _Selection:
        if (self.ids is None) == (self.polygon is None):
            raise ValueError("give exactly one of ids or polygon")
        return self


class LabelIn(_Selection):
    category_id: Identifier
    source: LabelSource = "click"


class UnlabelIn(_Selection):
    source: LabelSource = "click"


class ReviewIn(_Selection):
    """`category_id` goes with `action: change` (the new category) and with no other action."""

    model_config = ConfigDict(
        json_schema_extra={
            "allOf": [
                ONE_SELECTION,
                {
                    "if": {"required": ["action"], "properties": {"action": {"const": "change"}}},
                    "then": {"required": ["category_id"], "properties": {"category_id": {"type": "string"}}},
                    "else": {"properties": {"category_id": {"type": "null"}}},
                },
            ]
        }
    )

    action: ReviewAction
    category_id: Identifier | None = None


# ---- responses -----------------------------------------------------------------------------


class ErrorOut(BaseModel):
    error: str
    detail: Any
    field: str | None = None


class HealthOut(BaseModel):
    status: Literal["ok"]


class MayOut(BaseModel):
    """Which roles may do each thing the web app offers: the roles of the route that does it."""

    label: list[Role] = Field(description="label and unlabel superpixels, add and edit categories")
    review: list[Role] = Field(description="approve, change or clear labels")
    guided: list[Role] = Field(description="the guided queue of superpixels to label next")
    train: list[Role] = Field(description="ask for a retraining")
    audit: list[Role] = Field(description="the audit trail: history and replay")
    export: list[Role] = Field(description="export labels and predictions, download masks")
    manage: list[Role] = Field(description="project settings, slides, members and jobs")
    merge_categories: list[Role] = Field(description="merge, exclude and delete categories")


class VocabularyOut(BaseModel):
    """The product's vocabulary, for clients that must not keep a copy of it."""

    roles: list[Role]
    may: MayOut
    palette: list[Color] = Field(description="colours offered to new categories, in order")
    job_kinds: list[JobKindName]
    certainty_metrics: list[CertaintyMetric]
    feature_kinds: list[FeatureKind]
    model_kinds: list[ModelKind]


class ConfigOut(BaseModel):
    region: str
    userPoolId: str | None
    clientId: str | None
    cognitoEndpoint: str | None
    hostedUiUrl: str | None = None
    vocabulary: VocabularyOut


class MeOut(BaseModel):
    user: str
    email: str | None = None


class ProjectSummaryOut(BaseModel):
    project_id: str
    name: str
    role: str


class ProjectsOut(BaseModel):
    projects: list[ProjectSummaryOut]


class MemberOut(BaseModel):
    user: str
    role: str
    site: str
    since: str | None = None


class PersonOut(BaseModel):
    email: str | None = None
    name: str | None = None


class PeopleOut(BaseModel):
    people: dict[str, PersonOut]


class CategoryOut(BaseModel):
    id: str
    name: str
    color: str
    hotkey: str | None = None
    excluded: bool = False


class SlideOut(BaseModel):
    slide_id: str
    name: str
    source_uri: str
    registered_at: str
    status: Literal["registered", "ingested", "segmented", "embedded", "failed"]
    ingest: dict[str, Any] | None = None
    segmentation: dict[str, Any] | None = None
    features: dict[str, dict[str, Any]] = Field(default_factory=dict)
    failures: list[dict[str, Any]] = Field(default_factory=list)


class ProjectOut(BaseModel):
    project_id: str
    seq: int | None = None  # the project stream's seq: GET .../changes tells when it moves
    name: str
    created_at: str
    settings: ProjectSettings
    members: dict[str, MemberOut]
    categories: list[CategoryOut]
    slides: list[SlideOut]
    model: dict[str, Any] | None = None
    predictions: dict[str, Any] | None = None
    your_role: str | None = None


class RemovedOut(BaseModel):
    removed: str


class DeletedCategoryOut(BaseModel):
    deleted: str
    labels_cleared: int


class UploadOut(BaseModel):
    url: str
    method: Literal["PUT"]
    expires_in: int


class RegisteredSlideOut(BaseModel):
    slide: SlideOut
    upload: UploadOut | None = None


class SlidesOut(BaseModel):
    slides: list[SlideOut]


class JobOut(BaseModel):
    job_id: str
    job: str
    slide_id: str | None = None


class JobStatusOut(BaseModel):
    job_id: str
    status: str
    reason: str | None = None
    name: str | None = None


class ExportJobOut(BaseModel):
    job_id: str
    format: str
    status_path: str  # GET it for the progress and, once done, the download link


class ExportStatusOut(BaseModel):
    job_id: str
    status: str  # the runner's: SUBMITTED ... RUNNING, SUCCEEDED, FAILED
    state: str  # the export's: queued | running | written | done | failed
    format: str | None = None
    slides: int | None = None
    slides_done: int | None = None
    rows: int | None = None
    bytes: int | None = None
    seconds: float | None = None  # the job's wall time, once done
    cpu_s: float | None = None  # CPU seconds of the job and its processes, once done
    url: str | None = None  # presigned, once done
    expires_in: int | None = None  # seconds the link works
    expires_days: int | None = None  # days the file is kept (the bucket's rule)
    reason: str | None = None


class DataUrlsOut(BaseModel):
    urls: dict[str, str]
    expires_in: int


class LabelEntryOut(BaseModel):
    id: int
    c: str | None
    cb: str | None
    ca: str | None
    l: dict[str, list[str]]  # noqa: E741 (the projection's field name)
    r: dict[str, Any] | None


class SlideLabelsOut(BaseModel):
    slide_id: str
    seq: int
    cursor: str = Field(description="the label cursor for GET .../changes (labels_cursor)")
    counts: dict[str, int]
    entries: list[LabelEntryOut]


class WriteOut(BaseModel):
    command_id: str
    appended: int
    duplicate: bool
    ids: int


class PredictionsOut(BaseModel):
    model_version: int
    slide_id: str
    categories: list[str]
    ids: list[int]
    classes: list[int] = Field(description="index into categories per id; -1: a deleted category")
    certainty: list[float | None] = Field(description="the project's metric; lower = less certain")


class QueueItemOut(BaseModel):
    slide_id: str
    id: int
    bbox: list[int] | None = None
    centroid: list[float] | None = None
    prediction: str | None = None
    certainty: float | None = None


class QueueOut(BaseModel):
    items: list[QueueItemOut]
    model_version: int | None = None


class ReviewItemOut(BaseModel):
    slide_id: str
    id: int
    label: str | None
    labeled_by: str | None
    labeled_at: str | None
    labels: dict[str, str]
    review: dict[str, Any] | None
    prediction: str | None = None
    confidence: float | None = None
    certainty: float | None = None
    bbox: list[int] | None = None  # level-0 (y0, x0, y1, x1), for thumbnails


class ReviewOut(BaseModel):
    items: list[ReviewItemOut]
    groups: dict[str, int] | None = None
    total: int
    next_cursor: str | None = None


class ReviewIdsOut(BaseModel):
    slides: dict[str, list[int]]
    total: int
    next_cursor: str | None = None


class KappaOut(BaseModel):
    n: int
    kappa: float | None
    per_category: dict[str, float | None] = Field(default_factory=dict)


class PairKappaOut(KappaOut):
    a: str
    b: str


class FleissOut(BaseModel):
    users: list[str]
    n: int
    kappa: float | None


class UserAgreementOut(BaseModel):
    pairs: list[PairKappaOut]
    fleiss: FleissOut | None = None


class AgreementOut(BaseModel):
    users: UserAgreementOut
    predictions: KappaOut | None = None


class TrainingRequestOut(BaseModel):
    request_id: str


class TrainingOut(BaseModel):
    runs: list[dict[str, Any]]
    models: list[dict[str, Any]]
    current_model: dict[str, Any] | None
    labels_total: int  # label edits (relabels and each member's count); drives retraining
    labels_since_request: int
    threshold: int
    labeled_superpixels: int | None = None  # superpixels with a label now


class AuditEventOut(BaseModel):
    stream: str
    seq: int
    type: str
    v: int
    data: dict[str, Any]
    actor_user: str
    actor_site: str
    at: str
    idem: str
    cmd: str
    prev_hash: str
    hash: str


class HistoryOut(BaseModel):
    stream: str
    events: list[AuditEventOut]
    chain_ok: bool
    first_bad_seq: int | None = None
    next_after_seq: int | None = None


class ReplayOut(BaseModel):
    as_of: str
    project: ProjectOut | None
    slides: dict[str, dict[str, Any]]
    chains: dict[str, bool]


# ---- query strings -------------------------------------------------------------------------

Operand = Annotated[
    str, StringConstraints(pattern=r"^(label|prediction|review|user:[A-Za-z0-9][A-Za-z0-9_.@:+-]{0,127})$")
]


class Query(BaseModel):
    model_config = ConfigDict(extra="forbid")


class QueueQuery(Query):
    n: int = Field(default=10, ge=1, le=200)


class ReviewQuery(Query):
    slide: Identifier | None = None
    label: Identifier | None = None
    prediction: Identifier | None = None
    review: Literal["approve", "change", "clear", "none"] | None = None
    labeled_by: UserId | None = None
    reviewed_by: UserId | None = None
    compare_a: Operand | None = Field(default=None, description="with compare; default label")
    compare_b: Operand | None = Field(default=None, description="with compare; default prediction")
    compare: Literal["matches", "differs"] | None = Field(
        default=None, description="keep rows whose compare_a matches (or differs from) compare_b"
    )
    sort: Literal["slide", "label", "prediction", "review", "confidence", "certainty"] = "slide"
    order: Literal["asc", "desc"] = "asc"
    group_by: Literal["slide", "label", "prediction", "review"] | None = None
    limit: int = Field(default=100, ge=1, le=500)
    cursor: Annotated[str, StringConstraints(pattern=r"^[0-9]{1,9}$")] | None = None

    @model_validator(mode="after")
    def _comparison_complete(self) -> ReviewQuery:
        # As the web app's review form asks: operands without `compare` compare nothing, and a
        # `compare` without operands compares the label with the prediction.
        if self.compare is None:
            self.compare_a = self.compare_b = None
        else:
            self.compare_a = self.compare_a or "label"
            self.compare_b = self.compare_b or "prediction"
        return self


class ReviewIdsQuery(ReviewQuery):
    """The same filters as the review list; pages of ids only (for bulk review of everything
    that matches, however many: the web app once overflowed its stack at 125k ids)."""

    limit: int = Field(default=20_000, ge=1, le=MAX_IDS_PER_COMMAND)


class AgreementQuery(Query):
    slide: Identifier | None = None


class ExportQuery(Query):
    format: Literal["geojson", "csv", "parquet"] = "geojson"
    anonymize: bool = False
    slide: Identifier | None = None


class HistoryQuery(Query):
    slide: Identifier | None = None
    superpixel: SuperpixelIdParam | None = None
    user: UserId | None = None
    type: Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{1,64}$")] | None = None
    after_seq: int = Field(default=0, ge=0)
    limit: int = Field(default=500, ge=1, le=5000)


def _calendar_instant(value: str) -> str:
    """The pattern says the shape; the calendar says whether 2026-13-45 or 25:61 exists."""
    try:
        datetime.fromisoformat(value.removesuffix("Z"))
    except ValueError:
        raise ValueError(
            f"{value!r} is not a date or time that exists (YYYY-MM-DD[THH:MM[:SS[.ffffff]]][Z])"
        ) from None
    return value


YEAR = r"([1-9]\d{3}|0[1-9]\d{2}|00[1-9]\d|000[1-9])"  # 0001-9999: there is no year 0
LEAP_YEAR = r"(\d\d(0[48]|[2468][048]|[13579][26])|([2468][048]|[13579][26]|0[48])00)"
# Every day the calendar has, so the document says what the handler accepts (29 February only
# in leap years); the validator below checks the same with the calendar itself.
CALENDAR_DATE = (
    rf"({YEAR}-((0[13578]|1[02])-(0[1-9]|[12]\d|3[01])|(0[469]|11)-(0[1-9]|[12]\d|30)"
    rf"|02-(0[1-9]|1\d|2[0-8]))|{LEAP_YEAR}-02-29)"
)


class ReplayQuery(Query):
    as_of: Annotated[
        str,
        StringConstraints(
            pattern=rf"^{CALENDAR_DATE}(T([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{{1,6}})?)?Z?)?$"
        ),
        AfterValidator(_calendar_instant),
    ]
    slide: Identifier | None = None


class DataQuery(Query):
    key: DataKey
