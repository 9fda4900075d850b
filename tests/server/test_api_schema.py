"""schemathesis over the server's own OpenAPI schema, against a real `shipyard serve`: no answer
is a 500, and every answer matches the schema (its status is declared, its body validates).

Bounded: a few examples per operation. Left out: the streams (they follow until a rollout ends)
and creating webhooks (a generated URL could point anywhere; tests/server/test_webhooks.py
covers them with a receiver on loopback).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
import schemathesis
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from tests.store.local_project import local_project

from .serve_process import ServeProcess, serving

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

EXAMPLES = 8


@pytest.fixture(scope="module")
def served() -> Iterator[ServeProcess]:
    with local_project() as project, serving(project.root / "shipyard.yaml", project.env) as server:
        yield server


@pytest.fixture(scope="module")
def api_schema(served: ServeProcess) -> Any:
    loaded = schemathesis.openapi.from_url(f"{served.url}/api/openapi.json")
    return loaded.exclude(path_regex=".*/stream$").exclude(method="POST", path="/api/webhooks")


def test_every_operation_answers_within_its_schema(api_schema: Any, served: ServeProcess) -> None:
    checks = [
        schemathesis.checks.not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    headers = {"Authorization": f"Bearer {served.token}"}
    tried = []
    for result in api_schema.get_all_operations():
        operation = result.ok()

        @hypothesis.given(case=operation.as_strategy())
        @hypothesis.settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(hypothesis.HealthCheck),
            database=None,
        )
        def answers(case: Any) -> None:
            case.call_and_validate(base_url=served.url, headers=headers, checks=checks)

        answers()
        tried.append(operation.label)
    assert "POST /api/rollouts" in tried
