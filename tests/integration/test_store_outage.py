"""A deploy while its PostgreSQL store goes away: stopped by its pid mid-deploy, started again.

A short outage is waited out (store calls retried with back-off, heartbeats go on); a store that
stays away leaves every host with the step it was in finished, and the command exits 1 with one
outcome per instance saying its result is not recorded, without a traceback. Recovery, once the
store is back, finishes what the dead controller left in flight.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
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
    release_is_complete,
    version,
    wait_for,
)

from fleet import Fleet
from shipyard.store import RolloutStatus, open_store
from store_fixtures import PostgresServer, find_bindir, start_postgres, stop_postgres

pytestmark = pytest.mark.integration
HOSTS = ["h001", "h002"]
_databases = itertools.count()


class Postgres:
    """A PostgreSQL server of our own, which a test may stop (by its pid) and start again."""

    def __init__(self, server: PostgresServer) -> None:
        self.server = server
        self.argv = Path(f"/proc/{server.process.pid}/cmdline").read_bytes().split(b"\0")[:-1]

    def stop(self) -> None:
        self.server.process.send_signal(signal.SIGINT)  # fast shutdown: connections are cut
        self.server.process.wait(timeout=30)

    def start(self) -> None:
        as_user = "postgres" if os.geteuid() == 0 else None
        log = (self.server.workdir / "postgres.log").open("ab")
        with log:
            self.server.process = subprocess.Popen(
                self.argv, cwd=self.server.workdir, stdout=log, stderr=subprocess.STDOUT,
                user=as_user, group=as_user, extra_groups=[] if as_user else None,
            )  # fmt: skip

        def accepting() -> bool:
            try:
                self.server.admin().close()
            except psycopg.OperationalError:
                assert self.server.process.poll() is None, self.server.log()
                return False
            return True

        wait_for(accepting, "PostgreSQL to accept connections again")

    def new_database(self) -> str:
        name = f"outage_{next(_databases)}"
        with self.server.admin() as admin:
            admin.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return self.server.url(name)


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    bindir = find_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (make system-deps installs it)")
    server = start_postgres(bindir)
    try:
        yield Postgres(server)
    finally:
        stop_postgres(server)


@dataclass
class StoreProject(Project):
    more: dict[str, str] = field(default_factory=dict)

    def env(self, actor: str | None = None) -> dict[str, str]:
        return {**super().env(actor), **self.more}


@pytest.fixture(scope="module")
def hosts(fleet: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    found: Fleet = fleet(3)
    with bootstrapped(Project(tmp_path_factory.mktemp("bootstrap"), found)):
        yield found


@pytest.fixture
def project(hosts: Fleet, tmp_path: Path, postgres: Postgres) -> Iterator[StoreProject]:
    made = StoreProject(tmp_path / "project", hosts)
    made.more = {"SHIPYARD_DATABASE_URL": postgres.new_database()}
    yield made
    if postgres.server.process.poll() is not None:  # a failed test left it stopped
        postgres.start()


def held(project: StoreProject, gate: Path, name: str) -> int:
    """A hello service on two hosts, deployed once (v1); the next deploy's install waits at
    `gate`."""
    port = free_port([h.address for h in project.hosts])
    template = hello_template()
    template["commands"]["install"] = gated_install(gate)
    placed = {"template": "hello", "hosts": HOSTS, "overrides": {"ports": {"http": port}}}
    project.write({name: placed}, template=template)
    first = project.deploy()
    assert {o["result"] for o in first.values()} == {"success"}
    project.write({name: placed}, template=template, vars={"release": "v2"})
    return port


def wait_in_progress(project: Project, name: str) -> dict[str, dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}

    def running() -> bool:
        status = project.status()
        for host in HOSTS:
            last = status[f"{name}@{host}"]["last"]
            if last is not None and last["status"] == "in_progress":
                seen[host] = last
        return len(seen) == len(HOSTS)

    wait_for(running, f"{name} in progress on {HOSTS}", timeout=30)
    return seen


def test_a_short_outage_is_waited_out_and_heartbeats_go_on(
    project: StoreProject, postgres: Postgres, tmp_path: Path
) -> None:
    gate = tmp_path / "hold-install"
    port = held(project, gate, "brief")
    project.more["SHIPYARD_LEASE_SECONDS"] = "30"  # a heartbeat every 5 s
    gate.touch()
    try:
        running = project.start("deploy", "--json")
        before = wait_in_progress(project, "brief")
        postgres.stop()
        time.sleep(6)  # at least one heartbeat falls into the outage
        postgres.start()

        restarted = {h: heartbeat_of(project, before[h]["id"]) for h in HOSTS}

        def beat_again() -> bool:
            return all(heartbeat_of(project, before[h]["id"]) > restarted[h] for h in HOSTS)

        wait_for(beat_again, "a heartbeat after the outage", timeout=20)
    finally:
        gate.unlink(missing_ok=True)
    code, stdout, stderr = finish(running)

    assert code == 0, (stdout, stderr)
    outcomes = outcomes_of(stdout)
    status = project.status()
    for host in project.hosts[:2]:
        instance = f"brief@{host.name}"
        assert outcomes[instance]["result"] == "success"
        assert status[instance]["deployed_revision"] == outcomes[instance]["revision"]
        assert version(host, port) == "v2"


def test_a_store_that_stays_away_fails_the_deploy_cleanly_and_recovery_finishes_it(
    project: StoreProject, postgres: Postgres, tmp_path: Path
) -> None:
    gate = tmp_path / "hold-install"
    port = held(project, gate, "away")
    project.more["SHIPYARD_STORE_PATIENCE"] = "2"
    gate.touch()
    try:
        running = project.start("deploy", "--json")
        wait_in_progress(project, "away")
        postgres.stop()
    finally:
        gate.unlink(missing_ok=True)
    try:
        code, stdout, stderr = finish(running)
    finally:
        postgres.start()

    assert code == 1, (stdout, stderr)
    assert "Traceback" not in stderr
    assert "unhandled exception" not in stderr
    report = outcomes_of(stdout)
    for host in project.hosts[:2]:
        outcome = report[f"away@{host.name}"]
        assert outcome["result"] == "lost"
        assert outcome["reason"].startswith("deployed on the host, but the result is not recorded")
        assert "unavailable" in outcome["reason"]
        # Every host finished its steps: the new release complete, live and serving.
        assert current_target(host, "away") == f"releases/{outcome['revision']}"
        assert release_is_complete(host, "away", outcome["revision"])
        assert version(host, port) == "v2"

    status = project.status()  # recovery: the controller's process is certainly gone

    for host in HOSTS:
        last = status[f"away@{host}"]["last"]
        assert last["status"] == "failed"
        assert "its process has exited" in last["error"]
    with open_store(project.more["SHIPYARD_DATABASE_URL"]) as store:
        rollout = store.rollout(outcomes_rollout(stdout))
    assert rollout is not None
    assert rollout.status is RolloutStatus.FAILED
    assert "interrupted" in rollout.summary
    again = project.deploy()
    assert {o["result"] for o in again.values()} == {"success"}


def outcomes_rollout(stdout: str) -> str:
    found: str = json.loads(stdout)["rollout"]
    return found


def heartbeat_of(project: StoreProject, deployment_id: str) -> datetime:
    with open_store(project.more["SHIPYARD_DATABASE_URL"]) as store:
        found = store.deployment(deployment_id)
    assert found is not None
    return found.heartbeat_at
