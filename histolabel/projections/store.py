"""The projection store port and the codecs its adapters share (histolabel.adapters.memory and
histolabel.adapters.dynamo_projections). Saves are conditional on the checkpoint, the stream seq
the stored state was folded up to, so a stale or duplicated write can never land."""

from __future__ import annotations

import json
from dataclasses import dataclass
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

    def load_bodies(self, project_id: str, slide_id: str) -> tuple[SlideLabels, dict[int, str]]:
        """The slide's summary and checkpoint (no entries), and each stored bucket's body as
        stored: what a rebuild compares the fresh fold's encoding with, decoding none."""
        ...

    def load_slides(self, project_id: str, buckets: dict[str, set[int]]) -> dict[str, SlideLabels]:
        """load_slide of many slides (slide -> buckets) in as few batched reads as the store allows."""
        ...

    def save_slide(self, state: SlideLabels, buckets: set[int], expected_seq: int, labels_delta: int) -> None:
        """Write the summary, the given buckets and the project's label total, atomically."""
        ...

    def labels_total(self, project_id: str) -> int: ...

    def mark_labeled(self, project_id: str, slide_ids: set[str]) -> None:
        """Count a write to each slide's labels (written after the events are appended): the
        review snapshot re-reads a slide whose count passed the one it was made at."""
        ...

    def label_marks(self, project_id: str) -> dict[str, int]:
        """slide -> its count of label writes (slides never marked are absent)."""
        ...

    def list_projects(self) -> list[ProjectState]:
        """Every projected project's head (settings, members, categories; no slides, runs, jobs
        or models), in id order: for background work over all projects (the anchorer), not for
        a member's list (`projects_of`)."""
        ...

    def projects_of(self, user: str) -> list[Membership]:
        """The projects `user` is a member of, with their role, in project id order: one read
        of the member's own items, written with each project save that changes its members."""
        ...

    def put_rebuilt(self, project: ProjectState, slides: list[SlideRewrite], total: int) -> None:
        """Put a freshly folded projection in place of the stored one: the project's items, its
        members' membership items (missing ones written, those of non-members deleted) and
        label total, and of each slide the buckets that differ (`rewrite`), then its summary.
        The live projection is never dropped first: readers see the old state or the new one,
        bucket by bucket, never an empty project."""
        ...


@dataclass(frozen=True)
class Membership:
    """A member's entry for one project, stored under the member (one item per membership) so
    listing a member's projects reads their own partition, never every project's."""

    project_id: str
    name: str
    role: str


def memberships_of(state: ProjectState) -> dict[str, Membership]:
    """member -> their membership item's value in `state`."""
    return {user: Membership(state.project_id, state.name, m.role) for user, m in state.members.items()}


def membership_changes(
    stored: dict[str, Membership], wanted: dict[str, Membership]
) -> dict[str, Membership | None]:
    """What turns the `stored` membership items into `wanted`: member -> item to put, or None to
    delete; only those that differ (a save that changes no member writes none)."""
    changes: dict[str, Membership | None] = {u: m for u, m in wanted.items() if stored.get(u) != m}
    changes.update({u: None for u in stored.keys() - wanted.keys()})
    return changes


def encode_bucket(state: SlideLabels, b: int) -> str:
    return encode_buckets(state, {b})[b]


def encode_buckets(state: SlideLabels, buckets: set[int]) -> dict[int, str]:
    return {b: _encode_body(body) for b, body in state.buckets(buckets).items()}


def _encode_body(body: dict[int, Any]) -> str:
    # Canonical (keys sorted inside each entry too), so equal entries are equal bodies: a
    # rebuild compares the stored strings instead of decoding 10^6 entries.
    return json.dumps({str(i): e for i, e in sorted(body.items())}, separators=(",", ":"), sort_keys=True)


@dataclass
class SlideRewrite:
    """A rebuilt slide and the buckets to write for it: bucket -> body, "{}" to delete."""

    state: SlideLabels
    buckets: dict[int, str]


def rewrite(fresh: SlideLabels, stored: dict[int, str]) -> SlideRewrite:
    """What replacing the stored buckets (bucket -> body, load_bodies) by `fresh` writes: only
    the buckets whose bodies differ (a rebuild that finds the projection sound writes its
    summaries alone), and deletes for the buckets `fresh` no longer has."""
    new = encode_buckets(fresh, all_buckets(fresh))
    changed = {b: body for b, body in new.items() if stored.get(b) != body}
    changed.update({b: "{}" for b in stored.keys() - new.keys()})
    return SlideRewrite(fresh, changed)


def first_difference(stored: dict[int, str], changed: dict[int, str]) -> int | None:
    """The lowest superpixel whose stored entry differs from the one `rewrite` would write,
    decoding only the `changed` buckets; None where they differ in none (encoding alone)."""
    for b in sorted(changed):
        old = decode_bucket(stored[b]) if b in stored else {}
        new = decode_bucket(changed[b])
        for sp in sorted(old.keys() | new.keys()):
            if old.get(sp) != new.get(sp):
                return sp
    return None


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
