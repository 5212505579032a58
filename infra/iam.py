"""IAM roles with least privilege, and the check that no policy grants more than it names."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from infra.cfn import Resource, sub

# Actions AWS authorizes only on Resource "*", each with the reason it is needed.
WILDCARD_ONLY: dict[str, str] = {
    "batch:DescribeJobs": "the job-status route and the job-events handler read a job's state",
    "ecr:GetAuthorizationToken": "CodeBuild logs in to ECR to push the images it builds",
}

Statement = dict[str, Any]


def allow(actions: Iterable[str], resources: Iterable[Any], **condition: Any) -> Statement:
    statement: Statement = {"Effect": "Allow", "Action": sorted(actions), "Resource": list(resources)}
    if condition:
        statement["Condition"] = condition
    return statement


def role(
    name: str,
    principal_service: str,
    statements: list[Statement],
    *,
    managed: list[str] | None = None,
    description: str,
) -> Resource:
    props: dict[str, Any] = {
        "RoleName": name,
        "Description": description,
        "AssumeRolePolicyDocument": {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": principal_service},
                    "Action": "sts:AssumeRole",
                }
            ],
        },
    }
    if statements:
        props["Policies"] = [
            {
                "PolicyName": "least-privilege",
                "PolicyDocument": {"Version": "2012-10-17", "Statement": statements},
            }
        ]
    if managed:
        props["ManagedPolicyArns"] = [sub(f"arn:${{AWS::Partition}}:iam::aws:policy/{m}") for m in managed]
    return {"Type": "AWS::IAM::Role", "Properties": props}


def log_writer(log_group_logical_id: str) -> Statement:
    return allow(
        ["logs:CreateLogStream", "logs:PutLogEvents"],
        [sub(f"${{{log_group_logical_id}.Arn}}")],
    )


def _statements(template: dict[str, Any]) -> Iterator[tuple[str, Statement]]:
    for logical_id, resource in template.get("Resources", {}).items():
        props = resource.get("Properties", {})
        documents = []
        if resource["Type"] == "AWS::IAM::Role":
            documents = [p["PolicyDocument"] for p in props.get("Policies", [])]
        elif resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::S3::BucketPolicy"):
            documents = [props["PolicyDocument"]]
        for document in documents:
            statements = document["Statement"]
            for statement in statements if isinstance(statements, list) else [statements]:
                yield logical_id, statement


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def wildcard_grants(template: dict[str, Any]) -> list[str]:
    """Every Allow statement that grants `*` actions, or `*` resources where an ARN could be named."""
    problems = []
    for logical_id, statement in _statements(template):
        if statement.get("Effect") != "Allow":
            continue
        actions = _as_list(statement.get("Action", []))
        for action in actions:
            if action == "*" or (isinstance(action, str) and action.endswith(":*")):
                problems.append(f"{logical_id}: action {action!r} grants every action of a service")
        resources = _as_list(statement.get("Resource", []))
        if "*" in resources:
            named = [a for a in actions if a not in WILDCARD_ONLY]
            if named:
                problems.append(f"{logical_id}: Resource '*' for {named}, which take resource ARNs")
    return problems
