"""The generated templates: lint-clean, least privilege, the intended settings, and an
honest list of what the emulator cannot create."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from histolabel.config import Settings
from histolabel.resources import stateful_resources
from infra.api import AppLoadError, load_app, swagger_for
from infra.cfn import template_settings
from infra.iam import wildcard_grants
from infra.lint import lint
from infra.package import _sources, build_zip, job_requirements
from infra.stacks import EMULATOR_PARTIAL, EMULATOR_UNSUPPORTED, stack_names, templates

STUB_APP = Path(__file__).with_name("stub_app.py")
SETTINGS = Settings(stage="infratest", region="eu-central-1")


@pytest.fixture(scope="module")
def stack_templates() -> dict[str, dict]:
    return templates(SETTINGS, swagger_for(load_app(STUB_APP)))


@pytest.fixture(scope="module")
def app(stack_templates: dict[str, dict]) -> dict:
    return stack_templates[stack_names(SETTINGS).app]


@pytest.fixture(scope="module")
def foundation(stack_templates: dict[str, dict]) -> dict:
    return stack_templates[stack_names(SETTINGS).foundation]


def test_cfn_lint_passes_on_every_template(stack_templates):
    assert lint(stack_templates, SETTINGS.region) == []


def test_cfn_lint_catches_a_broken_template(app):
    broken = copy.deepcopy(app)
    broken["Resources"]["ProjectionsTable"]["Properties"]["BillingMode"] = "FREE"
    assert any("BillingMode" in p or "FREE" in p for p in lint({"broken": broken}, SETTINGS.region))


def test_real_app_describes_a_lint_clean_api():
    try:
        chalice_app = load_app()
    except AppLoadError as err:
        pytest.skip(f"functions/app.py not importable yet: {err}")
    swagger = swagger_for(chalice_app)
    assert swagger["paths"], "the API has no routes"
    assert lint(templates(SETTINGS, swagger), SETTINGS.region) == []


def test_no_policy_grants_wildcard_actions_or_resources(stack_templates):
    for template in stack_templates.values():
        assert wildcard_grants(template) == []


def test_wildcard_check_catches_star_grants(app):
    loose = copy.deepcopy(app)
    statements = loose["Resources"]["TrainJobRole"]["Properties"]["Policies"][0]["PolicyDocument"][
        "Statement"
    ]
    statements.append({"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::x/*"})
    statements.append({"Effect": "Allow", "Action": ["dynamodb:Query"], "Resource": "*"})
    problems = wildcard_grants(loose)
    assert any("s3:*" in p for p in problems)
    assert any("dynamodb:Query" in p for p in problems)
    fine = copy.deepcopy(app)
    fine["Resources"]["TrainJobRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"].append(
        {"Effect": "Allow", "Action": "batch:DescribeJobs", "Resource": "*"}
    )
    assert wildcard_grants(fine) == []


def test_each_job_role_writes_only_its_own_outputs(app):
    def writes(job: str) -> list[str]:
        statements = app["Resources"][f"{job}JobRole"]["Properties"]["Policies"][0]["PolicyDocument"][
            "Statement"
        ]
        put = next(s for s in statements if "s3:PutObject" in s["Action"])
        return [r["Fn::Sub"] for r in put["Resource"]]

    assert all("/source/" not in w for job in ("Segment", "Embed", "Train", "Predict") for w in writes(job))
    assert all("/models/" not in w for w in writes("Predict"))
    assert all("/features/" in w for w in writes("Embed"))


def test_gpu_jobs_require_a_gpu_and_cpu_jobs_do_not(app):
    def gpus(job: str) -> list[str]:
        props = app["Resources"][f"{job}JobDefinition"]["Properties"]["ContainerProperties"]
        return [r["Value"] for r in props["ResourceRequirements"] if r["Type"] == "GPU"]

    for job in ("Train", "Embed", "Predict"):
        assert gpus(job) == ["1"]
    for job in ("Ingest", "Segment"):
        assert gpus(job) == []
    for kind in ("Cpu", "Gpu"):
        assert (
            app["Resources"][f"{kind}ComputeEnvironment"]["Properties"]["ComputeResources"]["MinvCpus"] == 0
        )


def test_tables_are_encrypted_and_events_have_stream_and_pitr(foundation, app):
    events = foundation["Resources"]["EventsTable"]["Properties"]
    assert events["StreamSpecification"] == {"StreamViewType": "NEW_IMAGE"}
    assert events["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    for table in (events, app["Resources"]["ProjectionsTable"]["Properties"]):
        assert table["SSESpecification"] == {"SSEEnabled": True}
    assert foundation["Resources"]["EventsTable"]["DeletionPolicy"] == "Retain"
    assert foundation["Resources"]["DataBucket"]["DeletionPolicy"] == "Retain"


def test_stateful_resources_come_from_histolabel_resources(foundation, app):
    source = stateful_resources(template_settings(SETTINGS))
    assert foundation["Resources"]["EventsTable"] == source["EventsTable"]
    assert foundation["Resources"]["DataBucket"] == source["DataBucket"]
    assert app["Resources"]["ProjectionsTable"] == source["ProjectionsTable"]
    assert app["Resources"]["WebBucket"] == source["WebBucket"]


def test_only_resources_the_emulator_cannot_create_are_conditional(stack_templates):
    from moto.cloudformation.parsing import get_model_map

    emulated = set(get_model_map())
    for template in stack_templates.values():
        for logical, resource in template["Resources"].items():
            kind = resource["Type"]
            conditional = resource.get("Condition") == "OnAws"
            if kind in EMULATOR_UNSUPPORTED:
                assert kind not in emulated, f"{kind} is emulated now: drop it from EMULATOR_UNSUPPORTED"
                assert conditional, f"{logical} ({kind}) would break the emulator's deploy"
            elif kind not in EMULATOR_PARTIAL:
                assert kind in emulated, f"{logical} ({kind}) cannot be emulated: list it as unsupported"
                assert not conditional, f"{logical} is skipped in the emulator without need"


def test_stream_consumers_report_partial_failures_and_bisect(app):
    for logical in ("ProjectorStream", "TriggerStream"):
        props = app["Resources"][logical]["Properties"]
        assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert props["BisectBatchOnFunctionError"] is True
        assert props["DestinationConfig"]["OnFailure"]["Destination"] == {
            "Fn::GetAtt": ["StreamFailures", "Arn"]
        }
    assert "FilterCriteria" in app["Resources"]["TriggerStream"]["Properties"]
    assert "FilterCriteria" not in app["Resources"]["ProjectorStream"]["Properties"]


def test_stream_consumers_run_as_many_batches_per_shard_as_the_declared_write_rate_needs(app):
    from infra.write_rates import PROJECTOR_PARALLELIZATION, TRIGGER_PARALLELIZATION

    resources = app["Resources"]
    assert resources["ProjectorStream"]["Properties"]["ParallelizationFactor"] == PROJECTOR_PARALLELIZATION
    assert resources["TriggerStream"]["Properties"]["ParallelizationFactor"] == TRIGGER_PARALLELIZATION
    assert PROJECTOR_PARALLELIZATION > 1  # 100 annotators at a label a second, with headroom


def test_function_zips_are_reproducible():
    from infra.functions import PROJECTOR

    first, second = build_zip(_sources(PROJECTOR.artifact)), build_zip(_sources(PROJECTOR.artifact))
    assert first == second


def test_bucket_names_carry_the_account_id(foundation, app):
    for template, logical in (
        (foundation, "DataBucket"),
        (foundation, "ArtifactsBucket"),
        (app, "WebBucket"),
    ):
        name = template["Resources"][logical]["Properties"]["BucketName"]
        assert name["Fn::Sub"].endswith("-${AWS::AccountId}"), (logical, name)


def test_functions_and_jobs_get_their_settings_under_the_names_the_code_reads(app):
    from histolabel import config

    env = app["Resources"]["Trigger"]["Properties"]["Environment"]["Variables"]
    for name in (config.STAGE, config.DATA_BUCKET, config.JOB_QUEUE_CPU, config.JOB_QUEUE_GPU):
        assert name in env
    assert env[config.JOB_QUEUE_GPU] == {"Ref": "GpuJobQueue"}
    job = app["Resources"]["EmbedJobDefinition"]["Properties"]["ContainerProperties"]
    names = {e["Name"]: e["Value"] for e in job["Environment"]}
    assert {config.STAGE, config.DATA_BUCKET, config.FOUNDATION_WEIGHTS, config.ALLOW_CPU} <= set(names)
    assert names[config.ALLOW_CPU] == "false"  # a GPU job without CUDA fails instead of crawling


def test_queues_and_definitions_come_from_the_job_kinds_table(app):
    from histolabel.jobs import JOB_SPECS

    for kind, spec in JOB_SPECS.items():
        props = app["Resources"][f"{kind.title().replace('_', '')}JobDefinition"]["Properties"]
        reqs = {r["Type"]: r["Value"] for r in props["ContainerProperties"]["ResourceRequirements"]}
        assert reqs["VCPU"] == str(spec.vcpus) and reqs["MEMORY"] == str(spec.memory_mib)
        assert reqs.get("GPU", "0") == str(spec.gpus)
        assert props["Timeout"]["AttemptDurationSeconds"] == spec.timeout_s
        if spec.interruptible:
            assert props["RetryStrategy"]["EvaluateOnExit"][0] == {
                "OnStatusReason": "Host EC2*",
                "Action": "RETRY",
            }
    gpu = app["Resources"]["GpuComputeEnvironment"]["Properties"]["ComputeResources"]
    assert gpu["Ec2Configuration"] == [{"ImageType": "ECS_AL2023_NVIDIA"}]
    order = app["Resources"]["GpuJobQueue"]["Properties"]["ComputeEnvironmentOrder"]
    assert order[0]["ComputeEnvironment"] == {"Ref": "GpuSpotComputeEnvironment"}
    assert app["Resources"]["GpuSpotComputeEnvironment"]["Properties"]["ComputeResources"]["Type"] == "SPOT"


def test_job_state_changes_of_the_stage_queues_reach_job_events(app):
    rule = app["Resources"]["JobStateRule"]["Properties"]
    assert rule["EventPattern"]["detail-type"] == ["Batch Job State Change"]
    assert rule["EventPattern"]["detail"]["jobQueue"] == [{"Ref": "CpuJobQueue"}, {"Ref": "GpuJobQueue"}]
    assert rule["Targets"][0]["Arn"] == {"Fn::GetAtt": ["JobEvents", "Arn"]}
    assert app["Resources"]["JobEvents"]["Properties"]["Handler"] == "handlers.job_events.handler"


def test_job_requirements_are_pinned_from_the_lock():
    assert (
        Path(__file__).parents[2] / "gpu_jobs" / "requirements-job.txt"
    ).read_text() == job_requirements(), (
        "gpu_jobs/requirements-job.txt drifted: run `python -m infra job-requirements`"
    )


def test_app_client_allows_the_flow_the_web_app_signs_in_with(foundation, cloud):
    """The deployed app client and the local cloud's allow the same flows, and the one the sign-in
    form sends (read from the web app's code) is among them."""
    import re

    from histolabel.adapters.aws import client
    from histolabel.adapters.cognito import ensure_pool

    api_js = (Path(__file__).parents[2] / "web" / "js" / "api.js").read_text()
    used = set(re.findall(r'AuthFlow: "([A-Z_]+)"', api_js))
    assert used == {"USER_PASSWORD_AUTH"}
    deployed = foundation["Resources"]["UserPoolClient"]["Properties"]["ExplicitAuthFlows"]
    assert {f"ALLOW_{flow}" for flow in used} <= set(deployed)
    pool = ensure_pool(cloud)
    local = client("cognito-idp", cloud).describe_user_pool_client(
        UserPoolId=pool.user_pool_id, ClientId=pool.client_id
    )["UserPoolClient"]["ExplicitAuthFlows"]
    assert sorted(local) == sorted(deployed)
