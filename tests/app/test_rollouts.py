"""Rollouts started through the application layer, in-process, on the local host.

The issue's own: start a rollout, have its id before any host step, follow its events to the
end, read each step's log; another process following the same rollout through the store's
events(after_id) sees the same events in the same order. Then cancel, and a real rollback.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from tests.app.conftest import make_session
from tests.store.local_project import free_port

from shipyard.app.logs import deployment_log, events, follow_log
from shipyard.app.rollouts import (
    RolloutHandle,
    RolloutResult,
    deploy_request,
    rollback_target,
    start_deploy,
    start_rollback,
)
from shipyard.app.selectors import select_instances
from shipyard.app.session import Session
from shipyard.events import Event, Phase

pytestmark = pytest.mark.integration  # a real supervisord on this machine

GATE_LOOP = 'i=0; while [ -e "$1" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done'


def two_services(root: Path, gate: Path) -> None:
    """web, and api that depends on it; web's install waits while `gate` exists."""
    (root / "app").mkdir(exist_ok=True)
    (root / "app" / "index.html").write_text("<p>hello</p>\n")

    def template(install: list[str] | None) -> dict[str, object]:
        commands: dict[str, object] = {
            "start": ["python3", "-m", "http.server", "{{ ports.http }}", "--bind", "127.0.0.1"]
        }
        if install:
            commands["install"] = install
        return {
            "artifact": {"path": "app"},
            "commands": commands,
            "env": {"MESSAGE": "first"},
            "health": {"http": "http://127.0.0.1:{{ ports.http }}/", "interval": 0.1},
            "ports": {"http": free_port()},
        }

    project = {
        "name": "apptest",
        "templates": {
            "web": template(["sh", "-c", GATE_LOOP, "gate", str(gate)]),
            "api": template(None),
        },
        "sites": {"dev": {"hosts": {"local": {"connection": "local"}}}},
        "services": {
            "web": {"template": "web", "sites": ["dev"]},
            "api": {"template": "api", "sites": ["dev"], "depends_on": ["web"]},
        },
    }
    (root / "shipyard.yaml").write_text(yaml.safe_dump(project))


@pytest.fixture
def gate(project_root: Path) -> Iterator[Path]:
    path = project_root.parent / "hold-install"
    two_services(project_root, path)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


async def until(handle: RolloutHandle, phase: Phase, timeout: float = 60) -> Event:
    async def seen() -> Event:
        async for event in handle.follow():
            if event.phase is phase:
                return event
        raise AssertionError(f"the rollout ended before {phase}")

    return await asyncio.wait_for(seen(), timeout)


def follower(root: Path, rollout_id: str) -> subprocess.Popen[str]:
    """Another process: `shipyard events --follow --rollout ID --json`, one event a line."""
    return subprocess.Popen(
        [sys.executable, "-m", "shipyard", "events", "--follow", "--rollout", rollout_id, "--json"],
        cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_a_rollout_has_its_id_before_any_host_step_and_its_events_and_logs_follow(
    gate: Path, booted: Session
) -> None:
    gate.touch()
    flat = booted.flatten()

    async def scenario() -> tuple[str, list[Event], list[Event], str]:
        handle = await start_deploy(
            booted, select_instances(flat), request=deploy_request(None, None, False)
        )
        row = booted.store.rollout(handle.id)
        assert row is not None, "the rollouts row exists when start returns"
        early = handle.events
        assert early[0].phase is Phase.ROLLOUT_STARTED
        assert early[0].rollout_id == handle.id
        assert not [e for e in early if e.phase is Phase.FINISHED], early
        other = follower(booted.root, handle.id)
        await until(handle, Phase.INSTALLING)
        gate.unlink()  # web's install may go on now
        followed = [event async for event in handle.follow()]
        result = await handle.wait()
        assert result.ok, result
        out, err = await asyncio.to_thread(other.communicate, timeout=120)
        assert other.returncode == 0, err
        seen = [Event.from_json(json.loads(line)) for line in out.splitlines()]
        return handle.id, followed, seen, err

    rollout_id, followed, seen, _ = asyncio.run(scenario())
    assert followed[0].phase is Phase.ROLLOUT_STARTED
    assert followed[-1].phase is Phase.ROLLOUT_FINISHED
    assert followed[-1].result == "success"
    assert all(e.rollout_id == rollout_id for e in followed)
    ids = [e.id for e in followed]
    assert ids == sorted(ids), "in order"
    assert 0 not in ids, "every one stored"
    assert seen == followed, "the other process sees the same events in the same order"
    finished = {e.instance: e for e in followed if e.phase is Phase.FINISHED}
    assert set(finished) == {"web@local", "api@local"}
    assert {e.result for e in finished.values()} == {"success"}
    for event in finished.values():
        assert event.deployment_id is not None
        log = deployment_log(booted, event.deployment_id)
        assert (log.instance, log.status) == (event.instance, "success")
        assert log.steps, f"{event.instance} has a log of its steps"
        assert [s.seq for s in log.steps] == sorted(s.seq for s in log.steps)
        assert all(s.host == "local" for s in log.steps)
        followed_log = list(follow_log(booted, event.deployment_id))
        assert followed_log[:-1] == list(log.steps), "a finished log follows to its end at once"
        assert followed_log[-1] == log
    stored = list(events(booted, rollout_id=rollout_id))
    assert stored == followed


def test_cancel_lets_the_step_in_flight_finish_and_skips_what_was_not_switched(
    gate: Path, booted: Session
) -> None:
    gate.touch()
    flat = booted.flatten()

    async def scenario() -> tuple[RolloutHandle, RolloutResult]:
        handle = await start_deploy(booted, select_instances(flat), request="deploy")
        await until(handle, Phase.INSTALLING)
        handle.cancel("testing")
        await until(handle, Phase.ROLLOUT_CANCELLING)
        gate.unlink()
        return handle, await handle.wait()

    handle, result = asyncio.run(scenario())
    outcomes = {o.instance: o for o in result.outcomes}
    # web's install was in flight and finished; nothing was switched, so web is skipped too.
    assert outcomes["web@local"].result == "skipped"
    assert outcomes["web@local"].reason.startswith("cancelled: testing")
    assert outcomes["api@local"].result == "skipped"
    assert outcomes["api@local"].reason == "cancelled: testing"
    assert result.cancelled == "testing"
    last = handle.events[-1]
    assert (last.phase, last.result) == (Phase.ROLLOUT_FINISHED, "cancelled")


def test_rollback_is_a_rollout_of_its_own_back_to_the_previous_revision(
    gate: Path, booted: Session
) -> None:
    flat = booted.flatten()

    async def deploy(session: Session) -> RolloutResult:
        handle = await start_deploy(session, select_instances(session.flatten()), request="d")
        return await handle.wait()

    assert asyncio.run(deploy(booted)).ok
    first = flat.instances["web@local"].revision
    path = booted.project_file
    data = yaml.safe_load(path.read_text())
    data["templates"]["web"]["env"] = {"MESSAGE": "second"}
    path.write_text(yaml.safe_dump(data))
    with make_session(booted.root) as again:
        assert asyncio.run(deploy(again)).ok
        old = rollback_target(again, "web@local")
        assert old.revision == first

        async def back() -> tuple[str, RolloutResult]:
            handle = await start_rollback(again, old, request="rollback web@local")
            return handle.id, await handle.wait()

        rollout_id, result = asyncio.run(back())
        assert result.ok
        row = again.store.rollout(rollout_id)
        assert row is not None
        assert row.strategy == "rollback"
        state = again.store.instance_state("web@local")
        assert state is not None
        assert state.deployed_revision == first
