"""Create the stack's tables and buckets from their CloudFormation definitions with plain API
calls: the local cloud's path, which must give what `infra` deploys."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from histolabel.adapters.aws import client
from histolabel.config import Settings
from histolabel.resources import stateful_resources

# CloudFormation spells some S3 settings differently from the S3 API.
_CORS_KEYS = {"ExposedHeaders": "ExposeHeaders", "MaxAge": "MaxAgeSeconds"}


def table_parameters(props: dict[str, Any]) -> dict[str, Any]:
    """CreateTable's parameters for an AWS::DynamoDB::Table's properties."""
    params: dict[str, Any] = {
        "TableName": props["TableName"],
        "BillingMode": props["BillingMode"],
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
    }
    if "StreamSpecification" in props:
        params["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
    if "SSESpecification" in props:
        params["SSESpecification"] = {"Enabled": props["SSESpecification"]["SSEEnabled"]}
    return params


def bucket_settings(props: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """S3 call name -> arguments (besides Bucket) that give an AWS::S3::Bucket's properties."""
    rules = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    calls: dict[str, dict[str, Any]] = {
        "put_bucket_encryption": {
            "ServerSideEncryptionConfiguration": {
                "Rules": [
                    {"ApplyServerSideEncryptionByDefault": r["ServerSideEncryptionByDefault"]} for r in rules
                ]
            }
        },
        "put_public_access_block": {
            "PublicAccessBlockConfiguration": props["PublicAccessBlockConfiguration"]
        },
    }
    if "VersioningConfiguration" in props:
        calls["put_bucket_versioning"] = {"VersioningConfiguration": props["VersioningConfiguration"]}
    if "CorsConfiguration" in props:
        cors = [
            {_CORS_KEYS.get(k, k): v for k, v in r.items()} for r in props["CorsConfiguration"]["CorsRules"]
        ]
        calls["put_bucket_cors"] = {"CORSConfiguration": {"CORSRules": cors}}
    if "ObjectLockConfiguration" in props:
        calls["put_object_lock_configuration"] = {"ObjectLockConfiguration": props["ObjectLockConfiguration"]}
    if "LifecycleConfiguration" in props:
        calls["put_bucket_lifecycle_configuration"] = {
            "LifecycleConfiguration": {
                "Rules": [_lifecycle_rule(r) for r in props["LifecycleConfiguration"]["Rules"]]
            }
        }
    return calls


def _lifecycle_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """An S3 API lifecycle rule for a CloudFormation one (which flattens filter and actions)."""
    out: dict[str, Any] = {"ID": rule["Id"], "Status": rule["Status"]}
    tags = rule.get("TagFilters", [])
    if len(tags) == 1 and not rule.get("Prefix"):
        out["Filter"] = {"Tag": tags[0]}
    elif tags:
        out["Filter"] = {"And": {"Prefix": rule.get("Prefix", ""), "Tags": tags}}
    else:
        out["Filter"] = {"Prefix": rule.get("Prefix", "")}
    if "ExpirationInDays" in rule:
        out["Expiration"] = {"Days": rule["ExpirationInDays"]}
    if "NoncurrentVersionExpiration" in rule:
        out["NoncurrentVersionExpiration"] = rule["NoncurrentVersionExpiration"]
    if "AbortIncompleteMultipartUpload" in rule:
        out["AbortIncompleteMultipartUpload"] = rule["AbortIncompleteMultipartUpload"]
    return out


def api_plan(settings: Settings) -> dict[str, list[dict[str, Any]]]:
    """Every stateful resource as plain API parameters (also what LocalStack's init hook reads)."""
    plan: dict[str, list[dict[str, Any]]] = {"tables": [], "buckets": [], "keys": []}
    resources = stateful_resources(settings)
    for resource in resources.values():
        props = resource["Properties"]
        if resource["Type"] == "AWS::DynamoDB::Table":
            plan["tables"].append(table_parameters(props))
        elif resource["Type"] == "AWS::S3::Bucket":
            bucket: dict[str, Any] = {"Bucket": props["BucketName"], "settings": bucket_settings(props)}
            if props.get("ObjectLockEnabled"):
                bucket["ObjectLockEnabledForBucket"] = True
            plan["buckets"].append(bucket)
    plan["keys"] = [{"AliasName": alias, **params} for alias, params in key_parameters(resources).items()]
    return plan


def key_parameters(resources: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Alias name -> CreateKey's parameters, for every AWS::KMS::Alias and the key it names."""
    out = {}
    for resource in resources.values():
        if resource["Type"] == "AWS::KMS::Alias":
            key = resources[resource["Properties"]["TargetKeyId"]["Ref"]]["Properties"]
            out[resource["Properties"]["AliasName"]] = {
                "Description": key["Description"],
                "KeySpec": key["KeySpec"],
                "KeyUsage": key["KeyUsage"],
            }
    return out


def create_key(kms: Any, alias: str, params: dict[str, Any]) -> None:
    """Create the key behind `alias` unless the alias already names one."""
    try:
        kms.describe_key(KeyId=alias)
        return
    except ClientError as err:
        if err.response["Error"]["Code"] != "NotFoundException":
            raise
    key_id = kms.create_key(**params)["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName=alias, TargetKeyId=key_id)


def create_table(ddb: Any, props: dict[str, Any]) -> None:
    try:
        ddb.create_table(**table_parameters(props))
    except ClientError as err:
        if err.response["Error"]["Code"] != "ResourceInUseException":
            raise
    ddb.get_waiter("table_exists").wait(TableName=props["TableName"])
    pitr = props.get("PointInTimeRecoverySpecification")
    if pitr:
        ddb.update_continuous_backups(TableName=props["TableName"], PointInTimeRecoverySpecification=pitr)


def create_bucket(s3: Any, props: dict[str, Any], region: str) -> None:
    name = props["BucketName"]
    kwargs: dict[str, Any] = {"Bucket": name}
    if props.get("ObjectLockEnabled"):
        # Object Lock can only be switched on when the bucket is created.
        kwargs["ObjectLockEnabledForBucket"] = True
    if region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        s3.create_bucket(**kwargs)
    except ClientError as err:
        if err.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
    for call, args in bucket_settings(props).items():
        getattr(s3, call)(Bucket=name, **args)


def provision_audit(settings: Settings, keys: bool = True) -> list[str]:
    """Create (or leave as they are) the audit chain's anchors bucket and, with `keys`, its keys."""
    from histolabel.resources import audit_resources

    resources = audit_resources(settings)
    made = []
    for alias, params in key_parameters(resources).items() if keys else ():
        create_key(client("kms", settings), alias, params)
        made.append(alias)
    create_bucket(client("s3", settings), resources["AnchorsBucket"]["Properties"], settings.region)
    made.append(resources["AnchorsBucket"]["Properties"]["BucketName"])
    return made


def provision(settings: Settings) -> list[str]:
    """Create (or leave as they are) every stateful resource; returns their names."""
    ddb = client("dynamodb", settings)
    s3 = client("s3", settings)
    made = []
    resources = stateful_resources(settings)
    for alias, params in key_parameters(resources).items():
        create_key(client("kms", settings), alias, params)
        made.append(alias)
    for resource in resources.values():
        props = resource["Properties"]
        if resource["Type"] == "AWS::DynamoDB::Table":
            create_table(ddb, props)
            made.append(props["TableName"])
        elif resource["Type"] == "AWS::S3::Bucket":
            create_bucket(s3, props, settings.region)
            made.append(props["BucketName"])
    return made


def main() -> None:
    """Write the API plan as JSON (regenerates localstack/init/resources.json)."""
    import json
    import sys

    from histolabel.config import settings_from_env

    json.dump(api_plan(settings_from_env()), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
