"""boto3 clients bound to the configured endpoint and region.

Two retry profiles. Jobs, the projector and the trigger wait out a store's hiccup (many adaptive
retries). The API answers a person: it gives up within seconds, so an outage becomes a quick
503 with Retry-After that the web client's outbox waits out and re-sends, not a minute-long hang
ending in 500. The API process chooses it (HISTOLABEL_AWS_PROFILE=api; set by the API Lambda's
module and by the local stack's API server).
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionError, HTTPClientError, ReadTimeoutError

from histolabel import config
from histolabel.config import Settings, get_settings

PROFILE_ENV = config.AWS_PROFILE
# parameter_validation off: every service validates each request again, and botocore's own pass
# over a large request (the projector's 100-item transactions of bucket bodies) cost about as
# much client CPU as the request itself (cProfile of the projector, bench/event_store.py).
PROFILES = {
    "batch": Config(
        retries={"max_attempts": 8, "mode": "adaptive"}, max_pool_connections=64, parameter_validation=False
    ),
    # Worst case about 1 s to connect and 3 s to read, two attempts: well inside 5 s for a
    # refused or unreachable store; DynamoDB and S3 answer in milliseconds when up.
    "api": Config(
        connect_timeout=1,
        read_timeout=3,
        retries={"total_max_attempts": 2, "mode": "standard"},
        max_pool_connections=64,
        parameter_validation=False,
    ),
}
IDENTITY_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SESSION_TOKEN", "AWS_PROFILE")
# AWS error codes that mean "the store is there but cannot serve now": retry later.
UNAVAILABLE_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded",
        "InternalServerError", "InternalFailure", "ServiceUnavailable", "InternalError", "SlowDown",
        "RequestTimeout", "TransactionInProgressException",
    }
)  # fmt: skip


def profile() -> str:
    name = os.environ.get(PROFILE_ENV, "batch")
    if name not in PROFILES:
        raise ValueError(f"{PROFILE_ENV} must be one of {sorted(PROFILES)}, not {name!r}")
    return name


@lru_cache(maxsize=64)
def _client(
    service: str, region: str, endpoint_url: str | None, profile_name: str, identity: tuple[str | None, ...]
) -> Any:
    return boto3.session.Session().client(
        service, region_name=region, endpoint_url=endpoint_url, config=PROFILES[profile_name]
    )


def client(service: str, settings: Settings | None = None) -> Any:
    s = settings or get_settings()
    # A client holds the credentials it was made with: one cached under another identity (an
    # earlier key pair, on an endpoint whose port was reused) would answer as that identity.
    identity = tuple(os.environ.get(name) for name in IDENTITY_VARIABLES)
    return _client(service, s.region, s.endpoint_url, profile(), identity)


def store_unavailable(exc: BaseException) -> bool:
    """True for an error that says AWS could not be reached or could not serve now (a retry
    later may succeed), as opposed to a refusal of the request itself."""
    if isinstance(exc, (ConnectionError, HTTPClientError, ReadTimeoutError)):
        return True
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return code in UNAVAILABLE_CODES or status >= 500
    return False
