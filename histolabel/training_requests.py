"""The training trigger: turns a TrainingRequested event into exactly one train job.

Stream delivery is at-least-once and Lambda may run several copies at once, so the trigger
first claims the request by appending TrainingStarted, which the event store accepts only once
(the decision is re-made on fresh state after a lost race). Only the claimer submits; a failed
submission is recorded as TrainingFailed so the request does not hang.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from histolabel.commands import CommandRejected
from histolabel.events.catalogue import (
    Actor,
    JobSubmitted,
    NewEvent,
    TrainingFailed,
    TrainingStarted,
)
from histolabel.events.envelope import StoredEvent, project_stream
from histolabel.jobs import JobSubmitter, job_name
from histolabel.projections.project import ProjectState
from histolabel.service import SYSTEM_SITE, CommandResult, HistoLabel


@dataclass(frozen=True)
class TriggerOutcome:
    request_id: str
    submitted: bool
    job_id: str | None = None
    reason: str = ""


def train_args(project_id: str, request_id: str) -> list[str]:
    return ["--project", project_id, "--request", request_id]


def claim_request(svc: HistoLabel, project_id: str, request_id: str, job_id: str) -> CommandResult:
    """Append TrainingStarted only while the request is still "requested" in fresh state; the
    idempotency key makes a second claim of the same request a duplicate that writes nothing.
    record_job_event has no status precondition, so the claim brings its own decide."""

    def decide(state: ProjectState) -> list[NewEvent]:
        run = state.training.get(request_id)
        if run is None or run.status != "requested":
            status = run.status if run else "unknown"
            raise CommandRejected("conflict", f"training {request_id} is {status}", "request_id", 409)
        return [NewEvent(project_stream(project_id), TrainingStarted(request_id=request_id, job_id=job_id))]

    actor = Actor(user="job:trigger", site=SYSTEM_SITE)
    return svc.append_decided(project_id, decide, actor, f"train-claim-{request_id}")


def handle_training_requested(svc: HistoLabel, submitter: JobSubmitter, event: StoredEvent) -> TriggerOutcome:
    if event.type != "TrainingRequested":
        raise ValueError(f"the training trigger takes TrainingRequested events, not {event.type}")
    project_id = event.project
    request_id = str(event.payload["request_id"])
    # The claim names the job before it exists; the same name is the Batch job name.
    claim_id = f"{job_name('train', project_id, request_id)[:119]}-{uuid.uuid4().hex[:8]}"

    state = svc.project_state(project_id)
    run = state.training.get(request_id)
    if run is None or run.status != "requested":
        return TriggerOutcome(request_id, False, reason=f"request is {run.status if run else 'unknown'}")
    try:
        claim = claim_request(svc, project_id, request_id, claim_id)
    except CommandRejected as exc:
        return TriggerOutcome(request_id, False, reason=exc.detail)
    if claim.duplicate:
        return TriggerOutcome(request_id, False, reason="claimed by another trigger")
    try:
        job_id = submitter.submit("train", train_args(project_id, request_id), claim_id)
    except Exception as exc:  # any submission failure must end the request visibly
        failed = TrainingFailed(request_id=request_id, reason=f"submit failed: {exc}"[:2000])
        svc.record(project_id, failed, job="trigger")
        return TriggerOutcome(request_id, False, reason=str(exc))
    # The claim named the job before it existed; the run now answers for the runner's own id.
    svc.record(project_id, JobSubmitted(job="train", job_id=job_id, request_id=request_id), job="trigger")
    return TriggerOutcome(request_id, True, job_id=job_id)
