"""Shared fixtures: a local cloud per test session, and the paths of the shared test data.

Set HISTOLABEL_TEST_ENDPOINT to run the same tests against LocalStack or a real account
instead of the embedded server (the stack must then already be provisioned for the stage).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from histolabel.config import Settings, get_settings, settings_from_env

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not beside this checkout")
    return SHARED_DATA


@pytest.fixture(scope="session")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A provisioned local cloud; the process environment points at it for the whole session."""
    from histolabel.adapters.provision import provision
    from histolabel.localcloud.stack import local_environment, start_server

    external = os.environ.get("HISTOLABEL_TEST_ENDPOINT")
    server = None
    if external:
        endpoint = external
    else:
        server = start_server(log_path=tmp_path_factory.mktemp("cloud") / "moto.log")
        endpoint = server.endpoint
    stage = os.environ.get("HISTOLABEL_STAGE", "test")
    env = local_environment(endpoint, Settings(stage=stage))
    if external:
        env = {k: v for k, v in env.items() if not k.startswith("AWS_") or k == "AWS_ENDPOINT_URL"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    get_settings.cache_clear()
    settings = settings_from_env()
    if not external:
        provision(settings)
    try:
        yield settings
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        get_settings.cache_clear()
        if server is not None:
            server.stop()


@pytest.fixture
def project_id() -> str:
    """A fresh project id, so tests sharing one cloud never see each other's streams."""
    return f"p{uuid.uuid4().hex[:12]}"
