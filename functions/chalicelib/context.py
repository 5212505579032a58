"""What every route shares: who is calling (Cognito token), may they (project role, from the
route table), what did they send (pydantic, size limit), and errors as JSON."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from chalice import Response
from pydantic import BaseModel, ValidationError

from histolabel.api.routes import BY_NAME, Route, refused_in_words
from histolabel.auth.tokens import AuthError, Identity, PoolConfig, bearer_token, verify_id_token
from histolabel.commands import CommandRejected
from histolabel.events.catalogue import Actor
from histolabel.jobs import JobSubmissionError, JobSubmitter
from histolabel.projections.project import ProjectState
from histolabel.service import HistoLabel

MAX_BODY_BYTES = 2 * 2**20
log = logging.getLogger("histolabel.api")


class Directory(Protocol):
    def __call__(self, user: str) -> str | None: ...

    def describe(self, user: str) -> dict[str, str | None]: ...


class Services:
    """Built once per Lambda container on first use; tests replace the attributes."""

    def __init__(self) -> None:
        self._service: HistoLabel | None = None
        self._submitter: JobSubmitter | None = None
        self._jwks: Callable[[str], dict[str, Any] | None] | None = None
        self._pool: PoolConfig | None = None
        self._directory: Directory | None = None

    @property
    def service(self) -> HistoLabel:
        if self._service is None:
            self._service = HistoLabel.from_env()
        return self._service

    @service.setter
    def service(self, value: HistoLabel | None) -> None:
        self._service = value

    @property
    def submitter(self) -> JobSubmitter:
        if self._submitter is None:
            from histolabel.jobs import submitter_from_env

            self._submitter = submitter_from_env()
        return self._submitter

    @submitter.setter
    def submitter(self, value: JobSubmitter | None) -> None:
        self._submitter = value

    @property
    def pool(self) -> PoolConfig:
        if self._pool is None:
            from histolabel.adapters.cognito import pool_from_env

            pool = pool_from_env()
            if pool is None:
                raise AuthError("sign-in is not configured (HISTOLABEL_USER_POOL_ID / HISTOLABEL_CLIENT_ID)")
            self._pool = pool
        return self._pool

    @pool.setter
    def pool(self, value: PoolConfig | None) -> None:
        self._pool = value

    @property
    def jwks(self) -> Callable[[str], dict[str, Any] | None]:
        if self._jwks is None:
            from histolabel.adapters.cognito import JwksCache, jwks_url

            self._jwks = JwksCache(jwks_url(self.pool))
        return self._jwks

    @jwks.setter
    def jwks(self, value: Callable[[str], dict[str, Any] | None] | None) -> None:
        self._jwks = value

    @property
    def directory(self) -> Directory:
        """user (Username or email) -> Username in the pool, or None; and how to show a user."""
        if self._directory is None:
            from histolabel.adapters.cognito import UserDirectory

            self._directory = UserDirectory(self.pool.user_pool_id)
        return self._directory

    @directory.setter
    def directory(self, value: Directory | None) -> None:
        self._directory = value


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


def error(status: int, code: str, detail: Any, field: str | None = None) -> Response:
    body: dict[str, Any] = {"error": code, "detail": detail}
    if field:
        body["field"] = field
    headers: dict[str, str | list[str]] = {"Content-Type": "application/json"}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="histolabel"'
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
            state = SERVICES.service.require_project(params["project_id"])
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
    except JobSubmissionError as exc:
        return error(503, "unavailable", str(exc))
    except Exception:
        log.exception("unhandled error in %s", name)
        return error(500, "internal", "internal error; it has been logged")
    if isinstance(result, Response):
        return result
    return json_response(result, route.status)


def login_config() -> dict[str, Any]:
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    return {
        "region": region,
        "userPoolId": os.environ.get("HISTOLABEL_USER_POOL_ID"),
        "clientId": os.environ.get("HISTOLABEL_CLIENT_ID"),
        "cognitoEndpoint": os.environ.get("AWS_ENDPOINT_URL") or None,
        # The Cognito hosted UI's authorize URL (implicit grant back to the web app), where the
        # deployer set one up for single sign-on; the app then offers it beside the form.
        "hostedUiUrl": os.environ.get("HISTOLABEL_HOSTED_UI_URL") or None,
    }
