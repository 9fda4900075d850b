"""Deploying to a host whose supervisor is systemd, through the CLI, on a local host.

No systemd runs on this machine (it is not PID 1 here), so `systemctl` is a stand-in
(standin_systemctl.py) that keeps its interface and really runs each installed unit: the hello
server starts from the unit Shipyard wrote, with exactly its environment and directory, and the
health check talks to it. What is checked is what Shipyard does with systemd: the unit files it
installs, the calls it makes (one reload, enable and restart for every service on the host),
and what it does when a release fails.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_project import HELLO_APP, free_port, hello_template, version

pytestmark = pytest.mark.integration

STANDIN = Path(__file__).with_name("standin_systemctl.py")


class SystemdProject:
    """A project with one local host, `supervisor: systemd`, units in a folder of the test's."""

    def __init__(self, base: Path) -> None:
        self.dir = base / "project"
        self.root = base / "host"
        self.units = base / "units"
        self.state = base / "systemd-state"
        self.bin = base / "bin"
        self.bin.mkdir(parents=True)
        # The host's own `systemctl` knows where its state is: host steps start with a clean
        # environment, so nothing the controller has in its own reaches them.
        systemctl = self.bin / "systemctl"
        systemctl.write_text(
            "#!/bin/sh\n"
            f"STANDIN_SYSTEMD_STATE={shlex.quote(str(self.state))} "
            f"STANDIN_SYSTEMD_UNITS={shlex.quote(str(self.units))} "
            f'exec {shlex.quote(sys.executable)} {shlex.quote(str(STANDIN))} "$@"\n'
        )
        systemctl.chmod(0o755)
        shutil.copytree(HELLO_APP, self.dir / "app")
        self.ports = {name: free_port(["127.0.0.1"]) for name in ("api", "web")}

    def write(
        self, *, release: str = "v1", health_path: str = "/healthz", retries: int = 20
    ) -> None:
        template = hello_template()
        template["env"]["BIND"] = "127.0.0.1"
        template["health"]["http"] = f"http://127.0.0.1:{{{{ ports.http }}}}{health_path}"
        template["health"]["retries"] = retries
        host = {
            "connection": "local",
            "root": str(self.root),
            "supervisor": "systemd",
            "systemd_unit_dir": str(self.units),
        }
        document = {
            "name": "systemdtest",
            "sites": {"lab": {"hosts": {"box": host}}},
            "vars": {"release": release},
            "templates": {"hello": template},
            "services": {
                name: {"template": "hello", "hosts": ["box"], "overrides": {"ports": {"http": p}}}
                for name, p in self.ports.items()
            },
        }
        (self.dir / "shipyard.yaml").write_text(yaml.safe_dump(document, sort_keys=False))

    def shipyard(self, *args: str, expect: int = 0) -> Any:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
        env |= {
            "PATH": f"{self.bin}:{os.environ['PATH']}",
            "STANDIN_SYSTEMD_STATE": str(self.state),
            "STANDIN_SYSTEMD_UNITS": str(self.units),
            "SHIPYARD_ACTOR": "tester",
        }
        done = subprocess.run(
            [sys.executable, "-m", "shipyard", *args, "--json"],
            cwd=self.dir,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == expect, f"{done.stdout}\n{done.stderr}"
        return json.loads(done.stdout)

    def deploy(self, expect: int = 0) -> dict[str, Any]:
        report = self.shipyard("deploy", expect=expect)
        return {o["instance"]: o for o in report["outcomes"]}

    def calls(self) -> list[list[str]]:
        lines = (self.state / "calls.jsonl").read_text().splitlines()
        return [json.loads(line) for line in lines]

    def current(self, service: str) -> str:
        return os.readlink(self.root / service / "current")

    def stop_units(self) -> None:
        """End the processes the stand-in started (by their pids), also when a test failed."""
        for pidfile in self.state.glob("*.pid"):
            try:
                os.killpg(int(pidfile.read_text()), signal.SIGTERM)
            except (OSError, ValueError):
                continue


@pytest.fixture
def project(tmp_path: Path) -> Iterator[SystemdProject]:
    made = SystemdProject(tmp_path)
    try:
        yield made
    finally:
        made.stop_units()


def test_a_systemd_host_gets_unit_files_and_one_restart_for_all_its_services(
    project: SystemdProject,
) -> None:
    project.write(release="v1")

    outcomes = project.deploy()

    assert {o["result"] for o in outcomes.values()} == {"success"}
    for name, port in project.ports.items():
        assert version(_Local(), port) == "v1"
        unit = project.units / f"shipyard-{name}.service"
        assert stat.S_IMODE(unit.stat().st_mode) == 0o600
        text = unit.read_text()
        revision = outcomes[f"{name}@box"]["revision"]
        assert f'Environment="SHIPYARD_REVISION={revision}"' in text
        assert f"WorkingDirectory={project.root}/{name}/current" in text
    verbs = [call[0] for call in project.calls()]
    assert verbs[:3] == ["daemon-reload", "enable", "restart"]
    restart = next(call for call in project.calls() if call[0] == "restart")
    assert sorted(restart[1:]) == ["shipyard-api.service", "shipyard-web.service"]
    status = {row["instance"]: row for row in project.shipyard("status")}
    assert {row["status"] for row in status.values()} == {"success"}


def test_a_failing_release_on_systemd_is_switched_back_and_the_old_one_restarted(
    project: SystemdProject,
) -> None:
    project.write(release="v1")
    first = project.deploy()
    before = {name: project.current(name) for name in project.ports}

    project.write(release="v2", health_path="/missing", retries=2)
    outcomes = project.deploy(expect=1)

    assert {o["result"] for o in outcomes.values()} == {"failed"}
    assert all("health check failed" in o["reason"] for o in outcomes.values())
    assert {name: project.current(name) for name in project.ports} == before
    for name, port in project.ports.items():
        assert version(_Local(), port) == "v1"  # the old release runs again, restarted
        unit = (project.units / f"shipyard-{name}.service").read_text()
        assert first[f"{name}@box"]["revision"] in unit
    status = {row["instance"]: row for row in project.shipyard("status")}
    assert {row["deployed_revision"] for row in status.values()} == {
        o["revision"] for o in first.values()
    }


def test_rollback_on_systemd_restarts_the_kept_release_without_uploading(
    project: SystemdProject,
) -> None:
    project.write(release="v1")
    first = project.deploy()
    project.write(release="v2")
    project.deploy()
    assert version(_Local(), project.ports["api"]) == "v2"

    report = project.shipyard("rollback", "api@box")

    (outcome,) = report["outcomes"]
    assert outcome["result"] == "success"
    assert outcome["revision"] == first["api@box"]["revision"]
    assert version(_Local(), project.ports["api"]) == "v1"
    assert version(_Local(), project.ports["web"]) == "v2"


class _Local:
    """What `version` needs of a host: its address."""

    address = "127.0.0.1"
