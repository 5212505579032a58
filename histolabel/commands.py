"""Commands: what a user asks for, validated against current state and turned into events.

`decide` is pure: it takes the project state and the actor and returns the events to append
(`NewEvent`: a stream and an event model instance), or raises CommandRejected. Running it
again on fresher state after a lost race is how concurrent writers are serialized.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from histolabel.events import catalogue as ev
from histolabel.events import fields
from histolabel.events.catalogue import (
    MAX_IDS_PER_EVENT,
    Color,
    Identifier,
    JobKindName,
    LabelEvent,
    LabelSource,
    NewEvent,
    ProjectSettings,
    ReviewAction,
    Role,
    UserId,
    check_hotkey,
)
from histolabel.events.envelope import member_label_stream, project_stream
from histolabel.projections.labels import bucket_of
from histolabel.projections.project import ProjectState

MAX_IDS_PER_COMMAND = 100_000
# One definition for the body field, the Idempotency-Key header and the OpenAPI document.
IDEMPOTENCY_KEY_PATTERN = r"^[A-Za-z0-9_-]{1,128}$"
# An event's projection update must fit one DynamoDB transaction with its checkpoint.
MAX_BUCKETS_PER_EVENT = 64
# Tableau 10, the palette Histomics Label users know.
PALETTE = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
    "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
]  # fmt: skip
DEFAULT_HOTKEYS = [*"123456789", *"qwertyuiopasdfghjklzxcvbnm"]
WRITE_ROLES = ("owner", "annotator")
ALL_ROLES = ("owner", "annotator", "reviewer", "auditor")
EXPORT_ROLES = ("owner", "reviewer", "auditor")


class CommandRejected(ValueError):
    """A command that cannot be carried out; nothing was written."""

    def __init__(self, code: str, detail: str, field: str | None = None, status: int = 400) -> None:
        super().__init__(detail)
        self.code, self.detail, self.field, self.status = code, detail, field, status

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.code, "detail": self.detail}
        if self.field:
            body["field"] = self.field
        return body


BREAKS = ("Zl", "Zp")  # line and paragraph separators


def refused_in_name(char: str) -> bool:
    """Whether a category name may not hold this character (the OpenAPI document's name pattern
    is made from this rule too)."""
    category = unicodedata.category(char)
    return category[0] == "C" or category in BREAKS


def _clean_name(value: str) -> str:
    """A category name as people read it: NFC, and none of the characters that make two names
    look alike or rearrange the text around them (controls, format characters such as
    zero-width and bidi marks, separators, private use, unassigned)."""
    name = unicodedata.normalize("NFC", value)
    bad = sorted({c for c in name if refused_in_name(c)})
    if bad:
        codes = ", ".join(f"U+{ord(c):04X}" for c in bad[:5])
        raise ValueError(f"name has invisible or control characters ({codes})")
    return name


CategoryName = Annotated[fields.CategoryName, AfterValidator(_clean_name)]


def name_key(name: str) -> str:
    """What two category names are compared by: the same under compatibility normalisation,
    case folding and runs of white space ("Tumor", "tumor", full-width "tumor", "tu  mor")."""
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


def _not_found(what: str, value: str, field: str) -> CommandRejected:
    return CommandRejected("not_found", f"{what} {value!r} does not exist", field, status=404)


class Command(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    ROLES: ClassVar[tuple[str, ...]] = ("owner",)
    project_id: Identifier

    def authorize(self, state: ProjectState, user: str) -> None:
        if not state.exists:
            raise _not_found("project", self.project_id, "project_id")
        role = state.role_of(user)
        if role is None:
            raise CommandRejected("forbidden", f"{user} is not a member of {self.project_id}", status=403)
        if role not in self.ROLES:
            raise CommandRejected(
                "forbidden", f"role {role!r} may not {type(self).__name__}; needs {self.ROLES}", status=403
            )

    def decide(self, state: ProjectState, user: str, site: str) -> list[NewEvent]:
        raise NotImplementedError


def _stream(cmd: Command) -> str:
    return project_stream(cmd.project_id)


class CreateProject(Command):
    name: fields.ProjectName
    settings: ProjectSettings = Field(default_factory=ProjectSettings)

    def authorize(self, state: ProjectState, user: str) -> None:
        if state.exists:
            raise CommandRejected(
                "conflict", f"project {self.project_id!r} already exists", "project_id", 409
            )

    def decide(self, state: ProjectState, user: str, site: str) -> list[NewEvent]:
        s = _stream(self)
        return [
            NewEvent(
                s, ev.ProjectCreated(project_id=self.project_id, name=self.name, settings=self.settings)
            ),
            NewEvent(s, ev.MemberAdded(user=user, role="owner", site=site)),
        ]


class ChangeSettings(Command):
    settings: ProjectSettings

    def decide(self, state: ProjectState, user: str, site: str) -> list[NewEvent]:
        return [NewEvent(_stream(self), ev.SettingsChanged(settings=self.settings))]


class UpdateSettings(Command):
    """The settings named in `changes` set, the others kept as the state holds them when this is
    decided (again on fresh state after a lost race): two owners at two sites changing different
    settings at once both keep their change, where a whole-settings replace undid one."""

    changes: dict[str, Any]

    def decide(self, state: ProjectState, user: str, site: str) -> list[NewEvent]:
        try:
            settings = ProjectSettings.model_validate({**state.settings.model_dump(), **self.changes})
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(part) for part in err["loc"])
            raise CommandRejected("invalid", f"settings.{where}: {err['msg']}", f"settings.{where}") from None
        if settings == state.settings:
            return []
        return [NewEvent(_stream(self), ev.SettingsChanged(settings=settings))]


class AddMember(Command):
    user: UserId
    role: Role
    site: fields.Site

    def decide(self, state: ProjectState, user: str, site: str) -> list[NewEvent]:
        if self.user in state.members:
            raise CommandRejected("conflict", f"{self.user} is already a member", "user", 409)
        return [NewEvent(_stream(self), ev.MemberAdded(user=self.user, role=self.role, site=self.site))]


def _owners_left(state: ProjectState, without: str) -> int:
    return sum(1 for u, m in state.members.items() if m.role == "owner" and u != without)


class ChangeRole(Command):
    user: UserId
    role: Role

    def decide(self, state: ProjectState, user: str, site: str) -> list[NewEvent]:
        member = state.members.get(self.user)
        if member is None:
            raise _not_found("member", self.user, "user")
        if member.role == "owner" and self.role != "owner" and not _owners_left(state, self.user):
            raise CommandRejected("conflict", "a project must keep at least one owner", "role", 409)
        return [NewEvent(_stream(self), ev.RoleChanged(user=self.user, role=self.role))]


class RemoveMember(Command):
    user: UserId

    def decide(self, state: ProjectState, user: str, site: str) -> list[NewEvent]:
        member = state.members.get(self.user)
        if member is None:
            raise _not_found("member", self.user, "user")
        if member.role == "owner" and not _owners_left(state, self.user):
            raise CommandRejected("conflict", "a project must keep at least one owner", "user", 409)
        return [NewEvent(_stream(self), ev.MemberRemoved(user=self.user))]


def _category(state: ProjectState, category_id: str, field: str = "category_id") -> Any:
    cat = state.categories.get(category_id)
    if cat is None or cat.deleted or cat.merged_into is not None:
        raise _not_found("category", category_id, field)
    return cat


def _check_name_free(state: ProjectState, name: str, except_id: str | None = None) -> None:
    key = name_key(name)
    for cat in state.live_categories():
        if cat.id != except_id and name_key(cat.name) == key:
            raise CommandRejected("conflict", f"a category named {cat.name!r} exists", "name", 409)
    if key == "default":
        raise CommandRejected("invalid", "'default' is the built-in unlabeled category", "name")


def _check_hotkey_free(state: ProjectState, hotkey: str | None, except_id: str | None = None) -> None:
    if hotkey is None:
        return
    for cat in state.live_categories():
        if cat.id != except_id and cat.hotkey == hotkey:
            raise CommandRejected("conflict", f"hotkey {hotkey!r} is used by {cat.name!r}", "hotkey", 409)


def _slug(name: str, taken: set[str]) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40] or "category"
    candidate, n = base, 2
    while candidate in taken:
        candidate, n = f"{base}-{n}", n + 1
    return candidate


class AddCategory(Command):
    ROLES: ClassVar[tuple[str, ...]] = WRITE_ROLES
    name: CategoryName
    color: Color | None = None
    hotkey: str | None = None
    category_id: Identifier | None = None

    def decide(self, state: ProjectState, user: str, site: str) -> list[NewEvent]:
        _check_name_free(state, self.name)
        cid = self.category_id or _slug(self.name, set(state.categories))
        if cid in state.categories:
            raise CommandRejected("conflict", f"category id {cid!r} was used before", "category_id", 409)
        hotkey = check_hotkey(self.hotkey)
        _check_hotkey_free(state, hotkey)
        if hotkey is None:
            used = {c.hotkey for c in state.live_categories()}
            hotkey = next((k for k in DEFAULT_HOTKEYS if k not in used), None)
        color = self.color or PALETTE[len(state.categories) % len(PALETTE)]
        added = ev.CategoryAdded(category_id=cid, name=self.name, color=color, hotkey=hotkey)
        return [NewEvent(_stream(self), added)]


class RenameCategory(Command):
    ROLES: ClassVar[tuple[str, ...]] = WRITE_ROLES
    category_id: Identifier
    name: CategoryName

    def decide(self, state: ProjectState, user: str, site: str) -> list[NewEvent]:
        _category(state, self.category_id)
        _check_name_free(state, self.name, self.category_id)
        return [NewEvent(_stream(self), ev.CategoryRenamed(category_id=self.category_id, name=self.name))]


class RecolorCategory(Command):
    ROLES: ClassVar[tuple[str, ...]] = WRITE_ROLES
    category_id: Identifier
    color: Color

    def decide(self, state: ProjectState, user: str, site: str) -> list[NewEvent]:
        _category(state, self.category_id)
        return [NewEvent(_stream(self), ev.CategoryRecolored(category_id=self.category_id, color=self.color))]


class SetHotkey(Command):
    ROLES: ClassVar[tuple[str, ...]] = WRITE_ROLES
    category_id: Identifier
    hotkey: str | None

    def decide(self, state: ProjectState, user: str, site: str) -> list[NewEvent]:
        _category(state, self.category_id)
        hotkey = check_hotkey(self.hotkey)
        _check_hotkey_free(state, hotkey, self.category_id)
        return [NewEvent(_stream(self), ev.CategoryHotkeySet(category_id=self.category_id, hotkey=hotkey))]


class ExcludeCategory(Command):
    category_id: Identifier

    def decide(self, state: ProjectState, user: str, site: str) -> list[NewEvent]:
        if _category(state, self.category_id).excluded:
            return []
        return [NewEvent(_stream(self), ev.CategoryExcluded(category_id=self.category_id))]


class IncludeCategory(Command):
    category_id: Identifier

    def decide(self, state: ProjectState, user: str, site: str) -> list[NewEvent]:
        if not _category(state, self.category_id).excluded:
            return []
        return [NewEvent(_stream(self), ev.CategoryIncluded(category_id=self.category_id))]


class MergeCategories(Command):
    sources: list[Identifier] = Field(min_length=1, max_length=100)
    target: Identifier

    def decide(self, state: ProjectState, user: str, site: str) -> list[NewEvent]:
        _category(state, self.target, "target")
        for source in self.sources:
            _category(state, source, "sources")
        if self.target in self.sources or len(set(self.sources)) != len(self.sources):
            raise CommandRejected("invalid", "sources must be distinct and exclude the target", "sources")
        return [NewEvent(_stream(self), ev.CategoriesMerged(sources=self.sources, target=self.target))]


class DeleteCategory(Command):
    category_id: Identifier
    # Filled in by the service from the label projection, so the event records the consequence.
    labels_cleared: int = Field(default=0, ge=0)

    def decide(self, state: ProjectState, user: str, site: str) -> list[NewEvent]:
        _category(state, self.category_id)
        deleted = ev.CategoryDeleted(category_id=self.category_id, labels_cleared=self.labels_cleared)
        return [NewEvent(_stream(self), deleted)]


class RegisterSlide(Command):
    name: fields.SlideName
    source_uri: fields.SourceUri
    slide_id: Identifier | None = None

    def decide(self, state: ProjectState, user: str, site: str) -> list[NewEvent]:
        sid = self.slide_id or f"s{uuid.uuid4().hex[:10]}"
        if sid in state.slides or sid in state.removed_slides:
            raise CommandRejected("conflict", f"slide {sid!r} exists or existed", "slide_id", 409)
        registered = ev.SlideRegistered(slide_id=sid, name=self.name, source_uri=self.source_uri)
        return [NewEvent(_stream(self), registered)]


class RemoveSlide(Command):
    slide_id: Identifier

    def decide(self, state: ProjectState, user: str, site: str) -> list[NewEvent]:
        if self.slide_id not in state.slides:
            raise _not_found("slide", self.slide_id, "slide_id")
        return [NewEvent(_stream(self), ev.SlideRemoved(slide_id=self.slide_id))]


class SelectModel(Command):
    model_version: int = Field(ge=1)

    def decide(self, state: ProjectState, user: str, site: str) -> list[NewEvent]:
        if not any(m["model_version"] == self.model_version for m in state.models):
            raise _not_found("model version", str(self.model_version), "model_version")
        return [NewEvent(_stream(self), ev.ModelSelected(model_version=self.model_version))]


class RecordJobSubmitted(Command):
    """A job someone started, so its id is auditable and its status scoped to the project."""

    job: JobKindName
    job_id: fields.JobId
    slide_id: Identifier | None = None

    def authorize(self, state: ProjectState, user: str) -> None:
        if self.job in ("import_labels", "import_features") and state.role_of(user) in WRITE_ROLES:
            return  # annotators import labels and features (never a segmentation)
        if self.job == "export" and state.role_of(user) in EXPORT_ROLES:
            return  # whoever may export may start the export job
        super().authorize(state, user)

    def decide(self, state: ProjectState, user: str, site: str) -> list[NewEvent]:
        if self.slide_id is not None and self.slide_id not in state.slides:
            raise _not_found("slide", self.slide_id, "slide_id")
        submitted = ev.JobSubmitted(job=self.job, job_id=self.job_id, slide_id=self.slide_id)
        return [NewEvent(_stream(self), submitted)]


def chunk_ids(ids: list[int]) -> list[list[int]]:
    """Split ids so each event stays small and touches few projection buckets."""
    chunks: list[list[int]] = []
    current: list[int] = []
    buckets: set[int] = set()
    for sp in sorted(ids):
        b = bucket_of(sp)
        if current and (
            len(current) >= MAX_IDS_PER_EVENT or (b not in buckets and len(buckets) >= MAX_BUCKETS_PER_EVENT)
        ):
            chunks.append(current)
            current, buckets = [], set()
        current.append(sp)
        buckets.add(b)
    if current:
        chunks.append(current)
    return chunks


SuperpixelIds = Annotated[list[fields.SuperpixelId], Field(min_length=1, max_length=MAX_IDS_PER_COMMAND)]


class _LabelCommand(Command):
    ROLES: ClassVar[tuple[str, ...]] = WRITE_ROLES
    slide_id: Identifier
    ids: SuperpixelIds

    def _check_ids(self, state: ProjectState) -> None:
        slide = state.slides.get(self.slide_id)
        if slide is None:
            raise _not_found("slide", self.slide_id, "slide_id")
        if slide.segmentation is None:
            raise CommandRejected(
                "invalid", f"slide {self.slide_id!r} has no superpixels yet", "slide_id", 409
            )
        count = int(slide.segmentation["count"])
        bad = [i for i in self.ids if i > count]
        if bad:
            raise CommandRejected(
                "invalid",
                f"superpixel ids {bad[:5]} do not exist on slide {self.slide_id!r} (1..{count})",
                "ids",
            )
        if len(set(self.ids)) != len(self.ids):
            raise CommandRejected("invalid", "superpixel ids must be distinct", "ids")

    def _events(self, user: str, model: type[LabelEvent], **fields: Any) -> list[NewEvent]:
        """One event of `model` per chunk of the ids, on the actor's own stream on the slide
        (concurrent annotators never race for one seq)."""
        stream = member_label_stream(self.project_id, self.slide_id, user)
        return [
            NewEvent(stream, model(slide_id=self.slide_id, ids=chunk, **fields))
            for chunk in chunk_ids(self.ids)
        ]


class LabelSuperpixels(_LabelCommand):
    category_id: Identifier
    source: LabelSource = "click"

    def decide(self, state: ProjectState, user: str, site: str) -> list[NewEvent]:
        self._check_ids(state)
        _category(state, self.category_id)
        return self._events(user, ev.SuperpixelsLabeled, category_id=self.category_id, source=self.source)


class UnlabelSuperpixels(_LabelCommand):
    source: LabelSource = "click"

    def decide(self, state: ProjectState, user: str, site: str) -> list[NewEvent]:
        self._check_ids(state)
        return self._events(user, ev.SuperpixelsUnlabeled, source=self.source)


class ReviewLabels(_LabelCommand):
    ROLES: ClassVar[tuple[str, ...]] = ("owner", "reviewer")
    action: ReviewAction
    category_id: Identifier | None = None

    def decide(self, state: ProjectState, user: str, site: str) -> list[NewEvent]:
        self._check_ids(state)
        if self.action == "change":
            if self.category_id is None:
                raise CommandRejected("invalid", "category_id is required to change a label", "category_id")
            _category(state, self.category_id)
        elif self.category_id is not None:
            raise CommandRejected(
                "invalid", f"category_id is not allowed with {self.action!r}", "category_id"
            )
        return self._events(user, ev.LabelsReviewed, action=self.action, category_id=self.category_id)


class RequestTraining(Command):
    ROLES: ClassVar[tuple[str, ...]] = ("owner", "annotator", "reviewer")
    reason: Literal["manual", "threshold"] = "manual"
    # The project's label total when asked; for "threshold" the request only stands if the
    # total has crossed the threshold since the last request, which makes it happen once.
    labels_total: int = Field(default=0, ge=0)

    def decide(self, state: ProjectState, user: str, site: str) -> list[NewEvent]:
        since = self.labels_total - state.last_request_labels_total
        if self.reason == "threshold" and since < state.settings.retrain_threshold:
            return []
        active = [r for r in state.training.values() if r.status in ("requested", "started")]
        if self.reason == "threshold" and any(r.status == "requested" for r in active):
            # One waiting request is enough: its job trains on every label there is when it
            # starts. Without this, a hot project queued a request (and a job) per threshold
            # while the first waited to start.
            return []
        if active and self.reason == "manual":
            raise CommandRejected("conflict", f"training {active[0].request_id} is still running", status=409)
        total = max(self.labels_total, state.last_request_labels_total)
        request_id = f"t{uuid.uuid4().hex[:12]}"
        requested = ev.TrainingRequested(request_id=request_id, reason=self.reason, labels_total=total)
        return [NewEvent(_stream(self), requested)]


COMMANDS: dict[str, type[Command]] = {
    cls.__name__: cls
    for cls in (
        CreateProject, ChangeSettings, UpdateSettings, AddMember, ChangeRole, RemoveMember, AddCategory,
        RenameCategory, RecolorCategory, SetHotkey, ExcludeCategory, IncludeCategory, MergeCategories,
        DeleteCategory, RegisterSlide, LabelSuperpixels, UnlabelSuperpixels, ReviewLabels, RequestTraining,
        RecordJobSubmitted,
    )
}  # fmt: skip
