import pytest
from pydantic import ValidationError

from histolabel.commands import (
    AddCategory,
    CommandRejected,
    DeleteCategory,
    LabelSuperpixels,
    MergeCategories,
    ReviewLabels,
    SetHotkey,
    chunk_ids,
)
from histolabel.events.catalogue import MAX_IDS_PER_EVENT, upcast
from histolabel.events.streams import slide_events
from histolabel.projections.labels import buckets_of
from tests.unit.helpers import ANNOTATOR, AUDITOR, OWNER, REVIEWER, memory_service, seeded_project


def event_count(svc) -> int:
    return sum(len(s) for s in svc.events.streams.values())


def test_categories_get_palette_colours_and_free_hotkeys():
    svc = memory_service()
    seeded_project(svc)
    cats = svc.project_state("proj").live_categories()
    assert [c.hotkey for c in cats] == ["1", "2", "3"]
    assert len({c.color for c in cats}) == 3


@pytest.mark.parametrize(
    "command, field",
    [
        (AddCategory(project_id="proj", name="Tumor"), "name"),
        (AddCategory(project_id="proj", name="new", hotkey="1"), "hotkey"),
        (LabelSuperpixels(project_id="proj", slide_id="s1", ids=[1, 2], category_id="nope"), "category_id"),
        (LabelSuperpixels(project_id="proj", slide_id="s1", ids=[1, 5001], category_id="tumor"), "ids"),
        (LabelSuperpixels(project_id="proj", slide_id="s9", ids=[1], category_id="tumor"), "slide_id"),
        (SetHotkey(project_id="proj", category_id="stroma", hotkey="1"), "hotkey"),
        (MergeCategories(project_id="proj", sources=["tumor"], target="ghost"), "target"),
    ],
)
def test_bad_commands_are_refused_naming_the_field_and_write_nothing(command, field):
    svc = memory_service()
    seeded_project(svc)
    before = event_count(svc)
    with pytest.raises(CommandRejected) as err:
        svc.execute(command, OWNER)
    assert err.value.field == field
    assert event_count(svc) == before


def test_malformed_ids_and_oversize_batches_fail_validation():
    with pytest.raises(ValidationError):
        LabelSuperpixels(project_id="proj", slide_id="s1", ids=[0], category_id="tumor")
    with pytest.raises(ValidationError):
        LabelSuperpixels(project_id="proj", slide_id="s1", ids=["x"], category_id="tumor")
    with pytest.raises(ValidationError):
        LabelSuperpixels(project_id="proj", slide_id="s1", ids=list(range(1, 100_002)), category_id="tumor")


def test_roles_gate_commands():
    svc = memory_service()
    seeded_project(svc)
    label = LabelSuperpixels(project_id="proj", slide_id="s1", ids=[1], category_id="tumor")
    with pytest.raises(CommandRejected) as err:
        svc.execute(label, AUDITOR)
    assert err.value.status == 403
    with pytest.raises(CommandRejected):
        svc.execute(label, REVIEWER)
    svc.execute(label, ANNOTATOR)
    with pytest.raises(CommandRejected):
        svc.execute(ReviewLabels(project_id="proj", slide_id="s1", ids=[1], action="approve"), ANNOTATOR)
    svc.execute(ReviewLabels(project_id="proj", slide_id="s1", ids=[1], action="approve"), REVIEWER)


def test_bulk_labels_are_split_below_item_and_transaction_limits():
    svc = memory_service()
    seeded_project(svc, superpixels=60_000)
    ids = list(range(1, 50_001))
    result = svc.execute(
        LabelSuperpixels(project_id="proj", slide_id="s1", ids=ids, category_id="tumor", source="bulk"),
        ANNOTATOR,
    )
    assert result.appended == len(chunk_ids(ids)) <= 99
    stored = slide_events(svc.events, "proj", "s1")
    assert sorted(i for e in stored for i in e.payload["ids"]) == ids
    assert all(len(e.data.encode()) < 100_000 for e in stored)
    assert all(len(e.payload["ids"]) <= MAX_IDS_PER_EVENT for e in stored)
    assert all(len(buckets_of(e.payload["ids"])) <= 64 for e in stored)


def test_idempotency_key_makes_a_retry_a_no_op():
    svc = memory_service()
    seeded_project(svc)
    cmd = LabelSuperpixels(project_id="proj", slide_id="s1", ids=[1, 2, 3], category_id="tumor")
    first = svc.execute(cmd, ANNOTATOR, idempotency_key="k-1")
    before = event_count(svc)
    again = svc.execute(cmd, ANNOTATOR, idempotency_key="k-1")
    assert again.duplicate and again.events == first.events
    assert event_count(svc) == before


def test_delete_category_records_how_many_labels_it_clears():
    from histolabel.projections.projector import Projector

    svc = memory_service()
    seeded_project(svc)
    svc.execute(
        LabelSuperpixels(project_id="proj", slide_id="s1", ids=[1, 2, 3], category_id="stroma"), ANNOTATOR
    )
    Projector(svc.projections, svc.events).handle_all(
        e for s in svc.events.streams.values() for e in s.values()
    )
    svc.execute(DeleteCategory(project_id="proj", category_id="stroma"), OWNER)
    last = list(svc.events.read("P#proj"))[-1]
    assert last.type == "CategoryDeleted" and last.payload["labels_cleared"] == 3


def test_old_event_versions_are_upcast():
    assert (
        upcast("SuperpixelsLabeled", 1, {"slide_id": "s", "ids": [1], "category_id": "c"})["source"]
        == "click"
    )
    with pytest.raises(ValueError):
        upcast("SuperpixelsLabeled", 9, {})
    with pytest.raises(ValueError):
        upcast("NoSuchEvent", 1, {})


@pytest.mark.parametrize(
    "event_type, data, message",
    [
        ("NoSuchEvent", {"slide_id": "s1"}, "unknown event type"),
        ("SegmentationCompleted", {"slide_id": "s1", "count": 5}, "labels_uri"),
        ("SegmentationCompleted", {"slide_id": "ghost", "count": 5, "labels_uri": "u", "table_uri": "t",
                                   "superpixel_size": 64, "compactness": 10}, "does not exist"),
    ],
)  # fmt: skip
def test_bad_job_events_are_refused_and_write_nothing(event_type, data, message):
    svc = memory_service()
    seeded_project(svc)
    before = event_count(svc)
    with pytest.raises(ValueError, match=message):
        svc.record_job_event("proj", event_type, data, job="segment")
    assert event_count(svc) == before
