"""`histolabel audit replay|verify|history` and `histolabel projections rebuild`: the audit
package (histolabel/audit/) run against the project's store."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from histolabel.cli.errors import CliError
from histolabel.composition import service_from_env


def _superpixel(value: str) -> tuple[str, int]:
    slide, _, sp = value.rpartition(":")
    if not slide or not sp.isdigit():
        raise argparse.ArgumentTypeError("expected SLIDE:ID, e.g. s1:42")
    return slide, int(sp)


def replay(args: argparse.Namespace) -> int:
    from histolabel.audit.as_of import as_of_instant
    from histolabel.audit.replay import Cutoff, render, replay

    if args.seq is not None and not args.slide:
        raise CliError("--seq needs --slide: sequence numbers are per slide's label stream")
    try:
        as_of = as_of_instant(args.as_of) if args.as_of else None
    except ValueError:
        raise CliError(f"--as-of {args.as_of!r} is not an ISO-8601 time") from None
    svc = service_from_env()
    svc.require_project(args.project)
    rows = replay(svc, args.project, Cutoff(as_of=as_of, slide=args.slide, seq=args.seq))
    sys.stdout.write(render(rows, args.format))
    return 0


def verify(args: argparse.Namespace) -> int:
    from histolabel.audit.verify import verify

    svc = service_from_env()
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


def history(args: argparse.Namespace) -> int:
    from histolabel.audit.history import project_history

    svc = service_from_env()
    svc.require_project(args.project)
    rows = project_history(svc, args.project, args.user, args.superpixel)
    if args.format == "json":
        print(json.dumps(rows, indent=1))
    else:
        for r in rows:
            print(f"{r['at']}  {r['user']:<14} {r['site']:<10} {r['type']:<22} {r['summary']}")
    return 0


def rebuild(args: argparse.Namespace) -> int:
    from histolabel.audit.rebuild import rebuild

    svc = service_from_env()
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


def add_commands(sub: Any) -> None:
    audit = sub.add_parser("audit", help="replay, verify and list the label history").add_subparsers(
        dest="audit_command", required=True
    )
    rp = audit.add_parser("replay", help="the label state at a moment")
    rp.add_argument("--project", required=True)
    rp.add_argument("--as-of", help="ISO-8601 time; events at or before it count")
    rp.add_argument("--slide", help="with --seq: the slide whose label stream --seq counts")
    rp.add_argument("--seq", type=int, help="the state after this event of the slide's label stream")
    rp.add_argument("--format", choices=["csv", "json"], default="csv")
    rp.set_defaults(func=replay)
    vf = audit.add_parser("verify", help="check every hash chain and that projections equal a fresh fold")
    vf.add_argument("--project", required=True)
    vf.set_defaults(func=verify)
    hi = audit.add_parser("history", help="who did what, when")
    hi.add_argument("--project", required=True)
    hi.add_argument("--user")
    hi.add_argument("--superpixel", type=_superpixel, help="SLIDE:ID")
    hi.add_argument("--format", choices=["text", "json"], default="text")
    hi.set_defaults(func=history)

    proj = sub.add_parser("projections", help="projection maintenance").add_subparsers(
        dest="proj_command", required=True
    )
    rb = proj.add_parser("rebuild", help="fold the projections from zero")
    rb.add_argument("--project", required=True)
    rb.add_argument(
        "--check", action="store_true", help="only compare the fresh fold with the live projection"
    )
    rb.set_defaults(func=rebuild)
