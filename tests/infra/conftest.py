"""A stage deployed once per module into the session's local cloud, through the CLI."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from histolabel.config import Settings
from infra.__main__ import main

STUB_APP = Path(__file__).with_name("stub_app.py")
STAGE = "infratest"


def push_missing_images(settings: Settings) -> list[str]:
    """Stand in for CodeBuild, which the emulator lacks: record the images a deploy of this
    tree asks for (its API build context's and its jobs' content hashes) in the emulator's ECR."""
    from histolabel.adapters.aws import client
    from infra.images import image_exists, job_image_tag, push_placeholder_image
    from infra.package import ROOT, context_digest
    from infra.stackops import outputs_of
    from infra.stacks import stack_names

    cfn = client("cloudformation", settings)
    out = outputs_of(cfn.describe_stacks(StackName=stack_names(settings).foundation)["Stacks"][0])
    pushed = []
    for uri, tag in (
        (out["ApiRepositoryUri"], context_digest(ROOT / "build" / "artifacts" / "api")),
        (out["JobRepositoryUri"], job_image_tag()),
    ):
        if not image_exists(client("ecr", settings), uri.rsplit("/", 1)[1], tag):
            push_placeholder_image(settings, f"{uri}:{tag}")
            pushed.append(f"{uri}:{tag}")
    return pushed


def deploy_cli(*argv: str) -> tuple[int, str, str]:
    """`python -m infra deploy ...`; a refusal for images not in ECR is answered by pushing
    them (as CodeBuild would on AWS) and deploying again. Returns (code, stdout, stderr) of the
    last deploy, stdout of both."""
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["deploy", *argv])
    if code != 0 and "is not in ECR" in err.getvalue():
        region = argv[argv.index("--region") + 1] if "--region" in argv else None
        from infra.target import settings_for

        push_missing_images(settings_for(argv[argv.index("--stage") + 1], region))
        err = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["deploy", *argv])
    return code, out.getvalue(), err.getvalue()


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def deployed(cloud: Settings) -> Iterator[tuple[Settings, str]]:
    """(settings of the deployed stage, the deploy's stdout)."""
    import contextlib
    import io

    settings = Settings(
        stage=STAGE, region=cloud.region, endpoint_url=cloud.endpoint_url, bucket_account="123456789012"
    )
    code, out, err = deploy_cli("--stage", STAGE, "--app", str(STUB_APP), "--hosted-ui-url", HOSTED_UI_URL)
    assert code == 0, out + err
    yield settings, out
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
