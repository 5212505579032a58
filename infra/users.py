"""`add-user`: a Cognito user in the stage's pool, made a member of a project with a role
through the application service (so membership is an event like any other)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError
from pydantic import ValidationError

from histolabel.adapters.aws import client
from histolabel.composition import service_from_env
from histolabel.config import Settings
from infra import stackops
from infra.errors import InfraError, UsageError
from infra.stacks import stack_names

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass
class NewMember:
    user_id: str
    email: str
    created: bool


def user_pool_id(settings: Settings, given: str | None) -> str:
    if given:
        return given
    stack = stackops.describe(client("cloudformation", settings), stack_names(settings).foundation)
    pool = stackops.outputs_of(stack).get("UserPoolId")
    if not pool:
        raise UsageError(
            f"no user pool for stage {settings.stage!r}: deploy the stage first, or pass --user-pool-id "
            "(the emulator's CloudFormation cannot create user pools)"
        )
    return pool


def _sub_of(user: dict[str, Any]) -> str:
    """The member id: the API knows a caller by the token's cognito:username, the Username."""
    return str(user.get("Username", ""))


def find_user(cognito: Any, pool: str, email: str) -> str | None:
    users = cognito.list_users(UserPoolId=pool, Filter=f'email = "{email}"', Limit=2)["Users"]
    return _sub_of(users[0]) if users else None


def add_user(
    settings: Settings,
    *,
    email: str,
    project: str,
    role: str,
    site: str,
    by: str,
    by_site: str,
    pool: str,
) -> NewMember:
    from histolabel.commands import AddMember, CommandRejected
    from histolabel.events.catalogue import Actor

    if not EMAIL.match(email):
        raise UsageError(f"--email: {email!r} is not an email address")
    try:
        # Validate everything the command checks before any write (the user id is a stand-in).
        AddMember(project_id=project, user="placeholder", role=role, site=site)  # type: ignore[arg-type]
        Actor(user="placeholder", site=by_site)
    except ValidationError as err:
        fields = ", ".join(
            f"--{'.'.join(map(str, e['loc'])).replace('_id', '')}: {e['msg']}" for e in err.errors()
        )
        raise UsageError(f"invalid input: {fields}") from None
    cognito = client("cognito-idp", settings)
    try:
        cognito.describe_user_pool(UserPoolId=pool)
        actor_id = find_user(cognito, pool, by) if EMAIL.match(by) else by
    except ClientError as err:
        raise InfraError(f"user pool {pool}: {stackops._error_message(err)}") from None
    if not actor_id:
        raise UsageError(f"--by: no user {by!r} in the pool")
    service = service_from_env(settings)
    actor = Actor(user=actor_id, site=by_site)
    try:
        state = service.require_project(project)
    except CommandRejected as err:
        raise UsageError(f"--project: {err.detail}") from None
    if state.role_of(actor_id) != "owner":
        raise UsageError(f"--by: {by} is not an owner of project {project!r}, so cannot add members")

    created = False
    user_id = find_user(cognito, pool, email)
    if user_id is None:
        try:
            made = cognito.admin_create_user(
                UserPoolId=pool,
                Username=email,
                UserAttributes=[
                    {"Name": "email", "Value": email},
                    {"Name": "email_verified", "Value": "true"},
                    {"Name": "custom:site", "Value": site},
                ],
                DesiredDeliveryMediums=["EMAIL"],
            )["User"]
        except ClientError as err:
            raise InfraError(f"creating the user failed: {stackops._error_message(err)}") from None
        user_id, created = _sub_of(made), True
    try:
        service.execute(AddMember(project_id=project, user=user_id, role=role, site=site), actor)  # type: ignore[arg-type]
    except CommandRejected as err:
        note = " (the Cognito user was created and kept; rerun to retry)" if created else ""
        raise InfraError(f"adding {email} to {project}: {err.detail}{note}") from None
    return NewMember(user_id=user_id, email=email, created=created)
