"""What every contract suite shares: a registry of named checks and a runner that reports which
checks a store fails (to prove that a broken store is caught)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


class Checks(dict[str, Callable[[Any], None]]):
    def check(self, fn: Callable[[Any], None]) -> Callable[[Any], None]:
        self[fn.__name__] = fn
        return fn

    def run_all(self, store_factory: Callable[[], Any]) -> dict[str, BaseException | None]:
        """Each check's failure (None where it passed)."""
        outcome: dict[str, BaseException | None] = {}
        for name, fn in self.items():
            try:
                fn(store_factory())
                outcome[name] = None
            except (Exception, pytest.fail.Exception) as exc:  # a broken store may fail by raising anything
                outcome[name] = exc
        return outcome
