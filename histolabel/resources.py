"""The stateful resources of a stack, as CloudFormation resource definitions.

One source for both sides: `infra/` puts these into the deployed template and the local
cloud creates the same tables and buckets from them, so the two cannot drift.
"""

from __future__ import annotations

from typing import Any

from histolabel.config import Settings

Resource = dict[str, Any]


def events_table(settings: Settings) -> Resource:
    return {
        "Type": "AWS::DynamoDB::Table",
        "DeletionPolicy": "Retain",
        "UpdateReplacePolicy": "Retain",
        "Properties": {
            "TableName": settings.events_table,
            "BillingMode": "PAY_PER_REQUEST",
            "AttributeDefinitions": [
                {"AttributeName": "stream", "AttributeType": "S"},
                {"AttributeName": "seq", "AttributeType": "N"},
            ],
            "KeySchema": [
                {"AttributeName": "stream", "KeyType": "HASH"},
                {"AttributeName": "seq", "KeyType": "RANGE"},
            ],
            "StreamSpecification": {"StreamViewType": "NEW_IMAGE"},
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            "SSESpecification": {"SSEEnabled": True},
        },
    }


def projections_table(settings: Settings) -> Resource:
    return {
        "Type": "AWS::DynamoDB::Table",
        "Properties": {
            "TableName": settings.projections_table,
            "BillingMode": "PAY_PER_REQUEST",
            "AttributeDefinitions": [
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            "KeySchema": [
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            "SSESpecification": {"SSEEnabled": True},
            # Guided-queue leases (histolabel/adapters/dynamo_leases.py) carry `ttl`; expiry is
            # checked on every take, so this only keeps expired ones from piling up.
            "TimeToLiveSpecification": {"AttributeName": "ttl", "Enabled": True},
        },
    }


def private_bucket(name: Any, *, versioned: bool, cors: bool, retain: bool) -> Resource:
    """An encrypted bucket with every public access blocked (`name` may be an intrinsic)."""
    if isinstance(name, str) and "${" in name:
        name = {"Fn::Sub": name}  # a deployed name carries ${AWS::AccountId}
    props: dict[str, Any] = {
        "BucketName": name,
        "BucketEncryption": {
            "ServerSideEncryptionConfiguration": [
                {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
            ]
        },
        "PublicAccessBlockConfiguration": {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        },
    }
    if versioned:
        props["VersioningConfiguration"] = {"Status": "Enabled"}
    if cors:
        # The browser reads pyramid chunks with Range requests straight from the bucket.
        props["CorsConfiguration"] = {
            "CorsRules": [
                {
                    "AllowedMethods": ["GET", "HEAD", "PUT"],
                    "AllowedOrigins": ["*"],
                    "AllowedHeaders": ["*"],
                    "ExposedHeaders": ["Content-Length", "Content-Range", "ETag"],
                    "MaxAge": 3600,
                }
            ]
        }
    resource: Resource = {"Type": "AWS::S3::Bucket", "Properties": props}
    if retain:
        resource["DeletionPolicy"] = "Retain"
        resource["UpdateReplacePolicy"] = "Retain"
    return resource


# The web app's sign-in form uses USER_PASSWORD_AUTH (over TLS to Cognito); SRP and refresh are
# for other clients. One list for the deployed app client and the local cloud's.
WEB_CLIENT_AUTH_FLOWS = ["ALLOW_USER_PASSWORD_AUTH", "ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]

# Exports too large for a Lambda response are handed out from the data bucket; the API tags them
# so one rule can expire them (lifecycle filters know prefixes and tags, not wildcards).
EXPORT_TAG = {"Key": "histolabel-kind", "Value": "export"}
EXPORT_TTL_DAYS = 2


def data_bucket(settings: Settings) -> Resource:
    bucket = private_bucket(settings.data_bucket, versioned=True, cors=True, retain=True)
    bucket["Properties"]["LifecycleConfiguration"] = {
        "Rules": [
            {
                "Id": "ExpireExports",
                "Status": "Enabled",
                "TagFilters": [EXPORT_TAG],
                "ExpirationInDays": EXPORT_TTL_DAYS,
                "NoncurrentVersionExpiration": {"NoncurrentDays": 1},
            },
            {
                "Id": "AbortIncompleteUploads",
                "Status": "Enabled",
                "Prefix": "",
                "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
            },
        ]
    }
    return bucket


def web_bucket(settings: Settings) -> Resource:
    return private_bucket(settings.web_bucket, versioned=False, cors=False, retain=False)


def stateful_resources(settings: Settings) -> dict[str, Resource]:
    """Logical id -> definition, for the resources that hold data."""
    return {
        "EventsTable": events_table(settings),
        "ProjectionsTable": projections_table(settings),
        "DataBucket": data_bucket(settings),
        "WebBucket": web_bucket(settings),
    }
