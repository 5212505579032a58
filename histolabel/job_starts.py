"""Starting a job on a user's behalf: submit it, then record it on the project, one rule for
every route that starts one (a slide step, an import, an export, predictions of a chosen model).

Submitted first: the recorded id is the runner's own (what `GET .../jobs/{id}` and the job-events
handler look up), and a submission that fails records nothing."""

from __future__ import annotations

from typing import TYPE_CHECKING

from histolabel.commands import RecordJobSubmitted
from histolabel.events.catalogue import Actor
from histolabel.jobs import JobKind, JobSubmitter, job_name

if TYPE_CHECKING:
    from histolabel.service import HistoLabel


def start_job(
    svc: HistoLabel,
    submitter: JobSubmitter,
    actor: Actor,
    project_id: str,
    job: JobKind,
    args: list[str],
    slide_id: str | None = None,
) -> str:
    """The runner's job id, once the job is submitted and recorded as the actor's."""
    job_id = submitter.submit(job, args, job_name(job, project_id, slide_id))
    svc.execute(RecordJobSubmitted(project_id=project_id, job=job, job_id=job_id, slide_id=slide_id), actor)
    return job_id
