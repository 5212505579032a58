"""The foundation stack: what holds data and outlives the app stack (kept by `destroy`).

Events table and data bucket come from `histolabel.resources`, the single source the local
cloud is provisioned from. The user pool lives here too: actors in the event history are
Cognito users, so recreating the pool would orphan that history.
"""

from __future__ import annotations

from typing import Any

from histolabel.config import Settings
from histolabel.resources import (
    WEB_CLIENT_AUTH_FLOWS,
    audit_resources,
    data_bucket,
    events_table,
    private_bucket,
)
from infra.cfn import (
    Resources,
    arn,
    emulator_parameter_and_condition,
    get_att,
    on_aws,
    ref,
    sub,
    tags,
    template_settings,
)
from infra.iam import allow, role


def _artifacts_bucket(settings: Settings) -> dict[str, Any]:
    bucket = private_bucket(settings.artifacts_bucket, versioned=False, cors=False, retain=False)
    bucket["Properties"].update(
        {
            # Code bundles are keyed by content hash; old ones are only needed for rollback.
            "LifecycleConfiguration": {
                "Rules": [{"Id": "expire-old-bundles", "Status": "Enabled", "ExpirationInDays": 90}]
            },
            "Tags": tags(settings.stage, "artifacts"),
        }
    )
    return bucket


def _user_pool(settings: Settings) -> Resources:
    pool = {
        "Type": "AWS::Cognito::UserPool",
        "DeletionPolicy": "Retain",
        "UpdateReplacePolicy": "Retain",
        "Properties": {
            "UserPoolName": f"{settings.prefix}-users",
            # Consortium admins add people (`python -m infra add-user`); nobody signs up alone.
            "AdminCreateUserConfig": {"AllowAdminCreateUserOnly": True},
            "UsernameAttributes": ["email"],
            "AutoVerifiedAttributes": ["email"],
            "MfaConfiguration": "OPTIONAL",
            "EnabledMfas": ["SOFTWARE_TOKEN_MFA"],
            "Policies": {
                "PasswordPolicy": {
                    "MinimumLength": 12,
                    "RequireLowercase": True,
                    "RequireUppercase": True,
                    "RequireNumbers": True,
                    "RequireSymbols": False,
                    "TemporaryPasswordValidityDays": 7,
                }
            },
            "AccountRecoverySetting": {"RecoveryMechanisms": [{"Name": "verified_email", "Priority": 1}]},
            "Schema": [{"Name": "site", "AttributeDataType": "String", "Mutable": True}],
            "UserPoolTags": {"histolabel:stage": settings.stage},
        },
    }
    client = {
        "Type": "AWS::Cognito::UserPoolClient",
        "Properties": {
            "ClientName": f"{settings.prefix}-web",
            "UserPoolId": ref("UserPool"),
            "GenerateSecret": False,
            "ExplicitAuthFlows": WEB_CLIENT_AUTH_FLOWS,
            "PreventUserExistenceErrors": "ENABLED",
            "EnableTokenRevocation": True,
            "AccessTokenValidity": 60,
            "IdTokenValidity": 60,
            "RefreshTokenValidity": 12,
            "TokenValidityUnits": {"AccessToken": "minutes", "IdToken": "minutes", "RefreshToken": "hours"},
        },
    }
    return {"UserPool": on_aws(pool), "UserPoolClient": on_aws(client)}


IMAGES = {"api": "ApiRepository", "jobs": "JobRepository"}
# The repository's image builds: the Dockerfile and build context of each, in the source zip.
IMAGE_CONTEXTS = {"api": ("api/Dockerfile", "api"), "jobs": ("gpu_jobs/Dockerfile", ".")}
SOURCE_KEY_PREFIX = "source/"


def repository_name(settings: Settings, image: str) -> str:
    return f"{settings.prefix}-{image}"


def _repository(settings: Settings, image: str) -> dict[str, Any]:
    return {
        "Type": "AWS::ECR::Repository",
        "Properties": {
            "RepositoryName": repository_name(settings, image),
            "ImageScanningConfiguration": {"ScanOnPush": True},
            "ImageTagMutability": "IMMUTABLE",  # a tag is a content hash: it never changes meaning
            "EncryptionConfiguration": {"EncryptionType": "AES256"},
            "EmptyOnDelete": True,
            "LifecyclePolicy": {
                "LifecyclePolicyText": (
                    '{"rules":[{"rulePriority":1,"description":"keep the last 10 images",'
                    '"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":10},'
                    '"action":{"type":"expire"}}]}'
                )
            },
            "Tags": tags(settings.stage, f"image-{image}"),
        },
    }


BUILDSPEC = """version: 0.2
phases:
  pre_build:
    commands:
      - aws ecr get-login-password | docker login --username AWS --password-stdin $REGISTRY
  build:
    commands:
      - docker build -f $DOCKERFILE -t $REPOSITORY_URI:$IMAGE_TAG $CONTEXT
      - docker push $REPOSITORY_URI:$IMAGE_TAG
"""


def _image_builder(settings: Settings) -> Resources:
    """CodeBuild builds the images from the source zip `deploy` uploads, so the admin's
    machine needs no Docker. One project; each build names its image in its variables."""
    bucket = f"arn:${{AWS::Partition}}:s3:::{settings.artifacts_bucket}"
    repos = [get_att(logical, "Arn") for logical in IMAGES.values()]
    statements = [
        allow(["s3:GetObject"], [sub(f"{bucket}/{SOURCE_KEY_PREFIX}*")]),
        allow(
            ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            [arn("logs", f"log-group:/aws/codebuild/{settings.prefix}-images*")],
        ),
        allow(
            [
                "ecr:BatchCheckLayerAvailability",
                "ecr:BatchGetImage",
                "ecr:CompleteLayerUpload",
                "ecr:InitiateLayerUpload",
                "ecr:PutImage",
                "ecr:UploadLayerPart",
            ],
            repos,
        ),
        allow(["ecr:GetAuthorizationToken"], ["*"]),
    ]
    project = {
        "Type": "AWS::CodeBuild::Project",
        "Properties": {
            "Name": f"{settings.prefix}-images",
            "Description": "builds the API and job images from the repository's Dockerfiles",
            "ServiceRole": get_att("ImageBuilderRole", "Arn"),
            "Source": {
                "Type": "S3",
                "Location": sub(f"{settings.artifacts_bucket}/{SOURCE_KEY_PREFIX}latest.zip"),
                "BuildSpec": BUILDSPEC,
            },
            "Artifacts": {"Type": "NO_ARTIFACTS"},
            "Environment": {
                "Type": "LINUX_CONTAINER",
                "ComputeType": "BUILD_GENERAL1_LARGE",
                "Image": "aws/codebuild/amazonlinux-x86_64-standard:5.0",
                "PrivilegedMode": True,  # docker build
                "EnvironmentVariables": [
                    {
                        "Name": "REGISTRY",
                        "Value": sub("${AWS::AccountId}.dkr.ecr.${AWS::Region}.${AWS::URLSuffix}"),
                    }
                ],
            },
            "TimeoutInMinutes": 60,
            "LogsConfig": {
                "CloudWatchLogs": {
                    "Status": "ENABLED",
                    "GroupName": f"/aws/codebuild/{settings.prefix}-images",
                }
            },
        },
    }
    return {
        "ImageBuilderRole": (
            role(
                f"{settings.prefix}-image-builder",
                "codebuild.amazonaws.com",
                statements,
                description="CodeBuild: reads the source zip, pushes the images",
            )
        ),
        "ImageBuilder": on_aws(project),
    }


def foundation_template(settings: Settings) -> dict[str, Any]:
    settings = template_settings(settings)
    parameters, conditions = emulator_parameter_and_condition()
    events = events_table(settings)
    data = data_bucket(settings)
    resources: Resources = {
        "EventsTable": events,
        "DataBucket": data,
        "ArtifactsBucket": _artifacts_bucket(settings),
        **{logical: _repository(settings, image) for image, logical in IMAGES.items()},
        **_image_builder(settings),
        **_user_pool(settings),
        # The keys that sign the audit chain's anchors and MAC every appended event. The
        # emulator's CloudFormation makes every KMS key a symmetric encryption key, so there
        # deploy makes them through the API instead. The anchors bucket is not the stack's:
        # compliance-locked anchors outlive any stack, so deploy creates it, or reuses it
        # (infra.operations.deploy, histolabel.adapters.provision.provision_audit).
        **{
            logical: on_aws(resource)
            for logical, resource in audit_resources(settings).items()
            if logical != "AnchorsBucket"
        },
    }
    outputs = {
        "EventsTableName": {"Value": ref("EventsTable")},
        "EventsStreamArn": {"Value": get_att("EventsTable", "StreamArn")},
        "DataBucketName": {"Value": ref("DataBucket")},
        "ArtifactsBucketName": {"Value": ref("ArtifactsBucket")},
        "ApiRepositoryUri": {"Value": get_att("ApiRepository", "RepositoryUri")},
        "JobRepositoryUri": {"Value": get_att("JobRepository", "RepositoryUri")},
        "ImageBuilderName": {"Value": ref("ImageBuilder"), "Condition": "OnAws"},
        "UserPoolId": {"Value": ref("UserPool"), "Condition": "OnAws"},
        "UserPoolArn": {"Value": get_att("UserPool", "Arn"), "Condition": "OnAws"},
        "UserPoolClientId": {"Value": ref("UserPoolClient"), "Condition": "OnAws"},
    }
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": f"HistoLabel {settings.stage}: data outliving the app (events, data bucket, users)",
        "Parameters": parameters,
        "Conditions": conditions,
        "Resources": resources,
        "Outputs": outputs,
    }
