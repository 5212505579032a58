"""Small builders for CloudFormation template fragments, so templates read like data."""

from __future__ import annotations

from typing import Any

from histolabel.config import Settings

Resource = dict[str, Any]
Resources = dict[str, Resource]

# Resources that only exist on a real account; the emulator's CloudFormation cannot create them.
ON_AWS = "OnAws"


def ref(name: str) -> dict[str, str]:
    return {"Ref": name}


def get_att(name: str, attribute: str) -> dict[str, list[str]]:
    return {"Fn::GetAtt": [name, attribute]}


def sub(text: str) -> dict[str, str]:
    return {"Fn::Sub": text}


def arn(service: str, resource: str, *, region: bool = True, account: bool = True) -> dict[str, str]:
    """An ARN in this stack's partition, region and account; `resource` may hold ${...}."""
    r = "${AWS::Region}" if region else ""
    a = "${AWS::AccountId}" if account else ""
    return sub(f"arn:${{AWS::Partition}}:{service}:{r}:{a}:{resource}")


def tags(stage: str, component: str) -> list[dict[str, str]]:
    return [
        {"Key": "histolabel:stage", "Value": stage},
        {"Key": "histolabel:component", "Value": component},
    ]


def on_aws(resource: Resource) -> Resource:
    """Mark a resource as created only on a real account (not in the local emulator)."""
    return {**resource, "Condition": ON_AWS}


def emulator_parameter_and_condition() -> tuple[dict[str, Any], dict[str, Any]]:
    parameters = {
        "Emulated": {
            "Type": "String",
            "AllowedValues": ["true", "false"],
            "Default": "false",
            "Description": "true when deploying into the local emulator, which lacks some resource types",
        }
    }
    conditions = {ON_AWS: {"Fn::Equals": [ref("Emulated"), "false"]}}
    return parameters, conditions


def template_settings(settings: Settings) -> Settings:
    """The settings as the templates name things: bucket names carry the account id."""
    return settings.model_copy(update={"bucket_account": "${AWS::AccountId}"})


def account_settings(settings: Settings, account: str) -> Settings:
    """The settings of the deployed stage in `account` (its real bucket names)."""
    return settings.model_copy(update={"bucket_account": account})
