"""The one error type the CLI turns into a message and an exit code (never a traceback)."""

from __future__ import annotations


class InfraError(Exception):
    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class UsageError(InfraError):
    """Bad input from the admin: exit 2, nothing was touched."""

    def __init__(self, message: str) -> None:
        super().__init__(message, exit_code=2)
