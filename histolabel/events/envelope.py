"""The stored form of an event: envelope fields, canonical JSON and the per-stream hash chain."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

GENESIS_HASH = "0" * 64


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def project_stream(project_id: str) -> str:
    return f"P#{project_id}"


def label_stream(project_id: str, slide_id: str) -> str:
    """The slide's own label stream: where every label event went before streams were kept per
    member (still read, never written), and the key the slide's label projection is stored under."""
    return f"L#{project_id}#{slide_id}"


def member_label_stream(project_id: str, slide_id: str, user: str) -> str:
    """One member's label events on one slide. Writers on a hot slide each append to their own
    stream, so they never race for one sequence (ids and user ids hold no '#')."""
    return f"{label_stream(project_id, slide_id)}#{user}"


def slide_directory(project_id: str, slide_id: str) -> str:
    """The slide's directory of member label streams, one item per stream, written in the same
    transaction as that stream's first event (see histolabel/events/streams.py)."""
    return f"D#{project_id}#{slide_id}"


def directory_of(stream: str) -> str:
    """The directory a member label stream is listed in."""
    _kind, project_id, slide_id, _member = stream.split("#", 3)
    return slide_directory(project_id, slide_id)


def directory_slot(stream: str) -> int:
    """The stream's key in its directory: 52 bits of its name's SHA-256, so listing a stream needs
    no counter to race for (two members of one slide collide with odds ~n²/2^53; the collision
    would refuse the second member's first label loudly, never hide a stream)."""
    return int(hashlib.sha256(stream.encode()).hexdigest()[:13], 16) + 1


def member_of(stream: str) -> str:
    """The member a label stream belongs to; "" for a slide's own (single-stream) label stream."""
    parts = stream.split("#", 3)
    return parts[3] if len(parts) > 3 else ""


def idempotency_stream(project_id: str, key: str) -> str:
    return f"I#{project_id}#{key}"


def stream_kind(stream: str) -> str:
    return {"P": "project", "L": "labels", "I": "idempotency", "D": "directory", "K": "mac_key"}.get(
        stream[:1], "unknown"
    )


def slide_of(stream: str) -> str:
    return stream.split("#")[2]


@dataclass(frozen=True)
class StoredEvent:
    stream: str
    seq: int
    type: str
    v: int
    data: str  # canonical JSON of the payload, exactly as hashed
    project: str
    actor_user: str
    actor_site: str
    at: str  # ISO-8601 UTC with microseconds, so string order is time order
    idem: str
    cmd: str
    prev_hash: str
    hash: str = field(default="")

    @property
    def payload(self) -> dict[str, Any]:
        return json.loads(self.data)

    def hashed_fields(self) -> dict[str, Any]:
        fields = asdict(self)
        fields.pop("hash")
        return fields

    def compute_hash(self) -> str:
        return hashlib.sha256(canonical_json(self.hashed_fields()).encode()).hexdigest()

    def sealed(self) -> StoredEvent:
        return StoredEvent(**{**self.hashed_fields(), "hash": self.compute_hash()})

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def verify_chain(events: list[StoredEvent]) -> StoredEvent | None:
    """The first event of one stream (in seq order) whose hash, link or seq is wrong, else None."""
    prev = GENESIS_HASH
    expected_seq = 1
    for event in events:
        if event.seq != expected_seq or event.prev_hash != prev or event.compute_hash() != event.hash:
            return event
        prev = event.hash
        expected_seq += 1
    return None
