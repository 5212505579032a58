from __future__ import annotations

from tests.integration.conftest import poller, svc  # noqa: F401  (the same fixtures)
