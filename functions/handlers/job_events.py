"""PLACEHOLDER until the job-outcome handler lands (issue 11 item 4, the "failures" branch):
the job_events function EventBridge invokes on every Batch job state change.

It refuses visibly rather than pretending to record outcomes, so a stage deployed with it
shows the failed invocations in the function's log and metrics.
"""

from __future__ import annotations

from typing import Any


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    raise NotImplementedError("job outcome handling is not in this build (functions/handlers/job_events.py)")
