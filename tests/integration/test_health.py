"""Health monitoring and drift on the real SSH fleet: one round reads each host (its programs,
records, files and health checks), a hand edit on a host is drift (and --accept takes it), a
program stopped by hand and a release switched by hand are drift until a deploy puts them
right, a service the store does not know is reported, and an unreachable host is offline once
no report came for `offline_after`."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_project import Project, bootstrapped, free_port, service_dir, wait_for

from fleet import Fleet, FleetHost, start_fleet, stop_fleet

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def hosts(fleet: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    found: Fleet = fleet(5)  # hosts of its own: other modules' services would be unknown drift
    with bootstrapped(Project(tmp_path_factory.mktemp("bootstrap"), found)):
        yield found


@pytest.fixture
def project(hosts: Fleet, tmp_path: Path) -> Project:
    return Project(tmp_path / "project", hosts)


def service(port: int, hosts: list[str]) -> dict[str, Any]:
    return {"template": "hello", "hosts": hosts, "overrides": {"ports": {"http": port}}}


def drift_of(project: Project, *args: str, expect: int) -> list[dict[str, Any]]:
    """`shipyard drift --json`, but only what is about this test's own services (an earlier
    test of the module leaves its services on the hosts: unknown to this test's store)."""
    done = project.shipyard("drift", *args, "--json")
    everything: list[dict[str, Any]] = json.loads(done.stdout)
    assert done.returncode == (1 if everything else 0), done.stderr
    mine = set(yaml.safe_load((project.dir / "shipyard.yaml").read_text())["services"])
    found = [
        d for d in everything if d["instance"].partition("@")[0] in mine or d["kind"] != "unknown"
    ]
    assert bool(found) == bool(expect), found
    return found


def supervisorctl(host: FleetHost, *args: str) -> None:
    conf = Path(host.root) / "supervisor" / "supervisord.conf"
    subprocess.run(["supervisorctl", "-c", str(conf), *args], check=True, capture_output=True)


def family(pid: int) -> list[int]:
    """`pid` and every process below it (sshd's connection processes run sessions of their
    own, so its process group does not hold them)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent = int(stat.rpartition(")")[2].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def signal_all(pids: list[int], number: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, number)


def test_a_hand_edit_is_drift_until_accepted_and_a_stopped_program_until_deployed(
    project: Project,
) -> None:
    host = project.hosts[0]
    port = free_port([host.address])
    project.write({"calm": service(port, [host.name])})
    project.deploy()
    assert drift_of(project, expect=0) == []

    live = service_dir(host, "calm") / "current"
    edited = live / "server.py"
    edited.write_text(edited.read_text() + "\n# changed by hand\n")
    (live / "notes.txt").write_text("left here by hand")

    found = drift_of(project, expect=1)
    assert [(d["instance"], d["kind"]) for d in found] == [("calm@h001", "files")]
    assert "changed: server.py" in found[0]["detail"]
    assert "added: notes.txt" in found[0]["detail"]
    health = project.json("health", expect=0)  # the drift round stored what it saw
    [row] = [i for i in health["instances"] if i["instance"] == "calm@h001"]
    assert (row["health"], [d["kind"] for d in row["drift"]]) == ("healthy", ["files"])

    assert drift_of(project, "--accept", "calm@h001", expect=0) == []
    assert "drift.accept" in [e["action"] for e in project.json("audit")]

    supervisorctl(host, "stop", "calm")
    found = drift_of(project, expect=1)
    assert [(d["kind"], d["detail"]) for d in found] == [("program", "program calm is STOPPED")]
    checked = project.json("health", "--check", expect=1)
    [row] = [i for i in checked["instances"] if i["instance"] == "calm@h001"]
    assert (row["health"], row["detail"]) == ("failing", "program is STOPPED")

    project.json("deploy", "--force", "calm@h001")
    assert drift_of(project, expect=0) == []


def test_a_release_switched_by_hand_and_an_unknown_service_are_drift(project: Project) -> None:
    host = project.hosts[1]
    port = free_port([host.address])
    project.write({"twin": service(port, [host.name])})
    first = project.deploy()["twin@h002"]["revision"]
    project.write({"twin": service(port, [host.name])}, vars={"release": "v2"})
    second = project.deploy()["twin@h002"]["revision"]
    current = service_dir(host, "twin") / "current"
    os.remove(current)
    os.symlink(f"releases/{first}", current)  # switched back by hand
    stray = Path(host.root) / "stray"
    stray.mkdir()
    (stray / "deployed.json").write_text(json.dumps({"format": 1}))
    try:
        everything = project.json("drift", expect=1)  # the stray one too
        found = {(d["instance"], d["kind"]): d["detail"] for d in everything}
    finally:
        (stray / "deployed.json").unlink()
        stray.rmdir()
    assert found[("twin@h002", "release")] == (
        f"current points at {first[:12]}, the store deployed {second[:12]}"
    )
    assert "stray holds a host record" in found[("stray@h002", "unknown")]


def test_an_unreachable_host_is_offline_and_its_instances_unknown(
    project: Project, hosts: Fleet
) -> None:
    near, far = project.hosts[0], project.hosts[2]
    port = free_port([near.address, far.address])
    placed = {"pair": service(port, [near.name, far.name])}
    project.write(placed)
    project.deploy()
    first = project.json("health", "--check", expect=0)
    assert {h["state"] for h in first["hosts"]} == {"online"}
    assert len(first["hosts"]) == len(hosts.hosts)

    project.write(placed, addresses={far.name: hosts.silent_address()})
    cut = project.json("health", "--check", expect=0)  # one lost round is not an outage yet
    [row] = [h for h in cut["hosts"] if h["host"] == "h003"]
    assert row["state"] == "online"
    assert "cannot connect" in row["error"]
    events = project.json("events")
    assert [e["phase"] for e in events if e["host"] == "h003" and e["phase"] == "host-error"]


def test_the_servers_monitor_shows_a_stopped_host_offline_and_back_online(
    tmp_path: Path,
) -> None:
    """A host of its own whose sshd (and its connections) is stopped with SIGSTOP: no report
    comes, and after `offline_after` without one the host is offline; SIGCONT, and the next
    round finds it online. Both changes are events. (The defaults are 30 s and 60 s; the
    test runs the same rules at 1 s and 3 s.)"""
    from fastapi.testclient import TestClient

    from shipyard.server.app import create_app
    from shipyard.server.settings import Settings

    lonely = start_fleet(1, tmp_path / "lonely", tie_to_parent=True)
    try:
        project = Project(tmp_path / "project", lonely)
        project.write({})
        settings = Settings(
            project=project.dir / "shipyard.yaml", no_auth=True,
            health_interval=1.0, offline_after=3.0,
        )  # fmt: skip
        env = {"SHIPYARD_DATABASE_URL": f"sqlite:///{tmp_path}/state.db"}
        with TestClient(create_app(settings, environ=env)) as client:

            def state() -> str:
                hosts = client.get("/api/hosts/health").json()["hosts"]
                return str(hosts[0]["state"]) if hosts else "none"

            wait_for(lambda: state() == "online", "the host online", timeout=30)
            stopped = family(lonely.daemons[0].pid)  # the listener and the open connection
            signal_all(stopped, signal.SIGSTOP)
            try:
                wait_for(lambda: state() == "offline", "the host offline", timeout=30)
            finally:
                signal_all(stopped, signal.SIGCONT)
            wait_for(lambda: state() == "online", "the host back online", timeout=60)
            events = client.get("/api/events").json()["events"]
    finally:
        stop_fleet(lonely)
    changes = [(e["result"], e["at"]) for e in events if e["phase"] == "health"]
    assert [r for r, _ in changes] == ["online", "offline", "online"]
    went, offline = datetime.fromisoformat(changes[0][1]), datetime.fromisoformat(changes[1][1])
    assert (offline - went).total_seconds() >= 3.0  # never before offline_after
