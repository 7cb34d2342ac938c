"""Schemathesis against the OpenAPI document with a valid token of each role: no server errors and
no answer that differs from the schema (M4, S8). Bounded: a few examples per operation."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from konsent.flows.organisation import staff
from tests.conftest import on_postgres
from tests.flows.support import api_token
from tests.helpers import subscribe

ROLES = tuple(r.value for r in staff.Role)
# No server error, and every answer as documented: status code, content type, headers and body.
# (Who may call what is pinned by the role tests; those checks cannot see our bearer tokens.)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture
def api_schema(ctx, demo, app):  # type: ignore[no-untyped-def]
    ctx.settings.api_rate_limit = "100000/minute"
    ctx.settings.allow_private_urls = False
    subscribe(ctx, "+4915112340004", ["angebote"])  # contact 1 exists, with consent and messages
    app.state.tokens = {role: api_token(ctx, role) for role in ROLES}
    return schemathesis.openapi.from_asgi("/api/v1/openapi.json", app)


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.mark.timeout(1200)  # every operation runs inside this one test: ~4-5 minutes on a busy machine
@schema.parametrize()
@settings(
    max_examples=3 if on_postgres() else 5,  # about two minutes on either database
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_api_answers_every_role_without_server_errors_and_as_documented(case, app):  # type: ignore[no-untyped-def]
    if case.path.endswith("/media"):
        pytest.skip("fetches from the provider; covered by the media tests")
    for role in ROLES:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {app.state.tokens[role]}"}
        case.call_and_validate(checks=CHECKS, excluded_checks=[])
