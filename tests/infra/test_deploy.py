"""`python -m infra deploy|status|destroy` against the local cloud's CloudFormation.

Skipped by the emulator (it cannot create them; cfn-lint validates them in
test_templates.py): the Cognito user pool and client, CloudFront (distribution, origin
access control, cache policy, key group, public key), S3 bucket policies, and the API
Gateway deployment (the emulator ignores the OpenAPI body, so its API has no methods).
"""

from __future__ import annotations

import json

import pytest

from histolabel.adapters.aws import client
from histolabel.jobs import JOB_SPECS
from infra.functions import FUNCTIONS
from infra.stacks import stack_names
from tests.contracts.job_submitter import CHECKS as SUBMITTER_CHECKS
from tests.contracts.job_submitter import Harness
from tests.infra.conftest import HOSTED_UI_URL, STAGE, STUB_APP, run_cli


def test_deploy_prints_outputs_and_what_it_skipped(deployed):
    _, out = deployed
    assert "ApiUrl: https://" in out
    assert "JobRepositoryUri: " in out
    assert "Distribution (AWS::CloudFront::Distribution)" in out
    assert "UserPool (AWS::Cognito::UserPool)" in out


def test_tables_have_stream_and_billing_mode(deployed):
    settings, _ = deployed
    ddb = client("dynamodb", settings)
    events = ddb.describe_table(TableName=settings.events_table)["Table"]
    assert events["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
    assert events["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    # Not checked here: the emulator's CloudFormation drops SSESpecification and
    # PointInTimeRecoverySpecification; test_templates.py checks the template sets both.
    projections = ddb.describe_table(TableName=settings.projections_table)["Table"]
    assert [k["AttributeName"] for k in projections["KeySchema"]] == ["pk", "sk"]


def test_buckets_are_private_encrypted_and_data_is_versioned_with_range_cors(deployed):
    settings, _ = deployed
    s3 = client("s3", settings)
    for bucket in (settings.data_bucket, settings.web_bucket):
        block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
        assert block and all(block.values())
        rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
        assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert s3.get_bucket_versioning(Bucket=settings.data_bucket)["Status"] == "Enabled"
    cors = s3.get_bucket_cors(Bucket=settings.data_bucket)["CORSRules"][0]
    assert "GET" in cors["AllowedMethods"] and "Content-Range" in cors["ExposeHeaders"]
    assert cors["AllowedHeaders"] == ["*"]  # lets the browser send Range
    rules = {r["ID"]: r for r in s3.get_bucket_lifecycle_configuration(Bucket=settings.data_bucket)["Rules"]}
    assert rules["ExpireExports"]["Expiration"]["Days"] == 2


def test_batch_gpu_requirements_and_scale_to_zero(deployed):
    settings, _ = deployed
    batch = client("batch", settings)
    definitions = {
        d["jobDefinitionName"]: d
        for d in batch.describe_job_definitions(status="ACTIVE")["jobDefinitions"]
        if d["jobDefinitionName"].startswith(settings.prefix)
    }
    assert len(definitions) == len(JOB_SPECS)  # one per job kind

    def gpu(job: str) -> list[str]:
        reqs = definitions[f"{settings.prefix}-{job}"]["containerProperties"]["resourceRequirements"]
        return [r["value"] for r in reqs if r["type"] == "GPU"]

    assert gpu("train") == ["1"] and gpu("embed") == ["1"] and gpu("predict") == ["1"]
    assert gpu("ingest") == [] and gpu("segment") == []
    command = definitions[f"{settings.prefix}-train"]["containerProperties"]["command"]
    assert command[:3] == ["python", "-m", "gpu_jobs.train"]
    envs = {
        c["computeEnvironmentName"]: c["computeResources"]
        for c in batch.describe_compute_environments()["computeEnvironments"]
    }
    gpu_env = envs[f"{settings.prefix}-gpu"]
    assert gpu_env["minvCpus"] == 0
    assert all(t.startswith(("g4dn", "g5")) for t in gpu_env["instanceTypes"])
    queues = {q["jobQueueName"] for q in batch.describe_job_queues()["jobQueues"]}
    assert {f"{settings.prefix}-cpu", f"{settings.prefix}-gpu"} <= queues


def test_stream_mappings_and_functions(deployed):
    settings, _ = deployed
    lam = client("lambda", settings)
    names = {f["FunctionName"]: f for f in lam.list_functions()["Functions"]}
    for fn in ("api", "projector", "trigger", "job-events"):
        assert f"{settings.prefix}-{fn}" in names
    api_env = lam.get_function_configuration(FunctionName=f"{settings.prefix}-api")["Environment"][
        "Variables"
    ]
    assert api_env["HISTOLABEL_HOSTED_UI_URL"] == HOSTED_UI_URL
    roles = {names[f"{settings.prefix}-{fn}"]["Role"] for fn in ("api", "projector", "trigger")}
    assert len(roles) == 3, "each function has its own role"
    stream = client("dynamodb", settings).describe_table(TableName=settings.events_table)["Table"][
        "LatestStreamArn"
    ]
    mappings = lam.list_event_source_mappings(EventSourceArn=stream)["EventSourceMappings"]
    by_fn = {m["FunctionArn"].rsplit(":", 1)[-1]: m for m in mappings}
    assert set(by_fn) == {f"{settings.prefix}-projector", f"{settings.prefix}-trigger"}
    for m in by_fn.values():
        assert m["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert m["BisectBatchOnFunctionError"] is True
        assert m["StartingPosition"] == "TRIM_HORIZON"
        assert m["DestinationConfig"]["OnFailure"]["Destination"].endswith(
            f"{settings.prefix}-stream-failures"
        )
    pattern = json.loads(by_fn[f"{settings.prefix}-trigger"]["FilterCriteria"]["Filters"][0]["Pattern"])
    assert "TrainingRequested" in pattern["dynamodb"]["NewImage"]["type"]["S"]


def test_roles_logs_and_repository(deployed):
    settings, _ = deployed
    iam = client("iam", settings)
    for job in ("ingest", "segment", "embed", "train", "predict"):
        doc = iam.get_role(RoleName=f"{settings.prefix}-job-{job}")["Role"]["AssumeRolePolicyDocument"]
        assert "ecs-tasks.amazonaws.com" in json.dumps(doc)
    groups = client("logs", settings).describe_log_groups(logGroupNamePrefix="/aws/")["logGroups"]
    ours = {
        g["logGroupName"]: g.get("retentionInDays") for g in groups if settings.prefix in g["logGroupName"]
    }
    assert len(ours) == len(FUNCTIONS) + 1 and set(ours.values()) == {90}  # the functions and the jobs
    repo = client("ecr", settings).describe_repositories(repositoryNames=[f"{settings.prefix}-jobs"])[
        "repositories"
    ][0]
    # (scan-on-push is not checked: the emulator drops it; test_templates.py covers the template)
    assert repo["repositoryUri"].endswith(f"/{settings.prefix}-jobs")


def test_local_cloud_and_deployed_stack_cannot_drift(cloud, deployed):
    """The fixture's stage was provisioned by plain API calls, this one by CloudFormation."""
    settings, _ = deployed
    ddb = client("dynamodb", settings)
    s3 = client("s3", settings)
    keep = ("KeySchema", "AttributeDefinitions", "StreamSpecification", "BillingModeSummary")
    for local, deployed_table in (
        (cloud.events_table, settings.events_table),
        (cloud.projections_table, settings.projections_table),
    ):
        a = ddb.describe_table(TableName=local)["Table"]
        b = ddb.describe_table(TableName=deployed_table)["Table"]
        assert {k: a.get(k) for k in keep} == {k: b.get(k) for k in keep}
    for local, deployed_bucket in (
        (cloud.data_bucket, settings.data_bucket),
        (cloud.web_bucket, settings.web_bucket),
    ):
        for call, key in (
            ("get_bucket_versioning", "Status"),
            ("get_public_access_block", "PublicAccessBlockConfiguration"),
            ("get_bucket_encryption", "ServerSideEncryptionConfiguration"),
        ):
            assert getattr(s3, call)(Bucket=local).get(key) == getattr(s3, call)(Bucket=deployed_bucket).get(
                key
            )
    assert (
        s3.get_bucket_cors(Bucket=cloud.data_bucket)["CORSRules"]
        == s3.get_bucket_cors(Bucket=settings.data_bucket)["CORSRules"]
    )


def test_second_deploy_changes_nothing(deployed, capsys):
    settings, _ = deployed
    cfn = client("cloudformation", settings)
    names = stack_names(settings)
    before = {
        n: len(cfn.describe_stack_events(StackName=n)["StackEvents"]) for n in (names.foundation, names.app)
    }
    code, out, _ = run_cli(
        capsys,
        "deploy",
        "--stage",
        STAGE,
        "--app",
        str(STUB_APP),
        "--skip-lint",
        "--hosted-ui-url",
        HOSTED_UI_URL,
    )
    assert code == 0
    assert "no changes: the stage is as deployed" in out, out
    after = {
        n: len(cfn.describe_stack_events(StackName=n)["StackEvents"]) for n in (names.foundation, names.app)
    }
    assert after == before


def test_status_lists_both_stacks(deployed, capsys):
    code, out, _ = run_cli(capsys, "status", "--stage", STAGE)
    assert code == 0
    assert f"histolabel-{STAGE}-foundation: CREATE_COMPLETE" in out
    assert f"histolabel-{STAGE}-app: " in out and "ApiUrl:" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["deploy", "--stage", "Bad_Stage"], "invalid stage name 'Bad_Stage'"),
        (["deploy", "--stage", "x"], "invalid stage name 'x'"),
        (["deploy", "--stage", "okstage", "--region", "us-est-1"], "unknown region 'us-est-1'"),
        (["destroy", "--stage", "okstage", "--region", "eu-wset-1"], "unknown region 'eu-wset-1'"),
        (
            ["deploy", "--stage", "okstage", "--hosted-ui-url", "http://sso.example.org/login"],
            "--hosted-ui-url",
        ),
    ],
)
def test_bad_stage_or_region_exits_2_and_makes_nothing(cloud, capsys, argv, message):
    code, _out, err = run_cli(capsys, *argv)
    assert code == 2
    assert message in err and "Traceback" not in err
    stacks = client("cloudformation", cloud).list_stacks()["StackSummaries"]
    assert not [s for s in stacks if "okstage" in s["StackName"] or "Bad_Stage" in s["StackName"]]


def test_deploy_refuses_a_job_image_not_in_ecr(deployed, capsys):
    _ = deployed
    code, _out, err = run_cli(
        capsys, "deploy", "--stage", STAGE, "--app", str(STUB_APP), "--skip-lint", "--image-tag", "nosuchtag",
        "--hosted-ui-url", HOSTED_UI_URL,
    )  # fmt: skip
    assert code == 1 and "Traceback" not in err
    assert "nosuchtag is not in ECR" in err and "The app stack was not touched" in err


def test_jobs_are_submitted_to_the_deployed_queues_and_a_wrong_queue_fails(deployed):
    """The submitter, configured from the deployed function's environment, against the
    emulator's Batch: each kind goes to the queue its row names; a queue name that is not
    the stack's is refused."""
    from histolabel.adapters.batch import BatchSubmitter
    from histolabel.config import settings_from_env
    from histolabel.jobs import JOB_SPECS, JobSubmissionError

    settings, _ = deployed
    lam = client("lambda", settings)
    env = lam.get_function_configuration(FunctionName=f"{settings.prefix}-trigger")["Environment"][
        "Variables"
    ]
    deployed_settings = settings_from_env(
        {**env, "AWS_ENDPOINT_URL": settings.endpoint_url or "", "AWS_REGION": settings.region}
    )
    batch = client("batch", settings)
    submitter = BatchSubmitter(deployed_settings)
    for kind, spec in JOB_SPECS.items():
        job_id = submitter.submit(kind, ["--project", "p1"], f"parity-{kind}")
        queue = batch.describe_jobs(jobs=[job_id])["jobs"][0]["jobQueue"]
        assert queue.endswith(f"/{settings.prefix}-{spec.queue}"), (kind, queue)
    wrong = BatchSubmitter(deployed_settings.model_copy(update={"job_queue_gpu": f"{settings.prefix}-jobs"}))
    with pytest.raises(JobSubmissionError, match=f"{settings.prefix}-jobs"):
        wrong.submit("train", ["--project", "p1"], "parity-wrong")


@pytest.mark.parametrize("check", sorted(SUBMITTER_CHECKS))
def test_the_batch_submitter_keeps_the_submitter_contract(deployed, check):
    """tests/contracts/job_submitter.py against the deployed stack's queues and definitions."""
    from histolabel.adapters.batch import BatchSubmitter
    from histolabel.config import settings_from_env

    settings, _ = deployed
    env = client("lambda", settings).get_function_configuration(FunctionName=f"{settings.prefix}-api")[
        "Environment"
    ]["Variables"]
    deployed_settings = settings_from_env(
        {**env, "AWS_ENDPOINT_URL": settings.endpoint_url or "", "AWS_REGION": settings.region}
    )
    SUBMITTER_CHECKS[check](Harness(BatchSubmitter(deployed_settings), deadline_s=60))
