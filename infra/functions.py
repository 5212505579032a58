"""The Lambda side: the Chalice API behind API Gateway, the stream projector and the job
trigger, each with its own role, log group and (for the stream consumers) an event source
mapping with partial batch responses, bisect on error and an on-failure queue."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from histolabel.config import Settings
from infra.cfn import ON_AWS, Resources, get_att, on_aws, ref, sub
from infra.iam import Statement, allow, log_writer, role
from infra.jobs import JOBS, job_definition_name
from infra.signing import parameter_name

RUNTIME = "python3.11"
API_STAGE = "api"
# Event types whose arrival starts a Batch job; the trigger sees only these.
JOB_STARTING_EVENTS = ["SlideRegistered", "SlideIngested", "SegmentationCompleted", "TrainingRequested"]


@dataclass(frozen=True)
class Function:
    logical: str
    name: str
    handler: str
    memory_mb: int
    timeout_s: int


API = Function("APIHandler", "api", "app.app", 1024, 29)
PROJECTOR = Function("Projector", "projector", "app.projector", 512, 120)
TRIGGER = Function("Trigger", "trigger", "app.trigger", 256, 60)
FUNCTIONS = (API, PROJECTOR, TRIGGER)


def function_name(settings: Settings, fn: Function) -> str:
    return f"{settings.prefix}-{fn.name}"


def _table_arn(table: str) -> dict[str, str]:
    return sub(f"arn:${{AWS::Partition}}:dynamodb:${{AWS::Region}}:${{AWS::AccountId}}:table/{table}")


def _statements(settings: Settings, fn: Function) -> list[Statement]:
    events = _table_arn(settings.events_table)
    projections = get_att("ProjectionsTable", "Arn")
    stream_read = allow(
        [
            "dynamodb:DescribeStream",
            "dynamodb:GetRecords",
            "dynamodb:GetShardIterator",
            "dynamodb:ListStreams",
        ],
        [
            sub(
                f"arn:${{AWS::Partition}}:dynamodb:${{AWS::Region}}:${{AWS::AccountId}}:table/{settings.events_table}/stream/*"
            )
        ],
    )
    dead_letters = allow(["sqs:SendMessage"], [get_att("StreamFailures", "Arn")])
    append = ["dynamodb:ConditionCheckItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query"]
    data = f"arn:${{AWS::Partition}}:s3:::{settings.data_bucket}"
    if fn is API:
        return [
            allow(append, [events]),
            allow(["dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:Query"], [projections]),
            # Guided-queue leases (histolabel/adapters/dynamo_leases.py): conditional puts of
            # LEASE# items only; the projections themselves stay the projector's to write.
            allow(
                ["dynamodb:PutItem"],
                [projections],
                **{"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["LEASE#*"]}},
            ),
            # Uploads of source slides go straight to S3 with URLs this role presigns.
            allow(["s3:GetObject", "s3:PutObject"], [sub(f"{data}/projects/*")]),
            # Large exports are written tagged, for the lifecycle rule that expires them.
            allow(["s3:PutObjectTagging"], [sub(f"{data}/projects/*/exports/*")]),
            allow(["s3:ListBucket"], [sub(data)], StringLike={"s3:prefix": ["projects/*"]}),
            allow(
                ["cognito-idp:AdminGetUser", "cognito-idp:ListUsers"],
                [
                    sub(
                        "arn:${AWS::Partition}:cognito-idp:${AWS::Region}:${AWS::AccountId}:userpool/${UserPoolId}"
                    )
                ],
            ),
            allow(
                ["ssm:GetParameter"],
                [
                    sub(
                        f"arn:${{AWS::Partition}}:ssm:${{AWS::Region}}:${{AWS::AccountId}}:parameter/histolabel/{settings.stage}/*"
                    )
                ],
            ),
        ]
    if fn is PROJECTOR:
        return [
            stream_read,
            dead_letters,
            allow(["dynamodb:GetItem", "dynamodb:Query"], [events]),
            allow(
                [
                    "dynamodb:BatchWriteItem",
                    "dynamodb:ConditionCheckItem",
                    "dynamodb:DeleteItem",
                    "dynamodb:GetItem",
                    "dynamodb:PutItem",
                    "dynamodb:Query",
                    "dynamodb:UpdateItem",
                ],
                [projections],
            ),
        ]
    job_definitions = [
        sub(
            "arn:${AWS::Partition}:batch:${AWS::Region}:${AWS::AccountId}"
            f":job-definition/{job_definition_name(settings, j.name)}*"
        )
        for j in JOBS
    ]
    return [
        stream_read,
        dead_letters,
        allow(append, [events]),
        allow(["dynamodb:GetItem", "dynamodb:Query"], [projections]),
        allow(["batch:SubmitJob"], [ref("CpuJobQueue"), ref("GpuJobQueue"), *job_definitions]),
    ]


def _environment(settings: Settings) -> dict[str, Any]:
    return {
        "Variables": {
            "HISTOLABEL_STAGE": settings.stage,
            "POWERTOOLS_SERVICE_NAME": "histolabel",
            "POWERTOOLS_LOG_LEVEL": "INFO",
            "HISTOLABEL_USER_POOL_ID": ref("UserPoolId"),
            "HISTOLABEL_CLIENT_ID": ref("UserPoolClientId"),
            "HISTOLABEL_HOSTED_UI_URL": ref("HostedUiUrl"),
            "HISTOLABEL_JOB_QUEUE_CPU": ref("CpuJobQueue"),
            "HISTOLABEL_JOB_QUEUE_GPU": ref("GpuJobQueue"),
            "HISTOLABEL_JOB_DEFINITION_PREFIX": f"{settings.prefix}-",
            "HISTOLABEL_DATA_SIGNING_KEY_PARAM": parameter_name(settings),
            "HISTOLABEL_DATA_KEY_PAIR_ID": {"Fn::If": [ON_AWS, ref("DataSigningPublicKey0"), "none"]},
        }
    }


def _stream_mapping(fn: Function, *, filters: list[str] | None) -> dict[str, Any]:
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
        "ParallelizationFactor": 1,
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
            [log_writer(log_group), *_statements(settings, fn)],
            description=f"the {fn.name} Lambda function",
        )
        resources[fn.logical] = {
            "Type": "AWS::Lambda::Function",
            "Properties": {
                "FunctionName": name,
                "Runtime": RUNTIME,
                "Architectures": ["x86_64"],
                "Handler": fn.handler,
                "MemorySize": fn.memory_mb,
                "Timeout": fn.timeout_s,
                "Role": get_att(f"{fn.logical}Role", "Arn"),
                "Code": {"S3Bucket": ref("ArtifactsBucket"), "S3Key": ref("CodeKey")},
                "Environment": _environment(settings),
                "LoggingConfig": {"LogGroup": ref(log_group), "LogFormat": "JSON"},
            },
        }
    resources["ProjectorStream"] = _stream_mapping(PROJECTOR, filters=None)
    resources["TriggerStream"] = _stream_mapping(TRIGGER, filters=JOB_STARTING_EVENTS)
    return resources


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
