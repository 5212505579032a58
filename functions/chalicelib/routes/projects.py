"""Routes: projects and members."""

from __future__ import annotations

from typing import Any

from chalicelib.context import SERVICES, Call, Handler, fresh
from chalicelib.people import person
from histolabel.api.views import project_out
from histolabel.commands import (
    AddMember,
    ChangeRole,
    ChangeSettings,
    CommandRejected,
    CreateProject,
    RemoveMember,
    UpdateSettings,
)
from histolabel.events.catalogue import Actor


def _create_project(c: Call) -> Any:
    b = c.body
    actor = Actor(user=c.user, site=b.site)
    c.svc.execute(CreateProject(project_id=b.project_id, name=b.name, settings=b.settings), actor)
    return project_out(c.svc.project_state(b.project_id), c.user)


def _list_projects(c: Call) -> Any:
    # Membership from the caller's own membership items (one Query however many projects there
    # are; a project joined a moment ago may lag by the projector's delay); the role from the
    # event stream, so a removed member is never shown the project.
    out = []
    for membership in c.svc.projections.projects_of(c.user):
        state = c.svc.project_state(membership.project_id)
        role = state.role_of(c.user)
        if role is not None:
            out.append({"project_id": state.project_id, "name": state.name, "role": role})
    return {"projects": out}


def _change_settings(c: Call) -> Any:
    c.svc.execute(ChangeSettings(project_id=c.project.project_id, settings=c.body.settings), c.actor)
    return project_out(fresh(c), c.user)


def _update_settings(c: Call) -> Any:
    changes = c.body.settings.model_dump(exclude_unset=True)
    c.svc.execute(UpdateSettings(project_id=c.project.project_id, changes=changes), c.actor)
    return project_out(fresh(c), c.user)


def _member(c: Call, user: str) -> dict[str, Any]:
    m = fresh(c).members[user]
    return {"user": user, **m.model_dump()}


def _add_member(c: Call) -> Any:
    b = c.body
    # A member is someone who can sign in: a typo must not make a member nobody can be.
    user = SERVICES.directory(b.user)
    if user is None:
        raise CommandRejected(
            "not_found",
            f"no user {b.user!r} in the user pool (by username or email); create them first: "
            "python -m infra add-user",
            "user",
            404,
        )
    c.svc.execute(AddMember(project_id=c.project.project_id, user=user, role=b.role, site=b.site), c.actor)
    return _member(c, user)


def _people(c: Call) -> Any:
    # Member ids are the pool's usernames, opaque where people sign in by email: the app shows
    # names and emails instead. Only the project's members are described, to its members.
    return {"people": {user: person(user) for user in sorted(c.project.members)}}


def _change_role(c: Call) -> Any:
    user = c.params["user"]
    c.svc.execute(ChangeRole(project_id=c.project.project_id, user=user, role=c.body.role), c.actor)
    return _member(c, user)


def _remove_member(c: Call) -> Any:
    user = c.params["user"]
    c.svc.execute(RemoveMember(project_id=c.project.project_id, user=user), c.actor)
    return {"removed": user}


HANDLERS: dict[str, Handler] = {
    "list_projects": _list_projects,
    "create_project": _create_project,
    "get_project": lambda c: project_out(c.project, c.user),
    "change_settings": _change_settings,
    "update_settings": _update_settings,
    "add_member": _add_member,
    "people": _people,
    "change_role": _change_role,
    "remove_member": _remove_member,
}
