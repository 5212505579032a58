"""The stacks of one stage and their templates.

Two stacks, so `destroy` can remove the app and keep the data: the foundation (events table,
data bucket, user pool, code artifacts) and the app (everything rebuildable: projections,
web bucket, functions, API, Batch, CloudFront), which takes the foundation's outputs as
parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from histolabel.config import Settings
from histolabel.resources import projections_table, web_bucket
from infra.cfn import emulator_parameter_and_condition, ref, sub, template_settings
from infra.edge import edge
from infra.foundation import foundation_template
from infra.functions import FUNCTIONS, api_gateway, api_url, lambdas
from infra.jobs import JOBS, batch
from infra.network import NETWORK_CONDITIONS, NETWORK_PARAMETERS, network

LOG_RETENTION_DAYS = 90

# Resource types the local emulator's (moto's) CloudFormation cannot create. Templates mark
# them with the OnAws condition; `deploy` against the emulator reports them as skipped.
EMULATOR_UNSUPPORTED = frozenset(
    {
        "AWS::Cognito::UserPool",
        "AWS::Cognito::UserPoolClient",
        "AWS::CloudFront::Distribution",
        "AWS::CloudFront::OriginAccessControl",
        "AWS::CloudFront::CachePolicy",
        "AWS::S3::BucketPolicy",
        "AWS::CodeBuild::Project",
    }
)
# Types the emulator creates, but not as these templates need them (reason in the template).
EMULATOR_PARTIAL = {
    "AWS::ApiGateway::Deployment": "the emulator ignores the API's OpenAPI body",
    "AWS::KMS::Key": "the emulator makes every key a symmetric encryption key (no HMAC, no signing)",
    "AWS::KMS::Alias": "goes with its key",
}


@dataclass(frozen=True)
class StackNames:
    foundation: str
    app: str


def stack_names(settings: Settings) -> StackNames:
    return StackNames(foundation=f"{settings.prefix}-foundation", app=f"{settings.prefix}-app")


def code_key_parameter(logical: str) -> str:
    return f"{logical}CodeKey"


APP_PARAMETERS: dict[str, dict[str, Any]] = {
    "EventsStreamArn": {"Type": "String", "Description": "stream of the foundation's events table"},
    "ArtifactsBucket": {"Type": "String", "Description": "bucket holding the Lambda code zips"},
    **{
        code_key_parameter(fn.logical): {
            "Type": "String",
            "Description": f"S3 key of the {fn.name} function's zip (content-addressed)",
        }
        for fn in FUNCTIONS
        if fn.artifact.package_type == "Zip"
    },
    "ApiImageUri": {"Type": "String", "Description": "the API function's image in ECR (tag: content hash)"},
    "JobImageUri": {"Type": "String", "Description": "the jobs' image in ECR"},
    "UserPoolId": {"Type": "String", "Default": "none"},
    "UserPoolClientId": {"Type": "String", "Default": "none"},
    "CpuMaxVcpus": {"Type": "Number", "Default": 64, "MinValue": 1},
    "GpuMaxVcpus": {"Type": "Number", "Default": 16, "MinValue": 1},
    "HostedUiUrl": {
        "Type": "String",
        "Default": "",
        "Description": "Cognito hosted UI authorize URL the web app offers for single sign-on (optional)",
    },
}


def app_template(settings: Settings, swagger: dict[str, Any]) -> dict[str, Any]:
    settings = template_settings(settings)
    parameters, conditions = emulator_parameter_and_condition()
    resources = {
        "ProjectionsTable": projections_table(settings),
        "WebBucket": web_bucket(settings),
        **network(settings.stage),
        **batch(settings, LOG_RETENTION_DAYS),
        **lambdas(settings, LOG_RETENTION_DAYS),
        **api_gateway(settings, swagger),
        **edge(settings),
    }
    outputs: dict[str, Any] = {
        "ApiUrl": {"Value": api_url()},
        "WebUrl": {"Value": sub("https://${Distribution.DomainName}/"), "Condition": "OnAws"},
        "ProjectionsTableName": {"Value": ref("ProjectionsTable")},
        "WebBucketName": {"Value": ref("WebBucket")},
        "CpuJobQueue": {"Value": ref("CpuJobQueue")},
        "GpuJobQueue": {"Value": ref("GpuJobQueue")},
        "StreamFailuresQueueUrl": {"Value": ref("StreamFailures")},
        **{f"{fn.logical}FunctionName": {"Value": ref(fn.logical)} for fn in FUNCTIONS},
    }
    for job in JOBS:
        outputs[f"{job.logical}JobDefinition"] = {"Value": ref(f"{job.logical}JobDefinition")}
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": f"HistoLabel {settings.stage}: API, functions, Batch jobs, web app delivery",
        "Parameters": {**parameters, **APP_PARAMETERS, **NETWORK_PARAMETERS},
        "Conditions": {**conditions, **NETWORK_CONDITIONS},
        "Resources": resources,
        "Outputs": outputs,
    }


def templates(settings: Settings, swagger: dict[str, Any]) -> dict[str, dict[str, Any]]:
    names = stack_names(settings)
    return {names.foundation: foundation_template(settings), names.app: app_template(settings, swagger)}
