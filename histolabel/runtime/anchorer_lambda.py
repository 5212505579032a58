"""The anchoring function: sign every project's stream heads into the anchors bucket.

Runs on a schedule (at least every minute: an EventBridge rule in AWS, a timer thread in the
local runtime) and on every export. A head is only anchored once the append path's MAC on it
holds: an event written around that path is never vouched for, so a forgery appended between
two runs is still caught. Only this function's role may use the signing key and write anchors.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from histolabel.adapters.anchor_store import S3AnchorStore
from histolabel.adapters.dynamo_events import DynamoEventStore
from histolabel.audit.anchors import Anchor
from histolabel.composition import service_from_env
from histolabel.events.envelope import StoredEvent, project_stream
from histolabel.events.streams import slide_streams
from histolabel.service import HistoLabel

log = logging.getLogger(__name__)
DEFAULT_INTERVAL_S = 60.0


class Anchorer:
    def __init__(self, svc: HistoLabel, store: S3AnchorStore | None = None) -> None:
        self.svc = svc
        self.store = store or S3AnchorStore(svc.settings)
        self._last: dict[str, dict[str, tuple[int, str]]] = {}

    def _heads(self, project_id: str, previous: dict[str, tuple[int, str]]) -> dict[str, tuple[int, str]]:
        """Each stream's newest event whose MAC holds (or, failing that, the head anchored before)."""
        events = self.svc.events
        state = self.svc.project_state(project_id)
        streams = [project_stream(project_id)] + [
            stream for s in sorted(state.slides) for stream in slide_streams(events, project_id, s)
        ]
        heads = {}
        for stream in streams:
            seq, digest = events.head(stream)
            if seq == 0:
                continue
            if previous.get(stream) == (seq, digest):
                heads[stream] = (seq, digest)
                continue
            if isinstance(events, DynamoEventStore):
                floor = previous.get(stream, (0, ""))[0]
                good = self._newest_sealed(events, stream, floor, seq)
                if good is None:
                    if stream in previous:
                        heads[stream] = previous[stream]
                    continue
                seq, digest = good.seq, good.hash
            heads[stream] = (seq, digest)
        return heads

    @staticmethod
    def _newest_sealed(events: DynamoEventStore, stream: str, floor: int, seq: int) -> StoredEvent | None:
        """The newest event of the tail after `floor` such that it and every event before it in
        the tail carry a valid MAC; None when the first one already does not."""
        from concurrent.futures import ThreadPoolExecutor

        tail = list(events.read(stream, after=floor, upto=seq))
        with ThreadPoolExecutor(max_workers=8) as pool:
            valid = list(pool.map(events.mac_valid, tail))
        good = None
        for event, ok in zip(tail, valid, strict=True):
            if not ok:
                log.error("%s seq %d carries no valid MAC; anchored up to the one before", stream, event.seq)
                break
            good = event
        return good

    def anchor_project(self, project_id: str, reason: str = "timer") -> Anchor | None:
        """Write an anchor of the project's heads; on the timer only when they moved."""
        previous = self._last.get(project_id)
        if previous is None:
            latest = self.store.latest(project_id)
            previous = dict(latest.heads) if latest else {}
        heads = self._heads(project_id, previous)
        if not heads or (reason == "timer" and heads == previous):
            self._last[project_id] = heads
            return None
        anchor = Anchor(project=project_id, at=self.svc.clock(), reason=reason, heads=heads)
        self.store.put(anchor)
        self._last[project_id] = heads
        return anchor

    def anchor_all(self) -> int:
        written = 0
        for project in self.svc.projections.list_projects():
            try:
                written += self.anchor_project(project.project_id) is not None
            except Exception:
                log.exception("anchoring %s failed; the next run tries again", project.project_id)
        return written


class AnchorTimer:
    """The local stand-in for the scheduled rule: anchor every `interval` seconds."""

    def __init__(self, anchorer: Anchorer, interval: float = DEFAULT_INTERVAL_S) -> None:
        self.anchorer = anchorer
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run(self) -> None:
        while not self._stop.wait(self.interval):
            self.anchorer.anchor_all()

    def start(self) -> AnchorTimer:
        self._thread = threading.Thread(target=self.run, name="anchor-timer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


_anchorer: Anchorer | None = None


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Lambda entry point (scheduled every minute; invoked with {"project_id"} on export)."""
    global _anchorer
    if _anchorer is None:
        _anchorer = Anchorer(service_from_env())
    if event.get("project_id"):
        anchor = _anchorer.anchor_project(event["project_id"], reason=event.get("reason", "export"))
        return {"anchored": anchor is not None}
    return {"anchored": _anchorer.anchor_all()}
