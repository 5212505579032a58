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


# ---- the audit trail's anchors -------------------------------------------------------------
# Stream heads are signed with an asymmetric KMS key (auditors verify offline with its public
# key) and kept in a bucket under Object Lock in compliance mode: no role, root included, can
# rewrite or delete an anchor before its retention ends. Every appended event carries an HMAC
# made with a data key from a second KMS key that only the append path may use, so an event
# written around that path (a forged append) is told apart from a real one.
ANCHOR_RETENTION_DAYS = 3650
ANCHOR_SIGNING_ALGORITHM = "ECDSA_SHA_256"
# The append path MACs events (HMAC-SHA-256) with data keys wrapped by the event MAC key, each
# used this long by one process (histolabel/adapters/seals.py).
EVENT_MAC_KEY_SECONDS = 300


def anchors_bucket_name(settings: Settings) -> str:
    return settings.anchors_bucket


def anchor_key_alias(settings: Settings) -> str:
    return f"alias/{settings.prefix}-anchors"


def event_mac_key_alias(settings: Settings) -> str:
    return f"alias/{settings.prefix}-event-mac-keys"


def anchors_bucket(settings: Settings) -> Resource:
    bucket = private_bucket(anchors_bucket_name(settings), versioned=True, cors=False, retain=True)
    bucket["Properties"]["ObjectLockEnabled"] = True
    bucket["Properties"]["ObjectLockConfiguration"] = {
        "ObjectLockEnabled": "Enabled",
        "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": ANCHOR_RETENTION_DAYS}},
    }
    return bucket


def _kms_key(description: str, spec: str, usage: str) -> Resource:
    return {
        "Type": "AWS::KMS::Key",
        "DeletionPolicy": "Retain",
        "UpdateReplacePolicy": "Retain",
        "Properties": {
            "Description": description,
            "KeySpec": spec,
            "KeyUsage": usage,
            "Enabled": True,
            # AWS's default key policy, stated: the account's IAM policies decide who may use it.
            "KeyPolicy": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "account",
                        "Effect": "Allow",
                        "Principal": {
                            "AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}
                        },
                        "Action": "kms:*",
                        "Resource": "*",
                    }
                ],
            },
        },
    }


def anchor_key(settings: Settings) -> Resource:
    return _kms_key(f"{settings.prefix}: signs audit anchors", "ECC_NIST_P256", "SIGN_VERIFY")


def event_mac_key(settings: Settings) -> Resource:
    return _kms_key(
        f"{settings.prefix}: wraps the data keys that MAC appended events",
        "SYMMETRIC_DEFAULT",
        "ENCRYPT_DECRYPT",
    )


def key_alias(alias: str, key_logical_id: str) -> Resource:
    return {
        "Type": "AWS::KMS::Alias",
        "Properties": {"AliasName": alias, "TargetKeyId": {"Ref": key_logical_id}},
    }


def audit_resources(settings: Settings) -> dict[str, Resource]:
    """The anchors bucket and the two keys (infra's foundation stack must hold these too)."""
    return {
        "AnchorsBucket": anchors_bucket(settings),
        "AnchorKey": anchor_key(settings),
        "AnchorKeyAlias": key_alias(anchor_key_alias(settings), "AnchorKey"),
        "EventMacKey": event_mac_key(settings),
        "EventMacKeyAlias": key_alias(event_mac_key_alias(settings), "EventMacKey"),
    }


def stateful_resources(settings: Settings) -> dict[str, Resource]:
    """Logical id -> definition, for the resources that hold data."""
    return {
        "EventsTable": events_table(settings),
        "ProjectionsTable": projections_table(settings),
        "DataBucket": data_bucket(settings),
        "WebBucket": web_bucket(settings),
        **audit_resources(settings),
    }
