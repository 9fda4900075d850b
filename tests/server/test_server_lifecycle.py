"""The server as a process: SIGTERM drains its rollouts (steps in flight finish within the grace
period, what cannot is marked interrupted with the reason), and a server killed mid-rollout
leaves nothing stuck: its restart recovers what it left.

The instance's program takes a few seconds to get healthy, so a deployment is surely in flight
when the signal arrives.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from tests.store.local_project import LocalProject, local_project

from shipyard.events import Phase
from shipyard.store import open_store

from .serve_process import ServeProcess, free_port, serving

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

SLOW_START = 4  # seconds the program sleeps before it listens


@pytest.fixture(scope="module")
def booted_slow_project() -> Iterator[LocalProject]:
    """The project and its host, bootstrapped once for the module."""
    with local_project() as project:
        path = project.root / "shipyard.yaml"
        data = yaml.safe_load(path.read_text())
        web = data["templates"]["web"]
        web["commands"]["start"] = [
            "sh", "-c",
            f"sleep {SLOW_START}; exec python3 -m http.server {{{{ ports.http }}}}"
            " --bind 127.0.0.1",
        ]  # fmt: skip
        path.write_text(yaml.safe_dump(data))
        yield project


@pytest.fixture
def slow_project(booted_slow_project: LocalProject, tmp_path: Path) -> LocalProject:
    """The module's project with a store of this test's own (a new admin token with it)."""
    env = {**booted_slow_project.env, "SHIPYARD_DATABASE_URL": f"sqlite:///{tmp_path}/state.db"}
    return LocalProject(booted_slow_project.root, env)


def start_rollout(client: httpx.Client) -> str:
    started = client.post("/api/rollouts", json={"instances": ["web@local"], "force": True})
    assert started.status_code == 202, started.text
    return str(started.json()["id"])


def wait_in_flight(project: LocalProject, rollout_id: str) -> None:
    """Until the rollout's deployment is waiting for the new program to get healthy: its
    longest step, surely in flight for a few seconds more."""
    deadline = time.monotonic() + 60
    with open_store(project.env["SHIPYARD_DATABASE_URL"]) as store:
        while time.monotonic() < deadline:
            phases = {e.phase for e in store.events(rollout_id=rollout_id, limit=10_000)}
            if Phase.HEALTH_CHECKING in phases:
                return
            time.sleep(0.05)
    raise AssertionError(f"the deployment of {rollout_id} never got to its health check")


def assert_stopped_cleanly(server: ServeProcess) -> None:
    """Exited after its drain: uvicorn ends a process it stopped on SIGTERM by that signal once
    the shutdown is done (as a shell expects), and nothing went wrong on the way."""
    assert server.wait(timeout=60) in (0, -signal.SIGTERM), server.log.read_text()
    assert "Traceback" not in server.log.read_text(), server.log.read_text()


def rollout(server: ServeProcess, rollout_id: str) -> dict[str, Any]:
    with server.client() as client:
        found = client.get(f"/api/rollouts/{rollout_id}")
        assert found.status_code == 200, found.text
        return dict(found.json())


def test_sigterm_lets_the_step_in_flight_finish_and_refuses_new_rollouts(
    slow_project: LocalProject,
) -> None:
    port = free_port()
    with serving(slow_project.root / "shipyard.yaml", slow_project.env, port=port) as server:
        with server.client() as client:
            rollout_id = start_rollout(client)
            wait_in_flight(slow_project, rollout_id)
            server.signal(signal.SIGTERM)
            time.sleep(0.3)
            # Either the listener is closed already, or the server says it is stopping.
            try:
                refused = client.post("/api/rollouts", json={"instances": [], "force": True})
            except httpx.TransportError:
                pass
            else:
                assert refused.status_code == 503, refused.text
        assert_stopped_cleanly(server)
        token = server.token
    with serving(slow_project.root / "shipyard.yaml", slow_project.env, port=port) as again:
        again.token = token
        found = rollout(again, rollout_id)
    assert found["status"] == "success", found["deployments"]
    [deployment] = found["deployments"]
    assert deployment["status"] == "success", deployment


def test_sigterm_past_the_grace_period_marks_the_deployment_interrupted_with_the_reason(
    slow_project: LocalProject,
) -> None:
    port = free_port()
    project = slow_project.root / "shipyard.yaml"
    args = ("--shutdown-grace", "0.5")
    with serving(project, slow_project.env, port=port, args=args) as server:
        with server.client() as client:
            rollout_id = start_rollout(client)
            wait_in_flight(slow_project, rollout_id)
        server.signal(signal.SIGTERM)
        assert_stopped_cleanly(server)
        token = server.token
    with serving(project, slow_project.env, port=port) as again:
        again.token = token
        found = rollout(again, rollout_id)
    assert found["status"] == "failed", found
    [deployment] = found["deployments"]
    assert deployment["status"] == "failed", deployment
    assert "the server is shutting down" in deployment["error"]


def test_a_server_killed_mid_rollout_leaves_nothing_stuck_after_its_restart(
    slow_project: LocalProject,
) -> None:
    port = free_port()
    project = slow_project.root / "shipyard.yaml"
    with serving(project, slow_project.env, port=port) as server:
        with server.client() as client:
            rollout_id = start_rollout(client)
            wait_in_flight(slow_project, rollout_id)
        server.signal(signal.SIGKILL)
        server.wait(timeout=30)
        token = server.token
    with serving(project, slow_project.env, port=port) as again:
        again.token = token
        found = rollout(again, rollout_id)
        assert found["status"] == "failed", found
        [deployment] = found["deployments"]
        assert deployment["status"] == "failed", deployment
        assert "interrupted" in deployment["error"]
        with again.client() as client:
            retried = start_rollout(client)
            deadline = time.monotonic() + 120
            while rollout(again, retried)["status"] == "in_progress":
                assert time.monotonic() < deadline
                time.sleep(0.2)
        assert rollout(again, retried)["status"] == "success"


def test_one_deployment_in_flight_per_instance_across_the_server_and_the_cli(
    slow_project: LocalProject,
) -> None:
    with serving(slow_project.root / "shipyard.yaml", slow_project.env) as server:
        with server.client() as client:
            rollout_id = start_rollout(client)
            wait_in_flight(slow_project, rollout_id)
            refused = client.post("/api/rollouts", json={"instances": ["web"], "force": True})
            assert refused.status_code == 409, refused.text
            error = refused.json()["error"]
            assert error["code"] == "deployment_in_flight"
            assert error["details"]["holder"]["actor"] == "admin"
            held = error["details"]["holder"]["deployment"]
            assert held in error["message"]
            cli = slow_project.cli("deploy", "--force", "--json")
            assert cli.returncode != 0
            assert "already being deployed" in cli.stdout + cli.stderr
        assert rollout(server, rollout_id)["status"] in ("in_progress", "success")
