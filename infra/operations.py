"""The admin's commands: deploy (create or update, then report), status and destroy."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError, NoCredentialsError, NoRegionError

from histolabel.adapters.aws import client
from histolabel.config import Settings
from infra import stackops
from infra.api import DEFAULT_APP, AppLoadError, load_app, swagger_for
from infra.cfn import account_settings
from infra.emulator import APPLIED, apply_ignored_settings, remove_batch_leftovers
from infra.errors import InfraError, UsageError
from infra.foundation import foundation_template
from infra.images import ensure_images
from infra.lint import lint
from infra.network import CREATE_NETWORK
from infra.package import LAMBDA_PYTHON, ROOT, package
from infra.quotas import check_gpu_quota
from infra.stackops import Echo, StackResult
from infra.stacks import EMULATOR_PARTIAL, app_template, code_key_parameter, stack_names
from infra.target import is_emulated
from infra.web import publish, site_config, web_files

HOSTED_UI = re.compile(r"^https://[A-Za-z0-9.-]+(:[0-9]+)?/[!-~]*$")


@dataclass
class DeployOptions:
    app_path: Path = DEFAULT_APP
    image_tag: str | None = None  # the jobs' image; None: the tag of the current source tree
    cpu_max_vcpus: int = 64
    gpu_max_vcpus: int = 16
    lambda_python: str = LAMBDA_PYTHON  # the Python the zips' compiled wheels are built for
    build_images: bool = True  # build missing images with CodeBuild (on AWS)
    artifacts_dir: Path = ROOT / "build" / "artifacts"
    run_lint: bool = True
    subnets: list[str] = field(default_factory=list)
    security_group: str = ""
    hosted_ui_url: str = ""


@dataclass
class DeployReport:
    stacks: list[StackResult] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    web_changed: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any(s.changed for s in self.stacks) or bool(self.web_changed)


def check_access(settings: Settings) -> str:
    """Who is deploying; a clear error when there are no usable credentials."""
    try:
        return str(client("sts", settings).get_caller_identity()["Arn"])
    except (NoCredentialsError, NoRegionError) as err:
        raise InfraError(
            f"no usable AWS credentials: {err} (configure a profile or AWS_* variables)"
        ) from None
    except ClientError as err:
        raise InfraError(f"AWS rejected the credentials: {stackops._error_message(err)}") from None


def skipped_resources(
    templates: list[dict[str, Any]], *, own_network: bool, emulated: bool = False
) -> list[str]:
    """What the templates leave out here, each with the reason."""
    skipped = []
    for template in templates:
        for logical, r in template["Resources"].items():
            condition, kind = r.get("Condition"), r["Type"]
            if condition == "OnAws":
                reason = EMULATOR_PARTIAL.get(kind, "not emulated")
            elif condition == CREATE_NETWORK and own_network:
                reason = (
                    "the emulator's default VPC is used (it cannot delete a VPC with an S3 endpoint)"
                    if emulated
                    else "the given subnets are used instead"
                )
            else:
                continue
            skipped.append(f"{logical} ({kind}): {reason}")
    return sorted(skipped)


def default_network(settings: Settings) -> tuple[list[str], str]:
    """The account's default VPC: its subnets and default security group."""
    ec2 = client("ec2", settings)
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]
    if not vpcs:
        raise InfraError("no default VPC: pass --subnets and --security-group")
    vpc = [{"Name": "vpc-id", "Values": [vpcs[0]["VpcId"]]}]
    subnets = sorted(s["SubnetId"] for s in ec2.describe_subnets(Filters=vpc)["Subnets"])
    groups = ec2.describe_security_groups(Filters=[*vpc, {"Name": "group-name", "Values": ["default"]}])
    return subnets[:2], groups["SecurityGroups"][0]["GroupId"]


def _stage_tags(settings: Settings) -> dict[str, str]:
    return {"histolabel:stage": settings.stage, "histolabel:managed-by": "python -m infra"}


def _stager(s3: Any, bucket: str, settings: Settings) -> Any:
    def upload(body: str, data: bytes) -> str:
        import hashlib

        key = f"templates/{hashlib.sha256(data).hexdigest()[:20]}.json"
        s3.put_object(Bucket=bucket, Key=key, Body=data, ContentType="application/json")
        host = "s3.amazonaws.com" if settings.region == "us-east-1" else f"s3.{settings.region}.amazonaws.com"
        return f"https://{bucket}.{host}/{key}"

    return upload


def deploy(settings: Settings, options: DeployOptions, echo: Echo) -> DeployReport:
    if options.hosted_ui_url and not HOSTED_UI.match(options.hosted_ui_url):
        raise UsageError(
            f"--hosted-ui-url: {options.hosted_ui_url!r} is not an https URL "
            "(e.g. https://DOMAIN.auth.REGION.amazoncognito.com/login?client_id=...&response_type=token&...)"
        )
    emulated = is_emulated(settings)
    names = stack_names(settings)
    try:
        swagger = swagger_for(load_app(options.app_path))
    except AppLoadError as err:
        raise InfraError(f"cannot describe the API: {err}") from None
    foundation = foundation_template(settings)
    app = app_template(settings, swagger)
    if options.run_lint:
        problems = lint({names.foundation: foundation, names.app: app}, settings.region)
        if problems:
            raise InfraError("cfn-lint found problems in the templates:\n  " + "\n  ".join(problems))
    identity = check_access(settings)
    settings = account_settings(settings, identity.split(":")[4])
    echo(
        f"deploying stage {settings.stage!r} to {settings.region} as {identity}"
        + (" (emulator)" if emulated else "")
    )
    if not emulated:
        check_gpu_quota(settings, echo)
    subnets, group = options.subnets, options.security_group
    if bool(subnets) != bool(group):
        raise UsageError("--subnets and --security-group go together")
    if emulated and not subnets:
        # The emulator cannot delete a VPC with an S3 endpoint: use its default VPC instead.
        subnets, group = default_network(settings)
    report = DeployReport(
        skipped=skipped_resources(
            [foundation, app], own_network=bool(subnets), emulated=emulated and not options.subnets
        )
    )
    cfn = client("cloudformation", settings)
    s3 = client("s3", settings)
    flag = {"Emulated": "true" if emulated else "false"}
    tags = _stage_tags(settings)

    base = stackops.deploy(cfn, names.foundation, foundation, flag, echo, tags=tags)
    from histolabel.adapters.provision import provision_audit

    # The anchors bucket outlives stacks (compliance-locked); the emulator's keys come from here too.
    echo("audit chain: " + ", ".join(provision_audit(settings, keys=emulated)) + " in place")
    report.stacks.append(base)
    if emulated and base.changed:
        _fix_emulator(settings, names.foundation, foundation, echo)
    out = base.outputs

    if emulated and not out.get("UserPoolId"):
        # The emulator's CloudFormation cannot make a user pool: the same one is made by API.
        from histolabel.adapters.cognito import ensure_pool

        made = ensure_pool(settings)
        out = {**out, "UserPoolId": made.user_pool_id, "UserPoolClientId": made.client_id}
        echo(f"emulator: user pool {made.user_pool_id} made through the API")

    manifest = package(options.artifacts_dir, python_version=options.lambda_python)
    artifacts = out["ArtifactsBucketName"]
    code_keys: dict[str, str] = {}
    for entry in manifest["functions"]:  # type: ignore[attr-defined]
        if entry["package_type"] != "Zip":
            continue
        key = f"lambda/{entry['artifact']}"
        try:
            s3.head_object(Bucket=artifacts, Key=key)
        except ClientError:
            data = (options.artifacts_dir / entry["artifact"]).read_bytes()
            echo(f"uploading {entry['name']} code s3://{artifacts}/{key} ({len(data) / 1e6:.1f} MB)")
            s3.put_object(Bucket=artifacts, Key=key, Body=data)
        code_keys[entry["name"]] = key
    images = ensure_images(
        settings, out, options.artifacts_dir, echo,
        job_tag=options.image_tag, build=options.build_images and not emulated, emulated=emulated,
    )  # fmt: skip
    from infra.functions import FUNCTIONS

    parameters = {
        **flag,
        "EventsStreamArn": out["EventsStreamArn"],
        "ArtifactsBucket": artifacts,
        **{code_key_parameter(fn.logical): code_keys[fn.name] for fn in FUNCTIONS if fn.name in code_keys},
        "ApiImageUri": images["api"],
        "JobImageUri": images["jobs"],
        "UserPoolId": out.get("UserPoolId", "none"),
        "UserPoolClientId": out.get("UserPoolClientId", "none"),
        "CpuMaxVcpus": str(options.cpu_max_vcpus),
        "GpuMaxVcpus": str(options.gpu_max_vcpus),
        "SubnetIds": ",".join(subnets),
        "SecurityGroupId": group,
        "HostedUiUrl": options.hosted_ui_url,
    }
    result = stackops.deploy(
        cfn, names.app, app, parameters, echo, upload=_stager(s3, artifacts, settings), tags=tags
    )
    report.stacks.append(result)
    if emulated and result.changed:
        _fix_emulator(settings, names.app, app, echo)
    report.outputs = {**out, **result.outputs}

    config = site_config(
        region=settings.region,
        api_url=report.outputs.get("WebUrl", report.outputs.get("ApiUrl", "")).rstrip("/")
        + ("/api/" if "WebUrl" in report.outputs else "/"),
        user_pool_id=out.get("UserPoolId", "none"),
        client_id=out.get("UserPoolClientId", "none"),
    )
    report.web_changed = publish(s3, report.outputs["WebBucketName"], {**web_files(), "config.json": config})
    if report.web_changed:
        echo(f"published {len(report.web_changed)} web file(s)")
        if "WebUrl" in report.outputs:
            _invalidate(settings, report.outputs)
    return report


def _fix_emulator(settings: Settings, stack: str, template: dict[str, Any], echo: Echo) -> None:
    touched = apply_ignored_settings(settings, stack, template)
    echo(f"emulator: applied what its CloudFormation ignores ({APPLIED}) to {', '.join(touched)}")


def _invalidate(settings: Settings, outputs: dict[str, str]) -> None:
    cloudfront = client("cloudfront", settings)
    domain = outputs["WebUrl"].split("//", 1)[1].rstrip("/")
    for dist in cloudfront.list_distributions().get("DistributionList", {}).get("Items", []):
        if dist["DomainName"] == domain:
            cloudfront.create_invalidation(
                DistributionId=dist["Id"],
                InvalidationBatch={
                    "Paths": {"Quantity": 1, "Items": ["/*"]},
                    "CallerReference": str(time.time_ns()),
                },
            )


def status(settings: Settings) -> dict[str, dict[str, Any]]:
    cfn = client("cloudformation", settings)
    result = {}
    for name in (stack_names(settings).foundation, stack_names(settings).app):
        try:
            stack = stackops.describe(cfn, name)
        except ClientError as err:
            raise InfraError(f"cannot read stack {name}: {stackops._error_message(err)}") from None
        result[name] = (
            {"status": "absent", "outputs": {}}
            if stack is None
            else {
                "status": stack["StackStatus"],
                "updated": str(stack.get("LastUpdatedTime") or stack.get("CreationTime")),
                "outputs": stackops.outputs_of(stack),
            }
        )
    return result


def empty_bucket(s3: Any, bucket: str) -> int:
    """Delete every object version and delete marker; returns how many were removed."""
    removed = 0
    try:
        pages = s3.get_paginator("list_object_versions").paginate(Bucket=bucket)
        for page in pages:
            batch = [
                {"Key": v["Key"], "VersionId": v["VersionId"]}
                for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
            ]
            for i in range(0, len(batch), 1000):
                s3.delete_objects(Bucket=bucket, Delete={"Objects": batch[i : i + 1000], "Quiet": True})
            removed += len(batch)
    except ClientError as err:
        if err.response["Error"]["Code"] != "NoSuchBucket":
            raise
    return removed


def _delete_kept(settings: Settings, foundation_outputs: dict[str, str], echo: Echo) -> None:
    """Resources the foundation keeps on stack deletion (DeletionPolicy Retain)."""
    s3 = client("s3", settings)
    ddb = client("dynamodb", settings)
    n = empty_bucket(s3, settings.data_bucket)
    try:
        s3.delete_bucket(Bucket=settings.data_bucket)
        echo(f"deleted bucket {settings.data_bucket} ({n} object versions)")
    except ClientError as err:
        if err.response["Error"]["Code"] != "NoSuchBucket":
            raise
    try:
        ddb.delete_table(TableName=settings.events_table)
        ddb.get_waiter("table_not_exists").wait(TableName=settings.events_table)
        echo(f"deleted table {settings.events_table}")
    except ClientError as err:
        if err.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
    pool = foundation_outputs.get("UserPoolId")
    if pool is None and is_emulated(settings):
        from histolabel.adapters.cognito import pool_name

        pools = client("cognito-idp", settings).list_user_pools(MaxResults=60)["UserPools"]
        pool = next((p["Id"] for p in pools if p["Name"] == pool_name(settings)), None)
    if pool:
        try:
            client("cognito-idp", settings).delete_user_pool(UserPoolId=pool)
            echo(f"deleted user pool {pool}")
        except ClientError as err:
            if err.response["Error"]["Code"] != "ResourceNotFoundException":
                raise


def _empty_repositories(settings: Settings, outputs: dict[str, str]) -> None:
    """The images (EmptyOnDelete does this on AWS; the emulator ignores it)."""
    ecr = client("ecr", settings)
    for key in ("ApiRepositoryUri", "JobRepositoryUri"):
        if key not in outputs:
            continue
        name = outputs[key].rsplit("/", 1)[1]
        try:
            ids = ecr.list_images(repositoryName=name)["imageIds"]
            if ids:
                ecr.batch_delete_image(repositoryName=name, imageIds=ids)
        except ClientError as err:
            if err.response["Error"]["Code"] != "RepositoryNotFoundException":
                raise


def destroy(settings: Settings, *, delete_data: bool, echo: Echo) -> list[str]:
    """Remove the app stack; with delete_data also the foundation and what it keeps.
    Returns what was kept."""
    settings = account_settings(settings, check_access(settings).split(":")[4])
    cfn = client("cloudformation", settings)
    s3 = client("s3", settings)
    names = stack_names(settings)
    app = stackops.describe(cfn, names.app)
    if app is not None:
        web = stackops.outputs_of(app).get("WebBucketName", settings.web_bucket)
        empty_bucket(s3, web)
    stackops.delete(cfn, names.app, echo)
    if is_emulated(settings):
        left = remove_batch_leftovers(settings)
        if left:
            echo(f"emulator: removed Batch resources its stack delete leaves behind: {', '.join(left)}")
    foundation = stackops.describe(cfn, names.foundation)
    if not delete_data:
        if foundation is None:
            return []
        kept = [
            f"table {settings.events_table}",
            f"bucket {settings.data_bucket}",
            "the user pool (users and their ids)",
            f"stack {names.foundation} (holding them)",
        ]
        echo("kept (pass --delete-data to remove them too): " + ", ".join(kept))
        return kept
    outputs = stackops.outputs_of(foundation)
    if foundation is not None:
        empty_bucket(s3, outputs.get("ArtifactsBucketName", ""))
        _empty_repositories(settings, outputs)
        stackops.delete(cfn, names.foundation, echo)
    _delete_kept(settings, outputs, echo)
    return []
