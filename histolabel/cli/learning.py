"""`histolabel embed|train|predict --project P`: run the learning jobs through the job runner
(the local runner in the local cloud, AWS Batch otherwise) and wait for them."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from histolabel.cli.errors import CliError
from histolabel.composition import service_from_env
from histolabel.config import settings_from_env


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--project", required=True)
    p.add_argument(
        "--wait",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="wait for the job(s) to finish (default) or print the job id(s) at once",
    )


def add_embed_arguments(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("--slide", action="append", help="slide id (repeatable; default: every segmented slide)")
    p.add_argument("--kind", choices=["handcrafted", "patch", "foundation"], help="default: the project's")
    p.add_argument("--weights", help="foundation-model weights: local path or s3:// URI")


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("--user", default=settings_from_env().cli_user or "cli", help="who asks (a member)")
    p.add_argument("--site", default=settings_from_env().cli_site or "local")
    p.add_argument("--no-predict", action="store_true", help="train only")


def add_predict_arguments(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("--version", type=int, help="model version (default: the current one)")


def _wait(submitter: Any, job_ids: list[str], wait: bool, what: str) -> int:
    if not wait:
        print("\n".join(job_ids))
        return 0
    failed = 0
    for job_id in job_ids:
        while (status := submitter.status(job_id))["status"] not in ("SUCCEEDED", "FAILED"):
            time.sleep(0.5)
        if status["status"] == "FAILED":
            failed += 1
            print(
                f"error: {what} job {job_id} failed: {status.get('reason', 'unknown reason')}",
                file=sys.stderr,
            )
        else:
            print(job_id)
    return 1 if failed else 0


def embed(args: argparse.Namespace) -> int:
    from histolabel.composition import service_from_env, submitter_from_env
    from histolabel.jobs import job_name

    state = service_from_env().require_project(args.project)
    slides = args.slide or sorted(s for s, i in state.slides.items() if i.segmentation is not None)
    if not slides:
        raise CliError(f"project {args.project} has no segmented slide to embed")
    for s in slides:
        info = state.slides.get(s)
        if info is None:
            raise CliError(f"slide {s!r} is not registered in {args.project}")
        if info.segmentation is None:
            raise CliError(f"slide {s!r} is not segmented yet")
    kind = args.kind or state.settings.feature_kind
    if kind == "foundation" and not (args.weights or settings_from_env().foundation_weights):
        raise CliError("foundation features need --weights or HISTOLABEL_FOUNDATION_WEIGHTS")
    extra = ["--kind", kind, "--progress", "off"] + (["--weights", args.weights] if args.weights else [])
    submitter = submitter_from_env()
    ids = [
        submitter.submit(
            "embed", ["--project", args.project, "--slide", s, *extra], job_name("embed", args.project, s)
        )
        for s in slides
    ]
    return _wait(submitter, ids, args.wait, "embed")


def train(args: argparse.Namespace) -> int:
    """Ask for training (as --user), claim the request and submit the train job; a training
    trigger that sees the same request finds it claimed and submits nothing."""
    from histolabel.commands import CommandRejected
    from histolabel.composition import submitter_from_env
    from histolabel.events.catalogue import Actor
    from histolabel.jobs import job_name
    from histolabel.training_requests import claim_request, train_args

    svc = service_from_env()
    svc.require_project(args.project)
    try:
        svc.request_training(args.project, Actor(user=args.user, site=args.site))
    except CommandRejected as exc:
        raise CliError(exc.detail) from None
    # A manual request is refused while another is active, so the newest active one is ours
    # (a running training trigger may already have claimed it).
    runs = svc.project_state(args.project).training.values()
    active = [r for r in runs if r.status in ("requested", "started")]
    if not active:  # already finished by the trigger
        active = list(runs)
    request_id = max(active, key=lambda r: r.requested_at).request_id
    name = job_name("train", args.project, request_id)
    try:
        claimed = not claim_request(svc, args.project, request_id, name).duplicate
    except CommandRejected:
        claimed = False
    if not claimed:  # the training trigger took it first: follow its outcome instead
        return _follow(svc, args.project, request_id, args.wait)
    submitter = submitter_from_env()
    job_args = [*train_args(args.project, request_id), "--progress", "off"]
    if args.no_predict:
        job_args.append("--no-predict")
    try:
        job_id = submitter.submit("train", job_args, name)
    except Exception as exc:
        svc.record_job_event(
            args.project,
            "TrainingFailed",
            {"request_id": request_id, "reason": f"submit failed: {exc}"[:2000]},
            "cli",
        )
        raise CliError(f"could not submit the train job: {exc}") from None
    code = _wait(submitter, [job_id], args.wait, "train")
    if args.wait:
        run = svc.project_state(args.project).training[request_id]
        if run.status == "failed":
            print(f"training failed: {run.reason_failed}", file=sys.stderr)
            return 1
    return code


def _follow(svc: Any, project_id: str, request_id: str, wait: bool) -> int:
    print(f"training {request_id} runs through the training trigger", file=sys.stderr)
    if not wait:
        return 0
    while (run := svc.project_state(project_id).training[request_id]).status not in ("completed", "failed"):
        time.sleep(1.0)
    if run.status == "failed":
        print(f"training failed: {run.reason_failed}", file=sys.stderr)
        return 1
    print(f"model v{run.model_version}")
    return 0


def predict(args: argparse.Namespace) -> int:
    from histolabel.composition import submitter_from_env
    from histolabel.jobs import job_name

    state = service_from_env().require_project(args.project)
    if state.current_model is None and args.version is None:
        raise CliError(f"project {args.project} has no trained model yet; run `histolabel train`")
    if args.version is not None and args.version < 1:
        raise CliError("--version must be at least 1")
    job_args = ["--project", args.project, "--progress", "off"]
    if args.version is not None:
        job_args += ["--version", str(args.version)]
    submitter = submitter_from_env()
    return _wait(
        submitter,
        [submitter.submit("predict", job_args, job_name("predict", args.project))],
        args.wait,
        "predict",
    )


def add_commands(sub: Any) -> None:
    for name, adder, func, text in (
        ("embed", add_embed_arguments, embed, "compute per-superpixel features"),
        ("train", add_train_arguments, train, "train the project's model"),
        ("predict", add_predict_arguments, predict, "predict every superpixel"),
    ):
        p = sub.add_parser(name, help=text)
        adder(p)
        p.set_defaults(func=func)
