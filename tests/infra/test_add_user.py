"""`python -m infra add-user`: a Cognito user, then a project membership event."""

from __future__ import annotations

import pytest

from histolabel.adapters.aws import client
from histolabel.commands import CreateProject
from histolabel.composition import service_from_env
from histolabel.events.catalogue import Actor
from tests.infra.conftest import run_cli


@pytest.fixture
def pool_and_owner(cloud, project_id):
    cognito = client("cognito-idp", cloud)
    pool = cognito.create_user_pool(PoolName=f"users-{project_id}", UsernameAttributes=["email"])["UserPool"][
        "Id"
    ]
    cognito.add_custom_attributes(
        UserPoolId=pool, CustomAttributes=[{"Name": "site", "AttributeDataType": "String", "Mutable": True}]
    )
    made = cognito.admin_create_user(
        UserPoolId=pool,
        Username="owner@site-a.org",
        UserAttributes=[{"Name": "email", "Value": "owner@site-a.org"}],
    )["User"]
    owner = next(a["Value"] for a in made["Attributes"] if a["Name"] == "sub")
    service_from_env(cloud).execute(
        CreateProject(project_id=project_id, name="lung"), Actor(user=owner, site="site-a")
    )
    return pool, owner


def _users(cloud, pool):
    return client("cognito-idp", cloud).list_users(UserPoolId=pool)["Users"]


def test_add_user_creates_the_user_and_the_membership(cloud, project_id, pool_and_owner, capsys):
    pool, _ = pool_and_owner
    argv = ["add-user", "--stage", cloud.stage, "--user-pool-id", pool, "--project", project_id]
    argv += [
        "--email",
        "ann@site-b.org",
        "--role",
        "annotator",
        "--site",
        "site-b",
        "--by",
        "owner@site-a.org",
    ]
    code, out, err = run_cli(capsys, *argv)
    assert code == 0, err
    assert "created and added ann@site-b.org as annotator" in out
    users = {
        next(a["Value"] for a in u["Attributes"] if a["Name"] == "email"): u for u in _users(cloud, pool)
    }
    new_id = next(a["Value"] for a in users["ann@site-b.org"]["Attributes"] if a["Name"] == "sub")
    state = service_from_env(cloud).project_state(project_id)
    assert state.role_of(new_id) == "annotator"
    # Again: the user exists, and is already a member: a clear refusal, no second user.
    code, _, err = run_cli(capsys, *argv)
    assert code == 1 and "already a member" in err
    assert len(_users(cloud, pool)) == 2


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"--email": "not-an-email"}, "--email"),
        ({"--by": "nobody@site-a.org"}, "--by: no user"),
        ({"--project": "pdoesnotexist"}, "--project"),
        ({"--site": ""}, "--site"),
    ],
)
def test_bad_input_exits_2_and_creates_no_user(cloud, project_id, pool_and_owner, capsys, change, message):
    pool, _ = pool_and_owner
    args = {
        "--email": "bob@site-c.org",
        "--role": "reviewer",
        "--site": "site-c",
        "--by": "owner@site-a.org",
        "--project": project_id,
    }
    args.update(change)
    argv = ["add-user", "--stage", cloud.stage, "--user-pool-id", pool]
    for k, v in args.items():
        argv += [k, v]
    code, _, err = run_cli(capsys, *argv)
    assert code == 2 and message in err, err
    assert len(_users(cloud, pool)) == 1


def test_add_user_without_a_pool_in_the_emulator_says_how(cloud, capsys):
    code, _, err = run_cli(
        capsys, "add-user", "--stage", "nopoolstage", "--project", "p1", "--email", "a@b.org",
        "--role", "owner", "--site", "x", "--by", "c@d.org",
    )  # fmt: skip
    assert code == 2 and "--user-pool-id" in err
