"""Threshold crossing -> exactly one TrainingRequested -> exactly one submitted train job, with
8 clients racing across the threshold, the projector running concurrently and the stream
delivering every event more than once."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from histolabel.commands import ChangeSettings, LabelSuperpixels
from histolabel.composition import service_from_env
from histolabel.events.catalogue import Actor, ProjectSettings
from histolabel.events.envelope import project_stream
from histolabel.projections.projector import Projector
from histolabel.projections.store import ProjectionConflict
from histolabel.training_requests import handle_training_requested
from tests.api.conftest import RecordingSubmitter
from tests.unit.helpers import ANNOTATOR, OWNER, memory_service, seeded_project


def deliver(projector, event, attempts=50):
    """A failed batch is delivered again, as the stream does for a Lambda error."""
    for _ in range(attempts):
        try:
            return projector.handle(event)
        except ProjectionConflict:
            time.sleep(0.01)
    raise AssertionError("projector never caught up")


def training_events(svc, pid, kind="TrainingRequested"):
    return [e for e in svc.events.read(project_stream(pid)) if e.type == kind]


@pytest.fixture(params=["memory", pytest.param("cloud", marks=pytest.mark.slow)])
def race_service(request):
    if request.param == "memory":
        return memory_service(), "proj"
    cloud = request.getfixturevalue("cloud")
    return service_from_env(cloud), request.getfixturevalue("project_id")


def test_eight_clients_racing_across_the_threshold(race_service):
    svc, pid = race_service
    seeded_project(svc, pid)
    svc.execute(ChangeSettings(project_id=pid, settings=ProjectSettings(retrain_threshold=50)), OWNER)
    projector = Projector(svc.projections, svc.events, on_labels=lambda p: svc.maybe_request_training(p))
    submitter = RecordingSubmitter()
    lock = threading.Lock()
    delivered: list = []

    def client(n: int) -> None:
        actor = Actor(user=f"{ANNOTATOR.user}", site=ANNOTATOR.site)
        for k in range(7):  # 8 x 7 = 56 labels: one crossing at 50, none at 100
            sp = 1 + n * 7 + k
            result = svc.execute(
                LabelSuperpixels(project_id=pid, slide_id="s1", ids=[sp], category_id="tumor"), actor
            )
            # The stream hands each new event to the projector, twice (at-least-once).
            for ref in result.events:
                (event,) = svc.events.read(ref["stream"], after=ref["seq"] - 1, upto=ref["seq"])
                for _ in range(2):
                    deliver(projector, event)
                with lock:
                    delivered.append(event)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(client, range(8)))
    assert svc.labels_total(pid) == 56
    requests = training_events(svc, pid)
    assert len(requests) == 1
    assert requests[0].payload["reason"] == "threshold" and requests[0].payload["labels_total"] >= 50

    # Several trigger copies get the TrainingRequested record, some twice.
    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(lambda _: handle_training_requested(svc, submitter, requests[0]), range(8)))
    assert sum(o.submitted for o in outcomes) == 1
    assert len(submitter.jobs) == 1
    job, args, name = submitter.jobs[0]
    assert job == "train" and args[:2] == ["--project", pid] and requests[0].payload["request_id"] in args
    (started,) = training_events(svc, pid, "TrainingStarted")
    assert started.payload["job_id"] == name
    assert svc.project_state(pid).training[requests[0].payload["request_id"]].status == "started"


def test_below_threshold_asks_nothing_and_a_failed_submit_is_recorded():
    svc = memory_service()
    seeded_project(svc)
    projector = Projector(svc.projections, svc.events, on_labels=lambda p: svc.maybe_request_training(p))
    result = svc.execute(
        LabelSuperpixels(project_id="proj", slide_id="s1", ids=list(range(1, 50)), category_id="tumor"),
        ANNOTATOR,
    )
    for ref in result.events:
        projector.handle_all(svc.events.read(ref["stream"], after=ref["seq"] - 1, upto=ref["seq"]))
    assert training_events(svc, "proj") == []
    result = svc.execute(
        LabelSuperpixels(project_id="proj", slide_id="s1", ids=[50], category_id="tumor"), ANNOTATOR
    )
    for ref in result.events:
        projector.handle_all(svc.events.read(ref["stream"], after=ref["seq"] - 1, upto=ref["seq"]))
    (request,) = training_events(svc, "proj")

    class Broken(RecordingSubmitter):
        def submit(self, job, args, name):
            raise RuntimeError("queue histolabel-unit-jobs does not exist")

    outcome = handle_training_requested(svc, Broken(), request)
    assert not outcome.submitted
    run = svc.project_state("proj").training[request.payload["request_id"]]
    assert run.status == "failed" and "does not exist" in run.reason_failed
    # A failed request is not claimed again on redelivery.
    assert not handle_training_requested(svc, RecordingSubmitter(), request).submitted


def test_crossings_while_a_request_waits_to_start_add_no_second_request():
    """A hot project crosses the threshold again and again before the trigger starts the first
    request's job; that job trains on every label there is when it starts, so one waiting request
    is enough. Once it has started, the next crossing asks again."""
    svc = memory_service()
    seeded_project(svc)
    svc.execute(ChangeSettings(project_id="proj", settings=ProjectSettings(retrain_threshold=10)), OWNER)
    projector = Projector(svc.projections, svc.events, on_labels=lambda p: svc.maybe_request_training(p))

    def label(first: int, n: int) -> None:
        cmd = LabelSuperpixels(
            project_id="proj", slide_id="s1", ids=list(range(first, first + n)), category_id="tumor"
        )
        for ref in svc.execute(cmd, ANNOTATOR).events:
            projector.handle_all(svc.events.read(ref["stream"], after=ref["seq"] - 1, upto=ref["seq"]))

    for k in range(5):  # five crossings of 10
        label(1 + 10 * k, 10)
    (waiting,) = training_events(svc, "proj")
    assert handle_training_requested(svc, RecordingSubmitter(), waiting).submitted
    label(100, 10)
    requests = training_events(svc, "proj")
    assert len(requests) == 2 and requests[1].payload["labels_total"] == 60
    label(200, 10)  # the second waits: no third
    assert len(training_events(svc, "proj")) == 2
