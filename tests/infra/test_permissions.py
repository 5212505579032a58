"""Least privilege that matches the code: the declared table (infra/permissions.py) against
the call sites read from the source (infra/callsites.py), and the templates' roles against
the table. Static, because the emulator does not enforce IAM on roles CloudFormation makes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from histolabel.config import Settings
from histolabel.jobs import JOB_KINDS
from infra import callsites, permissions
from infra.api import load_app, swagger_for
from infra.callsites import by_resource, reachable
from infra.cfn import template_settings
from infra.permissions import ROLES, WILDCARD_ONLY, Grant, granted, statements_for
from infra.stacks import stack_names, templates

JOB_EVENTS = Path(__file__).parents[2] / "functions" / "handlers" / "job_events.py"
SETTINGS = Settings(stage="permtest", region="eu-central-1")
ROLE_RESOURCES = {"fn:api": "APIHandlerRole", "fn:projector": "ProjectorRole", "fn:trigger": "TriggerRole",
                  "fn:job_events": "JobEventsRole", "fn:anchorer": "AnchorerRole",
                  **{f"job:{j}": f"{j.title().replace('_', '')}JobRole" for j in JOB_KINDS}}  # fmt: skip


def called(role: str) -> dict[str, set[str]]:
    r = ROLES[role]
    return by_resource(reachable(r.entries, r.factories, [module for module, _ in r.skip]))


@pytest.mark.parametrize("role", sorted(ROLES))
def test_every_call_is_granted_and_every_grant_is_called(role):
    calls, grants = called(role), granted(role)
    missing = {k: sorted(v - grants.get(k, set())) for k, v in calls.items() if v - grants.get(k, set())}
    unused = {k: sorted(v - calls.get(k, set())) for k, v in grants.items() if v - calls.get(k, set())}
    assert not missing, f"{role} calls actions its role does not grant: {missing}"
    if role == "fn:job_events" and "PLACEHOLDER" in JOB_EVENTS.read_text():
        pytest.skip("functions/handlers/job_events.py is a placeholder: its rows are what the handler needs")
    assert not unused, f"{role} grants actions its code never calls: {unused}"


def test_projector_may_append_the_training_request_it_makes():
    assert {"dynamodb:PutItem", "dynamodb:ConditionCheckItem"} <= called("fn:projector")["events"]
    assert {"dynamodb:PutItem", "dynamodb:ConditionCheckItem"} <= granted("fn:projector")["events"]


def test_api_may_submit_and_describe_jobs():
    assert {"batch:SubmitJob", "batch:DescribeJobs"} <= granted("fn:api")["batch"]


def test_a_missing_grant_is_caught(monkeypatch):
    """Remove the projector's append grant (the bug that made retraining never fire)."""
    role = ROLES["fn:projector"]
    weakened = dataclasses.replace(role, grants=(Grant("events", permissions.EVENTS_READ), *role.grants[1:]))
    monkeypatch.setitem(ROLES, "fn:projector", weakened)
    calls, grants = called("fn:projector"), granted("fn:projector")
    assert calls["events"] - grants["events"] == {"dynamodb:PutItem", "dynamodb:ConditionCheckItem"}


def test_every_s3fs_adapter_function_is_classified():
    assert callsites.s3fs_functions() <= set(callsites.S3FS_ACTIONS)


def test_each_role_in_the_templates_grants_exactly_its_rows():
    built = templates(SETTINGS, swagger_for(load_app(Path(__file__).with_name("stub_app.py"))))
    app = built[stack_names(SETTINGS).app]
    for role, logical in ROLE_RESOURCES.items():
        document = app["Resources"][logical]["Properties"]["Policies"][0]["PolicyDocument"]
        own = [s for s in document["Statement"] if not any(a.startswith("logs:") for a in s["Action"])]
        assert own == statements_for(role, template_settings(SETTINGS)), role


def test_wildcard_only_actions_are_listed_with_reasons_and_used_only_on_star():
    assert all(reason for reason in WILDCARD_ONLY.values())
    for role in ROLES:
        for statement in statements_for(role, SETTINGS):
            star = statement["Resource"] == ["*"]
            assert star == all(a in WILDCARD_ONLY for a in statement["Action"]), (role, statement)
