"""The projection store port and the codecs its adapters share (histolabel.adapters.memory and
histolabel.adapters.dynamo_projections). Saves are conditional on the checkpoint, the stream seq
the stored state was folded up to, so a stale or duplicated write can never land."""

from __future__ import annotations

import json
from typing import Any, Protocol

from histolabel.events.envelope import label_stream
from histolabel.projections.labels import SlideLabels, bucket_of
from histolabel.projections.project import ProjectState


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


def all_buckets(state: SlideLabels) -> set[int]:
    return {bucket_of(i) for i in [*state.entries, *state.gone]}
