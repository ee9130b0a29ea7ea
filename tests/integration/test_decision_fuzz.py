"""Schemathesis fuzzes the service from its own OpenAPI: no 5xx, every response as
documented (status codes, content types, bodies)."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings

from sluice.auth import KeyStore, Scope
from sluice.settings import SluiceSettings


@pytest.fixture(scope="module")
def admin_key(settings: SluiceSettings, service: str) -> str:
    key, _ = KeyStore(settings.keys_file).create("fuzz-admin", (Scope.ADMIN,))
    return key


def test_no_server_errors_and_responses_match_the_schema(service: str, admin_key: str) -> None:
    # Operations are driven directly (schemathesis' lazy pytest loader does not run on
    # this pytest); every operation gets its own Hypothesis run.
    schema = schemathesis.openapi.from_url(f"{service}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {f"{op.method.upper()} {op.path}" for op in operations} >= {
        "POST /v1/score",
        "POST /v1/decide",
        "GET /v1/models",
    }
    for operation in operations:

        @given(case=operation.as_strategy())
        @hypothesis_settings(
            max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        def fuzz(case: schemathesis.Case) -> None:
            case.call_and_validate(headers={"Authorization": f"Bearer {admin_key}"}, timeout=30)

        fuzz()
