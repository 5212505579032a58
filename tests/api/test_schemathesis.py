"""Property-based run of the whole OpenAPI document against the app: no 5xx, and every response
matches its documented status, content type and schema. Half the cases aim at the seeded
project and slide, so bodies reach the commands, not only the 404 path."""

from __future__ import annotations

import pytest
import schemathesis
from app import app
from chalice.test import Client
from hypothesis import HealthCheck, Phase, settings
from schemathesis.specs.openapi.checks import ignored_auth, negative_data_rejection, positive_data_acceptance

from tests.api.wsgi import wsgi_app

schema = schemathesis.openapi.from_wsgi("/openapi.json", wsgi_app(Client(app)))


@pytest.fixture(scope="module")
def seeded(signer):
    from chalicelib.context import SERVICES

    from tests.api.conftest import POOL, RecordingSubmitter, directory
    from tests.unit.helpers import memory_service, seeded_project

    svc = memory_service()
    seeded_project(svc)
    SERVICES.service, SERVICES.submitter, SERVICES.pool = svc, RecordingSubmitter(), POOL
    SERVICES.jwks = lambda kid: signer.jwk if kid == signer.kid else None
    SERVICES.directory = directory
    yield {"Authorization": f"Bearer {signer.token('olivia', exp=2**31 - 1)}"}
    SERVICES.service = SERVICES.submitter = SERVICES.pool = SERVICES.jwks = SERVICES.directory = None


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms(case, seeded, cloud):
    params = case.path_parameters or {}
    excluded = [positive_data_acceptance]
    if "project_id" in params and hash(str(case.body)) % 2 == 0:
        params["project_id"] = "proj"
        if "slide_id" in params:
            params["slide_id"] = "s1"
        # The case was generated (maybe as negative data) for other path values.
        excluded.append(negative_data_rejection)
    case.call_and_validate(headers=seeded, excluded_checks=excluded)


@pytest.mark.slow
def test_api_conforms_across_calls(seeded, cloud):
    """The stateful phase: sequences of calls linked through their responses (ids a create
    returns, used by the next call), with negative data mixed in, each sequence on a freshly
    seeded project. Auth is the seeded owner's, so the invalid-auth check does not apply."""
    from chalicelib.context import SERVICES

    from tests.unit.helpers import memory_service, seeded_project

    class Workflow(schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            svc = memory_service()
            seeded_project(svc)
            SERVICES.service = svc

        def get_call_kwargs(self, case):
            return {"headers": seeded}

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            excluded = [ignored_auth, positive_data_acceptance]
            case.validate_response(
                response,
                additional_checks=additional_checks,
                transport_kwargs=kwargs,
                excluded_checks=excluded,
            )

    # No shrinking: the state carried between calls lives outside hypothesis, so a replay in a
    # shrink is not the same run; a failure is reported as found.
    Workflow.run(
        settings=settings(
            max_examples=10,
            stateful_step_count=5,
            deadline=None,
            phases=[Phase.generate],
            database=None,
            suppress_health_check=list(HealthCheck),
        )
    )
