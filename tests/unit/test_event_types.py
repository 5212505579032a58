"""Event types: every one registered under its class name with a fold, decisions return event
models, and what is stored is exactly what the code stored before events were typed (the hash
chain covers type, v and data: a stored event that changed form would no longer verify)."""

from __future__ import annotations

import json
import random
import uuid
from pathlib import Path

import pytest

from histolabel import commands as C
from histolabel.adapters.memory import InMemoryEventStore
from histolabel.events import catalogue as ev
from histolabel.events.envelope import StoredEvent, canonical_json, verify_chain
from histolabel.events.fields import ProjectSettings
from histolabel.projections.labels import ENTRY_FOLDS, fold_labels
from histolabel.projections.project import ProjectState, fold_project
from histolabel.runtime.job_events_lambda import handle_state_change
from histolabel.training_requests import handle_training_requested
from tests.unit.helpers import ANNOTATOR, OWNER, REVIEWER, memory_service, ticking_clock

# Written by the code at b30e92b (before typed events) from `write_scenario`, a line per event.
GOLDEN = Path(__file__).with_name("stored_events_b30e92b.jsonl")


class Submitter:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail

    def submit(self, kind: str, args: list[str], name: str) -> str:
        if self.fail:
            raise RuntimeError("no queue")
        return f"batch-{kind}"


def write_scenario(svc) -> None:
    """Every path that appends: commands of each kind, job reports, the trigger's claim and its
    failure, job outcomes."""
    p, ex = "proj", svc.execute
    # The settings as the golden file's code defaulted them (the default metric changed since).
    settings = ProjectSettings(certainty_metric="confidence")
    ex(C.CreateProject(project_id=p, name="Demo", settings=settings), OWNER)
    ex(C.AddMember(project_id=p, user=ANNOTATOR.user, role="annotator", site=ANNOTATOR.site), OWNER)
    ex(C.AddMember(project_id=p, user=REVIEWER.user, role="reviewer", site=REVIEWER.site), OWNER)
    changed = {"superpixel_size": 32, "label_overlap": 0.25, "certainty_metric": "confidence"}
    ex(C.ChangeSettings(project_id=p, settings=changed), OWNER)
    ex(C.AddCategory(project_id=p, name="tumor"), OWNER)
    ex(C.AddCategory(project_id=p, name="Fat", color="#112233", hotkey="Shift+A", category_id="fat"), OWNER)
    ex(C.AddCategory(project_id=p, name="bone"), OWNER)
    ex(C.RenameCategory(project_id=p, category_id="fat", name="Fatty"), OWNER)
    ex(C.RecolorCategory(project_id=p, category_id="fat", color="#445566"), OWNER)
    ex(C.SetHotkey(project_id=p, category_id="fat", hotkey="ctrl+1"), OWNER)
    ex(C.ExcludeCategory(project_id=p, category_id="fat"), OWNER)
    ex(C.IncludeCategory(project_id=p, category_id="fat"), OWNER)
    source = f"s3://bucket/projects/{p}/slides/s1/source/s1.svs"
    ex(C.RegisterSlide(project_id=p, name="one", source_uri=source, slide_id="s1"), OWNER)
    segmentation = {"slide_id": "s1", "count": 600, "labels_uri": "s3://b/l", "table_uri": "s3://b/t",
                    "superpixel_size": 64, "compactness": 10}  # fmt: skip
    svc.record_job_event(p, "SegmentationCompleted", segmentation, job="segment")
    svc.record_job_event(p, "SlideIngested", {"slide_id": "s1", "zarr_uri": "s3://b/z", "width": 9,
                                              "height": 9, "levels": 1}, job="ingest")  # fmt: skip
    ex(C.LabelSuperpixels(project_id=p, slide_id="s1", ids=[300, 1, 2, 3], category_id="tumor"), ANNOTATOR)
    ex(C.LabelSuperpixels(project_id=p, slide_id="s1", ids=[2, 4], category_id="bone", source="brush"), OWNER)
    ex(C.UnlabelSuperpixels(project_id=p, slide_id="s1", ids=[2]), ANNOTATOR)
    ex(C.ReviewLabels(project_id=p, slide_id="s1", ids=[1], action="approve"), REVIEWER)
    ex(C.ReviewLabels(project_id=p, slide_id="s1", ids=[3], action="change", category_id="fat"), REVIEWER)
    ex(C.ReviewLabels(project_id=p, slide_id="s1", ids=[300], action="clear"), REVIEWER)
    ex(C.MergeCategories(project_id=p, sources=["bone"], target="tumor"), OWNER)
    ex(C.DeleteCategory(project_id=p, category_id="fat"), OWNER)
    ex(C.RecordJobSubmitted(project_id=p, job="ingest", job_id="j-1", slide_id="s1"), OWNER)
    ex(C.RequestTraining(project_id=p), ANNOTATOR)
    requested = [e for e in svc.events.read(f"P#{p}") if e.type == "TrainingRequested"]
    handle_training_requested(svc, Submitter(fail=True), requested[-1])
    ex(C.RequestTraining(project_id=p), ANNOTATOR)
    requested = [e for e in svc.events.read(f"P#{p}") if e.type == "TrainingRequested"]
    handle_training_requested(svc, Submitter(), requested[-1])
    run = requested[-1].payload["request_id"]
    model = {"request_id": run, "model_version": 1, "model_uri": "s3://b/m", "metrics": {"f1": 0.5}}
    svc.record_job_event(p, "TrainingCompleted", model, job="train")
    ex(C.SelectModel(project_id=p, model_version=1), OWNER)
    published = {"model_version": 1, "uri_prefix": "s3://b/p", "slides": ["s1"], "metric": "margin"}
    svc.record_job_event(p, "PredictionsPublished", published, job="predict")
    for status, code in (("SUCCEEDED", 0), ("FAILED", 3)):
        command = ["python", "-m", "gpu_jobs.embed", "--project", p, "--slide", "s1"]
        container = {"command": command, "exitCode": code}
        reason = "Essential container in task exited"
        detail = {"jobId": f"bj-{status}", "status": status, "statusReason": reason, "container": container}
        handle_state_change(svc, Submitter(), {"detail-type": "Batch Job State Change", "detail": detail})
    failed = {"job": "segment", "slide_id": "s1", "reason": "boom"}
    svc.record_job_event(p, "JobFailed", failed, job="segment")
    features = {"slide_id": "s1", "kind": "patch", "uri": "s3://b/f", "dim": 8}
    svc.record_job_event(p, "FeaturesCompleted", features, job="embed")
    ex(C.ChangeRole(project_id=p, user=REVIEWER.user, role="auditor"), OWNER)
    ex(C.AddMember(project_id=p, user="zed", role="annotator", site="oslo"), OWNER)
    ex(C.RemoveMember(project_id=p, user="zed"), OWNER)
    ex(C.RemoveSlide(project_id=p, slide_id="s1"), OWNER)


def stored_lines(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    draw = random.Random(7)
    monkeypatch.setattr(uuid, "uuid4", lambda: uuid.UUID(int=draw.getrandbits(128)))
    svc = memory_service(ticking_clock())
    write_scenario(svc)
    events = [e for stream in sorted(svc.events.streams) for e in svc.events.read(stream)]
    return [json.dumps(e.as_dict(), sort_keys=True) for e in events]


def test_events_are_stored_exactly_as_before_they_were_typed(monkeypatch):
    lines = stored_lines(monkeypatch)
    golden = GOLDEN.read_text().splitlines()
    assert len(lines) == len(golden)
    for line, old in zip(lines, golden, strict=True):
        assert line == old


def test_events_stored_before_verify_and_fold():
    store = InMemoryEventStore()
    store.append([StoredEvent(**json.loads(line)) for line in GOLDEN.read_text().splitlines()])
    for stream, events in store.streams.items():
        assert verify_chain([events[s] for s in sorted(events)]) is None, stream
    state = fold_project(list(store.read("P#proj")))
    assert state.categories["bone"].merged_into == "tumor" and state.categories["fat"].deleted
    assert [r.status for r in state.training.values()] == ["failed", "completed"]
    assert state.removed_slides == ["s1"] and state.selected_model == 1 and "zed" not in state.members
    assert state.members[REVIEWER.user].role == "auditor"
    labels = fold_labels(
        "proj", "s1", [e for s, es in store.streams.items() if s.startswith("L#") for e in es.values()]
    )
    # ana took back her label on 2: olivia's shows again
    assert labels.current() == {1: "tumor", 2: "bone", 3: "fat", 4: "bone"}
    assert labels.entries[1]["r"]["a"] == "approve" and labels.review_counts == {
        "approve": 1,
        "change": 1,
        "clear": 1,
    }


def test_every_event_type_has_its_fold():
    assert len(ev.EVENT_TYPES) >= 30
    for name, model in ev.EVENT_TYPES.items():
        assert model.__name__ == name
        if issubclass(model, ev.ProjectEvent):
            assert model.fold is not ev.ProjectEvent.fold, f"{name} has no fold"
        else:
            assert issubclass(model, ev.LabelEvent) and model in ENTRY_FOLDS, f"{name} has no entry fold"
    assert {"SuperpixelsLabeled", "SuperpixelsUnlabeled", "LabelsReviewed"} == ev.LABEL_EVENT_TYPES


def test_decide_returns_event_models_stored_under_their_class_name():
    state = ProjectState()
    decided = C.CreateProject(project_id="p", name="Demo").decide(state, "olivia", "nyc")
    assert [type(e.data) for e in decided] == [ev.ProjectCreated, ev.MemberAdded]
    assert [e.type for e in decided] == ["ProjectCreated", "MemberAdded"]
    assert all(e.stream == "P#p" for e in decided)
    svc = memory_service()
    result = svc.execute(C.CreateProject(project_id="p", name="Demo"), OWNER)
    stored = list(svc.events.read("P#p"))
    assert [e["type"] for e in result.events] == ["ProjectCreated", "MemberAdded"]
    assert stored[0].data == canonical_json(decided[0].data.model_dump(mode="json"))
    assert stored[0].v == ev.ProjectCreated.VERSION


def test_a_new_event_must_be_of_a_registered_type():
    with pytest.raises(TypeError, match="not a registered event type"):
        ev.NewEvent("P#p", ev.LabelEvent(slide_id="s", ids=[1]))
    with pytest.raises(TypeError, match="defined twice"):

        class MemberAdded(ev.ProjectEvent):  # the name is taken: it would fold as the other
            user: str
