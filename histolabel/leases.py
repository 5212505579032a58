"""Leases on what the guided queue hands out, so annotators working at once get different
superpixels. A lease is a slot on one superpixel held by one member until a time; a superpixel
the project wants labeled twice (the overlap setting) has two slots. Taking a slot is one
conditional write that succeeds only if the slot is free, expired, already the taker's, or
held by someone who has since labeled it, so leases hold across API instances without a lock.

The port; its adapters are histolabel.adapters.memory and histolabel.adapters.dynamo_leases.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

LEASE_S = 300.0  # long enough to label a film strip, short enough that an abandoned one returns


@dataclass(frozen=True)
class Lease:
    slide_id: str
    id: int
    slot: int
    holder: str
    until: float


class LeaseStore(Protocol):
    def held(self, project_id: str, now: float, slots: Mapping[tuple[str, int], int]) -> list[Lease]:
        """The leases still running at `now` on the slots of the given superpixels ((slide, id) ->
        its slot count): one batched read of a page's candidates, so the queue skips what others
        hold without a refused write per superpixel, and reads no more when the project holds
        thousands of leases."""
        ...

    def take(self, project_id: str, lease: Lease, now: float, spent: str | None = None) -> bool:
        """Hold `lease` if its slot is free, expired, the holder's own, or held by `spent` (a
        member who has labeled the superpixel since). False: someone else holds it."""
        ...

    def take_all(self, project_id: str, attempts: list[tuple[Lease, str | None]], now: float) -> list[bool]:
        """take of each (lease, spent), at once: a page's leases in one round trip."""
        ...
