"""Settings the emulator's CloudFormation accepts but does not apply (moto creates buckets
with encryption only, and tables without point-in-time recovery or SSE). After a deploy into
the emulator they are applied through the API from the same template properties, with the
same code the local cloud is provisioned with, and the deploy says so."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from histolabel.adapters.aws import client
from histolabel.adapters.provision import create_bucket
from histolabel.config import Settings

APPLIED = "bucket versioning, public access block and CORS; table point-in-time recovery and SSE"


def apply_ignored_settings(settings: Settings, stack: str, template: dict[str, Any]) -> list[str]:
    """Apply them to the stack's buckets and tables; returns the physical names touched."""
    cfn = client("cloudformation", settings)
    physical = {
        r.get("LogicalResourceId"): r.get("PhysicalResourceId")
        for r in cfn.describe_stack_resources(StackName=stack)["StackResources"]
    }
    s3, ddb = client("s3", settings), client("dynamodb", settings)
    touched = []
    for logical, resource in template["Resources"].items():
        name = physical.get(logical)
        if not name:
            continue
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::S3::Bucket":
            create_bucket(s3, {**props, "BucketName": name}, settings.region)
            touched.append(name)
        elif resource["Type"] == "AWS::DynamoDB::Table":
            pitr = props.get("PointInTimeRecoverySpecification")
            if pitr:
                ddb.update_continuous_backups(TableName=name, PointInTimeRecoverySpecification=pitr)
            if props.get("SSESpecification", {}).get("SSEEnabled"):
                try:
                    ddb.update_table(TableName=name, SSESpecification={"Enabled": True})
                except ClientError as err:
                    # Already as asked: nothing to change.
                    if err.response["Error"]["Code"] != "ValidationException":
                        raise
            touched.append(name)
    return touched


def remove_batch_leftovers(settings: Settings) -> list[str]:
    """The emulator's stack delete leaves Batch queues, compute environments and job
    definitions behind (AWS removes them); remove this stage's, so a redeploy can recreate them."""
    batch = client("batch", settings)
    removed = []
    for queue in batch.describe_job_queues()["jobQueues"]:
        if queue["jobQueueName"].startswith(f"{settings.prefix}-"):
            batch.update_job_queue(jobQueue=queue["jobQueueArn"], state="DISABLED")
            batch.delete_job_queue(jobQueue=queue["jobQueueArn"])
            removed.append(queue["jobQueueName"])
    for env in batch.describe_compute_environments()["computeEnvironments"]:
        if env["computeEnvironmentName"].startswith(f"{settings.prefix}-"):
            batch.update_compute_environment(
                computeEnvironment=env["computeEnvironmentArn"], state="DISABLED"
            )
            batch.delete_compute_environment(computeEnvironment=env["computeEnvironmentArn"])
            removed.append(env["computeEnvironmentName"])
    for definition in batch.describe_job_definitions(status="ACTIVE")["jobDefinitions"]:
        if definition["jobDefinitionName"].startswith(f"{settings.prefix}-"):
            batch.deregister_job_definition(jobDefinition=definition["jobDefinitionArn"])
            removed.append(definition["jobDefinitionName"])
    return removed
