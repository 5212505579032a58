"""Which stack, where: validated stage and region, and whether the target is the emulator."""

from __future__ import annotations

import difflib
import os

import botocore.session
from pydantic import ValidationError

from histolabel.config import DEFAULT_REGION, REGION, Settings, settings_from_env
from infra.errors import UsageError


def known_regions() -> set[str]:
    session = botocore.session.get_session()
    regions: set[str] = set()
    for partition in session.get_available_partitions():
        regions.update(session.get_available_regions("cloudformation", partition_name=partition))
    return regions


def check_region(region: str) -> str:
    regions = known_regions()
    if region in regions:
        return region
    near = difflib.get_close_matches(region, sorted(regions), n=2)
    hint = f"; did you mean {' or '.join(map(repr, near))}?" if near else ""
    raise UsageError(
        f"unknown region {region!r}{hint} (regions where CloudFormation runs: see `aws ec2 describe-regions`)"
    )


def settings_for(stage: str, region: str | None) -> Settings:
    """Settings for the named stage; the region defaults to AWS_REGION / AWS_DEFAULT_REGION."""
    env = os.environ
    region = region or (settings_from_env().region if env.get(REGION) or env.get(DEFAULT_REGION) else None)
    if not region:
        raise UsageError("no region: pass --region or set AWS_REGION")
    check_region(region)
    try:
        return Settings(stage=stage, region=region, endpoint_url=settings_from_env().endpoint_url)
    except ValidationError:
        raise UsageError(
            f"invalid stage name {stage!r}: use 2-21 characters, lowercase letters, digits and '-', "
            "starting with a letter (it becomes part of bucket and table names)"
        ) from None


def is_emulated(settings: Settings) -> bool:
    """A custom endpoint means the local cloud (moto or LocalStack), not a real account."""
    return settings.endpoint_url is not None
