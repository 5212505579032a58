"""The projection store port, and an in-memory store with the same semantics (used by the
auditor's fresh fold and by tests). Saves are conditional on the checkpoint, the stream seq the
stored state was folded up to, so a stale or duplicated write can never land."""

from __future__ import annotations

import json
from typing import Any, Protocol

from histolabel.events.envelope import label_stream
from histolabel.projections.labels import SlideLabels, bucket_of
from histolabel.projections.project import ProjectState, head_body


class ProjectionConflict(Exception):
    """The stored checkpoint moved since it was read."""


class ProjectionStore(Protocol):
    def load_project(self, project_id: str) -> ProjectState | None: ...

    def save_project(self, state: ProjectState, expected_seq: int) -> None: ...

    def load_slide(self, project_id: str, slide_id: str, buckets: set[int] | None = None) -> SlideLabels:
        """The slide's summary and checkpoint, with the entries of `buckets` (all when None)."""
        ...

    def load_slides(self, project_id: str, buckets: dict[str, set[int]]) -> dict[str, SlideLabels]:
        """load_slide of many slides (slide -> buckets) in as few batched reads as the store allows."""
        ...

    def save_slide(self, state: SlideLabels, buckets: set[int], expected_seq: int, labels_delta: int) -> None:
        """Write the summary, the given buckets and the project's label total, atomically."""
        ...

    def labels_total(self, project_id: str) -> int: ...

    def list_projects(self) -> list[ProjectState]:
        """Every projected project's head (settings, members, categories; no slides, runs, jobs
        or models), in id order (consortium scale: tens of projects)."""
        ...

    def drop_project(self, project_id: str, slide_ids: list[str]) -> None: ...

    def put_rebuilt(self, project: ProjectState, slides: list[SlideLabels], total: int) -> None:
        """Write a freshly folded projection wholesale (after drop_project)."""
        ...


def encode_bucket(state: SlideLabels, b: int) -> str:
    return encode_buckets(state, {b})[b]


def encode_buckets(state: SlideLabels, buckets: set[int]) -> dict[int, str]:
    return {
        b: json.dumps({str(i): e for i, e in sorted(body.items())}, separators=(",", ":"))
        for b, body in state.buckets(buckets).items()
    }


def decode_bucket(body: str) -> dict[int, Any]:
    return {int(k): v for k, v in json.loads(body).items()}


def encode_summary(state: SlideLabels) -> str:
    return json.dumps(state.summary(), separators=(",", ":"), sort_keys=True)


def slide_from_summary(project_id: str, slide_id: str, body: str | None) -> SlideLabels:
    state = SlideLabels(project_id=project_id, slide_id=slide_id)
    if body:
        s = json.loads(body)
        state.seq, state.hash = s["seq"], s["hash"]
        state.counts, state.user_counts = s["counts"], s["user_counts"]
        state.review_counts, state.label_actions = s["review_counts"], s["label_actions"]
        # A summary written before label streams were kept per member folded the slide's own
        # stream alone, up to its seq.
        legacy = {label_stream(project_id, slide_id): [s["seq"], s["hash"], ""]} if s["seq"] else {}
        state.heads = s.get("heads", legacy)
    return state


class InMemoryProjectionStore:
    def __init__(self) -> None:
        import threading

        self._lock = threading.RLock()  # saves check and write as one step, as a transaction does
        self.projects: dict[str, str] = {}
        self.summaries: dict[tuple[str, str], str] = {}
        self.buckets: dict[tuple[str, str], dict[int, str]] = {}
        self.totals: dict[str, int] = {}

    def load_project(self, project_id: str) -> ProjectState | None:
        body = self.projects.get(project_id)
        return ProjectState.model_validate_json(body) if body else None

    def save_project(self, state: ProjectState, expected_seq: int) -> None:
        with self._lock:
            current = self.load_project(state.project_id)
            if (current.seq if current else 0) != expected_seq:
                raise ProjectionConflict(state.project_id)
            self.projects[state.project_id] = state.model_dump_json()

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

    def save_slide(self, state: SlideLabels, buckets: set[int], expected_seq: int, labels_delta: int) -> None:
        with self._lock:
            self._save_slide(state, buckets, expected_seq, labels_delta)

    def _save_slide(self, state: SlideLabels, buckets: set[int], expected_seq: int, delta: int) -> None:
        key = (state.project_id, state.slide_id)
        current = slide_from_summary(*key, self.summaries.get(key))
        if current.seq != expected_seq:
            raise ProjectionConflict(key)
        self.summaries[key] = encode_summary(state)
        stored = self.buckets.setdefault(key, {})
        for b, body in encode_buckets(state, buckets).items():
            if body == "{}":
                stored.pop(b, None)
            else:
                stored[b] = body
        self.totals[state.project_id] = self.totals.get(state.project_id, 0) + delta

    def labels_total(self, project_id: str) -> int:
        return self.totals.get(project_id, 0)

    def list_projects(self) -> list[ProjectState]:
        states = [ProjectState.model_validate_json(self.projects[p]) for p in sorted(self.projects)]
        return [ProjectState.model_validate_json(head_body(s)) for s in states]

    def drop_project(self, project_id: str, slide_ids: list[str]) -> None:
        self.projects.pop(project_id, None)
        self.totals.pop(project_id, None)
        for key in [k for k in self.summaries if k[0] == project_id]:
            self.summaries.pop(key)
            self.buckets.pop(key, None)

    def put_rebuilt(self, project: ProjectState, slides: list[SlideLabels], total: int) -> None:
        self.projects[project.project_id] = project.model_dump_json()
        self.totals[project.project_id] = total
        for slide in slides:
            key = (slide.project_id, slide.slide_id)
            self.summaries[key] = encode_summary(slide)
            self.buckets[key] = encode_buckets(slide, all_buckets(slide))


def all_buckets(state: SlideLabels) -> set[int]:
    return {bucket_of(i) for i in [*state.entries, *state.gone]}
