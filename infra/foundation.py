"""The foundation stack: what holds data and outlives the app stack (kept by `destroy`).

Events table and data bucket come from `histolabel.resources`, the single source the local
cloud is provisioned from. The user pool lives here too: actors in the event history are
Cognito users, so recreating the pool would orphan that history.
"""

from __future__ import annotations

from typing import Any

from histolabel.config import Settings
from histolabel.resources import WEB_CLIENT_AUTH_FLOWS, data_bucket, events_table, private_bucket
from infra.cfn import Resources, emulator_parameter_and_condition, get_att, on_aws, ref, sub, tags


def _artifacts_bucket(settings: Settings) -> dict[str, Any]:
    bucket = private_bucket(
        sub(f"{settings.prefix}-artifacts-${{AWS::AccountId}}"), versioned=False, cors=False, retain=False
    )
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


def foundation_template(settings: Settings) -> dict[str, Any]:
    parameters, conditions = emulator_parameter_and_condition()
    events = events_table(settings)
    data = data_bucket(settings)
    resources: Resources = {
        "EventsTable": events,
        "DataBucket": data,
        "ArtifactsBucket": _artifacts_bucket(settings),
        **_user_pool(settings),
    }
    outputs = {
        "EventsTableName": {"Value": ref("EventsTable")},
        "EventsStreamArn": {"Value": get_att("EventsTable", "StreamArn")},
        "DataBucketName": {"Value": ref("DataBucket")},
        "ArtifactsBucketName": {"Value": ref("ArtifactsBucket")},
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
