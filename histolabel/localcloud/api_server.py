"""`chalice local`, as the local stack runs the API: the same command line, except that a method
http.server has no handler for (TRACE, CONNECT, QUERY, any other) answers 405 with the path's
methods in `Allow`, as the OpenAPI document says (http.server answers 501, a server error, to a
client's mistake).

    python -m histolabel.localcloud.api_server local --port 8000 ...
"""

from __future__ import annotations

import sys
from typing import Any

from chalice import local
from chalice.cli import main


def _not_allowed(handler: Any) -> None:
    routes = handler.local_gateway._app_object.routes
    try:
        matched = local.RouteMatcher(list(routes)).match_route(handler.path)
        allowed = sorted(routes[matched.route])
    except ValueError:  # no such path
        allowed = []
    body = b'{"error": "method_not_allowed", "detail": "no such method on this path"}'
    handler.send_response(405)
    handler.send_header("Allow", ", ".join(allowed))
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def _any_method(handler: Any, name: str) -> Any:
    # http.server looks up do_<METHOD>; only the methods chalice has no handler for get here.
    if name.startswith("do_"):
        return lambda: _not_allowed(handler)
    raise AttributeError(name)


local.ChaliceRequestHandler.__getattr__ = _any_method

if __name__ == "__main__":
    sys.exit(main())
