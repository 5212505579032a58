"""The job-events Lambda: AWS Batch "Batch Job State Change" events (EventBridge) -> outcome
events, and the next step of a slide's pipeline.

Every terminal state of a job of ours becomes one JobEnded on its project (and, through the fold,
a failure on its slide or its training run). EventBridge delivers at least once: JobEnded is
appended only while the project does not yet know the job as ended, decided on fresh state, so a
repeat appends nothing and starts nothing. The local job runner sends this handler the same
events when a job process ends, however it ended.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from histolabel.commands import CommandRejected
from histolabel.events.catalogue import Actor, JobEnded, JobFailed, JobSubmitted, NewEvent
from histolabel.events.envelope import project_stream
from histolabel.job_outcomes import DETAIL_TYPE, JobOutcome, NotOurJob, outcome_of
from histolabel.jobs import JobSubmitter, job_name
from histolabel.pipeline import next_step, slide_job_args
from histolabel.projections.project import ProjectState
from histolabel.service import SYSTEM_SITE, HistoLabel

logger = logging.getLogger("histolabel.job_events")
ACTOR = Actor(user="job:events", site=SYSTEM_SITE)


@dataclass(frozen=True)
class Handled:
    job_id: str
    recorded: bool = False
    next_job_id: str | None = None
    note: str = ""


def record_outcome(svc: HistoLabel, outcome: JobOutcome, actor: Actor = ACTOR) -> bool:
    """Append JobEnded unless the project already knows the job ended; True when appended.
    `actor`: who ended it (a member who cancelled it; else the job-events handler)."""
    project_id = outcome.context.project_id
    data = outcome.event_data()

    def decide(state: ProjectState) -> list[NewEvent]:
        if not state.exists:
            raise CommandRejected("not_found", f"project {project_id!r} does not exist", "project_id", 404)
        if data["slide_id"] is not None and data["slide_id"] not in state.slides:
            data["slide_id"] = None  # the job ran for a slide never registered: keep the outcome
        if data["request_id"] is not None and data["request_id"] not in state.training:
            data["request_id"] = None
        if state.jobs.get(outcome.job_id, {}).get("status") in ("SUCCEEDED", "FAILED"):
            return []
        return [NewEvent(project_stream(project_id), JobEnded.model_validate(data))]

    return bool(svc.append_decided(project_id, decide, actor, None).events)


def chain(svc: HistoLabel, submitter: JobSubmitter, outcome: JobOutcome) -> str | None:
    """Submit the slide's next step after a success; a failed submission is the slide's failure."""
    ctx = outcome.context
    state = svc.project_state(ctx.project_id)
    step = next_step(ctx.job, state, ctx.slide_id)
    if step is None or ctx.slide_id is None:
        return None
    try:
        args = slide_job_args(step, state, ctx.slide_id)
        job_id = submitter.submit(step, args, job_name(step, ctx.project_id, ctx.slide_id))
    except Exception as exc:  # any submission failure must reach the slide
        reason = f"could not submit {step} after {ctx.job}: {exc}"[:2000]
        svc.record(ctx.project_id, JobFailed(job=step, slide_id=ctx.slide_id, reason=reason), "events")
        return None
    svc.record(ctx.project_id, JobSubmitted(job=step, job_id=job_id, slide_id=ctx.slide_id), "events")
    return job_id


def handle_state_change(svc: HistoLabel, submitter: JobSubmitter, event: dict[str, Any]) -> Handled:
    detail = event.get("detail") or {}
    job_id = str(detail.get("jobId", ""))
    if event.get("detail-type") != DETAIL_TYPE:
        return Handled(job_id, note=f"not a {DETAIL_TYPE} event")
    try:
        outcome = outcome_of(detail)
    except NotOurJob as exc:
        return Handled(job_id, note=str(exc))
    if outcome is None:
        return Handled(job_id, note=f"status {detail.get('status')} is not terminal")
    try:
        recorded = record_outcome(svc, outcome)
    except CommandRejected as exc:
        return Handled(job_id, note=exc.detail)
    if not recorded:
        return Handled(job_id, note="already recorded")
    next_id = chain(svc, submitter, outcome) if outcome.succeeded else None
    return Handled(job_id, recorded=True, next_job_id=next_id)
