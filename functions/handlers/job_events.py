"""Lambda: EventBridge "Batch Job State Change" -> JobEnded on the job's project, and the next
step of the slide pipeline. The decision is histolabel.runtime.job_events_lambda; the composition root
wires it to the stores, for this function and for the local job runner alike."""

from histolabel.composition import job_events_handler as handler

__all__ = ["handler"]
