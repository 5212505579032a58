"""The product's vocabulary as GET /config states it to the web app: roles, who may do what, the
palette, job kinds and the settings' choices. Each comes from the one place that holds it (the
route table's roles, the catalogue's literals, the job-kinds table, the commands' palette), so
the app holds no copy that could drift.

It is public (GET /config needs no token): every item is already in the open OpenAPI document
(role, job-kind and settings enums; the route roles in its descriptions) or in the app's own
code, and the login form is built before anyone signs in."""

from __future__ import annotations

from typing import Any, get_args

from histolabel.api.routes import BY_NAME
from histolabel.commands import PALETTE
from histolabel.events.fields import CertaintyMetric, FeatureKind, ModelKind, Role
from histolabel.jobs import JOB_KINDS

# What the app offers -> the route that does it; who may is that route's access.
MAY_ROUTE = {
    "label": "label",
    "review": "review",
    "guided": "queue",
    "train": "request_training",
    "audit": "audit_history",
    "export": "start_export",
    "manage": "change_settings",
    "merge_categories": "merge_categories",
}


def _roles_of(route: str) -> list[str]:
    access = BY_NAME[route].access
    assert isinstance(access, tuple), f"route {route!r} is not limited by project role"
    return list(access)


def vocabulary() -> dict[str, Any]:
    return {
        "roles": list(get_args(Role)),
        "may": {action: _roles_of(route) for action, route in MAY_ROUTE.items()},
        "palette": list(PALETTE),
        "job_kinds": list(JOB_KINDS),
        "certainty_metrics": list(get_args(CertaintyMetric)),
        "feature_kinds": list(get_args(FeatureKind)),
        "model_kinds": list(get_args(ModelKind)),
    }
