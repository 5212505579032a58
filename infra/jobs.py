"""AWS Batch for the gpu_jobs, built from the job-kinds table (histolabel.jobs.JOB_SPECS):
per queue kind (CPU, GPU) a Spot and an on-demand compute environment (both scale to zero)
behind one queue that prefers Spot, one job definition per job kind with its own
least-privilege role, and the jobs' log group. The job image's repository lives in the
foundation stack (images are built before the app stack points at them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from histolabel import config
from histolabel.config import Settings
from histolabel.jobs import JOB_SPECS, JobKind, JobSpec, Queue
from infra.cfn import Resources, get_att, ref, sub
from infra.iam import role
from infra.network import SECURITY_GROUPS, SUBNETS
from infra.permissions import statements_for


@dataclass(frozen=True)
class Job:
    spec: JobSpec
    args: tuple[str, ...] = ("--project", "Ref::project", "--slide", "Ref::slide")

    @property
    def name(self) -> JobKind:
        return self.spec.kind

    @property
    def gpu(self) -> bool:
        return self.spec.gpus > 0

    @property
    def logical(self) -> str:
        return "".join(part.capitalize() for part in self.name.split("_"))


JOBS = tuple(
    Job(spec, ("--project", "Ref::project") if spec.kind == "train" else Job.args)
    for spec in JOB_SPECS.values()
)
QUEUES: tuple[Queue, ...] = ("cpu", "gpu")

GPU_INSTANCE_TYPES = ["g5.xlarge", "g5.2xlarge", "g4dn.xlarge", "g4dn.2xlarge"]
CPU_INSTANCE_TYPES = ["c6i", "m6i"]
# The GPU AMI: ECS-optimized Amazon Linux 2023 with the NVIDIA driver (CUDA 12.x), which the
# torch wheel in gpu_jobs/requirements-job.txt (CUDA 12 runtime libraries) runs on.
GPU_IMAGE_TYPE = "ECS_AL2023_NVIDIA"
CPU_IMAGE_TYPE = "ECS_AL2023"
# Batch's status reason when the instance under a job went away (Spot reclaim, host failure).
HOST_TERMINATED = "Host EC2*"


def queue_logical(queue: Queue) -> str:
    return f"{queue.capitalize()}JobQueue"


def queue_for(job: JobKind) -> str:
    """The logical id of the queue a job kind is submitted to."""
    return queue_logical(JOB_SPECS[job].queue)


def _compute_environment(settings: Settings, queue: Queue, *, spot: bool) -> dict[str, Any]:
    gpu = queue == "gpu"
    resources: dict[str, Any] = {
        "Type": "SPOT" if spot else "EC2",
        "AllocationStrategy": "SPOT_PRICE_CAPACITY_OPTIMIZED" if spot else "BEST_FIT_PROGRESSIVE",
        # Scale to zero: no instance runs (or costs) while no job is queued.
        "MinvCpus": 0,
        "DesiredvCpus": 0,
        "MaxvCpus": ref("GpuMaxVcpus" if gpu else "CpuMaxVcpus"),
        "InstanceTypes": GPU_INSTANCE_TYPES if gpu else CPU_INSTANCE_TYPES,
        "Subnets": SUBNETS,
        "SecurityGroupIds": SECURITY_GROUPS,
        "InstanceRole": get_att("BatchInstanceProfile", "Arn"),
        "Ec2Configuration": [{"ImageType": GPU_IMAGE_TYPE if gpu else CPU_IMAGE_TYPE}],
        "Tags": {"histolabel:stage": settings.stage, "histolabel:component": f"batch-{queue}"},
    }
    if spot:
        resources["BidPercentage"] = 100
    return {
        "Type": "AWS::Batch::ComputeEnvironment",
        "Properties": {
            "ComputeEnvironmentName": f"{settings.prefix}-{queue}{'-spot' if spot else ''}",
            "Type": "MANAGED",
            "State": "ENABLED",
            "ServiceRole": get_att("BatchServiceRole", "Arn"),
            "ComputeResources": resources,
        },
    }


def job_environment(settings: Settings, job: Job) -> dict[str, Any]:
    """The job container's environment, under the names histolabel.config reads."""
    return {
        **config.environment(
            stage=settings.stage,
            data_bucket_name=sub(settings.data_bucket),
            foundation_weights=sub(f"s3://{settings.data_bucket}/weights/foundation.safetensors"),
            allow_cpu="true" if job.spec.cpu_fallback else "false",
        ),
        config.REGION: ref("AWS::Region"),
        config.DEFAULT_REGION: ref("AWS::Region"),
    }


def _job_definition(settings: Settings, job: Job) -> dict[str, Any]:
    spec = job.spec
    requirements = [
        {"Type": "VCPU", "Value": str(spec.vcpus)},
        {"Type": "MEMORY", "Value": str(spec.memory_mib)},
    ]
    if spec.gpus:
        requirements.append({"Type": "GPU", "Value": str(spec.gpus)})
    retry: dict[str, Any] = {"Attempts": 1}
    if spec.interruptible:
        # Retry only when the instance went away (Spot reclaim, host failure), not on our errors.
        retry = {
            "Attempts": 3,
            "EvaluateOnExit": [
                {"OnStatusReason": HOST_TERMINATED, "Action": "RETRY"},
                {"OnReason": "*", "Action": "EXIT"},
            ],
        }
    return {
        "Type": "AWS::Batch::JobDefinition",
        "Properties": {
            "JobDefinitionName": settings.job_definition(job.name),
            "Type": "container",
            "PlatformCapabilities": ["EC2"],
            "Timeout": {"AttemptDurationSeconds": spec.timeout_s},
            "RetryStrategy": retry,
            "ContainerProperties": {
                "Image": ref("JobImageUri"),
                "Command": ["python", "-m", f"gpu_jobs.{job.name}", *job.args],
                "JobRoleArn": get_att(f"{job.logical}JobRole", "Arn"),
                "ResourceRequirements": requirements,
                "Environment": [
                    {"Name": k, "Value": v} for k, v in sorted(job_environment(settings, job).items())
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
    }
    for queue in QUEUES:
        kind = queue.capitalize()
        resources[f"{kind}SpotComputeEnvironment"] = _compute_environment(settings, queue, spot=True)
        resources[f"{kind}ComputeEnvironment"] = _compute_environment(settings, queue, spot=False)
        resources[queue_logical(queue)] = {
            "Type": "AWS::Batch::JobQueue",
            "Properties": {
                "JobQueueName": f"{p}-{queue}",
                "Priority": 1,
                "State": "ENABLED",
                # Spot first (about a third of the price); on-demand takes what Spot cannot place.
                "ComputeEnvironmentOrder": [
                    {"Order": 1, "ComputeEnvironment": ref(f"{kind}SpotComputeEnvironment")},
                    {"Order": 2, "ComputeEnvironment": ref(f"{kind}ComputeEnvironment")},
                ],
            },
        }
    for job in JOBS:
        resources[f"{job.logical}JobRole"] = role(
            f"{p}-job-{job.name}",
            "ecs-tasks.amazonaws.com",
            statements_for(f"job:{job.name}", settings),
            description=f"the {job.name} job: only the S3 keys and tables it uses",
        )
        resources[f"{job.logical}JobDefinition"] = _job_definition(settings, job)
    return resources
