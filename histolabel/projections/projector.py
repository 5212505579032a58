"""Apply stored events to the projection store, exactly once each, in stream order.

Delivery is at-least-once and unordered across streams. Per stream the stored checkpoint (the
seq the projection is folded up to) decides: an event at or below it is a duplicate and is
skipped; one past a gap first pulls the missing events from the event store. Streams never
depend on each other's order: label projections hold raw category ids, which readers resolve
through the project state (merges, deletions) at read time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from histolabel.events.catalogue import LABEL_EVENT_TYPES
from histolabel.events.envelope import StoredEvent, slide_of, stream_kind
from histolabel.eventstore import EventStore
from histolabel.projections.labels import apply_label_event, buckets_of, event_ids
from histolabel.projections.project import ProjectState, apply_project_event
from histolabel.projections.store import ProjectionConflict, ProjectionStore

MAX_EVENTS_PER_SAVE = 25


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
                    outcome = self._labels(event)
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

    def _labels(self, event: StoredEvent) -> Outcome:
        slide = slide_of(event.stream)
        summary = self.projections.load_slide(event.project, slide, buckets=set())
        pending = self._pending(event.stream, summary.seq, event)
        if not pending:
            return Outcome(skipped=1)
        added = 0
        for e in pending:
            if e.type not in LABEL_EVENT_TYPES:
                raise ValueError(f"{e.type} does not belong on a label stream ({e.stream}#{e.seq})")
            touched = buckets_of(event_ids(e))
            state = self.projections.load_slide(event.project, slide, buckets=touched)
            before = state.label_actions
            apply_label_event(state, e)
            self.projections.save_slide(state, touched, e.seq - 1, state.label_actions - before)
            added += state.label_actions - before
        return Outcome(applied=len(pending), labels_added=added)
