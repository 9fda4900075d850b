"""`shipyard run` and `shipyard hosts` against the fleet, through the real command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleet import Fleet

pytestmark = pytest.mark.integration


def shipyard(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shipyard", "--project", str(project), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def hosts(fleet: Any) -> Fleet:
    found: Fleet = fleet(4)
    return found


@pytest.fixture
def project_with_a_ghost(hosts: Fleet, tmp_path: Path) -> Path:
    """The fleet's own shipyard.yaml plus a host at an address where nothing listens."""
    data = yaml.safe_load(hosts.project_file.read_text())
    data["ssh"]["connect_timeout"] = 2
    data["sites"]["elsewhere"] = {"hosts": {"ghost": {"address": hosts.silent_address()}}}
    project = tmp_path / "shipyard.yaml"
    project.write_text(yaml.safe_dump(data))
    return project


def test_run_reports_every_host_of_the_fleet(hosts: Fleet):
    done = shipyard(hosts.project_file, "run", "--", "uname", "-s")
    assert done.returncode == 0, done.stderr
    for host in hosts.hosts:
        assert host.name in done.stdout
    assert done.stdout.count("Linux") == len(hosts.hosts)
    assert f"all {len(hosts.hosts)} host(s) ok" in done.stdout


def test_run_as_json_lists_each_outcome_and_exits_1_when_one_failed(project_with_a_ghost: Path):
    done = shipyard(project_with_a_ghost, "run", "--json", "--", "sh", "-c", "echo $0")
    assert done.returncode == 1
    outcomes = {o["host"]: o for o in json.loads(done.stdout)}
    assert outcomes["h001"]["ok"] is True
    assert outcomes["h001"]["stdout"] == "sh\n"
    assert outcomes["ghost"]["ok"] is False
    assert "Connection refused" in outcomes["ghost"]["error"]


def test_run_lists_failures_with_their_reason(project_with_a_ghost: Path):
    done = shipyard(project_with_a_ghost, "run", "--site", "fleet", "--", "sh", "-c", "exit 7")
    assert done.returncode == 1
    assert "4 of 4 host(s) failed" in done.stdout
    assert "h002: exit status 7" in done.stdout


def test_run_selects_by_host_and_refuses_unknown_names(hosts: Fleet):
    done = shipyard(hosts.project_file, "run", "--host", "h002", "--json", "--", "true")
    assert [o["host"] for o in json.loads(done.stdout)] == ["h002"]
    unknown = shipyard(hosts.project_file, "run", "--host", "h0002", "--", "true")
    assert unknown.returncode == 2
    assert 'unknown host "h0002" (did you mean h002' in unknown.stderr


def test_hosts_checks_that_each_host_is_reachable(project_with_a_ghost: Path):
    done = shipyard(project_with_a_ghost, "hosts", "--json")
    assert done.returncode == 1
    reachable = {h["host"]: h["reachable"] for h in json.loads(done.stdout)}
    assert reachable == {"h001": True, "h002": True, "h003": True, "h004": True, "ghost": False}
