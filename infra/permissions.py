"""The AWS actions each function and job may call: one declared table, from which every role
in the templates is built (`statements_for`), and which tests/infra/test_permissions.py checks
against the code's call sites (infra/callsites.py): every call granted, nothing else granted.

Each row names a resource kind and actions. Rows for calls that AWS makes on the role's
behalf rather than our code (an event source mapping reading the stream, Lambda writing logs)
are `platform` rows, each with its reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from histolabel.config import Settings
from histolabel.jobs import JOB_SPECS, SLIDE, JobSpec
from histolabel.resources import anchor_key_alias, event_mac_key_alias
from infra.cfn import get_att, ref, sub
from infra.iam import WILDCARD_ONLY, Statement, allow

# BatchGetItem: which of a slide's label streams moved past its projection, in one call
# (DynamoEventStore.streams_after, from the service's current labels).
EVENTS_APPEND = (
    "dynamodb:BatchGetItem",
    "dynamodb:ConditionCheckItem",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:Query",
)
EVENTS_READ = ("dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:Query")
STREAM_READ = (
    "dynamodb:DescribeStream",
    "dynamodb:GetRecords",
    "dynamodb:GetShardIterator",
    "dynamodb:ListStreams",
)


@dataclass(frozen=True)
class Grant:
    resource: str  # events | projections | data | batch | user_pool | ... (see _resources)
    actions: tuple[str, ...]
    keys: tuple[str, ...] = ()  # for data: the object key patterns
    why: str = ""  # set on platform rows (not called by our code)


@dataclass(frozen=True)
class Role:
    entries: tuple[str, ...]  # the modules the function or job runs
    factories: tuple[str, ...]  # what it takes from histolabel.composition
    grants: tuple[Grant, ...]
    platform: tuple[Grant, ...] = field(default=())
    # Modules the role's code imports but never runs as deployed, each with the reason (the
    # call-site scan does not follow them).
    skip: tuple[tuple[str, str], ...] = field(default=())


# Every role that appends events goes through HistoLabel.append_decided, which leaves a label
# mark (UpdateItem ADD on a MARKS# item) after an append that wrote labels: the import_labels
# job and the API do; the others never write labels but run the same code.
PROJECTIONS_READ_AND_MARK = (
    "dynamodb:BatchGetItem",
    "dynamodb:GetItem",
    "dynamodb:Query",
    "dynamodb:UpdateItem",
)

STREAM_CONSUMER = (
    Grant("events_stream", STREAM_READ, why="its event source mapping reads the events table's stream"),
    Grant("stream_failures", ("sqs:SendMessage",), why="the mapping sends records it gave up on here"),
)


def _job(spec: JobSpec) -> Role:
    """A job's role, from its row of the job table (histolabel/jobs.py: the S3 keys it uses)."""
    return Role(
        entries=(f"gpu_jobs.{spec.kind}",),
        factories=("service_from_env",),
        grants=(
            Grant("events", EVENTS_APPEND),
            Grant("event_mac_key", ("kms:GenerateDataKey",)),
            Grant("projections", PROJECTIONS_READ_AND_MARK),
            Grant("data", ("s3:GetObject",), spec.reads),
            Grant(
                "data",
                ("s3:AbortMultipartUpload", "s3:PutObject", *(("s3:DeleteObject",) if spec.deletes else ())),
                spec.writes,
            ),
            Grant("data_bucket", ("s3:ListBucket",)),
        ),
    )


ROLES: dict[str, Role] = {
    "fn:api": Role(
        entries=("app",),
        factories=("Services", "service_from_env", "submitter_from_env", "pool_from_env", "jwks_url"),
        grants=(
            Grant("events", EVENTS_APPEND),
            # PutItem: guided-queue leases (histolabel/adapters/dynamo_leases.py), conditional
            # puts of LEASE# items; UpdateItem: the label marks (ADD to MARKS# items) a label
            # command leaves for the review snapshot; the projections themselves stay the
            # projector's to write.
            Grant(
                "projections",
                (
                    "dynamodb:BatchGetItem",
                    "dynamodb:GetItem",
                    "dynamodb:PutItem",
                    "dynamodb:Query",
                    "dynamodb:UpdateItem",
                ),
            ),
            # Uploads of source slides go straight to S3 with URLs this role presigns; exports
            # too large for a response are written here (tagged, for the rule that expires them).
            Grant(
                "data",
                ("s3:AbortMultipartUpload", "s3:GetObject", "s3:ListMultipartUploadParts", "s3:PutObject"),
                ("projects/*",),
            ),
            # An import upload over the size limit is deleted before it reaches a job; a review
            # snapshot stored anew deletes the slides' rows the one it replaced named.
            Grant("data", ("s3:DeleteObject",), (f"{SLIDE}/imports/*", "projects/*/review/parts/*")),
            Grant("data_bucket", ("s3:ListBucket",)),
            Grant("batch", ("batch:DescribeJobs", "batch:SubmitJob")),
            # An owner cancels a job (the cancel route).
            Grant("batch_jobs", ("batch:TerminateJob",)),
            # AdminCreateUser: an owner invites a new member by email.
            Grant(
                "user_pool",
                ("cognito-idp:AdminCreateUser", "cognito-idp:AdminGetUser", "cognito-idp:ListUsers"),
            ),
            # Every appended event is MACed.
            Grant("event_mac_key", ("kms:GenerateDataKey",)),
            # An export anchors the heads it was made from, through the anchoring function.
            Grant("anchor_function", ("lambda:InvokeFunction",)),
        ),
        skip=(
            (
                "histolabel.runtime.anchorer_lambda",
                "deployed, HISTOLABEL_ANCHOR_FUNCTION is set and the API invokes the anchorer; it "
                "anchors in-process (and so signs) only in the local cloud",
            ),
        ),
        platform=(
            Grant(
                "data",
                ("s3:PutObjectTagging",),
                ("projects/*/exports/*",),
                why="put_object(Tagging=...) of large exports needs it beside s3:PutObject",
            ),
        ),
    ),
    "fn:projector": Role(
        entries=("handlers.projector",),
        factories=("service_from_env",),
        grants=(
            # It appends TrainingRequested when enough labels arrived (was read-only: AccessDenied).
            Grant("events", EVENTS_APPEND),
            Grant("event_mac_key", ("kms:GenerateDataKey",)),
            Grant(
                "projections",
                (
                    "dynamodb:BatchGetItem",
                    "dynamodb:DeleteItem",
                    "dynamodb:GetItem",
                    "dynamodb:PutItem",
                    "dynamodb:Query",
                    "dynamodb:UpdateItem",
                ),
            ),
        ),
        platform=STREAM_CONSUMER,
    ),
    "fn:trigger": Role(
        entries=("handlers.trigger",),
        factories=("service_from_env", "submitter_from_env"),
        grants=(
            Grant("events", EVENTS_APPEND),
            Grant("event_mac_key", ("kms:GenerateDataKey",)),
            Grant("projections", PROJECTIONS_READ_AND_MARK),
            Grant("batch", ("batch:DescribeJobs", "batch:SubmitJob")),
        ),
        platform=STREAM_CONSUMER,
    ),
    "fn:job_events": Role(
        entries=("handlers.job_events",),
        # The entry point itself is the composition root's job_events_handler.
        factories=("job_events_handler", "service_from_env", "submitter_from_env"),
        grants=(
            Grant("events", EVENTS_APPEND),
            Grant("event_mac_key", ("kms:GenerateDataKey",)),
            Grant("projections", PROJECTIONS_READ_AND_MARK),
            Grant("batch", ("batch:DescribeJobs", "batch:SubmitJob")),
        ),
    ),
    "fn:anchorer": Role(
        entries=("handlers.anchorer",),
        factories=("service_from_env",),
        grants=(
            # Append and GenerateDataKey: the scan counts the service's append path as reachable
            # (it matches method names); the anchorer itself only reads events.
            Grant("events", EVENTS_APPEND),
            Grant("event_mac_key", ("kms:GenerateDataKey",)),
            Grant("projections", PROJECTIONS_READ_AND_MARK),
            # It anchors only events whose MAC holds, and signs what it anchors.
            Grant("event_mac_key", ("kms:Decrypt",)),
            Grant("anchor_key", ("kms:GetPublicKey", "kms:Sign", "kms:Verify")),
            Grant("anchors", ("s3:GetObject", "s3:ListBucketVersions", "s3:PutObject")),
        ),
        skip=(
            (
                "histolabel.runtime.export_anchor_lambda",
                "the API's way of asking for an anchor: the anchorer itself never calls it",
            ),
        ),
    ),
    **{f"job:{spec.kind}": _job(spec) for spec in JOB_SPECS.values()},
}


def _arn(service: str, resource: str) -> dict[str, str]:
    return sub(f"arn:${{AWS::Partition}}:{service}:${{AWS::Region}}:${{AWS::AccountId}}:{resource}")


def _resources(settings: Settings, grant: Grant) -> tuple[list[Any], dict[str, Any]]:
    """The ARNs (and condition) a grant's resource kind stands for in this stage."""
    data = f"arn:${{AWS::Partition}}:s3:::{settings.data_bucket}"
    kind = grant.resource
    if kind == "events":
        return [_arn("dynamodb", f"table/{settings.events_table}")], {}
    if kind == "events_stream":
        return [_arn("dynamodb", f"table/{settings.events_table}/stream/*")], {}
    if kind == "projections":
        return [get_att("ProjectionsTable", "Arn")], {}
    if kind == "stream_failures":
        return [get_att("StreamFailures", "Arn")], {}
    if kind == "data":
        return [sub(f"{data}/{key}") for key in grant.keys], {}
    if kind == "data_bucket":
        return [sub(data)], {"StringLike": {"s3:prefix": ["projects/*", "weights/*"]}}
    if kind == "event_mac_key":
        return [_arn("kms", "key/*")], {
            "ForAnyValue:StringEquals": {"kms:ResourceAliases": [event_mac_key_alias(settings)]}
        }
    if kind == "anchor_key":
        return [_arn("kms", "key/*")], {
            "ForAnyValue:StringEquals": {"kms:ResourceAliases": [anchor_key_alias(settings)]}
        }
    if kind == "anchors":
        bucket = f"arn:${{AWS::Partition}}:s3:::{settings.anchors_bucket}"
        return [sub(bucket), sub(f"{bucket}/anchors/*")], {}
    if kind == "anchor_function":
        return [_arn("lambda", f"function:{settings.prefix}-anchorer")], {}
    if kind == "user_pool":
        return [_arn("cognito-idp", "userpool/${UserPoolId}")], {}
    if kind == "batch":
        definitions = [
            _arn("batch", f"job-definition/{settings.job_definition(kind)}*") for kind in JOB_SPECS
        ]
        return [ref("CpuJobQueue"), ref("GpuJobQueue"), *definitions], {}
    if kind == "batch_jobs":
        return [_arn("batch", "job/*")], {}
    raise KeyError(f"unknown resource kind {kind!r}")


def statements_for(role_name: str, settings: Settings) -> list[Statement]:
    """The role's policy statements: its rows, with wildcard-only actions on "*"."""
    role = ROLES[role_name]
    statements: list[Statement] = []
    for grant in (*role.grants, *role.platform):
        scoped = [a for a in grant.actions if a not in WILDCARD_ONLY]
        anywhere = [a for a in grant.actions if a in WILDCARD_ONLY]
        resources, condition = _resources(settings, grant)
        if scoped:
            statements.append(allow(scoped, resources, **condition))
        if anywhere:
            statements.append(allow(anywhere, ["*"]))
    return statements


def granted(role_name: str) -> dict[str, set[str]]:
    """resource kind -> actions the role's code rows grant (platform rows left out)."""
    out: dict[str, set[str]] = {}
    for grant in ROLES[role_name].grants:
        # A bucket's and a job's ARNs are their adapter's resource too (data, batch).
        kind = {"data_bucket": "data", "batch_jobs": "batch"}.get(grant.resource, grant.resource)
        out.setdefault(kind, set()).update(grant.actions)
    return out
