"""The projection store contract against the in-memory and the DynamoDB store, and two broken
stores that it must catch."""

from __future__ import annotations

from typing import Any

import pytest

from histolabel.adapters.memory import InMemoryProjectionStore
from tests.contracts.projection_store import CHECKS, run_all


@pytest.fixture(params=["memory", "dynamodb"])
def make_store(request: pytest.FixtureRequest) -> Any:
    if request.param == "memory":
        return InMemoryProjectionStore
    settings = request.getfixturevalue("cloud")
    from histolabel.adapters.dynamo_projections import DynamoProjectionStore

    return lambda: DynamoProjectionStore(settings)


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_contract(make_store: Any, name: str) -> None:
    CHECKS[name](make_store())


class NoCheckpoint(InMemoryProjectionStore):
    """Saves without comparing the checkpoint: two projector instances overwrite each other."""

    def save_project(self, state: Any, expected_seq: int) -> None:
        self.projects[state.project_id] = state.model_dump_json()

    def save_slide(self, state: Any, buckets: set[int], expected_seq: int, labels_delta: int) -> None:
        current = self.load_slide(state.project_id, state.slide_id)
        super().save_slide(state, buckets, current.seq, labels_delta)


class KeepsStaleBuckets(InMemoryProjectionStore):
    """Writes a rebuild's buckets but not its deletes: labels the history no longer holds stay."""

    def put_rebuilt(self, project: Any, slides: list[Any], total: int) -> None:
        for r in slides:
            r.buckets = {b: body for b, body in r.buckets.items() if body != "{}"}
        super().put_rebuilt(project, slides, total)


class KeepsRemovedMembers(InMemoryProjectionStore):
    """Writes memberships but never deletes one: a removed member still has the project listed."""

    def _write_memberships(self, project_id: str, changes: dict[str, Any]) -> None:
        super()._write_memberships(project_id, {u: m for u, m in changes.items() if m is not None})


class RebuildSkipsMemberships(InMemoryProjectionStore):
    """Rebuilds the project's items but leaves its membership items as they were."""

    def put_rebuilt(self, project: Any, slides: list[Any], total: int) -> None:
        kept = {u: dict(ms) for u, ms in self.memberships.items()}
        super().put_rebuilt(project, slides, total)
        self.memberships = kept


class MarksOncePerSlide(InMemoryProjectionStore):
    """Marks a slide as labeled but never counts again: a snapshot made after its first label
    would pass for current after the next."""

    def mark_labeled(self, project_id: str, slide_ids: set[str]) -> None:
        known = self.label_marks(project_id)
        super().mark_labeled(project_id, {s for s in slide_ids if s not in known})


@pytest.mark.parametrize(
    ("broken", "caught_by"),
    [
        (NoCheckpoint, "a_stale_project_checkpoint_is_refused"),
        (NoCheckpoint, "a_stale_slide_checkpoint_is_refused"),
        (KeepsStaleBuckets, "a_rebuild_is_put_in_place"),
        (KeepsRemovedMembers, "a_members_projects_follow_the_saves"),
        (KeepsRemovedMembers, "a_rebuild_puts_memberships_in_place"),
        (RebuildSkipsMemberships, "a_rebuild_puts_memberships_in_place"),
        (MarksOncePerSlide, "label_marks_count_each_slides_writes_per_project"),
    ],
)
def test_a_broken_store_fails_the_contract(broken: type, caught_by: str) -> None:
    failures = {name for name, exc in run_all(broken).items() if exc is not None}
    assert caught_by in failures, f"{broken.__name__} failed only {sorted(failures)}"
