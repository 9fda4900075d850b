"""A deploying controller that lost its lease, or whose result the store refused, says so; a killed
one's rollout is finished by the next command.

It stops before its next host step once its lease ran out (fencing) and reports the deployment
as lost, never as a success; a result the store did not take is reported, and the command
exits 1. Real fleet, real supervisord, the CLI as a subprocess, the project's SQLite store.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from deploy_project import (
    Project,
    bootstrapped,
    current_target,
    finish,
    free_port,
    gated_install,
    hello_template,
    outcomes_of,
    version,
    wait_for,
)

from fleet import Fleet
from shipyard.store import RolloutStatus, open_store

pytestmark = pytest.mark.integration
LEASE_SECONDS = 3.0  # heartbeats every 0.5 s; no host step starts 1.5 s after the last one


@dataclass
class LeasedProject(Project):
    """A project whose CLI runs get `more` environment (lease settings)."""

    more: dict[str, str] = field(default_factory=dict)

    def env(self, actor: str | None = None) -> dict[str, str]:
        return {**super().env(actor), **self.more}

    @property
    def database(self) -> Path:
        return self.dir / ".shipyard" / "state.db"

    def sql(self, statement: str, *args: object) -> None:
        with sqlite3.connect(self.database, timeout=30) as conn:
            conn.execute(statement, args)


@pytest.fixture(scope="module")
def hosts(fleet: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    found: Fleet = fleet(3)
    with bootstrapped(Project(tmp_path_factory.mktemp("bootstrap"), found)):
        yield found


@pytest.fixture
def project(hosts: Fleet, tmp_path: Path) -> LeasedProject:
    return LeasedProject(tmp_path / "project", hosts)


def held_service(project: LeasedProject, gate: Path, name: str) -> tuple[int, dict[str, Any]]:
    """A hello service on the first host whose install waits at `gate`; deployed once (v1)."""
    port = free_port([h.address for h in project.hosts])
    template = hello_template()
    template["commands"]["install"] = gated_install(gate)
    placed = {"template": "hello", "hosts": ["h001"], "overrides": {"ports": {"http": port}}}
    project.write({name: placed}, template=template)
    assert project.deploy()[f"{name}@h001"]["result"] == "success"
    project.write({name: placed}, template=template, vars={"release": "v2"})
    return port, placed


def in_progress(project: Project, instance: str) -> dict[str, Any]:
    seen: list[dict[str, Any]] = []

    def found() -> bool:
        last = project.status()[instance]["last"]
        if last is not None and last["status"] == "in_progress":
            seen.append(last)
        return bool(seen)

    wait_for(found, f"{instance} in progress", timeout=30)
    return seen[0]


def test_a_controller_whose_lease_ran_out_stops_before_its_next_host_step(
    project: LeasedProject, tmp_path: Path
) -> None:
    gate = tmp_path / "hold-install"
    port, _ = held_service(project, gate, "fenced")
    host = project.hosts[0]
    old = current_target(host, "fenced")
    project.more = {"SHIPYARD_LEASE_SECONDS": str(LEASE_SECONDS)}
    gate.touch()
    try:
        running = project.start("deploy", "--json")
        held = in_progress(project, "fenced@h001")
        # The database's clock passes the lease, as for a controller that stalled: the next
        # command recovers its deployment, and whatever the controller tries next is fenced.
        project.sql("UPDATE controllers SET lease_expires = 0")
        recovered = project.status()["fenced@h001"]["last"]
        assert (recovered["id"], recovered["status"]) == (held["id"], "failed")
        time.sleep(LEASE_SECONDS)  # past any renewal it could have had: it must know by now
    finally:
        gate.unlink(missing_ok=True)
    code, stdout, stderr = finish(running)

    assert code == 1, (stdout, stderr)
    outcome = outcomes_of(stdout)["fenced@h001"]
    assert outcome["result"] == "lost"
    assert "lease" in outcome["reason"]
    assert "Traceback" not in stderr
    assert current_target(host, "fenced") == old  # it did not switch after losing the lease
    assert version(host, port) == "v1"
    assert project.status()["fenced@h001"]["last"]["status"] == "failed"


def test_a_result_the_store_refused_is_reported_and_fails_the_command(
    project: LeasedProject, tmp_path: Path
) -> None:
    gate = tmp_path / "hold-install"
    port, _ = held_service(project, gate, "refused")
    gate.touch()
    try:
        running = project.start("deploy", "--json")
        held = in_progress(project, "refused@h001")
        # Someone else finished the deployment meanwhile (the controller's lease still holds).
        project.sql(
            "UPDATE deployments SET status = 'failed', error = 'failed by hand' WHERE id = ?",
            held["id"],
        )
    finally:
        gate.unlink(missing_ok=True)
    code, stdout, stderr = finish(running)

    assert code == 1, (stdout, stderr)
    outcome = outcomes_of(stdout)["refused@h001"]
    assert outcome["result"] == "lost"
    assert "not recorded" in outcome["reason"]
    assert f"deployment {held['id']} is already finished (failed)" in outcome["reason"]
    assert version(project.hosts[0], port) == "v2"  # it ran on the host: the report says so
    assert project.status()["refused@h001"]["last"]["error"] == "failed by hand"


def test_a_killed_controllers_rollout_is_finished_by_the_next_command(
    project: LeasedProject, tmp_path: Path
) -> None:
    gate = tmp_path / "hold-install"
    held_service(project, gate, "orphan")
    gate.touch()
    try:
        running = project.start("deploy", "--json")
        in_progress(project, "orphan@h001")
        os.kill(running.pid, signal.SIGKILL)
        finish(running)
    finally:
        gate.unlink(missing_ok=True)
    url = f"sqlite:///{project.database}"
    with open_store(url) as store:
        begun = [a for a in store.audit() if a.action == "rollout.begin"]
        orphan = begun[-1].target.removeprefix("rollout:")
        before = store.rollout(orphan)
    assert before is not None
    assert before.status is RolloutStatus.IN_PROGRESS

    assert project.status()["orphan@h001"]["last"]["status"] == "failed"  # any command recovers

    with open_store(url) as store:
        after = store.rollout(orphan)
        finished = store.audit(instance=f"rollout:{orphan}")[-1]
    assert after is not None
    assert after.status is RolloutStatus.FAILED
    assert after.summary["interrupted"] == "its controller is gone: its process has exited"
    assert after.summary["failed"] == ["orphan@h001"]
    assert (finished.actor, finished.action, finished.result) == (
        "shipyard",
        "rollout.interrupted",
        "failed",
    )
