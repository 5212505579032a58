"""The projection store contract (`histolabel.projections.store.ProjectionStore`): checkpointed
saves refuse a stale writer, slides load whole or by bucket, totals add up, a member's projects
follow the saves (a removed member's entry deleted), label marks count per slide, and a rebuild
is put in place of the stored projection, stale buckets and memberships deleted, missing
memberships written."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from histolabel.projections.labels import BUCKET_SIZE, SlideLabels
from histolabel.projections.project import Member, ProjectState
from histolabel.projections.store import Membership, ProjectionConflict, ProjectionStore, rewrite
from tests.contracts.checks import Checks

CHECKS = Checks()
check = CHECKS.check


def project(seq: int = 1, name: str = "Lung") -> ProjectState:
    pid = f"c{uuid.uuid4().hex[:12]}"
    return ProjectState(project_id=pid, name=name, created_at="2026-12-01T00:00:00Z", seq=seq)


def members(state: ProjectState, seq: int, **roles: str) -> ProjectState:
    """`state` at `seq` with exactly these members (user=role)."""
    at = "2026-12-01T00:00:00Z"
    listed = {u: Member(role=r, site="nyc", since=at) for u, r in roles.items()}
    return state.model_copy(update={"seq": seq, "members": listed})


def users(n: int) -> list[str]:
    """Fresh user ids: the DynamoDB checks share one table."""
    tag = uuid.uuid4().hex[:8]
    return [f"u{tag}{i}" for i in range(n)]


def entry(category: str | None, user: str = "alice") -> dict[str, Any]:
    at = "2026-12-01T00:00:00.000000Z"
    return {"l": {user: [category, at]}, "c": category, "cb": user, "ca": at}


def slide(pid: str, seq: int, ids: dict[int, str | None]) -> SlideLabels:
    state = SlideLabels(project_id=pid, slide_id="s1", seq=seq, hash=f"{seq:064x}")
    state.entries = {i: entry(c) for i, c in ids.items()}
    state.counts = {}
    for c in ids.values():
        if c is not None:
            state.counts[c] = state.counts.get(c, 0) + 1
    state.label_actions = seq
    return state


@check
def an_unknown_project_is_none(store: ProjectionStore) -> None:
    assert store.load_project(f"c{uuid.uuid4().hex[:12]}") is None


@check
def a_saved_project_reads_back(store: ProjectionStore) -> None:
    p = project()
    store.save_project(p, expected_seq=0)
    back = store.load_project(p.project_id)
    assert back is not None and back.model_dump() == p.model_dump()
    assert p.project_id in {x.project_id for x in store.list_projects()}


@check
def a_stale_project_checkpoint_is_refused(store: ProjectionStore) -> None:
    p = project()
    store.save_project(p, expected_seq=0)
    p2 = p.model_copy(update={"seq": 2, "name": "Lung 2"})
    store.save_project(p2, expected_seq=1)
    stale = p.model_copy(update={"seq": 2, "name": "lost update"})
    with pytest.raises(ProjectionConflict):
        store.save_project(stale, expected_seq=1)
    back = store.load_project(p.project_id)
    assert back is not None and back.name == "Lung 2"


@check
def a_slide_loads_whole_or_by_bucket(store: ProjectionStore) -> None:
    pid = project().project_id
    far = 3 * BUCKET_SIZE + 7
    s = slide(pid, 1, {1: "tumor", 2: "stroma", far: "tumor"})
    store.save_slide(s, {0, 3}, expected_seq=0, labels_delta=3)
    whole = store.load_slide(pid, "s1")
    assert whole.entries == s.entries and whole.seq == 1 and whole.counts == {"tumor": 2, "stroma": 1}
    assert set(store.load_slide(pid, "s1", {3}).entries) == {far}
    assert store.load_slide(pid, "s1", {5}).entries == {}
    assert store.labels_total(pid) == 3


@check
def a_slide_save_changes_only_its_buckets_and_adds_the_delta(store: ProjectionStore) -> None:
    pid = project().project_id
    far = 2 * BUCKET_SIZE
    store.save_slide(slide(pid, 1, {1: "tumor", far: "tumor"}), {0, 2}, expected_seq=0, labels_delta=2)
    # The label on `far` is removed; bucket 0 is not among the changed buckets and stays.
    s2 = slide(pid, 2, {1: "tumor"})
    store.save_slide(s2, {2}, expected_seq=1, labels_delta=-1)
    assert set(store.load_slide(pid, "s1").entries) == {1}
    assert store.labels_total(pid) == 1


@check
def a_stale_slide_checkpoint_is_refused(store: ProjectionStore) -> None:
    pid = project().project_id
    store.save_slide(slide(pid, 1, {1: "tumor"}), {0}, expected_seq=0, labels_delta=1)
    with pytest.raises(ProjectionConflict):
        store.save_slide(slide(pid, 2, {1: "stroma"}), {0}, expected_seq=0, labels_delta=0)
    back = store.load_slide(pid, "s1")
    assert back.seq == 1 and back.entries[1]["c"] == "tumor" and store.labels_total(pid) == 1


@check
def a_rebuild_is_put_in_place(store: ProjectionStore) -> None:
    p = project()
    store.save_project(p, expected_seq=0)
    far = 2 * BUCKET_SIZE + 3
    live = slide(p.project_id, 3, {1: "tumor", 2: "tumor", BUCKET_SIZE + 1: "stroma"})
    store.save_slide(live, {0, 1}, expected_seq=0, labels_delta=3)
    summary, stored = store.load_bodies(p.project_id, "s1")
    assert summary.seq == 3 and not summary.entries and set(stored) == {0, 1}
    # A fold equal to the live one writes nothing, whatever order its entries' keys came in.
    same = store.load_slide(p.project_id, "s1")
    same.entries = {i: dict(reversed(list(e.items()))) for i, e in same.entries.items()}
    assert rewrite(same, stored).buckets == {}
    rebuilt_project = project(seq=7, name="rebuilt").model_copy(update={"project_id": p.project_id})
    fresh = slide(p.project_id, 4, {1: "tumor", 2: "stroma", far: "necrosis"})
    change = rewrite(fresh, stored)
    assert set(change.buckets) == {0, 1, 2} and change.buckets[1] == "{}"
    store.put_rebuilt(rebuilt_project, [change], total=4)
    back = store.load_project(p.project_id)
    assert back is not None and back.seq == 7 and back.name == "rebuilt"
    again = store.load_slide(p.project_id, "s1")
    assert again.entries == fresh.entries and again.seq == 4
    assert store.load_slide(p.project_id, "s1", {1}).entries == {}
    assert store.labels_total(p.project_id) == 4
    # and the projector can go on from the rebuilt checkpoints
    store.save_slide(slide(p.project_id, 5, {1: "tumor"}), {0}, expected_seq=4, labels_delta=-1)
    assert store.labels_total(p.project_id) == 3


@check
def a_members_projects_follow_the_saves(store: ProjectionStore) -> None:
    ana, bob, cy = users(3)
    p, q = project(name="Lung"), project(name="Skin")
    store.save_project(members(p, 1, **{ana: "owner", bob: "annotator"}), expected_seq=0)
    store.save_project(members(q, 1, **{ana: "reviewer"}), expected_seq=0)
    assert store.projects_of(ana) == sorted(
        [Membership(p.project_id, "Lung", "owner"), Membership(q.project_id, "Skin", "reviewer")],
        key=lambda m: m.project_id,
    )
    assert store.projects_of(bob) == [Membership(p.project_id, "Lung", "annotator")]
    # bob's role changes, ana is removed from p, cy joins it
    store.save_project(members(p, 2, **{bob: "reviewer", cy: "annotator"}), expected_seq=1)
    assert store.projects_of(ana) == [Membership(q.project_id, "Skin", "reviewer")]
    assert store.projects_of(bob) == [Membership(p.project_id, "Lung", "reviewer")]
    assert store.projects_of(cy) == [Membership(p.project_id, "Lung", "annotator")]
    # a refused save changes no membership
    with pytest.raises(ProjectionConflict):
        store.save_project(members(p, 3, **{cy: "owner"}), expected_seq=1)
    assert store.projects_of(bob) == [Membership(p.project_id, "Lung", "reviewer")]
    assert store.projects_of(users(1)[0]) == []


@check
def a_rebuild_puts_memberships_in_place(store: ProjectionStore) -> None:
    ana, bob, cy, dee = users(4)
    p = project(name="Lung")
    store.save_project(members(p, 1, **{ana: "owner", bob: "annotator"}), expected_seq=0)
    store.put_rebuilt(members(p, 5, **{ana: "reviewer", cy: "annotator"}), [], total=0)
    assert store.projects_of(ana) == [Membership(p.project_id, "Lung", "reviewer")]
    assert store.projects_of(bob) == []
    assert store.projects_of(cy) == [Membership(p.project_id, "Lung", "annotator")]
    # a project whose projection was lost (no items at all) gets its members' items
    q = project(name="Skin")
    store.put_rebuilt(members(q, 3, **{dee: "owner"}), [], total=0)
    assert store.projects_of(dee) == [Membership(q.project_id, "Skin", "owner")]
    # and the saves go on from the rebuilt items
    store.save_project(members(p, 6, **{cy: "annotator"}), expected_seq=5)
    assert store.projects_of(ana) == []
    assert store.projects_of(cy) == [Membership(p.project_id, "Lung", "annotator")]


run_all = CHECKS.run_all


@check
def label_marks_count_each_slides_writes_per_project(store: ProjectionStore) -> None:
    a, b = project().project_id, project().project_id
    assert store.label_marks(a) == {}
    many = {f"s{i}" for i in range(40)}  # more slides than a DynamoDB store's mark items
    store.mark_labeled(a, many)
    store.mark_labeled(a, {"s1", "s2"})
    store.mark_labeled(a, {"s1"})
    store.mark_labeled(b, {"s1"})
    assert store.label_marks(a) == {**{s: 1 for s in many}, "s1": 3, "s2": 2}
    assert store.label_marks(b) == {"s1": 1}
