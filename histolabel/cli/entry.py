"""The `histolabel` command: every area's subcommands, and the one place a refusal becomes
`error: ...` on stderr and a non-zero exit (no traceback)."""

from __future__ import annotations

import argparse
import sys

import histolabel.cli.audit as audit
import histolabel.cli.export as export
import histolabel.cli.imports as imports
import histolabel.cli.learning as learning
import histolabel.cli.local as local
import histolabel.cli.segment as segment
import histolabel.cli.simulate as simulate
import histolabel.cli.slides as slides
from histolabel.cli.errors import as_cli_error

# Each adds its subcommands (in this order in --help), each with `func(args) -> exit status`.
COMMANDS = (local, audit, slides, segment, learning, imports, export, simulate)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="histolabel", description="The `histolabel` command.")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMANDS:
        module.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["simulate"]:
        # Its own parser takes every option (argparse.REMAINDER would miss a leading --help).
        argv = ["simulate", "--", *argv[1:]]
    args = build_parser().parse_args(argv)
    if args.command != "local":
        from histolabel.localcloud.up import adopt_local_stack

        adopt_local_stack()
    try:
        code: int = args.func(args)
        return code
    except Exception as exc:
        err = as_cli_error(exc)
        if err is None:
            raise
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code


if __name__ == "__main__":
    sys.exit(main())
