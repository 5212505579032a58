"""In-memory adapters of the store ports, with the semantics of the DynamoDB ones (conditional
appends and saves, one lock standing in for a transaction): the in-process service, the auditor's
offline replay and fresh fold, the benchmarks' baselines and the unit tests. The ports' contract
suites (tests/contracts/) run against these and the DynamoDB adapters alike."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import Any

from histolabel.events.envelope import GENESIS_HASH, StoredEvent, directory_of, member_of, slide_directory
from histolabel.eventstore import AppendConflict, DuplicateCommand
from histolabel.leases import Lease
from histolabel.projections.labels import SlideLabels
from histolabel.projections.project import ProjectState, head_body
from histolabel.projections.store import (
    Membership,
    ProjectionConflict,
    SlideRewrite,
    decode_bucket,
    encode_buckets,
    encode_summary,
    membership_changes,
    memberships_of,
    slide_from_summary,
)


class InMemoryEventStore:
    """The same contract in memory: for unit tests and the auditor's offline replay."""

    def __init__(self) -> None:
        self._genesis = GENESIS_HASH
        self.streams: dict[str, dict[int, StoredEvent]] = {}
        self.idem: dict[str, dict[str, Any]] = {}
        self.directories: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def head(self, stream: str) -> tuple[int, str]:
        events = self.streams.get(stream)
        if not events:
            return 0, self._genesis
        last = max(events)
        return last, events[last].hash

    def read(self, stream: str, after: int = 0, upto: int | None = None) -> Iterator[StoredEvent]:
        events = self.streams.get(stream, {})
        for seq in sorted(events):
            if seq > after and (upto is None or seq <= upto):
                yield events[seq]

    def streams_after(self, heads: dict[str, int]) -> set[str]:
        return {s for s, seq in heads.items() if seq + 1 in self.streams.get(s, {})}

    def append(
        self,
        events: list[StoredEvent],
        idempotency: tuple[str, dict[str, Any]] | None = None,
        guard: tuple[str, int] | None = None,
    ) -> None:
        with self._lock:
            if idempotency is not None and idempotency[0] in self.idem:
                raise DuplicateCommand(self.idem[idempotency[0]])
            taken = [e for e in events if e.seq in self.streams.get(e.stream, {})]
            moved = {e.stream for e in taken}
            if guard is not None and guard[1] in self.streams.get(guard[0], {}):
                moved.add(guard[0])
            if moved:
                seen = {e.stream: (e.seq, self.streams[e.stream][e.seq].hash) for e in taken}
                raise AppendConflict(seen, moved)
            for e in events:
                self.streams.setdefault(e.stream, {})[e.seq] = e
                if e.seq == 1 and member_of(e.stream):
                    self.directories.setdefault(directory_of(e.stream), set()).add(e.stream)
            if idempotency is not None:
                self.idem[idempotency[0]] = idempotency[1]

    def idempotent_result(self, stream: str) -> dict[str, Any] | None:
        return self.idem.get(stream)

    def label_streams(self, project_id: str, slide_id: str) -> list[str]:
        return sorted(self.directories.get(slide_directory(project_id, slide_id), ()))


class InMemoryProjectionStore:
    def __init__(self) -> None:
        self._lock = threading.RLock()  # saves check and write as one step, as a transaction does
        self.projects: dict[str, str] = {}
        self.summaries: dict[tuple[str, str], str] = {}
        self.buckets: dict[tuple[str, str], dict[int, str]] = {}
        self.totals: dict[str, int] = {}
        self.marks: dict[str, dict[str, int]] = {}
        # member -> project -> membership, kept beside the states as the DynamoDB store keeps
        # its items (written by the saves, not derived from the states when read)
        self.memberships: dict[str, dict[str, Membership]] = {}

    def load_project(self, project_id: str) -> ProjectState | None:
        body = self.projects.get(project_id)
        return ProjectState.model_validate_json(body) if body else None

    def save_project(self, state: ProjectState, expected_seq: int) -> None:
        with self._lock:
            current = self.load_project(state.project_id)
            if (current.seq if current else 0) != expected_seq:
                raise ProjectionConflict(state.project_id)
            self.projects[state.project_id] = state.model_dump_json()
            before = memberships_of(current) if current else {}
            self._write_memberships(state.project_id, membership_changes(before, memberships_of(state)))

    def _write_memberships(self, project_id: str, changes: dict[str, Membership | None]) -> None:
        for user, m in changes.items():
            if m is None:
                self.memberships.get(user, {}).pop(project_id, None)
            else:
                self.memberships.setdefault(user, {})[project_id] = m

    def projects_of(self, user: str) -> list[Membership]:
        mine = self.memberships.get(user, {})
        return [mine[p] for p in sorted(mine)]

    def load_slide(self, project_id: str, slide_id: str, buckets: set[int] | None = None) -> SlideLabels:
        key = (project_id, slide_id)
        state = slide_from_summary(project_id, slide_id, self.summaries.get(key))
        stored = self.buckets.get(key, {})
        for b in stored if buckets is None else buckets:
            if b in stored:
                state.load_bucket(decode_bucket(stored[b]))
        return state

    def load_slides(self, project_id: str, buckets: dict[str, set[int]]) -> dict[str, SlideLabels]:
        return {sid: self.load_slide(project_id, sid, b) for sid, b in buckets.items()}

    def load_bodies(self, project_id: str, slide_id: str) -> tuple[SlideLabels, dict[int, str]]:
        key = (project_id, slide_id)
        summary = slide_from_summary(project_id, slide_id, self.summaries.get(key))
        return summary, dict(self.buckets.get(key, {}))

    def save_slide(self, state: SlideLabels, buckets: set[int], expected_seq: int, labels_delta: int) -> None:
        with self._lock:
            self._save_slide(state, buckets, expected_seq, labels_delta)

    def _save_slide(self, state: SlideLabels, buckets: set[int], expected_seq: int, delta: int) -> None:
        key = (state.project_id, state.slide_id)
        current = slide_from_summary(*key, self.summaries.get(key))
        if current.seq != expected_seq:
            raise ProjectionConflict(key)
        self.summaries[key] = encode_summary(state)
        self._write_buckets(key, encode_buckets(state, buckets))
        self.totals[state.project_id] = self.totals.get(state.project_id, 0) + delta

    def _write_buckets(self, key: tuple[str, str], bodies: dict[int, str]) -> None:
        """Each body stored, an empty one ("{}") as a deleted bucket, as the DynamoDB store does."""
        stored = self.buckets.setdefault(key, {})
        for b, body in bodies.items():
            if body == "{}":
                stored.pop(b, None)
            else:
                stored[b] = body

    def labels_total(self, project_id: str) -> int:
        return self.totals.get(project_id, 0)

    def mark_labeled(self, project_id: str, slide_ids: set[str]) -> None:
        with self._lock:
            marks = self.marks.setdefault(project_id, {})
            for sid in slide_ids:
                marks[sid] = marks.get(sid, 0) + 1

    def label_marks(self, project_id: str) -> dict[str, int]:
        with self._lock:
            return dict(self.marks.get(project_id, {}))

    def list_projects(self) -> list[ProjectState]:
        states = [ProjectState.model_validate_json(self.projects[p]) for p in sorted(self.projects)]
        return [ProjectState.model_validate_json(head_body(s)) for s in states]

    def put_rebuilt(self, project: ProjectState, slides: list[SlideRewrite], total: int) -> None:
        with self._lock:
            self.projects[project.project_id] = project.model_dump_json()
            self.totals[project.project_id] = total
            pid = project.project_id
            stored = {u: mine[pid] for u, mine in self.memberships.items() if pid in mine}
            self._write_memberships(pid, membership_changes(stored, memberships_of(project)))
            for rewrite in slides:
                key = (rewrite.state.project_id, rewrite.state.slide_id)
                self._write_buckets(key, rewrite.buckets)
                self.summaries[key] = encode_summary(rewrite.state)


class InMemoryLeaseStore:
    def __init__(self) -> None:
        self.slots: dict[tuple[str, str, int, int], Lease] = {}
        self._lock = threading.Lock()

    def held(self, project_id: str, now: float, slots: Mapping[tuple[str, int], int]) -> list[Lease]:
        with self._lock:
            found = (self.slots.get((project_id, s, i, k)) for (s, i), n in slots.items() for k in range(n))
            return [lease for lease in found if lease is not None and lease.until > now]

    def take(self, project_id: str, lease: Lease, now: float, spent: str | None = None) -> bool:
        key = (project_id, lease.slide_id, lease.id, lease.slot)
        with self._lock:
            held = self.slots.get(key)
            if held is not None and held.until > now and held.holder not in (lease.holder, spent):
                return False
            self.slots[key] = lease
            return True

    def take_all(self, project_id: str, attempts: list[tuple[Lease, str | None]], now: float) -> list[bool]:
        return [self.take(project_id, lease, now, spent) for lease, spent in attempts]
