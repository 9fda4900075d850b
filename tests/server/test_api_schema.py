"""schemathesis over the server's own OpenAPI schema, against a real `shipyard serve`: no answer
is a 500, and every answer matches the schema (its status is declared, its body validates), for
the admin and for a deployment user scoped to the project's site (the admin's routes refuse it,
and the refusals too must be declared and well formed).

Bounded: a few examples per operation. Left out: the streams (they follow until a rollout ends)
and creating webhooks (a generated URL could point anywhere; tests/server/test_webhooks.py
covers them with a receiver on loopback).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
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


def scoped_token(served: ServeProcess) -> str:
    """A token of a deployment user limited to the project's one site."""
    admin = {"Authorization": f"Bearer {served.token}"}
    user = {"name": "far-away", "roles": ["deployment"], "sites": ["dev"]}
    made = httpx.post(f"{served.url}/api/users", json=user, headers=admin)
    assert made.status_code == 201, made.text
    body = {"name": "schemathesis", "user": "far-away"}
    token = httpx.post(f"{served.url}/api/tokens", json=body, headers=admin)
    assert token.status_code == 201, token.text
    return str(token.json()["token"])


@pytest.mark.parametrize("caller", ["admin", "deployment user of one site"])
def test_every_operation_answers_within_its_schema(
    api_schema: Any, served: ServeProcess, caller: str
) -> None:
    checks = [
        schemathesis.checks.not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    token = served.token if caller == "admin" else scoped_token(served)
    headers = {"Authorization": f"Bearer {token}"}
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
