#!/usr/bin/env python3
"""LocalStack ready hook: create HistoLabel's tables and buckets from resources.json."""

import json
import os

import boto3

ENDPOINT = os.environ.get("AWS_ENDPOINT_URL", "http://localhost:4566")
REGION = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
spec = json.load(open("/etc/localstack/init/resources.json"))
ddb = boto3.client("dynamodb", endpoint_url=ENDPOINT, region_name=REGION)
s3 = boto3.client("s3", endpoint_url=ENDPOINT, region_name=REGION)
for table in spec["tables"]:
    try:
        ddb.create_table(**table)
    except ddb.exceptions.ResourceInUseException:
        pass
for bucket in spec["buckets"]:
    try:
        s3.create_bucket(Bucket=bucket["Bucket"])
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    for call, args in bucket["settings"].items():
        getattr(s3, call)(Bucket=bucket["Bucket"], **args)
