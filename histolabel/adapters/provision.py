"""Create the stack's tables and buckets from their CloudFormation definitions with plain API
calls: the local cloud's path, which must give what `infra` deploys."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from histolabel.adapters.aws import client
from histolabel.config import Settings
from histolabel.resources import stateful_resources


def _create_table(ddb: Any, props: dict[str, Any]) -> None:
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
    try:
        ddb.create_table(**params)
    except ClientError as err:
        if err.response["Error"]["Code"] != "ResourceInUseException":
            raise
    ddb.get_waiter("table_exists").wait(TableName=props["TableName"])
    pitr = props.get("PointInTimeRecoverySpecification")
    if pitr:
        ddb.update_continuous_backups(TableName=props["TableName"], PointInTimeRecoverySpecification=pitr)


def _create_bucket(s3: Any, props: dict[str, Any], region: str) -> None:
    name = props["BucketName"]
    kwargs: dict[str, Any] = {"Bucket": name}
    if region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        s3.create_bucket(**kwargs)
    except ClientError as err:
        if err.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
    rules = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    # CloudFormation's rule key differs from the S3 API's.
    api_rules = [{"ApplyServerSideEncryptionByDefault": r["ServerSideEncryptionByDefault"]} for r in rules]
    s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": api_rules})
    s3.put_public_access_block(
        Bucket=name, PublicAccessBlockConfiguration=props["PublicAccessBlockConfiguration"]
    )
    if "VersioningConfiguration" in props:
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration=props["VersioningConfiguration"])
    if "CorsConfiguration" in props:
        renamed = {"ExposedHeaders": "ExposeHeaders", "MaxAge": "MaxAgeSeconds"}
        cors_rules = [
            {renamed.get(k, k): v for k, v in r.items()} for r in props["CorsConfiguration"]["CorsRules"]
        ]
        s3.put_bucket_cors(Bucket=name, CORSConfiguration={"CORSRules": cors_rules})


def provision(settings: Settings) -> list[str]:
    """Create (or leave as they are) every stateful resource; returns their names."""
    ddb = client("dynamodb", settings)
    s3 = client("s3", settings)
    made = []
    for resource in stateful_resources(settings).values():
        props = resource["Properties"]
        if resource["Type"] == "AWS::DynamoDB::Table":
            _create_table(ddb, props)
            made.append(props["TableName"])
        elif resource["Type"] == "AWS::S3::Bucket":
            _create_bucket(s3, props, settings.region)
            made.append(props["BucketName"])
    return made
