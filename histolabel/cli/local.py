"""`histolabel local up|down|status`: the whole product on this machine (histolabel/localcloud/)."""

from __future__ import annotations

import argparse
from typing import Any


def local(args: argparse.Namespace) -> int:
    from histolabel.cli.demo import load_demo
    from histolabel.localcloud import up as stack

    if args.action == "up":
        stack.up(args.cloud_port, args.api_port, args.web_port, args.stage,
                 demo=None if args.no_demo else load_demo, endpoint=args.endpoint)  # fmt: skip
        return 0
    if args.action == "down":
        return stack.down()
    return stack.status()


def add_commands(sub: Any) -> None:
    p = sub.add_parser("local", help="run the whole product on this machine")
    p.add_argument("action", choices=["up", "down", "status"])
    p.add_argument("--cloud-port", type=int, default=4566)
    p.add_argument("--api-port", type=int, default=8000)
    p.add_argument("--web-port", type=int, default=8080)
    p.add_argument("--stage", default="local")
    p.add_argument("--no-demo", action="store_true", help="skip loading the demo project")
    p.add_argument(
        "--endpoint", help="use this cloud (e.g. LocalStack at http://127.0.0.1:4566) instead of moto"
    )
    p.set_defaults(func=local)
