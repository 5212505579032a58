"""Routes: open."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError
from chalice import Response

from chalicelib.context import RETRY_AFTER_S, Call, Handler, login_config
from chalicelib.people import person
from histolabel.api.openapi import openapi_document
from histolabel.api.vocabulary import vocabulary


def _health(c: Call) -> Any:
    from histolabel.adapters.health import check
    from histolabel.adapters.memory import InMemoryEventStore

    if isinstance(c.svc.events, InMemoryEventStore):  # an in-process service has no stores to reach
        return {"status": "ok", "checks": {"stores": "in memory"}}
    report = check(c.svc.settings)
    if report["status"] != "ok":  # load balancers and the web client read the status code
        headers: dict[str, str | list[str]] = {
            "Content-Type": "application/json",
            "Retry-After": str(RETRY_AFTER_S),
        }
        return Response(body=json.dumps(report), status_code=503, headers=headers)
    return report


def _me(c: Call) -> Any:
    # ID tokens carry the email when the pool's client reads it; otherwise ask the pool (a
    # nicety: the id identifies the caller either way).
    email = c.identity.claims.get("email")  # type: ignore[union-attr]
    if not email:
        try:
            email = person(c.user)["email"]
        except ClientError:
            email = None
    return {"user": c.user, "email": email}


HANDLERS: dict[str, Handler] = {
    "health": _health,
    "config": lambda c: {**login_config(), "vocabulary": vocabulary()},
    "openapi": lambda c: openapi_document(),
    "me": _me,
}
