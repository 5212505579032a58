"""Members' names and emails from the user directory, cached for a few minutes."""

from __future__ import annotations

import time

from chalicelib.context import SERVICES

_PEOPLE_TTL_S = 300.0
_people_cache: dict[str, tuple[float, dict[str, str | None]]] = {}


def person(user: str) -> dict[str, str | None]:
    now = time.monotonic()
    hit = _people_cache.get(user)
    if hit is None or hit[0] < now:
        hit = (now + _PEOPLE_TTL_S, SERVICES.directory.describe(user))
        _people_cache[user] = hit
    return hit[1]
