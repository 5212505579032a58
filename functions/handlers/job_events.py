"""Lambda: EventBridge "Batch Job State Change" -> JobEnded on the job's project, and the next
step of the slide pipeline. The body is histolabel.runtime.job_events, which the local job
runner calls too."""

from histolabel.runtime.job_events import handler

__all__ = ["handler"]
