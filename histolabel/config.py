"""Where the stack lives: stage, region, endpoint and resource names, from the environment."""

from __future__ import annotations

import os
import re
from functools import lru_cache

from pydantic import BaseModel, field_validator

STAGE_PATTERN = re.compile(r"^[a-z][a-z0-9-]{1,20}$")


class Settings(BaseModel):
    stage: str = "local"
    region: str = "us-east-1"
    endpoint_url: str | None = None
    # Where slide sources may be registered from besides the project's own prefix (see
    # histolabel/confinement.py): HISTOLABEL_SOURCE_PREFIXES, whitespace- or comma-separated.
    source_prefixes: tuple[str, ...] = ()

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

    @property
    def data_bucket(self) -> str:
        return f"{self.prefix}-data"

    @property
    def web_bucket(self) -> str:
        return f"{self.prefix}-web"


def settings_from_env(environ: dict[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    return Settings(
        stage=env.get("HISTOLABEL_STAGE", "local"),
        region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
        endpoint_url=env.get("AWS_ENDPOINT_URL") or None,
        source_prefixes=tuple(env.get("HISTOLABEL_SOURCE_PREFIXES", "").replace(",", " ").split()),
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return settings_from_env()
