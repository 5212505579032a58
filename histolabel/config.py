"""Every setting the code reads from the environment, in one object.

Each field's environment variable is named once, in `ENV`; `infra/` writes the functions' and
jobs' environments from the same names (`Settings.environment`), so code and template cannot
drift. Nothing else in the code base reads `os.environ` for a setting.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, field_validator

STAGE_PATTERN = re.compile(r"^[a-z][a-z0-9-]{1,20}$")

# The environment variable of each setting.
STAGE = "HISTOLABEL_STAGE"
REGION = "AWS_REGION"
DEFAULT_REGION = "AWS_DEFAULT_REGION"  # read when AWS_REGION is unset (the SDK's own fallback)
ENDPOINT_URL = "AWS_ENDPOINT_URL"
DATA_BUCKET = "HISTOLABEL_DATA_BUCKET"
USER_POOL_ID = "HISTOLABEL_USER_POOL_ID"
CLIENT_ID = "HISTOLABEL_CLIENT_ID"
HOSTED_UI_URL = "HISTOLABEL_HOSTED_UI_URL"
JWKS_URL = "HISTOLABEL_JWKS_URL"
JOB_RUNNER = "HISTOLABEL_JOB_RUNNER"
JOB_QUEUE_CPU = "HISTOLABEL_JOB_QUEUE_CPU"
JOB_QUEUE_GPU = "HISTOLABEL_JOB_QUEUE_GPU"
JOB_DEFINITION_PREFIX = "HISTOLABEL_JOB_DEFINITION_PREFIX"
LOCAL_DIR = "HISTOLABEL_LOCAL_DIR"
FOUNDATION_WEIGHTS = "HISTOLABEL_FOUNDATION_WEIGHTS"
INLINE_RESPONSE_BYTES = "HISTOLABEL_INLINE_RESPONSE_BYTES"
ALLOW_CPU = "HISTOLABEL_ALLOW_CPU"
CLI_USER = "HISTOLABEL_USER"
CLI_SITE = "HISTOLABEL_SITE"
SOURCE_PREFIXES = "HISTOLABEL_SOURCE_PREFIXES"
ANCHOR_FUNCTION = "HISTOLABEL_ANCHOR_FUNCTION"
ANCHOR_INTERVAL_S = "HISTOLABEL_ANCHOR_INTERVAL_S"
MAX_IMPORT_BYTES = "HISTOLABEL_MAX_IMPORT_BYTES"
AWS_PROFILE = "HISTOLABEL_AWS_PROFILE"
JOB_VCPUS = "HISTOLABEL_JOB_VCPUS"
ANCHORS_BUCKET = "HISTOLABEL_ANCHORS_BUCKET"

ENV: dict[str, str] = {
    "stage": STAGE,
    "region": REGION,
    "endpoint_url": ENDPOINT_URL,
    "data_bucket_name": DATA_BUCKET,
    "user_pool_id": USER_POOL_ID,
    "client_id": CLIENT_ID,
    "hosted_ui_url": HOSTED_UI_URL,
    "jwks_url": JWKS_URL,
    "job_runner": JOB_RUNNER,
    "job_queue_cpu": JOB_QUEUE_CPU,
    "job_queue_gpu": JOB_QUEUE_GPU,
    "job_definition_prefix": JOB_DEFINITION_PREFIX,
    "local_dir": LOCAL_DIR,
    "foundation_weights": FOUNDATION_WEIGHTS,
    "inline_response_bytes": INLINE_RESPONSE_BYTES,
    "allow_cpu": ALLOW_CPU,
    "cli_user": CLI_USER,
    "cli_site": CLI_SITE,
    "source_prefixes": SOURCE_PREFIXES,
    "anchor_function": ANCHOR_FUNCTION,
    "anchor_interval_s": ANCHOR_INTERVAL_S,
    "max_import_bytes": MAX_IMPORT_BYTES,
    "aws_profile": AWS_PROFILE,
    "job_vcpus": JOB_VCPUS,
    "anchors_bucket_name": ANCHORS_BUCKET,
}


class Settings(BaseModel):
    stage: str = "local"
    region: str = "us-east-1"
    endpoint_url: str | None = None
    # As deployed: histolabel-{stage}-data-{account}, written by infra; None: derived below.
    data_bucket_name: str | None = None
    user_pool_id: str | None = None
    client_id: str | None = None
    hosted_ui_url: str | None = None
    jwks_url: str | None = None
    job_runner: Literal["batch", "local"] = "batch"
    job_queue_cpu: str | None = None
    job_queue_gpu: str | None = None
    job_definition_prefix: str | None = None
    local_dir: str | None = None
    foundation_weights: str | None = None
    inline_response_bytes: int = 4 * 1024 * 1024
    # A GPU job may run without CUDA (the local runner, CPU-only job definitions).
    allow_cpu: bool = False
    cli_user: str | None = None
    cli_site: str | None = None
    # Not from the environment: the account id infra puts into bucket names (bucket names are
    # global); "${AWS::AccountId}" inside templates. None (the local cloud): no suffix.
    bucket_account: str | None = None
    # Where slide sources may be registered from besides the project's own prefix (see
    # histolabel/confinement.py): whitespace- or comma-separated in the environment.
    source_prefixes: tuple[str, ...] = ()
    # The anchoring Lambda the API invokes on export (deployed); unset: anchor in-process.
    anchor_function: str | None = None
    anchor_interval_s: float = 60.0
    max_import_bytes: int = 1 << 30
    # botocore retry profile: "api" (give up on a store within seconds) or "batch".
    aws_profile: str | None = None
    # A job's vCPUs as its definition declares them (histolabel.cpus).
    job_vcpus: float | None = None
    # As deployed: histolabel-{stage}-anchors-{account}, written by infra; None: derived.
    anchors_bucket_name: str | None = None

    @field_validator("stage")
    @classmethod
    def _stage_is_dns_safe(cls, value: str) -> str:
        if not STAGE_PATTERN.match(value):
            raise ValueError(
                "stage must be 2-21 chars of lowercase letters, digits and '-', starting with a letter"
            )
        return value

    @property
    def prefix(self) -> str:
        return f"histolabel-{self.stage}"

    @property
    def events_table(self) -> str:
        return f"{self.prefix}-events"

    @property
    def projections_table(self) -> str:
        return f"{self.prefix}-projections"

    def _bucket(self, purpose: str) -> str:
        suffix = f"-{self.bucket_account}" if self.bucket_account else ""
        return f"{self.prefix}-{purpose}{suffix}"

    @property
    def data_bucket(self) -> str:
        return self.data_bucket_name or self._bucket("data")

    @property
    def anchors_bucket(self) -> str:
        return self.anchors_bucket_name or self._bucket("anchors")

    @property
    def web_bucket(self) -> str:
        return self._bucket("web")

    @property
    def artifacts_bucket(self) -> str:
        return self._bucket("artifacts")

    @property
    def cpu_queue(self) -> str:
        return self.job_queue_cpu or f"{self.prefix}-cpu"

    @property
    def gpu_queue(self) -> str:
        return self.job_queue_gpu or f"{self.prefix}-gpu"

    @property
    def definition_prefix(self) -> str:
        return self.job_definition_prefix or f"{self.prefix}-"

    def job_definition(self, job: str) -> str:
        """The Batch job definition of a job kind: the name infra makes, grants and submits to."""
        return f"{self.definition_prefix}{job}"


def settings_from_env(environ: Mapping[str, str] | None = None) -> Settings:
    """The settings as the environment holds them now (empty values count as unset)."""
    env = os.environ if environ is None else environ
    values: dict[str, str] = {field: env[name] for field, name in ENV.items() if env.get(name)}
    if "region" not in values and env.get(DEFAULT_REGION):
        values["region"] = env[DEFAULT_REGION]
    if values.get("allow_cpu") is not None:
        values["allow_cpu"] = str(values["allow_cpu"].lower() in ("1", "true", "yes"))
    parsed: dict[str, object] = dict(values)
    if "source_prefixes" in values:
        parsed["source_prefixes"] = tuple(values["source_prefixes"].replace(",", " ").split())
    return Settings.model_validate(parsed)


def environment(**values: object) -> dict[str, object]:
    """{ENV name: value} for the given Settings fields, for infra and launchers to write."""
    unknown = set(values) - set(ENV)
    if unknown:
        raise KeyError(f"not a setting: {sorted(unknown)}")
    return {ENV[field]: value for field, value in values.items()}


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return settings_from_env()
