"""The Chalice app as a WSGI callable (through its local API Gateway emulation), so schemathesis
can drive it in-process."""

from __future__ import annotations

import base64
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

from chalice.local import LocalGatewayException


def wsgi_app(client: Any) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        # PATH_INFO arrives decoded; quote it again so a '%23' in an id stays part of the path,
        # as it does behind API Gateway, instead of starting a URL fragment.
        path = quote(environ.get("PATH_INFO", "") or "/", safe="/")
        if environ.get("QUERY_STRING"):
            path += "?" + environ["QUERY_STRING"]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        headers = {k[5:].replace("_", "-").title(): v for k, v in environ.items() if k.startswith("HTTP_")}
        if environ.get("CONTENT_TYPE"):
            headers["Content-Type"] = environ["CONTENT_TYPE"]
        try:
            r = client.http._local_gateway.handle_request(
                method=environ["REQUEST_METHOD"], path=path, headers=headers, body=body
            )
            status, out_headers, raw = r["statusCode"], r.get("headers", {}), r.get("body") or b""
            if r.get("isBase64Encoded"):
                raw = base64.b64decode(raw)
        except LocalGatewayException as e:  # what API Gateway itself answers (403 no route, ...)
            status, out_headers, raw = e.CODE, e.headers, e.body or b""
        if isinstance(raw, str):
            raw = raw.encode()
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Unknown"
        start_response(f"{status} {phrase}", [(k, str(v)) for k, v in out_headers.items()])
        return [raw]

    return app
