"""The API's routes, one blueprint per area. Each module holds its handlers by route name; the
method, path, roles and schemas come from the one route table (`histolabel.api.routes`), so
adding a route is a table entry and a handler."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint, Chalice

from chalicelib.context import Handler, run
from chalicelib.routes import (
    audit,
    categories,
    export,
    labels,
    projects,
    queue,
    selfservice,
    service,
    slides,
    training,
)
from histolabel.api.routes import BY_NAME, ROUTES

AREAS = (service, projects, categories, slides, labels, queue, training, audit, export, selfservice)


def _view(bp: Blueprint, name: str, handler: Handler) -> Any:
    def view(**params: str) -> Any:
        return run(bp, name, handler, params)

    view.__name__ = name
    return view


def handlers() -> dict[str, Handler]:
    """Route name -> handler across every area; each route in the table has exactly one."""
    found: dict[str, Handler] = {}
    for area in AREAS:
        for name, handler in area.HANDLERS.items():
            if name in found:
                raise RuntimeError(f"route {name!r} has a handler in two areas")
            found[name] = handler
    missing = {r.name for r in ROUTES} - set(found)
    unknown = set(found) - {r.name for r in ROUTES}
    if missing or unknown:
        raise RuntimeError(
            f"routes without a handler: {sorted(missing)}; handlers without a route: {sorted(unknown)}"
        )
    return found


def register(app: Chalice) -> None:
    handlers()  # refuse to start with a route the table and the areas disagree on
    for area in AREAS:
        bp = Blueprint(area.__name__)
        for name, handler in area.HANDLERS.items():
            route = BY_NAME[name]
            bp.route(route.path, methods=[route.method])(_view(bp, name, handler))
        app.register_blueprint(bp)
