"""The `histolabel` command."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from pydantic import ValidationError

from histolabel.composition import service_from_env


class CliError(Exception):
    pass


def _service() -> Any:

    return service_from_env()


def _superpixel(value: str) -> tuple[str, int]:
    slide, _, sp = value.rpartition(":")
    if not slide or not sp.isdigit():
        raise argparse.ArgumentTypeError("expected SLIDE:ID, e.g. s1:42")
    return slide, int(sp)


def cmd_audit_replay(args: argparse.Namespace) -> int:
    from histolabel.audit.as_of import as_of_instant
    from histolabel.audit.replay import Cutoff, render, replay

    if args.seq is not None and not args.slide:
        raise CliError("--seq needs --slide: sequence numbers are per slide's label stream")
    try:
        as_of = as_of_instant(args.as_of) if args.as_of else None
    except ValueError:
        raise CliError(f"--as-of {args.as_of!r} is not an ISO-8601 time") from None
    svc = _service()
    svc.require_project(args.project)
    rows = replay(svc, args.project, Cutoff(as_of=as_of, slide=args.slide, seq=args.seq))
    sys.stdout.write(render(rows, args.format))
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from histolabel.audit.verify import verify

    svc = _service()
    svc.require_project(args.project)
    result = verify(svc, args.project)
    for finding in result.chain_findings:
        print(f"TAMPERED {finding}")
    for finding in result.anchor_findings:
        print(f"TAMPERED {finding}")
    for problem in result.projection_findings:
        print(f"MISMATCH {problem}")
    anchored = f"{result.anchors_read} anchor(s) read, last good: {result.last_good_anchor or 'none'}"
    for pending in result.unanchored:
        print(f"unanchored {pending}")
    if result.ok:
        print(f"ok: {result.events_checked} events, every hash chain intact, projections equal a fresh fold; "
              f"{anchored}")  # fmt: skip
        return 0
    print(anchored)
    return 1


def cmd_audit_history(args: argparse.Namespace) -> int:
    from histolabel.audit.history import project_history

    svc = _service()
    svc.require_project(args.project)
    rows = project_history(svc, args.project, args.user, args.superpixel)
    if args.format == "json":
        print(json.dumps(rows, indent=1))
    else:
        for r in rows:
            print(f"{r['at']}  {r['user']:<14} {r['site']:<10} {r['type']:<22} {r['summary']}")
    return 0


def cmd_rebuild(args: argparse.Namespace) -> int:
    from histolabel.audit.rebuild import rebuild

    svc = _service()
    svc.require_project(args.project)
    events, differences = rebuild(svc, args.project, write=not args.check)
    for d in differences:
        print(f"differs: {d}")
    if args.check:
        verdict = "DIFFER FROM" if differences else "equal"
        print(f"folded {events} events: live projections {verdict} the fold")
        return 1 if differences else 0
    print(f"rebuilt from {events} events" + (" (the live projection had drifted)" if differences else ""))
    return 0


def cmd_local(args: argparse.Namespace) -> int:
    from histolabel.localcloud import up as local

    if args.action == "up":
        local.up(args.cloud_port, args.api_port, args.web_port, args.stage, demo=not args.no_demo,
                 endpoint=args.endpoint)  # fmt: skip
        return 0
    if args.action == "down":
        return local.down()
    return local.status()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="histolabel", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    local = sub.add_parser("local", help="run the whole product on this machine")
    local.add_argument("action", choices=["up", "down", "status"])
    local.add_argument("--cloud-port", type=int, default=4566)
    local.add_argument("--api-port", type=int, default=8000)
    local.add_argument("--web-port", type=int, default=8080)
    local.add_argument("--stage", default="local")
    local.add_argument("--no-demo", action="store_true", help="skip loading the demo project")
    local.add_argument(
        "--endpoint", help="use this cloud (e.g. LocalStack at http://127.0.0.1:4566) instead of moto"
    )
    local.set_defaults(func=cmd_local)

    audit = sub.add_parser("audit", help="replay, verify and list the label history").add_subparsers(
        dest="audit_command", required=True
    )
    rp = audit.add_parser("replay", help="the label state at a moment")
    rp.add_argument("--project", required=True)
    rp.add_argument("--as-of", help="ISO-8601 time; events at or before it count")
    rp.add_argument("--slide", help="with --seq: the slide whose label stream --seq counts")
    rp.add_argument("--seq", type=int, help="the state after this event of the slide's label stream")
    rp.add_argument("--format", choices=["csv", "json"], default="csv")
    rp.set_defaults(func=cmd_audit_replay)
    vf = audit.add_parser("verify", help="check every hash chain and that projections equal a fresh fold")
    vf.add_argument("--project", required=True)
    vf.set_defaults(func=cmd_audit_verify)
    hi = audit.add_parser("history", help="who did what, when")
    hi.add_argument("--project", required=True)
    hi.add_argument("--user")
    hi.add_argument("--superpixel", type=_superpixel, help="SLIDE:ID")
    hi.add_argument("--format", choices=["text", "json"], default="text")
    hi.set_defaults(func=cmd_audit_history)

    proj = sub.add_parser("projections", help="projection maintenance").add_subparsers(
        dest="proj_command", required=True
    )
    rb = proj.add_parser("rebuild", help="fold the projections from zero")
    rb.add_argument("--project", required=True)
    rb.add_argument(
        "--check", action="store_true", help="only compare the fresh fold with the live projection"
    )
    rb.set_defaults(func=cmd_rebuild)

    _add_job_commands(sub)
    return parser


def _add_job_commands(sub: Any) -> None:
    from histolabel.segmentation import cli as segment_cli
    from histolabel.slides import cli as slides_cli

    slides = sub.add_parser("slides", help="register and ingest slides").add_subparsers(
        dest="slides_command", required=True
    )
    add = slides.add_parser("add", help="upload, register and ingest a slide")
    slides_cli.add_arguments(add)
    add.set_defaults(func=slides_cli.add_slide)
    seg = sub.add_parser("segment", help="run tiled SLIC on a slide through the job runner")
    segment_cli.add_arguments(seg)
    seg.set_defaults(func=segment_cli.segment_slide)
    from histolabel.learning import cli as learning_cli

    for name, adder, func, text in (
        ("embed", learning_cli.add_embed_arguments, learning_cli.embed, "compute per-superpixel features"),
        ("train", learning_cli.add_train_arguments, learning_cli.train, "train the project's model"),
        ("predict", learning_cli.add_predict_arguments, learning_cli.predict, "predict every superpixel"),
    ):
        p = sub.add_parser(name, help=text)
        adder(p)
        p.set_defaults(func=func)
    from histolabel.imports import cli as import_cli

    import_cli.add_arguments(sub)
    import_cli.add_export_arguments(sub)
    sim = sub.add_parser(
        "simulate",
        help="learning curves on labeled images: guided (each metric) vs random order",
        add_help=False,
    )
    sim.add_argument("args", nargs=argparse.REMAINDER)
    sim.set_defaults(func=_simulate)


def _simulate(args: argparse.Namespace) -> int:
    from histolabel.learning.curves import main as curves

    rest = args.args[1:] if args.args[:1] == ["--"] else args.args
    return curves(rest, prog="histolabel simulate")


def main(argv: list[str] | None = None) -> int:
    from histolabel.adapters.s3 import S3PathError
    from histolabel.commands import CommandRejected

    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["simulate"]:
        # Its own parser takes every option (argparse.REMAINDER would miss a leading --help).
        argv = ["simulate", "--", *argv[1:]]
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command != "local":
        from histolabel.localcloud.up import adopt_local_stack

        adopt_local_stack()
    try:
        code: int = args.func(args)
        return code
    except CommandRejected as err:
        print(f"error: {err.detail}" + (f" (field: {err.field})" if err.field else ""), file=sys.stderr)
    except ValidationError as err:
        first = err.errors()[0]
        print(f"error: {'.'.join(map(str, first['loc']))}: {first['msg']}", file=sys.stderr)
    except (CliError, S3PathError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
    except Exception as err:
        known = {
            "SlideCommandError",
            "SegmentCommandError",
            "JobError",
            "LocalStackError",
            "LearningCommandError",
            "ImportCommandError",
        }
        if type(err).__name__ not in known:
            raise
        print(f"error: {err}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
