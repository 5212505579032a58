"""The composition root: the one place that builds adapters from `Settings`.

The API's service locator (`Services`), the Lambda handlers, the local runtime and the CLIs
all get their event store, projections, job submitter and user pool from here, so what a
function uses is decided once, from the environment infra wrote for it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from histolabel.config import Settings, get_settings, settings_from_env

if TYPE_CHECKING:
    from histolabel.auth.tokens import PoolConfig
    from histolabel.jobs import CancellableSubmitter
    from histolabel.service import HistoLabel


def service_from_env(settings: Settings | None = None) -> HistoLabel:
    from histolabel.adapters.dynamo_events import DynamoEventStore
    from histolabel.adapters.dynamo_leases import DynamoLeaseStore
    from histolabel.adapters.dynamo_projections import DynamoProjectionStore
    from histolabel.service import HistoLabel

    s = settings or get_settings()
    return HistoLabel(s, DynamoEventStore(s), DynamoProjectionStore(s), leases=DynamoLeaseStore(s))


def submitter_from_env(settings: Settings | None = None) -> CancellableSubmitter:
    """The local job runner when HISTOLABEL_JOB_RUNNER=local, else AWS Batch."""
    s = settings or settings_from_env()
    if s.job_runner == "local":
        from histolabel.localcloud.job_runner import LocalJobRunner

        return LocalJobRunner(on_state_change=job_events_handler)
    from histolabel.adapters.batch import BatchSubmitter

    return BatchSubmitter(s)


def pool_from_env(settings: Settings | None = None) -> PoolConfig | None:
    """The Cognito pool the API verifies tokens against; None when sign-in is not configured."""
    from histolabel.auth.tokens import PoolConfig

    s = settings or settings_from_env()
    if not s.user_pool_id or not s.client_id or s.user_pool_id == "none":
        return None
    region = s.user_pool_id.split("_", 1)[0] if "_" in s.user_pool_id else s.region
    return PoolConfig(region=region, user_pool_id=s.user_pool_id, client_id=s.client_id)


def jwks_url(pool: PoolConfig, settings: Settings | None = None) -> str:
    """HISTOLABEL_JWKS_URL, else the local cloud's copy, else AWS's public location."""
    s = settings or settings_from_env()
    if s.jwks_url:
        return s.jwks_url
    if s.endpoint_url:
        return f"{s.endpoint_url.rstrip('/')}/{pool.user_pool_id}/.well-known/jwks.json"
    return pool.default_jwks_url


class Directory(Protocol):
    def __call__(self, user: str) -> str | None: ...

    def describe(self, user: str) -> dict[str, str | None]: ...


class Services:
    """The API's adapters, built once per Lambda container on first use; tests replace the
    attributes."""

    def __init__(self) -> None:
        self._service: HistoLabel | None = None
        self._submitter: CancellableSubmitter | None = None
        self._jwks: Callable[[str], dict[str, Any] | None] | None = None
        self._pool: PoolConfig | None = None
        self._directory: Directory | None = None

    @property
    def service(self) -> HistoLabel:
        if self._service is None:
            self._service = service_from_env()
        return self._service

    @service.setter
    def service(self, value: HistoLabel | None) -> None:
        self._service = value

    @property
    def submitter(self) -> CancellableSubmitter:
        if self._submitter is None:
            self._submitter = submitter_from_env()
        return self._submitter

    @submitter.setter
    def submitter(self, value: CancellableSubmitter | None) -> None:
        self._submitter = value

    @property
    def pool(self) -> PoolConfig:
        if self._pool is None:
            from histolabel.auth.tokens import AuthError

            pool = pool_from_env()
            if pool is None:
                raise AuthError("sign-in is not configured (HISTOLABEL_USER_POOL_ID / HISTOLABEL_CLIENT_ID)")
            self._pool = pool
        return self._pool

    @pool.setter
    def pool(self, value: PoolConfig | None) -> None:
        self._pool = value

    @property
    def jwks(self) -> Callable[[str], dict[str, Any] | None]:
        if self._jwks is None:
            from histolabel.adapters.cognito import JwksCache

            self._jwks = JwksCache(jwks_url(self.pool))
        return self._jwks

    @jwks.setter
    def jwks(self, value: Callable[[str], dict[str, Any] | None] | None) -> None:
        self._jwks = value

    @property
    def directory(self) -> Directory:
        """user (Username or email) -> Username in the pool, or None; and how to show a user."""
        if self._directory is None:
            from histolabel.adapters.cognito import UserDirectory

            self._directory = UserDirectory(self.pool.user_pool_id)
        return self._directory

    @directory.setter
    def directory(self, value: Directory | None) -> None:
        self._directory = value


_job_events_service: HistoLabel | None = None


def job_events_handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """The job-events Lambda (functions/handlers/job_events.py), which the local job runner calls
    too when a job process ends: one service and its clients per process. An error propagates, so
    EventBridge retries the event; `handle_state_change` decides on fresh state, so a retry is
    harmless."""
    from histolabel.runtime.job_events_lambda import handle_state_change, logger

    global _job_events_service
    if _job_events_service is None:
        _job_events_service = service_from_env()
    handled = handle_state_change(_job_events_service, submitter_from_env(), event)
    logger.info("job state change %s", handled)
    return handled.__dict__
