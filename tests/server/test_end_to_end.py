"""The server end to end, as a team would use it: `shipyard serve` over the hello example (four
local hosts on loopback, nginx in front of the blue/green front), driven over HTTP and by the
CLI in client mode.

Over HTTP: the served project is version 1; bootstrap; a rollout started over the API and
followed on its SSE stream to its end; each deployment's step logs; status; a changed project
uploaded as version 2 and rolled out; a rollback; metrics parsed; every webhook delivery signed
and received. Then the README's tour through `--server`: plan, deploy, status, diff, push, audit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests.hello_copy import copy_hello, stop_hosts, upload

from .serve_process import ServeProcess, serving
from .test_webhooks import Receiver, receiving, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parents[2]
CLI_TIMEOUT = 300


@pytest.fixture(scope="module")
def hello(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A copy of the hello example on free loopback addresses (scripts/demo_addresses.py)."""
    root = copy_hello(tmp_path_factory.mktemp("hello"))
    try:
        yield root
    finally:
        stop_hosts(root)


@pytest.fixture(scope="module")
def server(hello: Path) -> Iterator[ServeProcess]:
    env = {"SHIPYARD_ACTOR": "e2e"}
    with serving(hello / "shipyard.yaml", env, log=hello.parent / "serve.log") as served:
        yield served


def follow(client: httpx.Client, rollout_id: str) -> list[dict[str, Any]]:
    """The rollout's events from its SSE stream, until it finishes."""
    events: list[dict[str, Any]] = []
    params = {"rollout": rollout_id, "after": 0}
    timeout = httpx.Timeout(30.0, read=None)
    with client.stream("GET", "/api/events/stream", params=params, timeout=timeout) as stream:
        assert stream.status_code == 200
        data = ""
        for line in stream.iter_lines():
            if line.startswith("data:"):
                data += line[5:].strip()
            elif line == "" and data:
                events.append(json.loads(data))
                data = ""
                if events[-1]["phase"] == "rollout-finished":
                    break
    return events


def roll_out(client: httpx.Client, body: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    started = client.post("/api/rollouts", json=body)
    assert started.status_code == 202, started.text
    rollout_id = started.json()["id"]
    events = follow(client, rollout_id)
    assert events[-1]["result"] == "success", events[-1]
    return rollout_id, events


def test_a_team_drives_the_hello_fleet_through_the_server(
    server: ServeProcess, hello: Path
) -> None:
    with receiving() as receiver, server.client() as client:
        receiver.secret = "e2e-webhook-secret-0123456789"
        hook = client.post("/api/webhooks", json={"url": receiver.url, "secret": receiver.secret})
        assert hook.status_code == 201, hook.text

        versions = client.get("/api/versions").json()
        assert [v["id"] for v in versions["versions"]] == [1]

        booted = client.post("/api/bootstrap", json={})
        assert booted.status_code == 200, booted.text

        first, events = roll_out(client, {"instances": []})
        phases = [e["phase"] for e in events]
        assert phases[0] == "rollout-started"
        assert {"uploading", "health-checking", "finished"} <= set(phases)
        detail = client.get(f"/api/rollouts/{first}").json()
        assert detail["config_version"] == 1
        assert {d["status"] for d in detail["deployments"]} == {"success"}
        one = detail["deployments"][0]["id"]
        log = client.get(f"/api/deployments/{one}/log")
        assert log.status_code == 200, log.text
        assert log.json()["steps"], log.json()

        status = client.get("/api/status").json()
        assert {row["status"] for row in status["rows"]} == {"success"}
        assert not any(row["stale"] for row in status["rows"])

        published = client.post(
            "/api/versions",
            json={"files": upload(hello, ("release: v1", "release: v2")), "message": "v2"},
        )
        assert published.status_code in (200, 201), published.text
        assert published.json()["version"]["id"] == 2
        stale = client.get("/api/status").json()
        assert all(row["stale"] for row in stale["rows"])
        second, _ = roll_out(client, {"instances": ["greeter"]})
        assert client.get(f"/api/rollouts/{second}").json()["config_version"] == 2

        back = client.post("/api/rollbacks", json={"instance": "greeter@east-1"})
        assert back.status_code == 202, back.text
        assert follow(client, back.json()["id"])[-1]["result"] == "success"

        metrics = client.get("/metrics")
        assert metrics.status_code == 200
        families = {f.name: f for f in text_string_to_metric_families(metrics.text)}
        deployed = [
            s for s in families["shipyard_deployments"].samples if s.name.endswith("_total")
        ]
        assert sum(s.value for s in deployed if s.labels.get("result") == "success") >= 8

        wait_for(lambda: _finished_hooks(receiver) >= 3)
        assert receiver.seen
        assert all(seen["verified"] for seen in receiver.seen)


def _finished_hooks(receiver: Receiver) -> int:
    return sum(1 for body in receiver.bodies() if body["event"]["phase"] == "rollout-finished")


def test_the_readme_tour_runs_through_the_server(server: ServeProcess, hello: Path) -> None:
    assert server.token is not None
    blank = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    env = {**blank, "SHIPYARD_TOKEN": server.token, "SHIPYARD_CREDENTIALS": "/nonexistent"}

    def shipyard(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "shipyard", "-p", str(hello / "shipyard.yaml"),
             "--server", server.url, *args],
            env=env, capture_output=True, text=True, timeout=CLI_TIMEOUT, check=False,
        )  # fmt: skip
        assert done.returncode == 0, f"shipyard {' '.join(args)}:\n{done.stdout}{done.stderr}"
        return done.stdout

    assert "instance" in shipyard("plan")
    shipyard("deploy")
    assert "current" in shipyard("status")
    text = (hello / "shipyard.yaml").read_text()
    (hello / "shipyard.yaml").write_text(text.replace("release: v2", "release: v3"))
    pushed = shipyard("push", "--message", "v3")
    assert "3" in pushed
    assert "v3" in shipyard("diff", "greeter@east-1")
    shipyard("deploy")
    shipyard("rollback", "greeter@east-1")
    assert "rollback" in shipyard("audit", "--instance", "greeter@east-1")
