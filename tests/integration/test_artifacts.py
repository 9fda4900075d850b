"""System-wide artifacts on the real SSH fleet: pushed to three sites while one site's hosts are
unreachable (success, success, failed), retried once that site is back (green, and the other
sites' files untouched: same inode and mtime, no command run there), a changed artifact pushed
again and an unchanged one not, each file landing with its mode."""

from __future__ import annotations

import copy
import os
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_project import Project

from fleet import Fleet, FleetHost

pytestmark = pytest.mark.integration

SITES = {"north": ["h001", "h002"], "south": ["h003"], "west": ["h004"]}


def write(project: Project, *, note: str = "v1", silent: str | None = None) -> None:
    """Three sites over the fleet's four hosts; `silent`'s hosts at an address nobody answers."""
    fleet_hosts = project.base["sites"]["fleet"]["hosts"]
    document = {k: copy.deepcopy(v) for k, v in project.base.items() if k != "sites"}
    document["sites"] = {}
    for site, names in SITES.items():
        hosts = {n: copy.deepcopy(fleet_hosts[n]) for n in names}
        if site == silent:
            for host in hosts.values():
                host["address"] = project.fleet.silent_address()
        document["sites"][site] = {"hosts": hosts, "vars": {"region": site}}
    document["artifacts"] = {
        "notify": {
            "target": "/shared/notify",
            "mode": "0640",
            "template": True,
            "files": {
                "list.txt": {"content": "ops@{{ region }}.example {{ note }}\n"},
                "bin/page.sh": {"source": "page.sh"},
            },
        },
        "static": {"target": "/shared/static", "files": {"motd": {"content": "hello\n"}}},
    }
    document["vars"] = {"note": note}
    (project.dir / "page.sh").write_text("#!/bin/sh\necho page\n")
    (project.dir / "shipyard.yaml").write_text(yaml.safe_dump(document, sort_keys=False))


def landed(host: FleetHost, artifact: str, name: str) -> Path:
    return Path(host.root) / "shared" / artifact / name


def results(report: dict[str, Any]) -> dict[tuple[str, str], str]:
    return {(r["artifact"], r["host"]): r["result"] for r in report["results"]}


def matrix(project: Project, expect: int = 0) -> dict[tuple[str, str], str]:
    found = project.json("artifacts", "status", expect=expect)
    return {(c["artifact"], c["site"]): c["state"] for c in found["cells"]}


@pytest.fixture
def project(fleet: Any, tmp_path: Path) -> Project:
    found: Fleet = fleet(4)
    for host in found.hosts:  # each test starts from hosts without artifacts
        for artifact in ("notify", "static"):
            target = Path(host.root) / "shared" / artifact
            if target.exists():
                for path in sorted(target.rglob("*"), reverse=True):
                    path.rmdir() if path.is_dir() else path.unlink()
    return Project(tmp_path / "project", found)


def test_an_offline_site_fails_alone_and_a_retry_turns_it_green_touching_nothing_else(
    project: Project,
) -> None:
    write(project, silent="west")
    report = project.json("artifacts", "deploy", expect=1)

    assert matrix(project, expect=1) == {
        ("notify", "north"): "success", ("notify", "south"): "success",
        ("notify", "west"): "failed", ("static", "north"): "success",
        ("static", "south"): "success", ("static", "west"): "failed",
    }  # fmt: skip
    west = [r for r in report["results"] if r["site"] == "west"]
    assert west
    assert all("cannot connect" in r["reason"] for r in west)
    h001, h004 = project.fleet.host("h001"), project.fleet.host("h004")
    listed = landed(h001, "notify", "list.txt")
    assert listed.read_text() == "ops@north.example v1\n"
    assert stat.S_IMODE(listed.stat().st_mode) == 0o640
    assert not landed(h004, "notify", "list.txt").exists()
    before = {
        h.name: os.stat(landed(h, "notify", "list.txt"))
        for h in project.hosts if h.name != "h004"
    }  # fmt: skip

    write(project)  # west is reachable again
    retried = project.json("artifacts", "retry", "--site", "west")

    assert set(results(retried)) == {("notify", "h004"), ("static", "h004")}  # nobody else
    assert set(results(retried).values()) == {"success"}
    assert landed(h004, "notify", "list.txt").read_text() == "ops@west.example v1\n"
    assert set(matrix(project).values()) == {"success"}
    for host in project.hosts:
        if host.name in before:
            now = os.stat(landed(host, "notify", "list.txt"))
            assert (now.st_ino, now.st_mtime_ns) == (
                before[host.name].st_ino, before[host.name].st_mtime_ns,
            )  # fmt: skip
    assert project.json("artifacts", "retry")["results"] == []  # nothing failed any more


def test_a_changed_artifact_is_pushed_again_and_an_unchanged_one_is_not(project: Project) -> None:
    write(project)
    project.json("artifacts", "deploy")
    h003 = project.fleet.host("h003")
    motd = os.stat(landed(h003, "static", "motd"))

    write(project, note="v2")
    stale = matrix(project)
    assert {stale["notify", site] for site in SITES} == {"stale"}  # the hosts hold v1
    assert {stale["static", site] for site in SITES} == {"success"}
    planned = project.json("artifacts", "deploy", "--dry-run")["results"]
    assert {r["result"] for r in planned if r["artifact"] == "notify"} == {"changed"}
    again = results(project.json("artifacts", "deploy"))

    assert {again[("notify", h.name)] for h in project.hosts} == {"success"}
    assert {again[("static", h.name)] for h in project.hosts} == {"unchanged"}
    assert landed(h003, "notify", "list.txt").read_text() == "ops@south.example v2\n"
    kept = os.stat(landed(h003, "static", "motd"))
    assert (kept.st_ino, kept.st_mtime_ns) == (motd.st_ino, motd.st_mtime_ns)
    assert stat.S_IMODE(kept.st_mode) == 0o644
    leftovers = [p for p in (Path(h003.root) / "shared").rglob("*") if "shipyard-tmp" in p.name]
    assert leftovers == []

    landed(h003, "static", "motd").unlink()  # removed by hand: the host's checksum tells
    healed = results(project.json("artifacts", "deploy", "static"))
    assert healed[("static", "h003")] == "success"
    assert healed[("static", "h001")] == "unchanged"
    assert landed(h003, "static", "motd").read_text() == "hello\n"
    actions = {entry["action"] for entry in project.json("audit")}
    assert {"artifacts.begin", "artifacts.finish"} <= actions
