"""What every route shares: who is calling (Cognito token), may they (project role, from the
route table), what did they send (pydantic, size limit), and errors as JSON."""

from __future__ import annotations

import json
import logging
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chalice import Response
from pydantic import BaseModel, ValidationError

from histolabel.adapters.aws import store_unavailable
from histolabel.api.routes import BY_NAME, Route, refused_in_words
from histolabel.auth.tokens import AuthError, Identity, bearer_token, verify_id_token
from histolabel.commands import CommandRejected
from histolabel.composition import Services
from histolabel.config import settings_from_env
from histolabel.confinement import OutsideProject
from histolabel.events.catalogue import Actor
from histolabel.jobs import JobSubmissionError
from histolabel.projections.project import ProjectState
from histolabel.service import HistoLabel

MAX_BODY_BYTES = 2 * 2**20
log = logging.getLogger("histolabel.api")


SERVICES = Services()


@dataclass
class Call:
    """One authorized request, parsed."""

    route: Route
    params: dict[str, str]
    identity: Identity | None = None
    state: ProjectState | None = None
    body: Any = None
    query: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def user(self) -> str:
        assert self.identity is not None
        return self.identity.user

    @property
    def project(self) -> ProjectState:
        assert self.state is not None
        return self.state

    @property
    def actor(self) -> Actor:
        member = self.project.members[self.user]
        return Actor(user=self.user, site=member.site)

    @property
    def svc(self) -> HistoLabel:
        return SERVICES.service


RETRY_AFTER_S = 2  # what a 503 asks the client to wait before sending the same request again


def error(status: int, code: str, detail: Any, field: str | None = None) -> Response:
    body: dict[str, Any] = {"error": code, "detail": detail}
    if field:
        body["field"] = field
    headers: dict[str, str | list[str]] = {"Content-Type": "application/json"}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="histolabel"'
    if status == 503:
        headers["Retry-After"] = str(RETRY_AFTER_S)
    return Response(body=json.dumps(body), status_code=status, headers=headers)


def json_response(body: Any, status: int = 200) -> Response:
    return Response(
        body=json.dumps(body, default=str), status_code=status, headers={"Content-Type": "application/json"}
    )


def _validation_error(exc: ValidationError, where: str) -> Response:
    first = exc.errors(include_url=False)[0]
    if first["type"] in ("json_invalid", "json_type"):
        return error(400, "malformed", f"{where} is not valid JSON: {first['msg']}")
    if first["type"] == "model_type" and not first["loc"]:
        return error(400, "malformed", f"{where} must be a JSON object")
    loc = ".".join(str(p) for p in first["loc"])
    details = [
        {"field": ".".join(str(p) for p in e["loc"]), "msg": e["msg"], "type": e["type"]}
        for e in exc.errors(include_url=False)[:10]
    ]
    return error(422, "invalid", details, loc or None)


def _parse_body(route: Route, raw: bytes | None) -> tuple[BaseModel | None, Response | None]:
    assert route.body is not None
    if not raw:
        return None, error(400, "malformed", "this route needs a JSON object body")
    try:
        return route.body.model_validate_json(raw), None
    except ValidationError as exc:
        return None, _validation_error(exc, "the body")


def _parse_query(route: Route, query: dict[str, str] | None) -> tuple[BaseModel | None, Response | None]:
    assert route.query is not None
    try:
        return route.query.model_validate(dict(query or {})), None
    except ValidationError as exc:
        return None, _validation_error(exc, "the query")


Handler = Callable[[Call], Any]


def run(app: Any, name: str, handler: Handler, params: dict[str, str]) -> Any:
    """Check and parse the current request for route `name`, then call the handler."""
    route = BY_NAME[name]
    request = app.current_request
    # API Gateway hands path parameters decoded; `chalice local` hands them as sent ("0%400").
    # No id may hold '%', so decoding is a no-op on the gateway's.
    params = {k: urllib.parse.unquote(v) for k, v in params.items()}
    headers = {k.lower(): v for k, v in (request.headers or {}).items()}
    call = Call(route=route, params=params, headers=headers)
    try:
        raw = request.raw_body if route.body is not None else b""
        if raw and len(raw) > MAX_BODY_BYTES:
            return error(413, "too_large", f"body is {len(raw)} bytes; the limit is {MAX_BODY_BYTES}")
        if route.access != "open":
            token = bearer_token(headers.get("authorization"))
            call.identity = verify_id_token(token, SERVICES.pool, SERVICES.jwks)
        if isinstance(route.access, tuple):
            # Routes read the project and never change it: the shared snapshot, not a copy.
            state = SERVICES.service.require_project(params["project_id"], shared=True)
            role = state.role_of(call.user)
            if role is None:
                return error(403, "forbidden", f"{call.user} is not a member of {params['project_id']}")
            if role not in route.access:
                return error(403, "forbidden", refused_in_words(role, route.summary, route.access))
            call.state = state
        if route.body is not None:
            call.body, bad = _parse_body(route, raw)
            if bad is not None:
                return bad
        if route.query is not None:
            call.query, bad = _parse_query(route, request.query_params)
            if bad is not None:
                return bad
        result = handler(call)
    except AuthError as exc:
        return error(401, "unauthorized", exc.detail)
    except CommandRejected as exc:
        return error(exc.status, exc.code, exc.detail, exc.field)
    except ValidationError as exc:
        return _validation_error(exc, "the request")
    except OutsideProject as exc:
        return error(403, "forbidden", exc.detail, exc.field)
    except JobSubmissionError as exc:
        return error(503, "unavailable", str(exc))
    except Exception as exc:
        if store_unavailable(exc):
            log.warning("store unavailable in %s: %s", name, exc)
            return error(503, "unavailable", "the data store is unavailable; retry shortly")
        log.exception("unhandled error in %s", name)
        return error(500, "internal", "internal error; it has been logged")
    if isinstance(result, Response):
        return result
    return json_response(result, route.status)


def login_config() -> dict[str, Any]:
    s = settings_from_env()
    return {
        "region": s.region,
        "userPoolId": s.user_pool_id,
        "clientId": s.client_id,
        "cognitoEndpoint": s.endpoint_url,
        # The Cognito hosted UI's authorize URL (implicit grant back to the web app), where the
        # deployer set one up for single sign-on; the app then offers it beside the form.
        "hostedUiUrl": s.hosted_ui_url,
    }


def fresh(c: Call) -> Any:
    """The project as it stands after this call's own writes."""
    return c.svc.project_state(c.project.project_id)
