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
    return f"L#{project_id}#{slide_id}"


def idempotency_stream(project_id: str, key: str) -> str:
    return f"I#{project_id}#{key}"


def stream_kind(stream: str) -> str:
    return {"P": "project", "L": "labels", "I": "idempotency"}.get(stream[:1], "unknown")


def slide_of(stream: str) -> str:
    return stream.split("#", 2)[2]


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
