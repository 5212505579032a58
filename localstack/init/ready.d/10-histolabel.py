#!/usr/bin/env python3
"""LocalStack ready hook: create HistoLabel's tables, buckets and keys from resources.json."""

import contextlib
import json
import os
from pathlib import Path

import boto3

ENDPOINT = os.environ.get("AWS_ENDPOINT_URL", "http://localhost:4566")
REGION = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
spec = json.loads(Path("/etc/localstack/init/resources.json").read_text())
ddb = boto3.client("dynamodb", endpoint_url=ENDPOINT, region_name=REGION)
s3 = boto3.client("s3", endpoint_url=ENDPOINT, region_name=REGION)
for table in spec["tables"]:
    with contextlib.suppress(ddb.exceptions.ResourceInUseException):
        ddb.create_table(**table)
for bucket in spec["buckets"]:
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        lock = {"ObjectLockEnabledForBucket": True} if bucket.get("ObjectLockEnabledForBucket") else {}
        s3.create_bucket(Bucket=bucket["Bucket"], **lock)
    for call, args in bucket["settings"].items():
        getattr(s3, call)(Bucket=bucket["Bucket"], **args)
kms = boto3.client("kms", endpoint_url=ENDPOINT, region_name=REGION)
for key in spec.get("keys", []):
    params = {k: v for k, v in key.items() if k != "AliasName"}
    try:
        kms.describe_key(KeyId=key["AliasName"])
    except kms.exceptions.NotFoundException:
        key_id = kms.create_key(**params)["KeyMetadata"]["KeyId"]
        kms.create_alias(AliasName=key["AliasName"], TargetKeyId=key_id)
