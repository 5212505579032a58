"""Apply stored events to the projection store, exactly once each, in stream order.

Delivery is at-least-once and unordered across streams. Per stream the stored checkpoint (the
seq the projection is folded up to; a slide's label projection holds one per label stream of
the slide) decides: an event at or below it is a duplicate and is skipped; one past a gap first
pulls the missing events from the event store. The project stream and the label streams never
depend on each other's order: label projections hold raw category ids, which readers resolve
through the project state (merges, deletions) at read time. A slide's label streams are folded
in fold order (histolabel/projections/labels.py), whatever order they arrive in.

A batch is applied a slide (or project stream) at a time: one read of the checkpoint and the
touched buckets and one conditional write per run of events (up to MAX_BUCKETS_PER_WRITE
buckets), not per event, which is what lets one projector keep up with a hot slide.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from histolabel.events.catalogue import LABEL_EVENT_TYPES
from histolabel.events.envelope import StoredEvent, slide_of, stream_kind
from histolabel.events.streams import history_of
from histolabel.eventstore import EventStore
from histolabel.projections.labels import buckets_of, catch_up, event_ids, in_fold_order
from histolabel.projections.project import ProjectState, apply_project_event
from histolabel.projections.store import ProjectionConflict, ProjectionStore

MAX_EVENTS_PER_SAVE = 25
# One projection write holds the slide summary, the label total and at most this many buckets
# (a DynamoDB transaction takes 100 items).
MAX_BUCKETS_PER_WRITE = 98


@dataclass
class Outcome:
    applied: int = 0
    skipped: int = 0
    labels_added: int = 0


class Projector:
    def __init__(
        self,
        projections: ProjectionStore,
        events: EventStore,
        on_labels: Callable[[str], None] | None = None,
        max_conflicts: int = 5,
    ) -> None:
        self.projections = projections
        self.events = events
        self.on_labels = on_labels
        self.max_conflicts = max_conflicts

    def handle(self, event: StoredEvent) -> Outcome:
        kind = stream_kind(event.stream)
        for _attempt in range(self.max_conflicts):
            try:
                if kind == "project":
                    outcome = self._project(event)
                elif kind == "labels":
                    outcome = self._labels_run([event])
                else:
                    return Outcome(skipped=1)
                break
            except ProjectionConflict:
                # Another projector instance moved the checkpoint; reload and try again.
                continue
        else:
            raise ProjectionConflict(event.stream)
        if outcome.labels_added and self.on_labels is not None:
            self.on_labels(event.project)
        return outcome

    def handle_stream(self, events: list[StoredEvent]) -> Outcome:
        """Apply events of one project stream, or of one slide's label streams (any order,
        duplicates allowed), with as few writes as the projection's transaction limit allows."""
        ordered = sorted({(e.stream, e.seq): e for e in events}.values(), key=lambda e: (e.stream, e.seq))
        if not ordered:
            return Outcome()
        kind = stream_kind(ordered[0].stream)
        for _attempt in range(self.max_conflicts):
            try:
                if kind == "project":
                    outcome = self._project_run(ordered)
                elif kind == "labels":
                    outcome = self._labels_run(ordered)
                else:
                    return Outcome(skipped=len(ordered))
                break
            except ProjectionConflict:
                continue
        else:
            raise ProjectionConflict(ordered[0].stream)
        return outcome

    def _project_run(self, events: list[StoredEvent]) -> Outcome:
        state = self.projections.load_project(events[0].project) or ProjectState()
        expected = state.seq
        pending = self._contiguous(events, expected)
        if not pending:
            return Outcome(skipped=len(events))
        # Saved every few events, as in `_project`: a batch of a hundred members added (each a
        # membership item) or slides registered would not fit one transaction.
        for start in range(0, len(pending), MAX_EVENTS_PER_SAVE):
            for e in pending[start : start + MAX_EVENTS_PER_SAVE]:
                apply_project_event(state, e)
            self.projections.save_project(state, expected)
            expected = state.seq
        return Outcome(applied=len(pending), skipped=max(0, len(events) - len(pending)))

    def _contiguous(self, events: list[StoredEvent], checkpoint: int) -> list[StoredEvent]:
        """The events past the checkpoint, a gap before or among them filled from the store."""
        pending = [e for e in events if e.seq > checkpoint]
        if pending and [e.seq for e in pending] != list(range(checkpoint + 1, pending[-1].seq + 1)):
            pending = list(self.events.read(pending[0].stream, after=checkpoint, upto=pending[-1].seq))
        return pending

    def _labels_run(self, events: list[StoredEvent]) -> Outcome:
        """Events of one slide's label streams (any of them, any order) into its projection: one
        load of the touched buckets, the events folded in fold order, and one conditional write
        per MAX_BUCKETS_PER_WRITE buckets."""
        project, slide = events[0].project, slide_of(events[0].stream)
        by_stream: dict[str, list[StoredEvent]] = {}
        for e in events:
            by_stream.setdefault(e.stream, []).append(e)
        touched = buckets_of(i for e in events for i in event_ids(e))
        state = self.projections.load_slide(project, slide, buckets=touched)
        folded = state.cursor()
        pending = [
            e
            for stream, stream_events in sorted(by_stream.items())
            for e in self._contiguous(sorted(stream_events, key=lambda e: e.seq), folded.get(stream, 0))
        ]
        if not pending:
            return Outcome(skipped=len(events))
        extra = buckets_of(i for e in pending for i in event_ids(e)) - touched
        if extra:
            # A gap was filled from the store, and its events touch buckets not loaded yet.
            touched |= extra
            state = self.projections.load_slide(project, slide, buckets=touched)
        ordered = [e for _key, e in in_fold_order(state.heads, pending)]
        history = history_of(self.events)
        added = 0
        start = 0
        while start < len(ordered):
            run: list[StoredEvent] = []
            run_buckets: set[int] = set()
            for e in ordered[start:]:
                if e.type not in LABEL_EVENT_TYPES:
                    raise ValueError(f"{e.type} does not belong on a label stream ({e.stream}#{e.seq})")
                b = buckets_of(event_ids(e))
                if run and len(run_buckets | b) > MAX_BUCKETS_PER_WRITE:
                    break
                run.append(e)
                run_buckets |= b
            expected, before = state.seq, state.label_actions
            catch_up(state, run, history)
            self.projections.save_slide(state, run_buckets, expected, state.label_actions - before)
            added += state.label_actions - before
            start += len(run)
        return Outcome(applied=len(ordered), skipped=max(0, len(events) - len(ordered)), labels_added=added)

    def handle_all(self, events: Iterable[StoredEvent]) -> Outcome:
        total = Outcome()
        for event in events:
            o = self.handle(event)
            total.applied += o.applied
            total.skipped += o.skipped
            total.labels_added += o.labels_added
        return total

    def _pending(self, stream: str, checkpoint: int, event: StoredEvent) -> list[StoredEvent]:
        if event.seq <= checkpoint:
            return []
        if event.seq == checkpoint + 1:
            return [event]
        return list(self.events.read(stream, after=checkpoint, upto=event.seq))

    def _project(self, event: StoredEvent) -> Outcome:
        state = self.projections.load_project(event.project) or ProjectState()
        expected = state.seq
        pending = self._pending(event.stream, expected, event)
        if not pending:
            return Outcome(skipped=1)
        # Saved every few events: each save (its changed entries and the checkpoint) then fits
        # one transaction of the projection store.
        for start in range(0, len(pending), MAX_EVENTS_PER_SAVE):
            for e in pending[start : start + MAX_EVENTS_PER_SAVE]:
                apply_project_event(state, e)
            self.projections.save_project(state, expected)
            expected = state.seq
        return Outcome(applied=len(pending))
