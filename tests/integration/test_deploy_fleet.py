"""`shipyard deploy`, `rollback` and `status` against the real fleet, each host with its supervisord.

Every test drives the CLI as a subprocess in its own project directory and checks three views:
the store (`status --json`), the host (files under its root) and the service itself (/version).
The hosts are shared; each test deploys services of its own names, on ports of its own.
"""

from __future__ import annotations

import os
import signal
import stat
from collections.abc import Iterator
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
    host_record,
    outcomes_of,
    release_is_complete,
    releases,
    service_dir,
    version,
    wait_for,
)

from fleet import Fleet, FleetHost

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def hosts(fleet: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """Three fleet hosts, bootstrapped; their supervisords are stopped by pid at the end."""
    found: Fleet = fleet(3)
    with bootstrapped(Project(tmp_path_factory.mktemp("bootstrap"), found)):
        yield found


@pytest.fixture
def project(hosts: Fleet, tmp_path: Path) -> Project:
    return Project(tmp_path / "project", hosts)


def port_for(project: Project) -> int:
    return free_port([h.address for h in project.hosts])


def service(port: int, *, hosts: list[str] | None = None, **more: Any) -> dict[str, Any]:
    """A hello service on `hosts` (default: every fleet host) listening on `port`."""
    placed: dict[str, Any] = {"hosts": hosts} if hosts else {"sites": ["fleet"]}
    overrides = {"ports": {"http": port}, **more.pop("overrides", {})}
    return {"template": "hello", **placed, "overrides": overrides, **more}


def test_a_fresh_deploy_puts_every_release_live_and_records_it(project: Project) -> None:
    port_a, port_b = port_for(project), port_for(project)
    project.write(
        {
            "fresh-a": service(port_a),
            "fresh-b": service(port_b, depends_on=["fresh-a"]),
        }
    )

    report = project.json("deploy")
    outcomes = {o["instance"]: o for o in report["outcomes"]}

    assert report["ok"] is True
    assert {o["result"] for o in outcomes.values()} == {"success"}
    assert len(outcomes) == 6
    order = [o["instance"].split("@")[0] for o in report["outcomes"]]
    assert order == ["fresh-a"] * 3 + ["fresh-b"] * 3  # b's wave after a's
    status = project.status()
    for host in project.hosts:
        for name, port in (("fresh-a", port_a), ("fresh-b", port_b)):
            outcome = outcomes[f"{name}@{host.name}"]
            revision = outcome["revision"]
            row = status[f"{name}@{host.name}"]
            assert (row["status"], row["deployed_revision"], row["stale"]) == (
                "success",
                revision,
                False,
            )
            assert (row["last"]["id"], row["last"]["actor"]) == (outcome["deployment_id"], "tester")
            assert current_target(host, name) == f"releases/{revision}"
            assert release_is_complete(host, name, revision)
            record = host_record(host, name)
            assert (record["revision"], record["deployment_id"]) == (
                revision,
                outcome["deployment_id"],
            )
            assert version(host, port) == "v1"


def test_a_changed_value_is_redeployed_and_a_second_deploy_changes_nothing(
    project: Project,
) -> None:
    port = port_for(project)
    placed = service(port, hosts=["h001", "h002"])
    project.write({"redeploy": placed})
    first = project.deploy()
    project.write({"redeploy": placed}, vars={"release": "v2"})

    second = project.deploy()

    for host in project.hosts[:2]:
        name = f"redeploy@{host.name}"
        assert second[name]["result"] == "success"
        assert second[name]["revision"] != first[name]["revision"]
        assert current_target(host, "redeploy") == f"releases/{second[name]['revision']}"
        assert host_record(host, "redeploy")["revision"] == second[name]["revision"]
        assert version(host, port) == "v2"
    before = {h.name: _host_view(h) for h in project.hosts[:2]}

    again = project.deploy()

    assert {o["result"] for o in again.values()} == {"unchanged"}
    assert {h.name: _host_view(h) for h in project.hosts[:2]} == before
    status = project.status()
    assert {status[n]["deployed_revision"] for n in again} == {second[n]["revision"] for n in again}
    assert not any(status[n]["stale"] for n in again)


def _host_view(host: FleetHost) -> tuple[object, ...]:
    record = service_dir(host, "redeploy") / "deployed.json"
    return (
        current_target(host, "redeploy"),
        record.stat().st_mtime_ns,
        record.read_text(),
        releases(host, "redeploy"),
    )


def test_a_failed_health_check_leaves_the_old_release_serving(project: Project) -> None:
    port = port_for(project)
    host = project.hosts[0]
    project.write({"unhealthy": service(port, hosts=[host.name])})
    old = project.deploy()["unhealthy@h001"]["revision"]
    broken = {
        "health": {
            "http": "http://{{ host.address }}:{{ ports.http }}/nope",
            "retries": 2,
            "interval": 0.1,
        }
    }
    project.write(
        {"unhealthy": service(port, hosts=[host.name], overrides=broken)}, vars={"release": "v2"}
    )

    failed = project.deploy(expect=1)["unhealthy@h001"]

    assert failed["result"] == "failed"
    assert "health check failed" in failed["reason"]
    assert "/nope" in failed["reason"]
    # The restored release is checked as it was deployed (/healthz), and it passes.
    assert "failed too" not in failed["reason"]
    assert version(host, port) == "v1"
    assert current_target(host, "unhealthy") == f"releases/{old}"
    assert host_record(host, "unhealthy")["revision"] == old
    row = project.status()["unhealthy@h001"]
    assert (row["deployed_revision"], row["stale"]) == (old, True)
    assert row["last"]["status"] == "failed"
    assert "health check failed" in row["last"]["error"]


def test_one_failing_service_on_a_host_leaves_the_others_deployed_there(project: Project) -> None:
    # Both services go through the same steps together on h001: one fails its health check.
    host = project.hosts[0]
    ports = {name: free_port([host.address]) for name in ("steady", "shaky")}
    placed = {name: service(p, hosts=[host.name]) for name, p in ports.items()}
    project.write(placed)
    first = project.deploy()
    broken = {"health": {"http": "http://{{ host.address }}:{{ ports.http }}/nope", "retries": 1}}
    placed["shaky"] = service(ports["shaky"], hosts=[host.name], overrides=broken)
    project.write(placed, vars={"release": "v2"})

    second = project.deploy(expect=1)

    assert second["steady@h001"]["result"] == "success"
    assert second["shaky@h001"]["result"] == "failed"
    assert "/nope" in second["shaky@h001"]["reason"]
    assert version(host, ports["steady"]) == "v2"
    assert version(host, ports["shaky"]) == "v1"
    old = first["shaky@h001"]["revision"]
    assert current_target(host, "shaky") == f"releases/{old}"
    status = project.status()
    assert status["steady@h001"]["deployed_revision"] == second["steady@h001"]["revision"]
    assert status["shaky@h001"]["deployed_revision"] == old


def test_an_unreachable_host_fails_its_instances_and_skips_their_dependents(
    project: Project, hosts: Fleet
) -> None:
    ports = {name: port_for(project) for name in ("reach-a", "reach-b", "reach-c")}
    project.write(
        {
            "reach-a": service(ports["reach-a"]),
            "reach-b": service(ports["reach-b"], depends_on=["reach-a"]),
            "reach-c": service(ports["reach-c"]),
        },
        addresses={"h003": hosts.silent_address()},
    )

    outcomes = project.deploy(expect=1)

    for name in ("reach-a@h003", "reach-c@h003"):
        assert outcomes[name]["result"] == "failed"
        assert "cannot connect" in outcomes[name]["reason"], outcomes[name]
    for name in ("reach-b@h001", "reach-b@h002", "reach-b@h003"):
        skipped = outcomes[name]
        assert skipped["result"] == "skipped"
        assert skipped["reason"] == "depends on reach-a, which failed"
    for host in project.hosts[:2]:
        for name in ("reach-a", "reach-c"):
            outcome = outcomes[f"{name}@{host.name}"]
            assert outcome["result"] == "success"
            assert current_target(host, name) == f"releases/{outcome['revision']}"
            assert version(host, ports[name]) == "v1"
        assert not service_dir(host, "reach-b").exists()
    status = project.status()
    assert status["reach-a@h003"]["status"] == "failed"
    assert "cannot connect" in status["reach-a@h003"]["last"]["error"]
    assert status["reach-b@h001"]["deployed_revision"] is None
    assert status["reach-c@h002"]["status"] == "success"


def test_rollback_switches_to_a_kept_release_without_uploading(project: Project) -> None:
    port = port_for(project)
    host = project.hosts[0]
    placed = service(port, hosts=[host.name])
    project.write({"rolled": placed})
    v1 = project.deploy()["rolled@h001"]["revision"]
    project.write({"rolled": placed}, vars={"release": "v2"})
    v2 = project.deploy()["rolled@h001"]["revision"]
    kept = releases(host, "rolled")

    back = project.rollback("rolled@h001")["rolled@h001"]

    assert (back["result"], back["revision"]) == ("success", v1)
    assert version(host, port) == "v1"
    assert releases(host, "rolled") == kept
    assert current_target(host, "rolled") == f"releases/{v1}"
    assert host_record(host, "rolled")["revision"] == v1
    row = project.status()["rolled@h001"]
    assert (row["deployed_revision"], row["stale"], row["last"]["kind"]) == (v1, True, "rollback")

    forth = project.rollback("rolled@h001", "--to", v2[:10])["rolled@h001"]

    assert (forth["result"], forth["revision"]) == ("success", v2)
    assert version(host, port) == "v2"
    assert releases(host, "rolled") == kept
    assert project.status()["rolled@h001"]["deployed_revision"] == v2


def test_a_killed_deploy_is_marked_interrupted_and_the_host_keeps_a_complete_release(
    project: Project, tmp_path: Path
) -> None:
    port = port_for(project)
    host = project.hosts[0]
    gate = tmp_path / "hold-install"
    template = hello_template()
    template["commands"]["install"] = gated_install(gate)
    placed = service(port, hosts=[host.name])
    project.write({"killed": placed}, template=template)
    old = project.deploy()["killed@h001"]["revision"]
    project.write({"killed": placed}, template=template, vars={"release": "v2"})
    gate.touch()
    try:
        running = project.start("deploy", "--json")
        try:
            holder = _wait_in_progress(project, "killed@h001")
        finally:
            os.kill(running.pid, signal.SIGKILL)
            finish(running)
        assert current_target(host, "killed") == f"releases/{old}"
        assert release_is_complete(host, "killed", old)
        assert version(host, port) == "v1"
    finally:
        gate.unlink(missing_ok=True)

    row = project.status()["killed@h001"]

    assert row["last"]["id"] == holder["id"]
    assert row["last"]["status"] == "failed"
    assert "interrupted" in row["last"]["error"]
    assert str(running.pid) in row["last"]["error"]
    assert row["deployed_revision"] == old
    new = project.deploy()["killed@h001"]
    assert new["result"] == "success"
    assert current_target(host, "killed") == f"releases/{new['revision']}"
    assert release_is_complete(host, "killed", new["revision"])
    assert version(host, port) == "v2"


def _wait_in_progress(project: Project, instance: str) -> dict[str, Any]:
    """The deployment of `instance` once `status` shows it in progress (bounded)."""
    seen: list[dict[str, Any]] = []

    def in_progress() -> bool:
        last = project.status()[instance]["last"]
        if last is not None and last["status"] == "in_progress":
            seen.append(last)
        return bool(seen)

    wait_for(in_progress, f"{instance} in progress", timeout=30)
    return seen[0]


def test_two_concurrent_deploys_of_an_instance_one_is_rejected_naming_the_holder(
    project: Project, tmp_path: Path
) -> None:
    port = port_for(project)
    host = project.hosts[0]
    gate = tmp_path / "hold-install"
    template = hello_template()
    template["commands"]["install"] = gated_install(gate)
    project.write({"contended": service(port, hosts=[host.name])}, template=template)
    gate.touch()
    try:
        runs = {
            actor: project.start("deploy", "contended@h001", "--json", actor=actor)
            for actor in ("alice", "bob")
        }
        # The winner waits at the gate, so the loser has to give up while it holds the instance.
        wait_for(lambda: any(p.poll() is not None for p in runs.values()), "one deploy to end")
    finally:
        gate.unlink(missing_ok=True)
    results = {actor: finish(process) for actor, process in runs.items()}

    codes = sorted(code for code, _, _ in results.values())
    assert codes == [0, 1], results
    winner = next(actor for actor, (code, _, _) in results.items() if code == 0)
    loser = next(actor for actor in results if actor != winner)
    won = outcomes_of(results[winner][1])["contended@h001"]
    lost = outcomes_of(results[loser][1])["contended@h001"]
    assert won["result"] == "success"
    assert lost["result"] == "rejected"
    holder = project.status()["contended@h001"]["last"]
    assert holder["id"] == won["deployment_id"]
    for named in (won["deployment_id"], f"actor {winner}", f"since {holder['started']}"):
        assert named in lost["reason"]
    assert version(host, port) == "v1"


def test_program_logs_on_the_host_are_not_readable_by_others(project: Project) -> None:
    host = project.hosts[1]
    port = free_port([host.address])
    project.write({"logged": service(port, hosts=[host.name])})

    assert project.deploy()["logged@h002"]["result"] == "success"

    logs = service_dir(host, "logged") / "logs"
    assert stat.S_IMODE(logs.stat().st_mode) & 0o027 == 0
    files = [p for p in logs.iterdir() if p.is_file()]
    assert {p.name for p in files} >= {"stdout.log", "stderr.log"}
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) & 0o037 == 0, path


def test_a_relative_start_program_is_found_in_the_release(project: Project) -> None:
    host = project.hosts[1]
    port = free_port([host.address])
    launcher = project.dir / "app" / "bin" / "serve"
    launcher.parent.mkdir()
    launcher.write_text('#!/bin/sh\nexec python3 server.py "$@"\n')
    launcher.chmod(0o755)
    template = hello_template()
    template["commands"]["start"] = ["bin/serve"]
    project.write({"relative": service(port, hosts=[host.name])}, template=template)

    outcome = project.deploy()["relative@h002"]

    assert outcome["result"] == "success", outcome["reason"]
    assert version(host, port) == "v1"


def test_a_program_that_can_not_start_fails_at_once_with_the_supervisors_reason(
    project: Project,
) -> None:
    host = project.hosts[1]
    port = free_port([host.address])
    template = hello_template()
    template["commands"]["start"] = ["shipyard-no-such-command"]
    template["health"]["retries"] = 100_000  # waiting them out would take hours
    project.write({"nostart": service(port, hosts=[host.name])}, template=template)

    failed = project.deploy(expect=1)["nostart@h002"]

    assert failed["result"] == "failed"
    assert "program is FATAL" in failed["reason"]
    assert "can't find command 'shipyard-no-such-command'" in failed["reason"]


def test_a_switch_back_checks_the_restored_release_and_says_when_it_fails_too(
    project: Project, tmp_path: Path
) -> None:
    host = project.hosts[1]
    port = free_port([host.address])
    healthy = tmp_path / "healthy"
    healthy.touch()
    template = hello_template()
    template["health"] = {"command": ["test", "-e", str(healthy)], "retries": 3, "interval": 0.1}
    project.write({"restored": service(port, hosts=[host.name])}, template=template)
    old = project.deploy()["restored@h002"]["revision"]
    template["commands"]["start"] = ["sh", "-c", "echo v2 is broken >&2; exit 1"]
    project.write({"restored": service(port, hosts=[host.name])}, template=template)
    healthy.unlink()  # from now on, no release passes the check: the restored one neither

    failed = project.deploy(expect=1)["restored@h002"]

    assert failed["result"] == "failed"
    assert current_target(host, "restored") == f"releases/{old}"
    first, _, after = failed["reason"].partition(f"switching back to {old} failed too: ")
    assert "health check failed" in first
    assert after.startswith("health check failed: test -e ")
