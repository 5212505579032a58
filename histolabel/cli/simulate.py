"""`histolabel simulate ...`: learning curves on labeled images, guided (each metric) vs random
order (histolabel/learning/curves.py parses its own options)."""

from __future__ import annotations

import argparse
from typing import Any


def simulate(args: argparse.Namespace) -> int:
    from histolabel.learning.curves import main as curves

    rest = args.args[1:] if args.args[:1] == ["--"] else args.args
    return curves(rest, prog="histolabel simulate")


def add_commands(sub: Any) -> None:
    sim = sub.add_parser(
        "simulate",
        help="learning curves on labeled images: guided (each metric) vs random order",
        add_help=False,
    )
    sim.add_argument("args", nargs=argparse.REMAINDER)
    sim.set_defaults(func=simulate)
