"""Answers too large for a Lambda response: a 303 to a copy in the data bucket."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from chalice import Response

from chalicelib import data


def json_or_copy(out: dict[str, Any], stem: str) -> Response:
    """`out` as the answer (serialized once), or, when hundreds of thousands of superpixels outgrow a Lambda
    response, a 303 to a copy in the data bucket named by its content, so that every reader of
    the same answer shares one object."""
    text = json.dumps(out, separators=(",", ":"))
    body = text.encode()
    if len(body) <= data.inline_response_limit():
        return Response(body=text, status_code=200, headers={"Content-Type": "application/json"})
    key = f"{stem}-{hashlib.sha256(body).hexdigest()[:16]}.json"
    if not data.exists(key):
        data.put_export(key, body, "application/json")
    return see_other(key)


def see_other(key: str) -> Response:
    return Response(
        body="", status_code=303, headers={"Location": data.presign_get(key), "Cache-Control": "no-store"}
    )
