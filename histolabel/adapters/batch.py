"""AWS Batch behind the JobSubmitter port: each job kind goes to the queue its row of
histolabel.jobs.JOB_SPECS names (the stage's CPU or GPU queue, as infra made them and wrote
into HISTOLABEL_JOB_QUEUE_CPU/GPU), with the job definition histolabel-{stage}-{job}."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from histolabel.adapters.aws import client
from histolabel.config import Settings, get_settings
from histolabel.jobs import JOB_SPECS, JobKind, JobSubmissionError


class BatchSubmitter:
    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()

    def queue(self, job: JobKind) -> str:
        spec = JOB_SPECS[job]
        return self.settings.gpu_queue if spec.queue == "gpu" else self.settings.cpu_queue

    def definition(self, job: JobKind) -> str:
        return self.settings.job_definition(job)

    def submit(self, job: JobKind, args: list[str], name: str) -> str:
        if job not in JOB_SPECS:
            raise JobSubmissionError(f"unknown job {job!r}")
        try:
            result = client("batch", self.settings).submit_job(
                jobName=name,
                jobQueue=self.queue(job),
                jobDefinition=self.definition(job),
                containerOverrides={"command": ["python", "-m", f"gpu_jobs.{job}", *args]},
            )
        except (ClientError, BotoCoreError) as exc:
            raise JobSubmissionError(f"could not submit {job} job to {self.queue(job)}: {exc}") from exc
        return str(result["jobId"])

    def cancel(self, job_id: str, reason: str) -> None:
        """TerminateJob: Batch cancels a job not yet started and stops a running one; either
        way it ends FAILED with `reason` as its statusReason (the job-events handler reads it)."""
        try:
            client("batch", self.settings).terminate_job(jobId=job_id, reason=reason)
        except (ClientError, BotoCoreError) as exc:
            raise JobSubmissionError(f"could not cancel job {job_id}: {exc}") from exc

    def log(self, job_id: str) -> dict[str, Any]:
        """Where the job's log is: its CloudWatch log stream, as a console link."""
        jobs = client("batch", self.settings).describe_jobs(jobs=[job_id])["jobs"]
        container = (jobs[0].get("container") or {}) if jobs else {}
        stream = container.get("logStreamName")
        if not stream:
            return {"text": "", "truncated": False, "url": None}
        return {"text": None, "truncated": False, "url": log_console_url(self.settings.region, stream)}

    def status(self, job_id: str) -> dict[str, Any]:
        jobs = client("batch", self.settings).describe_jobs(jobs=[job_id])["jobs"]
        if not jobs:
            return {"job_id": job_id, "status": "UNKNOWN"}
        j = jobs[0]
        out: dict[str, Any] = {"job_id": job_id, "status": j["status"], "name": j.get("jobName")}
        if j.get("statusReason"):
            out["reason"] = j["statusReason"]
        return out


def log_console_url(region: str, stream: str, group: str = "/aws/batch/job") -> str:
    """The CloudWatch console's page of one log stream (its path encodes '/' as $252F)."""
    from urllib.parse import quote

    def enc(part: str) -> str:
        return quote(quote(part, safe=""), safe="").replace("%", "$")

    return (
        f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}"
        f"#logsV2:log-groups/log-group/{enc(group)}/log-events/{enc(stream)}"
    )
