"""The CLI's one error: a refusal printed as one line on stderr, with its exit status."""

from __future__ import annotations


class CliError(Exception):
    """Raised by a command for input it refuses or a state it cannot act on; `main` prints
    `error: <message>` and exits with `exit_code` (no traceback)."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message


def as_cli_error(exc: BaseException) -> CliError | None:
    """The refusals of the layers below, as the CLI reports them (None: a bug, let it show).
    Imported here: they are heavy, and the CLI's help needs none of them."""
    from pydantic import ValidationError

    from gpu_jobs.common import JobError
    from histolabel.adapters.s3 import S3PathError
    from histolabel.commands import CommandRejected
    from histolabel.localcloud.up import LocalStackError

    if isinstance(exc, CliError):
        return exc
    if isinstance(exc, CommandRejected):
        return CliError(exc.detail + (f" (field: {exc.field})" if exc.field else ""))
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        return CliError(f"{'.'.join(map(str, first['loc']))}: {first['msg']}")
    if isinstance(exc, S3PathError | FileNotFoundError | JobError | LocalStackError):
        return CliError(str(exc))
    return None
