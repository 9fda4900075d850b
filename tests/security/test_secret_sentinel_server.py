"""The sentinel through the server: a secret's value leaves `shipyard serve` by no way at all.

The project of test_secret_sentinel.py (a secret from the environment in env, a rendered file
and the health check; its install, program and failing health check echo it) is served by a
real `shipyard serve`. Through it: a successful rollout and a failing one, followed on the SSE
stream; then every reading route (project, plan, show, diff, status, rollouts, deployments and
their logs, events, the event log and its search, audit, versions and their diff, users, tokens, whoami, the login form), the
log stream, /metrics, the CLI in client mode, and a webhook receiving every event. The sentinel must be in no answer, no stream, no
webhook body, no line the server printed and no byte under `.shipyard`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from local_project import HOST, LocalProject, bootstrapped
from test_secret_sentinel import FAILING, HEALTHY, configure, sentinel_project
from tests.server.serve_process import ServeProcess, serving
from tests.server.test_webhooks import receiving, wait_for

from shipyard.masking import MASK

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

INSTANCE = f"web@{HOST}"


@pytest.fixture
def project(tmp_path: Path) -> LocalProject:
    return sentinel_project(tmp_path)


class Seen:
    """Every byte the server sent us, to search for the sentinel at the end."""

    def __init__(self) -> None:
        self.texts: list[tuple[str, str]] = []

    def get(self, client: httpx.Client, path: str, **params: Any) -> Any:
        answer = client.get(path, params=params)
        self.texts.append((f"GET {path}", answer.text))
        assert answer.status_code < 500, answer.text
        return (
            answer.json()
            if answer.headers.get("content-type", "").startswith("application/json")
            else answer.text
        )

    def follow(self, client: httpx.Client, path: str, **params: Any) -> list[dict[str, Any]]:
        events = []
        timeout = httpx.Timeout(30.0, read=None)
        with client.stream("GET", path, params=params, timeout=timeout) as stream:
            data = ""
            for line in stream.iter_lines():
                self.texts.append((f"stream {path}", line))
                if line.startswith("data:"):
                    data += line[5:].strip()
                elif line == "" and data:
                    events.append(json.loads(data))
                    data = ""
                    if events[-1].get("phase") == "rollout-finished" or "steps" in events[-1]:
                        break
                elif line.startswith("event: end"):
                    break
        return events

    def roll_out(self, client: httpx.Client) -> tuple[str, list[dict[str, Any]]]:
        started = client.post("/api/rollouts", json={"instances": [], "force": True})
        self.texts.append(("POST /api/rollouts", started.text))
        assert started.status_code == 202, started.text
        rollout_id = started.json()["id"]
        return rollout_id, self.follow(client, "/api/events/stream", rollout=rollout_id, after=0)


def test_a_secret_leaves_the_server_by_no_way(project: LocalProject) -> None:
    sentinel = project.env["SENTINEL_TOKEN"]
    configure(project, HEALTHY, "v1")
    seen = Seen()
    with bootstrapped(project), receiving() as receiver:
        env = {**project.env, "SHIPYARD_ACTOR": "tester"}
        with serving(
            project.dir / "shipyard.yaml", env, log=project.dir.parent / "serve.log"
        ) as server:
            with server.client() as client:
                receiver.secret = "sentinel-test-webhook-secret"
                client.post("/api/webhooks", json={"url": receiver.url, "secret": receiver.secret})
                good, events = seen.roll_out(client)
                assert events[-1]["result"] == "success"

                configure(project, FAILING, "v2")
                reload = client.post("/api/versions/reload")
                seen.texts.append(("POST /api/versions/reload", reload.text))
                bad, events = seen.roll_out(client)
                assert events[-1]["result"] == "failed"
                assert any(MASK in (e.get("detail") or "") for e in events), events

                read_everything(seen, client, [good, bad])
                run_clients(seen, server, project)
            wait_for(
                lambda: any(b["event"]["phase"] == "rollout-finished" for b in receiver.bodies())
            )
        log = server.log.read_text()
    for where, text in [*seen.texts, ("the server's output", log)]:
        assert sentinel not in text, f"the secret left through {where}"
    for body in receiver.seen:
        assert sentinel not in json.dumps(body["body"]), "the secret left in a webhook"
    for path in sorted((project.dir / ".shipyard").rglob("*")):
        if path.is_file():
            assert sentinel.encode() not in path.read_bytes(), f"the secret is in {path}"
    assert len(seen.texts) > 30


def read_everything(seen: Seen, client: httpx.Client, rollouts: list[str]) -> None:
    for path in ("/api/project", "/api/validate", "/api/plan", "/api/diff", "/api/status",
                 "/api/rollouts", "/api/audit", "/api/versions", "/metrics", "/api/whoami",
                 "/api/users", "/login"):  # fmt: skip
        seen.get(client, path)
    seen.get(client, "/api/tokens", user="*")
    seen.get(client, f"/api/instances/{INSTANCE}")
    seen.get(client, f"/api/instances/{INSTANCE}/diff")
    seen.get(client, "/api/versions/1/diff/2")
    seen.get(client, "/api/events", after=0, limit=1000)
    seen.get(client, "/api/events/log")
    logged = seen.get(client, "/api/events/log", search="unhealthy")
    assert any(MASK in e["detail"] for e in logged["events"]), logged
    # The dashboard's pages, each rendered from the same values and masked on the way out.
    for path in ("/", "/instances", "/instances?view=grid", f"/instances/{INSTANCE}",
                 "/rollouts", "/artifacts", "/events", "/audit", "/versions",
                 "/versions/1/diff/2", "/admin"):  # fmt: skip
        assert "<html" in seen.get(client, path)
    page = seen.get(client, "/events", q="unhealthy")
    assert MASK in page, "the event log page shows the masked detail"
    for rollout_id in rollouts:
        seen.get(client, f"/rollouts/{rollout_id}")
        found = seen.get(client, f"/api/rollouts/{rollout_id}")
        for deployment in found["deployments"]:
            seen.get(client, f"/api/deployments/{deployment['id']}")
            seen.get(client, f"/api/deployments/{deployment['id']}/log")
            seen.follow(client, f"/api/deployments/{deployment['id']}/log/stream")


def run_clients(seen: Seen, server: ServeProcess, project: LocalProject) -> None:
    """The CLI in client mode, as a person and as a script."""
    assert server.token is not None
    blank = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    env = {**blank, "SHIPYARD_TOKEN": server.token, "SHIPYARD_CREDENTIALS": "/nonexistent"}
    for args in (["status"], ["plan"], ["diff"], ["show", INSTANCE], ["audit"], ["events"],
                 ["events", "--search", "unhealthy"], ["deploy", "--force"]):  # fmt: skip
        for extra in ([], ["--json"]):
            done = subprocess.run(
                [sys.executable, "-m", "shipyard", "--server", server.url, *args, *extra],
                env=env, capture_output=True, text=True, timeout=300, check=False,
                cwd=project.dir.parent,
            )  # fmt: skip
            seen.texts.append((f"shipyard --server {' '.join(args + extra)}", done.stdout))
            seen.texts.append((f"shipyard --server {' '.join(args + extra)} (stderr)", done.stderr))
