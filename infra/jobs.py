"""AWS Batch for the gpu_jobs: one CPU and one GPU compute environment (both scale to zero),
a queue for each, one job definition per job with its own least-privilege role, the ECR
repository for the job image, and the jobs' log group."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from histolabel.config import Settings
from infra.cfn import Resources, get_att, ref, sub, tags
from infra.iam import Statement, allow, role
from infra.network import SECURITY_GROUPS, SUBNETS


@dataclass(frozen=True)
class Job:
    name: str
    gpu: bool
    vcpus: int
    memory_mib: int
    reads: tuple[str, ...]
    writes: tuple[str, ...]
    reads_projections: bool
    timeout_s: int
    args: tuple[str, ...] = ("--project", "Ref::project", "--slide", "Ref::slide")

    @property
    def logical(self) -> str:
        return self.name.capitalize()


SLIDE = "projects/*/slides/*"
# Key patterns under the data bucket each job reads and writes (docs/architecture.md, S3 layout).
JOBS = (
    Job("ingest", False, 4, 15000, (f"{SLIDE}/source/*",), (f"{SLIDE}/image.ome.zarr/*",), False, 4 * 3600),
    # Segment runs tiled SLIC on every vCPU of the instance it gets.
    Job(
        "segment",
        False,
        16,
        30000,
        (f"{SLIDE}/image.ome.zarr/*",),
        (f"{SLIDE}/image.ome.zarr/labels/*", f"{SLIDE}/superpixels.parquet"),
        False,
        4 * 3600,
    ),
    Job(
        "embed",
        True,
        4,
        15000,
        (f"{SLIDE}/image.ome.zarr/*", f"{SLIDE}/superpixels.parquet", "weights/*"),
        (f"{SLIDE}/features/*",),
        False,
        4 * 3600,
    ),
    Job(
        "train",
        True,
        4,
        15000,
        (
            f"{SLIDE}/features/*",
            f"{SLIDE}/superpixels.parquet",
            f"{SLIDE}/image.ome.zarr/*",
            "projects/*/models/*",
        ),
        ("projects/*/models/*", "projects/*/predictions/*"),
        True,
        2 * 3600,
        ("--project", "Ref::project"),
    ),
    Job(
        "predict",
        True,
        4,
        15000,
        (f"{SLIDE}/features/*", f"{SLIDE}/superpixels.parquet", "projects/*/models/*"),
        ("projects/*/predictions/*",),
        True,
        2 * 3600,
    ),
)

GPU_INSTANCE_TYPES = ["g5.xlarge", "g5.2xlarge", "g4dn.xlarge", "g4dn.2xlarge"]
CPU_INSTANCE_TYPES = ["c6i", "m6i"]


def job_definition_name(settings: Settings, job: str) -> str:
    return f"{settings.prefix}-{job}"


def _job_statements(job: Job, settings: Settings) -> list[Statement]:
    bucket = settings.data_bucket
    statements = [
        allow(["s3:GetObject"], [sub(f"arn:${{AWS::Partition}}:s3:::{bucket}/{p}") for p in job.reads]),
        allow(
            ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
            [sub(f"arn:${{AWS::Partition}}:s3:::{bucket}/{p}") for p in job.writes],
        ),
        allow(
            ["s3:ListBucket"],
            [sub(f"arn:${{AWS::Partition}}:s3:::{bucket}")],
            StringLike={"s3:prefix": ["projects/*", "weights/*"]},
        ),
        # Jobs report progress and results as events (HistoLabel.record).
        allow(
            ["dynamodb:GetItem", "dynamodb:Query", "dynamodb:PutItem", "dynamodb:ConditionCheckItem"],
            [
                sub(
                    f"arn:${{AWS::Partition}}:dynamodb:${{AWS::Region}}:${{AWS::AccountId}}:table/{settings.events_table}"
                )
            ],
        ),
    ]
    if job.reads_projections:
        statements.append(
            allow(
                ["dynamodb:GetItem", "dynamodb:Query"],
                [
                    sub(
                        "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}"
                        f":table/{settings.projections_table}"
                    )
                ],
            )
        )
    return statements


def _compute_environment(settings: Settings, kind: str) -> dict[str, Any]:
    gpu = kind == "gpu"
    resources: dict[str, Any] = {
        "Type": "EC2",
        "AllocationStrategy": "BEST_FIT_PROGRESSIVE",
        # Scale to zero: no instance runs (or costs) while no job is queued.
        "MinvCpus": 0,
        "DesiredvCpus": 0,
        "MaxvCpus": ref("GpuMaxVcpus" if gpu else "CpuMaxVcpus"),
        "InstanceTypes": GPU_INSTANCE_TYPES if gpu else CPU_INSTANCE_TYPES,
        "Subnets": SUBNETS,
        "SecurityGroupIds": SECURITY_GROUPS,
        "InstanceRole": get_att("BatchInstanceProfile", "Arn"),
        "Tags": {"histolabel:stage": settings.stage, "histolabel:component": f"batch-{kind}"},
    }
    if gpu:
        resources["Ec2Configuration"] = [{"ImageType": "ECS_AL2_NVIDIA"}]
    return {
        "Type": "AWS::Batch::ComputeEnvironment",
        "Properties": {
            "ComputeEnvironmentName": f"{settings.prefix}-{kind}",
            "Type": "MANAGED",
            "State": "ENABLED",
            "ServiceRole": get_att("BatchServiceRole", "Arn"),
            "ComputeResources": resources,
        },
    }


def _job_definition(settings: Settings, job: Job) -> dict[str, Any]:
    requirements = [
        {"Type": "VCPU", "Value": str(job.vcpus)},
        {"Type": "MEMORY", "Value": str(job.memory_mib)},
    ]
    if job.gpu:
        requirements.append({"Type": "GPU", "Value": "1"})
    return {
        "Type": "AWS::Batch::JobDefinition",
        "Properties": {
            "JobDefinitionName": job_definition_name(settings, job.name),
            "Type": "container",
            "PlatformCapabilities": ["EC2"],
            "Timeout": {"AttemptDurationSeconds": job.timeout_s},
            # Retry only when the instance went away (spot reclaim, host failure), not on our errors.
            "RetryStrategy": {
                "Attempts": 3,
                "EvaluateOnExit": [
                    {"OnStatusReason": "Host EC2*", "Action": "RETRY"},
                    {"OnReason": "*", "Action": "EXIT"},
                ],
            },
            "ContainerProperties": {
                "Image": sub("${JobRepository.RepositoryUri}:${ImageTag}"),
                "Command": ["python", "-m", f"gpu_jobs.{job.name}", *job.args],
                "JobRoleArn": get_att(f"{job.logical}JobRole", "Arn"),
                "ResourceRequirements": requirements,
                "Environment": [
                    {"Name": "HISTOLABEL_STAGE", "Value": settings.stage},
                    {"Name": "AWS_REGION", "Value": ref("AWS::Region")},
                ],
                "LogConfiguration": {
                    "LogDriver": "awslogs",
                    "Options": {"awslogs-group": ref("JobsLogGroup"), "awslogs-stream-prefix": job.name},
                },
                "ReadonlyRootFilesystem": False,
                "Privileged": False,
            },
            "Tags": {"histolabel:stage": settings.stage, "histolabel:job": job.name},
        },
    }


def batch(settings: Settings, log_retention_days: int) -> Resources:
    p = settings.prefix
    resources: Resources = {
        "JobRepository": {
            "Type": "AWS::ECR::Repository",
            "Properties": {
                "RepositoryName": f"{p}-jobs",
                "ImageScanningConfiguration": {"ScanOnPush": True},
                "ImageTagMutability": "MUTABLE",
                "EncryptionConfiguration": {"EncryptionType": "AES256"},
                # Images are rebuilt from gpu_jobs/Dockerfile, so they go with the stack.
                "EmptyOnDelete": True,
                "LifecyclePolicy": {
                    "LifecyclePolicyText": (
                        '{"rules":[{"rulePriority":1,"description":"keep the last 10 images",'
                        '"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":10},'
                        '"action":{"type":"expire"}}]}'
                    )
                },
                "Tags": tags(settings.stage, "batch"),
            },
        },
        "JobsLogGroup": {
            "Type": "AWS::Logs::LogGroup",
            "DeletionPolicy": "Delete",
            "Properties": {"LogGroupName": f"/aws/batch/{p}", "RetentionInDays": log_retention_days},
        },
        "BatchServiceRole": role(
            f"{p}-batch-service",
            "batch.amazonaws.com",
            [],
            managed=["service-role/AWSBatchServiceRole"],
            description="AWS Batch manages the compute environments",
        ),
        "BatchInstanceRole": role(
            f"{p}-batch-instance",
            "ec2.amazonaws.com",
            [],
            managed=["service-role/AmazonEC2ContainerServiceforEC2Role"],
            description="ECS agent on Batch instances: pulls the job image, ships logs",
        ),
        "BatchInstanceProfile": {
            "Type": "AWS::IAM::InstanceProfile",
            "Properties": {"InstanceProfileName": f"{p}-batch-instance", "Roles": [ref("BatchInstanceRole")]},
        },
        "CpuComputeEnvironment": _compute_environment(settings, "cpu"),
        "GpuComputeEnvironment": _compute_environment(settings, "gpu"),
    }
    for kind in ("cpu", "gpu"):
        resources[f"{kind.capitalize()}JobQueue"] = {
            "Type": "AWS::Batch::JobQueue",
            "Properties": {
                "JobQueueName": f"{p}-{kind}",
                "Priority": 1,
                "State": "ENABLED",
                "ComputeEnvironmentOrder": [
                    {"Order": 1, "ComputeEnvironment": ref(f"{kind.capitalize()}ComputeEnvironment")}
                ],
            },
        }
    for job in JOBS:
        resources[f"{job.logical}JobRole"] = role(
            f"{p}-job-{job.name}",
            "ecs-tasks.amazonaws.com",
            _job_statements(job, settings),
            description=f"the {job.name} job: only the S3 keys and tables it uses",
        )
        resources[f"{job.logical}JobDefinition"] = _job_definition(settings, job)
    return resources


def queue_for(job: str) -> str:
    return "GpuJobQueue" if next(j for j in JOBS if j.name == job).gpu else "CpuJobQueue"
