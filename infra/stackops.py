"""CloudFormation operations on one stack: change-set deploys that are no-ops when nothing
changed, waits that report failures with their reasons, and deletes."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError

from infra.errors import InfraError

Echo = Callable[[str], None]
TEMPLATE_BODY_LIMIT = 51_200
_NO_CHANGES = ("didn't contain changes", "No updates are to be performed")
_POLL_S = 2.0


@dataclass
class StackResult:
    name: str
    changed: bool
    status: str
    outputs: dict[str, str] = field(default_factory=dict)


def _error_message(err: ClientError | BotoCoreError | ResponseParserError) -> str:
    if not isinstance(err, ClientError):
        # The emulator sometimes answers in another protocol's error format; keep its words.
        text = str(err)
        return text.split("received.", 1)[-1].strip() if "received." in text else text
    error = err.response.get("Error", {})
    return f"{error.get('Code', 'Error')}: {error.get('Message', str(err))}"


def describe(cfn: Any, name: str) -> dict[str, Any] | None:
    try:
        stacks = cfn.describe_stacks(StackName=name)["Stacks"]
    except ClientError as err:
        if "does not exist" in str(err):
            return None
        raise InfraError(f"cannot read stack {name}: {_error_message(err)}") from None
    except (BotoCoreError, ResponseParserError) as err:
        raise InfraError(f"cannot read stack {name}: {_error_message(err)}") from None
    return stacks[0] if stacks else None


def outputs_of(stack: dict[str, Any] | None) -> dict[str, str]:
    return {o["OutputKey"]: o["OutputValue"] for o in (stack or {}).get("Outputs") or []}


def _failure_reasons(cfn: Any, name: str, since: float) -> list[str]:
    try:
        events = cfn.describe_stack_events(StackName=name)["StackEvents"]
    except ClientError:
        return []
    reasons = []
    for event in events:
        stamp = event.get("Timestamp")
        if stamp is not None and stamp.timestamp() < since - 5:
            continue
        if event.get("ResourceStatus", "").endswith("FAILED") and event.get("ResourceStatusReason"):
            reasons.append(f"{event['LogicalResourceId']}: {event['ResourceStatusReason']}")
    return reasons[::-1]


def wait(cfn: Any, name: str, since: float, timeout_s: float = 3600) -> dict[str, Any] | None:
    """Poll until the stack leaves every *_IN_PROGRESS state; None once it is deleted."""
    deadline = time.monotonic() + timeout_s
    while True:
        stack = describe(cfn, name)
        if stack is None or stack["StackStatus"] == "DELETE_COMPLETE":
            return None
        if not stack["StackStatus"].endswith("_IN_PROGRESS"):
            return stack
        if time.monotonic() > deadline:
            raise InfraError(
                f"stack {name} is still {stack['StackStatus']} after {timeout_s:.0f} s; check the console"
            )
        time.sleep(_POLL_S)


def _template_source(template: dict[str, Any], upload: Callable[[str, bytes], str] | None) -> dict[str, str]:
    body = json.dumps(template, sort_keys=True, separators=(",", ":"))
    if len(body) <= TEMPLATE_BODY_LIMIT:
        return {"TemplateBody": body}
    if upload is None:
        raise InfraError(
            f"template is {len(body)} bytes, above CloudFormation's inline limit, and no bucket to stage it"
        )
    return {"TemplateURL": upload(body, body.encode())}


def delete(cfn: Any, name: str, echo: Echo) -> None:
    if describe(cfn, name) is None:
        echo(f"{name}: not there, nothing to delete")
        return
    since = time.time()
    echo(f"{name}: deleting")
    try:
        cfn.delete_stack(StackName=name)
        stack = wait(cfn, name, since)
    except (ClientError, BotoCoreError, ResponseParserError) as err:
        raise InfraError(
            f"{name}: delete failed: {_error_message(err)}; see `python -m infra status` for what is left"
        ) from None
    if stack is not None:
        reasons = "; ".join(_failure_reasons(cfn, name, since)) or stack.get("StackStatusReason", "")
        raise InfraError(f"{name}: delete ended in {stack['StackStatus']}: {reasons}")
    echo(f"{name}: deleted")


def _deployed(cfn: Any, name: str, stack: dict[str, Any]) -> tuple[Any, dict[str, str]]:
    body = cfn.get_template(StackName=name, TemplateStage="Original")["TemplateBody"]
    template = json.loads(body) if isinstance(body, str) else body
    parameters = {p["ParameterKey"]: _list_value(p["ParameterValue"]) for p in stack.get("Parameters") or []}
    return template, parameters


def _list_value(value: str) -> str:
    """The emulator echoes a CommaDelimitedList as a Python list's repr; AWS as sent."""
    if value.startswith("['") and value.endswith("']"):
        return ",".join(part.strip().strip("'") for part in value[1:-1].split(","))
    return value


def deploy(
    cfn: Any,
    name: str,
    template: dict[str, Any],
    parameters: dict[str, str],
    echo: Echo,
    *,
    upload: Callable[[str, bytes], str] | None = None,
    tags: dict[str, str] | None = None,
) -> StackResult:
    """Create or update `name`; when template and parameters equal the deployed ones,
    nothing is sent (CloudFormation would also refuse an empty update)."""
    existing = describe(cfn, name)
    if existing is not None and existing["StackStatus"] in ("ROLLBACK_COMPLETE", "REVIEW_IN_PROGRESS"):
        # A first create that failed (or was never executed) can only be deleted.
        echo(f"{name}: removing the empty shell of an earlier failed create")
        delete(cfn, name, echo)
        existing = None
    if existing is not None and existing["StackStatus"].endswith("_IN_PROGRESS"):
        raise InfraError(f"{name} is busy ({existing['StackStatus']}); wait for it to finish and rerun")
    wanted = json.loads(json.dumps(template))
    what = ""
    if existing is not None:
        old_template, old_parameters = _deployed(cfn, name, existing)
        if (old_template, old_parameters) == (wanted, parameters):
            echo(f"{name}: no changes")
            return StackResult(name, False, existing["StackStatus"], outputs_of(existing))
        changed = sorted(
            k for k in {*parameters, *old_parameters} if parameters.get(k) != old_parameters.get(k)
        )
        changed += sorted(
            k
            for k in {*wanted["Resources"], *old_template.get("Resources", {})}
            if wanted["Resources"].get(k) != old_template.get("Resources", {}).get(k)
        )
        what = f" ({', '.join(changed) or 'template'})"
    common: dict[str, Any] = {
        "StackName": name,
        "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in sorted(parameters.items())],
        "Capabilities": ["CAPABILITY_NAMED_IAM"],
        "Tags": [{"Key": k, "Value": v} for k, v in (tags or {}).items()],
        **_template_source(template, upload),
    }
    creating = existing is None
    since = time.time()
    echo(f"{name}: {'creating' if creating else 'updating'}{what}")
    try:
        if existing is None:
            # A failed create deletes what it made: never a half-made stack.
            stack_id = cfn.create_stack(OnFailure="DELETE", **common)["StackId"]
        else:
            stack_id = existing["StackId"]
            cfn.update_stack(**common)
        stack = wait(cfn, stack_id, since)
    except (ClientError, BotoCoreError, ResponseParserError) as err:
        message = _error_message(err)
        if any(marker in message for marker in _NO_CHANGES):
            echo(f"{name}: no changes")
            return StackResult(name, False, existing["StackStatus"] if existing else "", outputs_of(existing))
        try:
            stack = describe(cfn, name)
        except InfraError:
            stack = {"StackStatus": "UNKNOWN"}
        if stack is None and creating:
            raise InfraError(
                f"{name}: CloudFormation refused to create it: {message}. Nothing was made."
            ) from None
        status = stack["StackStatus"] if stack else "absent"
        if creating and stack is not None:
            raise InfraError(_remove_failed_create(cfn, name, status, message, echo)) from None
        raise InfraError(_half_made(name, status, message, creating)) from None
    status = stack["StackStatus"] if stack else "DELETE_COMPLETE"
    if status not in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
        reasons = "; ".join(_failure_reasons(cfn, stack_id, since)) or (stack or {}).get(
            "StackStatusReason", ""
        )
        raise InfraError(_half_made(name, status, reasons, creating))
    echo(f"{name}: {status}")
    return StackResult(name, True, status, outputs_of(stack))


def _remove_failed_create(cfn: Any, name: str, status: str, reason: str, echo: Echo) -> str:
    """A create the service aborted without rolling back: delete what it made, and say so."""
    echo(f"{name}: create failed in {status}; deleting what it made")
    try:
        delete(cfn, name, echo)
    except (ClientError, BotoCoreError, ResponseParserError, InfraError) as err:
        return (
            f"{name}: deploy failed: {reason}. Removing the half-made stack also failed ({err}); "
            "it is left in place: remove it with `python -m infra destroy`"
        )
    return f"{name}: deploy failed: {reason}. The half-made stack was deleted; nothing is left."


def _half_made(name: str, status: str, reasons: str, creating: bool) -> str:
    if status == "ROLLBACK_COMPLETE" or (creating and status == "DELETE_COMPLETE"):
        after = "CloudFormation rolled it back; no resources were kept (rerun deploy after fixing the cause)"
    elif status == "UPDATE_ROLLBACK_COMPLETE":
        after = "CloudFormation rolled it back to the previous version, which is still running"
    else:
        after = (
            f"the stack is left in {status} and may hold some resources: "
            "fix the cause and rerun deploy, or remove it with `python -m infra destroy`"
        )
    return f"{name}: deploy failed ({status}): {reasons}. {after}"
