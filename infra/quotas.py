"""The account's GPU vCPU quota: with none, every GPU job would wait in RUNNABLE for ever."""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError

from histolabel.adapters.aws import client
from histolabel.config import Settings
from infra.errors import InfraError
from infra.stackops import Echo

# Service Quotas codes (EC2): running On-Demand G and VT instances; G and VT Spot requests.
ON_DEMAND_G = "L-DB2E81BA"
SPOT_G = "L-3819A6DF"
SMALLEST_GPU_VCPUS = 4  # g4dn.xlarge / g5.xlarge


def quota_problem(on_demand: float | None, spot: float | None, region: str) -> str | None:
    """Why GPU jobs could never start, or None (unknown quotas are not a problem here)."""
    known = [q for q in (on_demand, spot) if q is not None]
    if not known or max(known) >= SMALLEST_GPU_VCPUS:
        return None
    return (
        f"the account's GPU quota in {region} is {max(known):g} vCPUs (On-Demand G and VT: {on_demand}, "
        f"Spot G and VT: {spot}), below one GPU instance ({SMALLEST_GPU_VCPUS} vCPUs), so embed, train "
        "and predict jobs could never start. Request at least --gpu-max-vcpus in Service Quotas "
        "(EC2: 'Running On-Demand G and VT instances' and 'All G and VT Spot Instance Requests'), "
        "then deploy again. Nothing was deployed."
    )


def _quota(settings: Settings, code: str) -> float | None:
    try:
        quota = client("service-quotas", settings).get_service_quota(ServiceCode="ec2", QuotaCode=code)
        return float(quota["Quota"]["Value"])
    except (ClientError, BotoCoreError, KeyError):
        return None


def check_gpu_quota(settings: Settings, echo: Echo) -> None:
    on_demand, spot = _quota(settings, ON_DEMAND_G), _quota(settings, SPOT_G)
    if on_demand is None and spot is None:
        echo(
            "could not read the GPU vCPU quota (Service Quotas); see docs/deploy.md if GPU jobs stay RUNNABLE"
        )
        return
    problem = quota_problem(on_demand, spot, settings.region)
    if problem:
        raise InfraError(problem)
