"""A stage deployed once per module into the session's local cloud, through the CLI."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from histolabel.config import Settings
from infra.__main__ import main

STUB_APP = Path(__file__).with_name("stub_app.py")
STAGE = "infratest"


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def deployed(cloud: Settings) -> Iterator[tuple[Settings, str]]:
    """(settings of the deployed stage, the deploy's stdout)."""
    import contextlib
    import io

    settings = Settings(stage=STAGE, region=cloud.region, endpoint_url=cloud.endpoint_url)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["deploy", "--stage", STAGE, "--app", str(STUB_APP), "--hosted-ui-url", HOSTED_UI_URL])
    assert code == 0, out.getvalue()
    yield settings, out.getvalue()
    with contextlib.redirect_stdout(io.StringIO()):
        main(["destroy", "--stage", STAGE, "--delete-data", "--yes"])


HOSTED_UI_URL = "https://histolabel-ci.auth.us-east-1.amazoncognito.com/login?client_id=c&response_type=token"


@pytest.fixture
def own_cloud(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A separate emulator for tests that break its state or turn on its IAM checks; the
    environment points at it for the test. Extra server settings come from INITIAL_NO_AUTH_ACTION_COUNT."""
    from histolabel.localcloud.stack import LOCAL_CREDENTIALS, start_server

    server = start_server(log_path=tmp_path / "moto.log")
    for key, value in LOCAL_CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", server.endpoint)
    try:
        yield server.endpoint
    finally:
        server.stop()
