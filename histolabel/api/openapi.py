"""The OpenAPI 3.1 document, generated from the route table and the pydantic models."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from histolabel.api.routes import ROUTES, Route
from histolabel.api.schemas import ErrorOut
from histolabel.commands import IDEMPOTENCY_KEY_PATTERN

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
PATH_PATTERNS = {
    "user": r"^[A-Za-z0-9][A-Za-z0-9_.@:+-]{0,127}$",
    "job_id": r"^[A-Za-z0-9][A-Za-z0-9_:.-]{0,199}$",
    "version": r"^[1-9][0-9]{0,9}$",  # a model version: a positive whole number
    "import_id": r"^[0-9a-f]{32}$",  # as POST .../imports hands it out
}
# Rules that rest on the project's state, so no schema can carry them: said in words.
STATE_RULES = {
    "change_role": "A project keeps at least one owner: demoting its last owner is 409 (field `role`).",
    "remove_member": "A project keeps at least one owner: removing its last owner is 409 (field `user`).",
    "add_category": "Names are unique under NFKC, case folding and white space (409, field `name`); "
    "a name with control, format (zero-width, bidi), separator, private-use or unassigned "
    "characters is 422 (field `name`).",
    "update_category": "Names are unique under NFKC, case folding and white space (409, field `name`); "
    "a name with control, format (zero-width, bidi), separator, private-use or unassigned "
    "characters is 422 (field `name`).",
}
IDEMPOTENCY = (
    "Repeats of the same request with the same key return the first result and write nothing; the key "
    "sent with a different request (payload or slide) is 422 naming the key. The header wins over the "
    "body's `idempotency_key`; both given must be equal."
)
ERRORS = {
    "400": "Malformed or invalid request",
    "401": "Missing, expired or forged token",
    "403": "Not a member, or the role may not do this",
    "404": "Project, slide, category or member not found",
    "409": "Conflict with the current state",
    "413": "Body over the size limit",
    "422": "A field has a wrong type or value",
    "503": "Too many concurrent writers; retry",
}


def _schemas() -> tuple[dict[tuple[type[BaseModel], JsonSchemaMode], Any], dict[str, Any]]:
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [(ErrorOut, "serialization")]
    for r in ROUTES:
        if r.body is not None:
            models.append((r.body, "validation"))
        if r.response is not None:
            models.append((r.response, "serialization"))
    unique = list(dict.fromkeys(models))
    refs, top = models_json_schema(unique, ref_template="#/components/schemas/{model}")
    return refs, top.get("$defs", {})  # type: ignore[return-value]


def _parameters(route: Route) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "string", "pattern": PATH_PATTERNS.get(name, ID_PATTERN)},
        }
        for name in route.path_params
    ]
    if route.body is not None and "idempotency_key" in route.body.model_fields:
        params.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": IDEMPOTENCY,
                "schema": {"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN},
            }
        )
    if route.query is not None:
        schema = route.query.model_json_schema(mode="validation")
        required = set(schema.get("required", []))
        for name, prop in schema.get("properties", {}).items():
            prop = {k: v for k, v in prop.items() if k != "title"}
            params.append({"name": name, "in": "query", "required": name in required, "schema": prop})
    return params


def _operation(route: Route, refs: dict[tuple[type[BaseModel], JsonSchemaMode], Any]) -> dict[str, Any]:
    op: dict[str, Any] = {"operationId": route.name, "summary": route.summary}
    if isinstance(route.access, tuple):
        op["description"] = " ".join(
            [f"Roles: {', '.join(route.access)}.", STATE_RULES.get(route.name, "")]
        ).strip()
    params = _parameters(route)
    if params:
        op["parameters"] = params
    if route.body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": refs[(route.body, "validation")]}},
        }
    ok: dict[str, Any] = {"description": "OK"}
    if route.response is not None:
        ok["content"] = {"application/json": {"schema": refs[(route.response, "serialization")]}}
    elif route.status == 302:
        ok = {
            "description": "Redirect to a presigned S3 URL",
            "headers": {"Location": {"schema": {"type": "string"}}},
        }
    elif route.name == "openapi":
        ok["content"] = {"application/json": {"schema": {"type": "object"}}}
    else:
        ok["content"] = {ct: {"schema": {}} for ct in route.content_types}
    responses: dict[str, Any] = {str(route.status): ok}
    error_schema = {"application/json": {"schema": refs[(ErrorOut, "serialization")]}}
    if route.access == "open":
        op["security"] = []
    else:
        for code, text in ERRORS.items():
            responses[code] = {"description": text, "content": error_schema}
    if route.body is not None:
        responses.setdefault("400", {"description": ERRORS["400"], "content": error_schema})
        responses.setdefault("413", {"description": ERRORS["413"], "content": error_schema})
    if route.query is not None:
        responses.setdefault("422", {"description": ERRORS["422"], "content": error_schema})
    if route.name in ("export", "slide_predictions", "slide_labels"):
        responses["303"] = {
            "description": "The answer is larger than a response may carry: redirect to a presigned "
            "S3 URL of it (kept two days)",
            "headers": {"Location": {"schema": {"type": "string"}}},
        }
    if route.name == "export":
        responses["406"] = {
            "description": "Parquet asked without a matching Accept header",
            "content": error_schema,
        }
    # Answered by API Gateway (and Chalice's router) before the app, in their own format.
    responses["405"] = {"description": "No such method on the path (gateway response)"}
    responses["500"] = {"description": "Internal error", "content": error_schema}
    op["responses"] = responses
    return op


def openapi_document(server_url: str | None = None) -> dict[str, Any]:
    refs, defs = _schemas()
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        method: Literal["get", "post", "put", "patch", "delete"] = route.method.lower()  # type: ignore[assignment]
        paths.setdefault(route.path, {})[method] = _operation(route, refs)
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "HistoLabel API",
            "version": "1",
            "description": "Event-sourced superpixel labeling with active learning. Errors are "
            '{"error": CODE, "detail": ..., "field"?}. Bodies over 2 MiB get 413.',
        },
        "paths": paths,
        "components": {
            "schemas": defs,
            "securitySchemes": {"cognito": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
        "security": [{"cognito": []}],
    }
    if server_url:
        doc["servers"] = [{"url": server_url}]
    return doc
