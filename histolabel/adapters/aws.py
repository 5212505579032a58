"""boto3 clients bound to the configured endpoint and region."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import boto3
from botocore.config import Config

from histolabel.config import Settings, get_settings

_CONFIG = Config(retries={"max_attempts": 8, "mode": "adaptive"}, max_pool_connections=64)


@lru_cache(maxsize=64)
def _client(service: str, region: str, endpoint_url: str | None) -> Any:
    return boto3.session.Session().client(
        service, region_name=region, endpoint_url=endpoint_url, config=_CONFIG
    )


def client(service: str, settings: Settings | None = None) -> Any:
    s = settings or get_settings()
    return _client(service, s.region, s.endpoint_url)
