"""The application service: runs commands against the event store and reads projections.

Used alike by the API routes, the CLI, the jobs and the projector Lambda.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from histolabel.adapters.memory import InMemoryLeaseStore
from histolabel.commands import Command, CommandRejected, DeleteCategory, RequestTraining
from histolabel.config import Settings
from histolabel.events.catalogue import Actor, EventData, NewEvent, model_for
from histolabel.events.envelope import (
    StoredEvent,
    canonical_json,
    idempotency_stream,
    project_stream,
    slide_of,
    stream_kind,
)
from histolabel.events.streams import history_of, read_after, slide_events, slide_streams
from histolabel.eventstore import AppendConflict, DuplicateCommand, EventStore
from histolabel.leases import LeaseStore
from histolabel.projections.labels import SlideLabels, catch_up, fold_labels
from histolabel.projections.project import ProjectState, apply_project_event
from histolabel.projections.store import ProjectionStore

MAX_ATTEMPTS = 100
SYSTEM_SITE = "batch"


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class CommandResult(BaseModel):
    command_id: str
    events: list[dict[str, Any]]  # stream, seq, type of each appended event
    attempts: int = 1
    duplicate: bool = False

    @property
    def appended(self) -> int:
        return len(self.events)


def request_hash(command: Command) -> str:
    """What an idempotency key promises to repeat: the command, its kind and every field."""
    body = canonical_json({"command": type(command).__name__, **command.model_dump(mode="json")})
    return hashlib.sha256(body.encode()).hexdigest()


def _replayed(previous: dict[str, Any], request: str | None, key: str | None) -> CommandResult:
    """The first result again, when the repeat is the same request (records written before the
    request hash was kept are taken as the same)."""
    if request is not None and previous.get("request") not in (None, request):
        shown = key.rsplit(":", 1)[-1] if key else key  # the route scopes keys as "user:key"
        raise CommandRejected(
            "idempotency_key_reused",
            f"idempotency key {shown!r} was used for a different request (another payload or slide); "
            "send a new key for a new request",
            "idempotency_key",
            422,
        )
    return CommandResult(**{**previous, "duplicate": True})


class HistoLabel:
    def __init__(
        self,
        settings: Settings,
        events: EventStore,
        projections: ProjectionStore,
        clock: Callable[[], str] = utc_now,
        leases: LeaseStore | None = None,
    ) -> None:
        self.settings = settings
        self.events = events
        self.projections = projections
        self.clock = clock
        self._cache: dict[str, ProjectState] = {}
        self._heads: dict[str, tuple[int, str]] = {}
        self._lock = threading.Lock()
        # Guided-queue leases live beside the projections: the composition root gives a service
        # on DynamoDB its table's lease store (never process memory when the API runs as
        # several Lambdas); an in-memory service keeps them in memory.
        self._leases: LeaseStore = leases or InMemoryLeaseStore()

    @property
    def leases(self) -> LeaseStore:
        """Guided-queue leases, beside the projections (see histolabel/leases.py)."""
        return self._leases

    @leases.setter
    def leases(self, value: LeaseStore) -> None:
        self._leases = value

    # ---- reading -------------------------------------------------------------------------

    def project_state(self, project_id: str) -> ProjectState:
        """The project stream folded up to its head (strongly consistent), cached per process.
        A process's first read starts from the projection (one Query) and folds only the events
        after its checkpoint, not the whole stream."""
        with self._lock:
            cached = self._cache.get(project_id)
            state = cached.model_copy(deep=True) if cached else None
        if state is None:
            state = self.projections.load_project(project_id) or ProjectState()
        for event in self.events.read(project_stream(project_id), after=state.seq):
            apply_project_event(state, event)
        with self._lock:
            if project_id not in self._cache or self._cache[project_id].seq < state.seq:
                self._cache[project_id] = state.model_copy(deep=True)
        return state

    def project_snapshot(self, project_id: str) -> ProjectState:
        """project_state without its deep copy: the cached state itself when no event came since
        (one Query says so). Shared, so callers must not change it; the API's routes only read.
        At hundreds of slides and thousands of jobs the copy cost more than the request."""
        with self._lock:
            cached = self._cache.get(project_id)
        if cached is not None:
            newer = self.events.read(project_stream(project_id), after=cached.seq)
            if next(iter(newer), None) is None:
                return cached
        self.project_state(project_id)
        with self._lock:
            return self._cache[project_id]

    def require_project(self, project_id: str, shared: bool = False) -> ProjectState:
        """The project (404 when there is none); `shared`: the read-only snapshot."""
        state = self.project_snapshot(project_id) if shared else self.project_state(project_id)
        if not state.exists:
            raise CommandRejected("not_found", f"project {project_id!r} does not exist", "project_id", 404)
        return state

    def slide_labels(self, project_id: str, slide_id: str) -> SlideLabels:
        """The slide's label projection as the projector has written it."""
        return self.projections.load_slide(project_id, slide_id)

    def slide_labels_fresh(self, project_id: str, slide_id: str) -> SlideLabels:
        """The slide's labels folded from the event store: no projection lag."""
        return fold_labels(project_id, slide_id, slide_events(self.events, project_id, slide_id))

    def slide_labels_current(self, project_id: str, slide_id: str) -> SlideLabels:
        """The projection caught up with the label events it has not folded yet (every stream of
        the slide): never stale, and cheap while the projector keeps up."""
        labels = self.slide_labels(project_id, slide_id)
        cursor = labels.cursor()
        # One batched check of which streams moved past the projection, then a read of those
        # only: a Query per member stream made a slide's labels cost a round trip per annotator.
        streams = slide_streams(self.events, project_id, slide_id)
        moved = self.events.streams_after({s: cursor.get(s, 0) for s in streams})
        behind = [s for s in streams if s in moved]
        catch_up(labels, read_after(self.events, behind, cursor), history_of(self.events))
        return labels

    def labels_total(self, project_id: str) -> int:
        return self.projections.labels_total(project_id)

    def training_labels(self, project_id: str, fresh: bool = True) -> dict[str, dict[int, str]]:
        """slide -> superpixel -> category for training: merges resolved, excluded and
        deleted categories left out."""
        state = self.project_state(project_id)
        trainable = {c.id for c in state.trainable_categories()}
        out: dict[str, dict[int, str]] = {}
        for slide_id in state.slides:
            labels = (
                self.slide_labels_fresh(project_id, slide_id)
                if fresh
                else self.slide_labels(project_id, slide_id)
            )
            resolved = {}
            for sp, cat in labels.current().items():
                target = state.resolve(cat)
                if target in trainable:
                    resolved[sp] = target
            if resolved:
                out[slide_id] = resolved
        return out

    # ---- writing -------------------------------------------------------------------------

    def execute(self, command: Command, actor: Actor, idempotency_key: str | None = None) -> CommandResult:
        """Validate and append a command's events; retried on fresh state after a lost race.
        With an idempotency key, a repeat returns the first result and writes nothing."""
        if isinstance(command, DeleteCategory) and command.labels_cleared == 0:
            command = command.model_copy(update={"labels_cleared": self._count_in_category(command)})

        def decide(state: ProjectState) -> list[NewEvent]:
            command.authorize(state, actor.user)
            return command.decide(state, actor.user, actor.site)

        request = request_hash(command) if idempotency_key else None
        return self.append_decided(command.project_id, decide, actor, idempotency_key, request)

    def record_job_event(
        self, project_id: str, event_type: str, data: dict[str, Any], job: str
    ) -> CommandResult:
        """Append an event a batch job reports (ingest, segment, embed, train, predict), by its
        type's name and its data, as a job's command line sends them."""

        def build() -> EventData:
            return model_for(event_type).model_validate(data)

        return self._record(project_id, event_type, data.get("slide_id"), data.get("request_id"), build, job)

    def record(self, project_id: str, event: EventData, job: str) -> CommandResult:
        """record_job_event for an event already built."""
        slide, request = getattr(event, "slide_id", None), getattr(event, "request_id", None)
        return self._record(project_id, type(event).__name__, slide, request, lambda: event, job)

    def _record(
        self,
        project_id: str,
        event_type: str,
        slide: str | None,
        request: str | None,
        build: Callable[[], EventData],
        job: str,
    ) -> CommandResult:
        actor = Actor(user=f"job:{job}", site=SYSTEM_SITE)

        def decide(state: ProjectState) -> list[NewEvent]:
            if not state.exists:
                raise CommandRejected(
                    "not_found", f"project {project_id!r} does not exist", "project_id", 404
                )
            if slide is not None and slide not in state.slides:
                raise CommandRejected("not_found", f"slide {slide!r} does not exist", "slide_id", 404)
            if event_type.startswith("Training") and request not in state.training:
                raise CommandRejected(
                    "not_found", f"training request {request!r} does not exist", "request_id", 404
                )
            return [NewEvent(project_stream(project_id), build())]

        return self.append_decided(project_id, decide, actor, None)

    def maybe_request_training(self, project_id: str) -> CommandResult | None:
        """Ask for training once the labels since the last request cross the threshold; the
        decision is re-made on fresh state after a lost race, so a crossing asks only once."""
        total = self.labels_total(project_id)
        state = self.project_state(project_id)
        if not state.exists or total - state.last_request_labels_total < state.settings.retrain_threshold:
            return None
        cmd = RequestTraining(project_id=project_id, reason="threshold", labels_total=total)
        result = self.append_decided(
            project_id,
            lambda s: cmd.decide(s, "system:projector", "cloud"),
            Actor(user="system:projector", site="cloud"),
            None,
        )
        return result if result.events else None

    def request_training(
        self, project_id: str, actor: Actor, idempotency_key: str | None = None
    ) -> CommandResult:
        cmd = RequestTraining(
            project_id=project_id, reason="manual", labels_total=self.labels_total(project_id)
        )
        return self.execute(cmd, actor, idempotency_key)

    def _count_in_category(self, command: DeleteCategory) -> int:
        state = self.project_state(command.project_id)
        return sum(
            self.projections.load_slide(command.project_id, s, buckets=set()).counts.get(
                command.category_id, 0
            )
            for s in state.slides
        )

    def append_decided(
        self,
        project_id: str,
        decide: Callable[[ProjectState], list[NewEvent]],
        actor: Actor,
        idempotency_key: str | None,
        request: str | None = None,
    ) -> CommandResult:
        """Optimistic: decide on the cached project state and cached stream heads, and let the
        transaction's conditions say whether either moved (the project stream is guarded even
        when the command does not append to it). A lost race refreshes both and decides again.
        `request` (a hash of the command) is kept with the idempotency record: the key of one
        request sent with another is refused, not answered with the first one's result."""
        idem_stream = idempotency_stream(project_id, idempotency_key) if idempotency_key else None
        command_id = uuid.uuid4().hex
        fresh = False
        for attempt in range(1, MAX_ATTEMPTS + 1):
            state = self.project_state(project_id) if fresh else self._cached_state(project_id)
            try:
                # Events are built (and so validated) by the decision: a clear error before
                # anything is written.
                new_events = decide(state)
            except CommandRejected:
                if not fresh:
                    fresh = True  # a refusal must rest on the latest state
                    continue
                previous = self.events.idempotent_result(idem_stream) if idem_stream else None
                if previous is not None:
                    return _replayed(previous, request, idempotency_key)
                raise
            sealed = self._seal(new_events, project_id, actor, idempotency_key or "", command_id, state)
            result = CommandResult(
                command_id=command_id,
                events=[{"stream": e.stream, "seq": e.seq, "type": e.type} for e in sealed],
                attempts=attempt,
            )
            if not sealed:
                if fresh:
                    return result
                fresh = True
                continue
            project = project_stream(project_id)
            guard = None if any(e.stream == project for e in sealed) else (project, state.seq + 1)
            try:
                record = {**result.model_dump(exclude={"duplicate"}), "request": request}
                idem = (idem_stream, record) if idem_stream else None
                self.events.append(sealed, idem, guard)
                for e in sealed:
                    self._heads[e.stream] = (e.seq, e.hash)
                labeled = {slide_of(e.stream) for e in sealed if stream_kind(e.stream) == "labels"}
                if labeled:
                    # After the append: a review read while the command is in flight may miss
                    # it, never one that starts after it returned.
                    self.projections.mark_labeled(project_id, labeled)
                return result
            except DuplicateCommand as dup:
                return _replayed(dup.result, request, idempotency_key)
            except AppendConflict as conflict:
                moved = (
                    conflict.streams
                    if conflict.streams is not None
                    else {e.stream for e in sealed} | {project}
                )
                # A label stream that moved only needs its new head; the decision stands unless
                # the project itself moved.
                fresh = project in moved
                for stream in moved:
                    # Chasing the winner's event is one request cheaper than reading the head,
                    # but under heavy contention the head runs ahead: alternate the two.
                    if stream in conflict.seen and attempt % 2:
                        self._heads[stream] = conflict.seen[stream]
                    else:
                        self._heads.pop(stream, None)
                time.sleep(random.uniform(0, min(0.05, 0.001 * 2**attempt)))
        raise CommandRejected("contention", "too many concurrent writers; try again", status=503)

    def _cached_state(self, project_id: str) -> ProjectState:
        """The cached state itself, shared between threads: decisions only read it (pinned by
        tests/unit/test_decisions_read_only.py). With 100 members its deep copy cost 4 ms, more
        than the append's own client work."""
        with self._lock:
            cached = self._cache.get(project_id)
        return cached if cached is not None else self.project_state(project_id)

    def _seal(
        self,
        new_events: list[NewEvent],
        project_id: str,
        actor: Actor,
        idem: str,
        command_id: str,
        state: ProjectState,
    ) -> list[StoredEvent]:
        heads: dict[str, tuple[int, str]] = {}
        at = self.clock()
        sealed = []
        for new in new_events:
            stream = new.stream
            if stream not in heads:
                if stream == project_stream(project_id):
                    heads[stream] = (state.seq, state.hash)
                else:
                    heads[stream] = self._heads.get(stream) or self.events.head(stream)
            seq, prev = heads[stream]
            event = StoredEvent(
                stream=stream,
                seq=seq + 1,
                type=new.type,
                v=new.data.VERSION,
                data=canonical_json(new.data.model_dump(mode="json")),
                project=project_id,
                actor_user=actor.user,
                actor_site=actor.site,
                at=at,
                idem=idem,
                cmd=command_id,
                prev_hash=prev,
            ).sealed()
            heads[stream] = (event.seq, event.hash)
            sealed.append(event)
        return sealed
