"""Anchors: signed statements of every stream's head (seq, hash) at a moment, kept where nobody can
rewrite them. Pure values and checks; signing and storage live in the adapters.

A stream's hash chain alone only proves that the events agree with each other: whoever can write
the table can rewrite an event and re-hash everything after it, or drop the last events. An
anchor pins the head at a moment, so any history that does not pass through every anchored
(seq, hash) is caught, and the newest anchor that still matches names where the doubt starts.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from histolabel.events.envelope import StoredEvent, canonical_json

ANCHOR_FORMAT = "histolabel-anchor/1"


@dataclass(frozen=True)
class Anchor:
    project: str
    at: str  # ISO-8601 UTC, the store's form
    reason: str  # "timer" | "export"
    heads: dict[str, tuple[int, str]]  # stream -> (seq, hash)

    def message(self) -> bytes:
        """The exact bytes that are signed."""
        body = {
            "format": ANCHOR_FORMAT,
            "project": self.project,
            "at": self.at,
            "reason": self.reason,
            "heads": {s: [seq, h] for s, (seq, h) in sorted(self.heads.items())},
        }
        return canonical_json(body).encode()

    @classmethod
    def from_message(cls, message: bytes) -> Anchor:
        body = json.loads(message)
        if body.get("format") != ANCHOR_FORMAT:
            raise ValueError(f"not an anchor: format {body.get('format')!r}")
        heads = {s: (int(seq), str(h)) for s, (seq, h) in body["heads"].items()}
        return cls(project=body["project"], at=body["at"], reason=body["reason"], heads=heads)


@dataclass(frozen=True)
class StoredAnchor:
    """An anchor as read back: where it lies, and whether its signature holds."""

    name: str  # bucket key and version, for the auditor's report
    anchor: Anchor | None  # None: unreadable
    signature_ok: bool

    @property
    def valid(self) -> bool:
        return self.anchor is not None and self.signature_ok


def anchor_problems(anchor: Anchor, streams: dict[str, list[StoredEvent]]) -> dict[str, str]:
    """stream -> what in the stored history contradicts this anchor (empty: it holds)."""
    problems = {}
    for stream, (seq, digest) in sorted(anchor.heads.items()):
        events = streams.get(stream, [])
        at_seq = next((e for e in events if e.seq == seq), None)
        if at_seq is None:
            last = events[-1].seq if events else 0
            problems[stream] = f"anchored up to seq {seq}, but the stream ends at seq {last} (truncated)"
        elif at_seq.hash != digest:
            problems[stream] = f"seq {seq} is not the event anchored at {anchor.at} (rewritten history)"
    return problems


@dataclass
class AnchorReport:
    anchors_read: int = 0
    last_good: StoredAnchor | None = None
    findings: list[tuple[str, int, str]] = field(default_factory=list)  # (stream, seq, problem)

    def covered(self, stream: str) -> int:
        """The seq up to which the last good anchor vouches for `stream` (0: none)."""
        if self.last_good is None or self.last_good.anchor is None:
            return 0
        return self.last_good.anchor.heads.get(stream, (0, ""))[0]


def check_anchors(
    anchors_newest_first: Iterable[StoredAnchor], streams: dict[str, list[StoredEvent]]
) -> AnchorReport:
    """Walk back from the newest anchor to the newest one the history agrees with. Every anchor
    passed on the way is a finding; the events after the last good anchor are the ones in doubt.
    Older anchors need no reading: the good one's hashes commit to everything before them."""
    report = AnchorReport()
    broken: list[StoredAnchor] = []
    for stored in anchors_newest_first:
        report.anchors_read += 1
        if not stored.valid:
            report.findings.append(("anchor", 0, f"anchor {stored.name} has no valid signature (forged)"))
            continue
        assert stored.anchor is not None
        problems = anchor_problems(stored.anchor, streams)
        if not problems:
            report.last_good = stored
            break
        broken.append(stored)
    if broken:
        # Report each stream once, against the newest anchor it breaks.
        seen: set[str] = set()
        for stored in broken:
            assert stored.anchor is not None
            for stream, problem in anchor_problems(stored.anchor, streams).items():
                if stream in seen:
                    continue
                seen.add(stream)
                good = report.covered(stream)
                where = (
                    f"last good anchor {report.last_good.name} covers it up to seq {good}"
                    if report.last_good is not None
                    else "no earlier anchor holds"
                )
                report.findings.append(
                    (
                        stream,
                        good + 1,
                        f"breaks anchor {stored.name}: {problem}; {where}; "
                        f"first event after it: seq {good + 1}",
                    )
                )
    return report


def heads_of(streams: dict[str, list[StoredEvent]]) -> dict[str, tuple[int, str]]:
    return {s: (events[-1].seq, events[-1].hash) for s, events in streams.items() if events}


def payload(anchor: Anchor, signature: str, key: str, algorithm: str) -> dict[str, Any]:
    """The stored object: the signed bytes as text, and the signature over them."""
    return {
        "message": anchor.message().decode(),
        "signature": signature,
        "key": key,
        "algorithm": algorithm,
    }
