"""The Lambda side: the Chalice API behind API Gateway, the stream projector and the job
trigger, each with its own role, log group and (for the stream consumers) an event source
mapping with partial batch responses, bisect on error and an on-failure queue."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from histolabel import config
from histolabel.config import Settings
from infra.cfn import Resources, get_att, on_aws, ref, sub
from infra.iam import log_writer, role
from infra.permissions import ROLES, statements_for
from infra.write_rates import PROJECTOR_PARALLELIZATION, TRIGGER_PARALLELIZATION

# Lambda's Python runtime on Amazon Linux 2023 (python3.11 runs on Amazon Linux 2).
RUNTIME = "python3.12"
API_STAGE = "api"
# Event types whose arrival starts a Batch job; the trigger sees only these.
JOB_STARTING_EVENTS = ["SlideRegistered", "SlideIngested", "SegmentationCompleted", "TrainingRequested"]


@dataclass(frozen=True)
class FunctionArtifact:
    name: str
    package_type: str  # "Zip" | "Image"
    handler: str  # module.attr
    entries: tuple[str, ...]
    factories: tuple[str, ...]


@dataclass(frozen=True)
class Function:
    logical: str
    name: str
    memory_mb: int
    timeout_s: int
    artifact: FunctionArtifact

    @property
    def role(self) -> str:
        return f"fn:{self.name}"

    @property
    def handler(self) -> str:
        return self.artifact.handler


def _fn(logical: str, name: str, memory_mb: int, timeout_s: int, handler: str, kind: str = "Zip") -> Function:
    role = ROLES[f"fn:{name}"]
    artifact = FunctionArtifact(name, kind, handler, role.entries, role.factories)
    return Function(logical, name, memory_mb, timeout_s, artifact)


API = _fn("APIHandler", "api", 1024, 29, "app.app", "Image")
PROJECTOR = _fn("Projector", "projector", 512, 120, "handlers.projector.handler")
TRIGGER = _fn("Trigger", "trigger", 256, 60, "handlers.trigger.handler")
JOB_EVENTS = _fn("JobEvents", "job_events", 256, 60, "handlers.job_events.handler")
ANCHORER = _fn("Anchorer", "anchorer", 256, 120, "handlers.anchorer.handler")
FUNCTIONS = (API, PROJECTOR, TRIGGER, JOB_EVENTS, ANCHORER)


def function_name(settings: Settings, fn: Function) -> str:
    return f"{settings.prefix}-{fn.name.replace('_', '-')}"


def function_environment(settings: Settings) -> dict[str, Any]:
    """Every function's environment, under the names histolabel.config reads."""
    return {
        **config.environment(
            stage=settings.stage,
            data_bucket_name=sub(settings.data_bucket),
            user_pool_id=ref("UserPoolId"),
            client_id=ref("UserPoolClientId"),
            hosted_ui_url=ref("HostedUiUrl"),
            job_queue_cpu=ref("CpuJobQueue"),
            job_queue_gpu=ref("GpuJobQueue"),
            job_definition_prefix=settings.definition_prefix,
            anchors_bucket_name=sub(settings.anchors_bucket),
            # by name, not Ref: the anchorer's own environment is this one too
            anchor_function=function_name(settings, ANCHORER),
        ),
        "POWERTOOLS_SERVICE_NAME": "histolabel",
        "POWERTOOLS_LOG_LEVEL": "INFO",
    }


def _stream_mapping(fn: Function, *, filters: list[str] | None, parallelization: int) -> dict[str, Any]:
    props: dict[str, Any] = {
        "FunctionName": ref(fn.logical),
        "EventSourceArn": ref("EventsStreamArn"),
        "StartingPosition": "TRIM_HORIZON",
        "BatchSize": 100,
        "MaximumBatchingWindowInSeconds": 1,
        # The handler returns the records it could not fold; only those are retried.
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "BisectBatchOnFunctionError": True,
        "MaximumRetryAttempts": 10,
        "MaximumRecordAgeInSeconds": 86400,
        # Concurrent batches per shard, from the declared peak write rate (infra/write_rates.py,
        # which says why the projector folds concurrent batches of one slide safely).
        "ParallelizationFactor": parallelization,
        "DestinationConfig": {"OnFailure": {"Destination": get_att("StreamFailures", "Arn")}},
        "Enabled": True,
    }
    if filters:
        pattern = {"dynamodb": {"NewImage": {"type": {"S": filters}}}}
        props["FilterCriteria"] = {"Filters": [{"Pattern": json.dumps(pattern, separators=(",", ":"))}]}
    return {"Type": "AWS::Lambda::EventSourceMapping", "Properties": props}


def lambdas(settings: Settings, log_retention_days: int) -> Resources:
    resources: Resources = {
        "StreamFailures": {
            "Type": "AWS::SQS::Queue",
            "Properties": {
                "QueueName": f"{settings.prefix}-stream-failures",
                "MessageRetentionPeriod": 1209600,
                "SqsManagedSseEnabled": True,
            },
        }
    }
    for fn in FUNCTIONS:
        name = function_name(settings, fn)
        log_group = f"{fn.logical}LogGroup"
        resources[log_group] = {
            "Type": "AWS::Logs::LogGroup",
            "DeletionPolicy": "Delete",
            "Properties": {"LogGroupName": f"/aws/lambda/{name}", "RetentionInDays": log_retention_days},
        }
        resources[f"{fn.logical}Role"] = role(
            f"{name}-fn",
            "lambda.amazonaws.com",
            [log_writer(log_group), *statements_for(fn.role, settings)],
            description=f"the {fn.name} Lambda function",
        )
        props: dict[str, Any] = {
            "FunctionName": name,
            "Architectures": ["x86_64"],
            "MemorySize": fn.memory_mb,
            "Timeout": fn.timeout_s,
            "Role": get_att(f"{fn.logical}Role", "Arn"),
            "Environment": {"Variables": function_environment(settings)},
            "LoggingConfig": {"LogGroup": ref(log_group), "LogFormat": "JSON"},
        }
        if fn.artifact.package_type == "Image":
            props.update({"PackageType": "Image", "Code": {"ImageUri": ref("ApiImageUri")}})
        else:
            props.update(
                {
                    "Runtime": RUNTIME,
                    "Handler": fn.handler,
                    "Code": {"S3Bucket": ref("ArtifactsBucket"), "S3Key": ref(f"{fn.logical}CodeKey")},
                }
            )
        resources[fn.logical] = {"Type": "AWS::Lambda::Function", "Properties": props}
    resources["ProjectorStream"] = _stream_mapping(
        PROJECTOR, filters=None, parallelization=PROJECTOR_PARALLELIZATION
    )
    resources["TriggerStream"] = _stream_mapping(
        TRIGGER, filters=JOB_STARTING_EVENTS, parallelization=TRIGGER_PARALLELIZATION
    )
    resources.update(job_state_rule(settings))
    resources.update(anchor_schedule(settings))
    return resources


def job_state_rule(settings: Settings) -> Resources:
    """Every state change of a job on the stage's queues reaches the job_events function, which
    records its outcome (success, failure with reason) and starts the next job of the pipeline."""
    return {
        "JobStateRule": {
            "Type": "AWS::Events::Rule",
            "Properties": {
                "Name": f"{settings.prefix}-job-state",
                "Description": "Batch job state changes of this stage's queues -> job_events",
                "State": "ENABLED",
                "EventPattern": {
                    "source": ["aws.batch"],
                    "detail-type": ["Batch Job State Change"],
                    "detail": {"jobQueue": [ref("CpuJobQueue"), ref("GpuJobQueue")]},
                },
                "Targets": [{"Id": "job-events", "Arn": get_att(JOB_EVENTS.logical, "Arn")}],
            },
        },
        "JobStateInvokePermission": {
            "Type": "AWS::Lambda::Permission",
            "Properties": {
                "FunctionName": ref(JOB_EVENTS.logical),
                "Action": "lambda:InvokeFunction",
                "Principal": "events.amazonaws.com",
                "SourceArn": get_att("JobStateRule", "Arn"),
            },
        },
    }


def anchor_schedule(settings: Settings) -> Resources:
    """Stream heads are anchored at least every minute (and on every export, by the API)."""
    return {
        "AnchorSchedule": {
            "Type": "AWS::Events::Rule",
            "Properties": {
                "Name": f"{settings.prefix}-anchor",
                "Description": "sign and lock the event streams' heads every minute",
                "State": "ENABLED",
                "ScheduleExpression": "rate(1 minute)",
                "Targets": [{"Id": "anchorer", "Arn": get_att(ANCHORER.logical, "Arn")}],
            },
        },
        "AnchorInvokePermission": {
            "Type": "AWS::Lambda::Permission",
            "Properties": {
                "FunctionName": ref(ANCHORER.logical),
                "Action": "lambda:InvokeFunction",
                "Principal": "events.amazonaws.com",
                "SourceArn": get_att("AnchorSchedule", "Arn"),
            },
        },
    }


def api_gateway(settings: Settings, swagger: dict[str, Any]) -> Resources:
    body = {**swagger, "info": {**swagger.get("info", {}), "title": f"{settings.prefix}-api"}}
    # A new deployment only when the routes change, so an unchanged redeploy stays a no-op.
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:10]
    return {
        "RestAPI": {
            "Type": "AWS::ApiGateway::RestApi",
            "Properties": {
                "Name": f"{settings.prefix}-api",
                "Body": body,
                "EndpointConfiguration": {"Types": ["REGIONAL"]},
                "BinaryMediaTypes": swagger.get("x-amazon-apigateway-binary-media-types", []),
            },
        },
        # The emulator ignores an OpenAPI Body, so there its API has no methods to deploy.
        f"RestAPIDeployment{digest}": on_aws(
            {
                "Type": "AWS::ApiGateway::Deployment",
                "Properties": {"RestApiId": ref("RestAPI"), "StageName": API_STAGE},
            }
        ),
        "APIHandlerInvokePermission": {
            "Type": "AWS::Lambda::Permission",
            "Properties": {
                "FunctionName": ref("APIHandler"),
                "Action": "lambda:InvokeFunction",
                "Principal": "apigateway.amazonaws.com",
                "SourceArn": sub(
                    "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${RestAPI}/*"
                ),
            },
        },
    }


def api_url() -> dict[str, str]:
    return sub(f"https://${{RestAPI}}.execute-api.${{AWS::Region}}.${{AWS::URLSuffix}}/{API_STAGE}/")
