"""Destroy keeps the data unless told otherwise; a redeploy reattaches to it; a deploy that
fails part-way leaves nothing half-made without saying so."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from histolabel.adapters.aws import client
from histolabel.config import Settings
from infra.stacks import stack_names
from tests.infra.conftest import STUB_APP, deploy_cli, run_cli


def _exists(call, **kwargs) -> bool:
    try:
        call(**kwargs)
        return True
    except ClientError:
        return False


@pytest.mark.slow
def test_destroy_keeps_data_redeploy_reattaches_delete_data_removes_all(cloud, capsys):
    s = Settings(
        stage="infracycle",
        region=cloud.region,
        endpoint_url=cloud.endpoint_url,
        bucket_account="123456789012",
    )
    deploy = ("--stage", s.stage, "--app", str(STUB_APP), "--skip-lint")
    assert deploy_cli(*deploy)[0] == 0
    s3, ddb, cfn = client("s3", s), client("dynamodb", s), client("cloudformation", s)
    lam = client("lambda", s)
    s3.put_object(Bucket=s.data_bucket, Key="projects/p1/slides/s1/source/a.svs", Body=b"slide")

    code, out, _ = run_cli(capsys, "destroy", "--stage", s.stage)
    assert code == 0
    assert "kept (pass --delete-data to remove them too)" in out
    assert (
        s3.get_object(Bucket=s.data_bucket, Key="projects/p1/slides/s1/source/a.svs")["Body"].read()
        == b"slide"
    )
    assert _exists(ddb.describe_table, TableName=s.events_table)
    assert not _exists(ddb.describe_table, TableName=s.projections_table)
    assert not _exists(s3.head_bucket, Bucket=s.web_bucket)
    assert not _exists(lam.get_function, FunctionName=f"{s.prefix}-projector")
    assert {x["StackName"] for x in cfn.describe_stacks()["Stacks"]} & {stack_names(s).app} == set()

    code, out, _ = deploy_cli(*deploy)
    assert code == 0, out
    assert f"{stack_names(s).foundation}: no changes" in out
    assert _exists(lam.get_function, FunctionName=f"{s.prefix}-projector")
    assert (
        s3.get_object(Bucket=s.data_bucket, Key="projects/p1/slides/s1/source/a.svs")["Body"].read()
        == b"slide"
    )

    code, out, _ = run_cli(capsys, "destroy", "--stage", s.stage, "--delete-data", "--yes")
    assert code == 0, out
    assert not _exists(ddb.describe_table, TableName=s.events_table)
    assert not _exists(s3.head_bucket, Bucket=s.data_bucket)
    assert not [x for x in cfn.describe_stacks()["Stacks"] if x["StackName"].startswith(s.prefix)]


def test_delete_data_needs_confirmation(cloud, capsys, monkeypatch):
    monkeypatch.setattr("builtins.input", lambda prompt: "nope")
    code, _, err = run_cli(capsys, "destroy", "--stage", "infraconfirm", "--delete-data")
    assert code == 1 and "nothing deleted" in err


@pytest.mark.slow
def test_failed_create_is_removed_and_reported(cloud, own_cloud, capsys):
    s = Settings(stage="infrafail", region=cloud.region, endpoint_url=own_cloud)
    # Something already holds a name the app stack needs, so its create fails part-way.
    client("ecr", s).create_repository(repositoryName=f"{s.prefix}-jobs")
    code, _out, err = run_cli(capsys, "deploy", "--stage", s.stage, "--app", str(STUB_APP), "--skip-lint")
    assert code == 1
    assert "deploy failed" in err and "Traceback" not in err
    assert "RepositoryAlreadyExists" in err
    # AWS rolls a failed create back and the deploy removes the shell ("nothing is left"); the
    # emulator leaves a stack it can neither finish nor delete, and the deploy says that instead.
    assert "nothing is left" in err or "it is left in place: remove it with `python -m infra destroy`" in err


@pytest.mark.slow
def test_missing_permissions_give_a_clear_error_and_make_nothing(cloud, tmp_path, monkeypatch, capsys):
    """The emulator checks IAM policies once told to (after the admin is made): an admin allowed
    only to read stacks is refused by CloudFormation itself."""
    import urllib.request

    from histolabel.localcloud.stack import LOCAL_CREDENTIALS, start_server

    server = start_server(log_path=tmp_path / "moto.log")
    try:
        s = Settings(stage="infradeny", region=cloud.region, endpoint_url=server.endpoint)
        root = {k.lower(): v for k, v in LOCAL_CREDENTIALS.items() if k != "AWS_SESSION_TOKEN"}
        import boto3

        iam = boto3.client("iam", endpoint_url=server.endpoint, region_name=s.region, **root)
        iam.create_user(UserName="reader")
        iam.put_user_policy(
            UserName="reader",
            PolicyName="read-only",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Action": [
                                "sts:GetCallerIdentity",
                                "cloudformation:DescribeStacks",
                                "ec2:DescribeVpcs",
                                "ec2:DescribeSubnets",
                                "ec2:DescribeSecurityGroups",
                            ],
                            "Resource": "*",
                        }
                    ],
                }
            ),
        )
        key = iam.create_access_key(UserName="reader")["AccessKey"]
        # From here on every call is authorised (a count of free calls set at start-up let the
        # deploy through unchecked in one full-suite run: it is not counted that way here).
        reset = urllib.request.Request(
            f"{server.endpoint}/moto-api/reset-auth",
            data=b"0",
            method="POST",
            headers={"Content-Type": "text/plain"},
        )
        with urllib.request.urlopen(reset, timeout=30):
            pass
        monkeypatch.setenv("AWS_ENDPOINT_URL", server.endpoint)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
        monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
        code, _, err = run_cli(capsys, "deploy", "--stage", s.stage, "--app", str(STUB_APP), "--skip-lint")
        assert code == 1
        assert "AccessDenied" in err and "Nothing was made" in err and "Traceback" not in err
    finally:
        server.stop()
