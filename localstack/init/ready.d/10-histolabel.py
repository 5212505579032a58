#!/usr/bin/env python3
"""LocalStack ready hook: create HistoLabel's tables and buckets from resources.json."""

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
        s3.create_bucket(Bucket=bucket["Bucket"])
    for call, args in bucket["settings"].items():
        getattr(s3, call)(Bucket=bucket["Bucket"], **args)
