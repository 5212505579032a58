"""`python -m infra deploy|status|destroy|add-user|synth|package`: the cloud admin's commands."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError

from infra.errors import InfraError

LAMBDA_PYTHON = "3.12"  # infra.package.LAMBDA_PYTHON, without importing the packager for --help


def _echo(message: str) -> None:
    print(message, flush=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m infra", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def stage_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--stage", required=True, help="stack name part: 2-21 of a-z, 0-9, '-'")
        p.add_argument("--region", help="AWS region (default: AWS_REGION)")

    p = sub.add_parser("deploy", help="create or update the stage's stacks, then print its URLs")
    stage_args(p)
    p.add_argument(
        "--image-tag", help="tag of a job image already in ECR (default: build the image of this tree)"
    )
    p.add_argument("--no-build-images", action="store_true", help="refuse instead of building missing images")
    p.add_argument("--cpu-max-vcpus", type=int, default=64)
    p.add_argument("--gpu-max-vcpus", type=int, default=16)
    p.add_argument("--lambda-python", default=LAMBDA_PYTHON, help=argparse.SUPPRESS)
    p.add_argument("--app", type=Path, help="the Chalice app file (default functions/app.py)")
    p.add_argument("--skip-lint", action="store_true", help="do not run cfn-lint first")
    p.add_argument("--subnets", default="", help="comma-separated subnet ids for Batch (default: a new VPC)")
    p.add_argument("--security-group", default="", help="with --subnets: the Batch instances' security group")
    p.add_argument(
        "--hosted-ui-url",
        default="",
        help="Cognito hosted UI authorize URL (implicit grant back to the web app) to offer for sign-in",
    )

    p = sub.add_parser("status", help="the stage's stacks, their state and outputs")
    stage_args(p)

    p = sub.add_parser("destroy", help="remove the stage; keeps the data unless --delete-data")
    stage_args(p)
    p.add_argument("--delete-data", action="store_true", help="also delete events, slide data and users")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation of --delete-data")

    p = sub.add_parser("add-user", help="create a Cognito user and add them to a project with a role")
    stage_args(p)
    p.add_argument("--email", required=True)
    p.add_argument("--project", required=True)
    p.add_argument("--role", required=True, choices=["owner", "annotator", "reviewer", "auditor"])
    p.add_argument("--site", required=True, help="the new member's site (institution)")
    p.add_argument("--by", required=True, help="an owner of the project (email or user id) adding them")
    p.add_argument("--by-site", default="admin", help="the adding owner's site")
    p.add_argument("--user-pool-id", help="default: the stage's pool, from its foundation stack")

    p = sub.add_parser("package", help="build every function's artifact and DIR/manifest.json")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--python", default=LAMBDA_PYTHON, help="Python version the zips' wheels are built for")

    sub.add_parser("job-requirements", help="rewrite gpu_jobs/requirements-job.txt from the lock")

    p = sub.add_parser("synth", help="write the templates as JSON (for review), touching nothing")
    stage_args(p)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--app", type=Path)
    return parser


def _package(out: Path, python: str) -> None:
    from infra.package import ZIP_LIMIT_BYTES, package

    manifest = package(out, python_version=python)
    for fn in manifest["functions"]:  # type: ignore[attr-defined]
        limit = f" of {ZIP_LIMIT_BYTES / 2**20:.0f} MB" if fn["package_type"] == "Zip" else " (build context)"
        _echo(
            f"{fn['name']}: {fn['package_type']} {fn['artifact']} "
            f"{fn['unzipped_bytes'] / 2**20:.1f} MB unzipped{limit}, handler {fn['handler']}"
        )
    _echo(f"wrote {out / 'manifest.json'}")


def run(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "package":
        _package(args.out, args.python)
        return 0
    if args.command == "job-requirements":
        from infra.package import JOB_REQUIREMENTS, job_requirements

        JOB_REQUIREMENTS.write_text(job_requirements())
        _echo(f"wrote {JOB_REQUIREMENTS}")
        return 0
    from infra.target import settings_for

    settings = settings_for(args.stage, args.region)
    if args.command == "deploy":
        from infra.operations import DeployOptions, deploy

        options = DeployOptions(
            image_tag=args.image_tag,
            build_images=not args.no_build_images,
            cpu_max_vcpus=args.cpu_max_vcpus,
            gpu_max_vcpus=args.gpu_max_vcpus,
            lambda_python=args.lambda_python,
            run_lint=not args.skip_lint,
            subnets=[x for x in args.subnets.split(",") if x],
            security_group=args.security_group,
            hosted_ui_url=args.hosted_ui_url,
        )
        if args.app:
            options.app_path = args.app
        report = deploy(settings, options, _echo)
        _echo("no changes: the stage is as deployed" if not report.changed else "done")
        if report.skipped:
            _echo("not created here (validated by cfn-lint):")
            for item in report.skipped:
                _echo(f"  {item}")
        for key in ("WebUrl", "ApiUrl", "UserPoolId", "UserPoolClientId", "JobRepositoryUri"):
            _echo(f"{key}: {report.outputs.get(key, '(not created in the emulator)')}")
    elif args.command == "status":
        from infra.operations import status

        for name, info in status(settings).items():
            _echo(
                f"{name}: {info['status']}" + (f" (updated {info['updated']})" if "updated" in info else "")
            )
            for key, value in sorted(info["outputs"].items()):
                _echo(f"  {key}: {value}")
    elif args.command == "destroy":
        from infra.operations import destroy

        if args.delete_data and not args.yes:
            answer = input(
                f"delete ALL data of stage {settings.stage!r} (events, slides, users)? type the stage: "
            )
            if answer.strip() != settings.stage:
                print("not confirmed; nothing deleted", file=sys.stderr)
                return 1
        destroy(settings, delete_data=args.delete_data, echo=_echo)
    elif args.command == "add-user":
        from infra.users import add_user, user_pool_id

        member = add_user(
            settings,
            email=args.email,
            project=args.project,
            role=args.role,
            site=args.site,
            by=args.by,
            by_site=args.by_site,
            pool=user_pool_id(settings, args.user_pool_id),
        )
        verb = "created and added" if member.created else "added (existing user)"
        _echo(f"{verb} {member.email} as {args.role} of {args.project}; user id {member.user_id}")
    elif args.command == "synth":
        from infra.api import DEFAULT_APP, load_app, swagger_for
        from infra.stacks import templates

        args.out.mkdir(parents=True, exist_ok=True)
        for name, template in templates(settings, swagger_for(load_app(args.app or DEFAULT_APP))).items():
            (args.out / f"{name}.json").write_text(json.dumps(template, indent=2, sort_keys=True))
            _echo(f"wrote {args.out / name}.json")
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        return run(argv)
    except InfraError as err:
        print(f"error: {err.message}", file=sys.stderr)
        return err.exit_code
    except (ClientError, BotoCoreError, ResponseParserError) as err:
        hint = (
            " (see docs/deploy.md for the permissions a deploying admin needs)"
            if "AccessDenied" in str(err)
            else ""
        )
        print(f"error: AWS refused a call: {err}{hint}", file=sys.stderr)
        print("run `python -m infra status --stage ...` to see where the stacks stand", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: run `python -m infra status` to see where the stacks stand", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
