"""The `histolabel` command line, a module per area; `entry.main` wires them and is the console
script's entry point (`histolabel.cli:main`, `python -m histolabel.cli`). Every command refuses
with `errors.CliError` (message and exit status), reported once, in `entry.main`."""

from histolabel.cli.entry import main

__all__ = ["main"]
