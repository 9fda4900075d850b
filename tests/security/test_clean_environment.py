"""What a controller has in its environment (secrets included) never reaches what it starts on a
host: not the local host's supervisord, not a deployed program, not an install command. They get
their config's `env` and the documented minimum (PATH, HOME, LANG), nothing else.

Run for real: `shipyard bootstrap` and `shipyard deploy` as subprocesses on a `local` host with
a sentinel in their environment, then each process's /proc/<pid>/environ is read.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from shipyard.commands.script import MINIMUM_ENV

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
HELLO_APP = REPO / "examples" / "hello" / "app"
SENTINEL = "controller-only-sentinel-7f3a9c"
# What supervisord itself adds to its programs' environment.
# What sh itself sets in the environment of the commands it runs.
SHELL_ADDS = {"PWD", "OLDPWD", "SHLVL", "_"}
SUPERVISOR_ADDS = {
    "SUPERVISOR_ENABLED",
    "SUPERVISOR_SERVER_URL",
    "SUPERVISOR_PROCESS_NAME",
    "SUPERVISOR_GROUP_NAME",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(entry.split("=", 1) for entry in raw.decode().split("\0") if "=" in entry)


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


class LocalProject:
    def __init__(self, directory: Path, host: dict[str, Any] | None = None, **changes: Any) -> None:
        """The hello app on the local host (`host` added to its settings); `changes` replace
        members of its template."""
        self.dir = directory
        self.root = directory / "host"
        shutil.copytree(HELLO_APP, directory / "app")
        self.port = free_port()
        document: dict[str, Any] = {
            "name": "cleanenv",
            "sites": {"here": {"hosts": {"local": {"root": str(self.root)}}}},
            "templates": {
                "hello": {
                    "artifact": {"path": "app", "exclude": ["__pycache__/*"]},
                    "commands": {
                        # The interpreter itself, not a launcher (pyenv's shim) adding its own.
                        "start": [os.path.realpath(sys.executable), "server.py"],
                        "install": ["sh", "-c", "env > install.env"],
                    },
                    "env": {"BIND": "127.0.0.1", "PORT": str(self.port), "GIVEN": "by-config"},
                    "health": {
                        "http": f"http://127.0.0.1:{self.port}/healthz",
                        "timeout": 2,
                        "retries": 50,
                        "interval": 0.1,
                    },
                }
            },
            "services": {"envtest": {"template": "hello", "hosts": ["local"]}},
        }
        document["templates"]["hello"].update(changes)
        document["sites"]["here"]["hosts"]["local"].update(host or {})
        (directory / "shipyard.yaml").write_text(yaml.safe_dump(document, sort_keys=False))

    def shipyard(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
        env |= {"SHIPYARD_ACTOR": "tester", "CONTROLLER_SECRET": SENTINEL}
        return subprocess.run(
            [sys.executable, "-m", "shipyard", *args, "--json"],
            cwd=self.dir,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    @property
    def supervisor(self) -> Path:
        return self.root / "supervisor"

    def supervisord_pid(self) -> int | None:
        return _pid_in(self.supervisor / "supervisord.pid")

    def nginx_pid(self) -> int | None:
        """The pid of the host's own nginx (`nginx: {managed: true}`), if it runs."""
        return _pid_in(self.root / "nginx" / "nginx.pid")


def _pid_in(path: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        pid = int(path.read_text())
        if _alive(pid):
            return pid
    return None


def _stop(pid: int | None) -> None:
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)


MakeProject = Callable[..., LocalProject]


@pytest.fixture
def make_project(tmp_path: Path) -> Iterator[MakeProject]:
    """`make_project(**changes)`: a LocalProject; its supervisord is stopped afterwards."""
    if shutil.which("supervisord") is None:
        pytest.skip("supervisord is not installed")
    made: list[LocalProject] = []

    def make(**changes: Any) -> LocalProject:
        made.append(LocalProject(tmp_path / f"p{len(made)}", **changes))
        return made[-1]

    try:
        yield make
    finally:
        for found in made:
            _stop(found.nginx_pid())
            _stop(found.supervisord_pid())  # it stops its programs first


@pytest.fixture
def project(make_project: MakeProject) -> LocalProject:
    return make_project()


def test_no_controller_variable_reaches_supervisord_a_program_or_an_install(
    project: LocalProject,
) -> None:
    booted = project.shipyard("bootstrap")
    assert booted.returncode == 0, booted.stdout + booted.stderr
    deployed = project.shipyard("deploy")
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    supervisord = project.supervisord_pid()
    assert supervisord is not None
    answer = subprocess.run(
        ["supervisorctl", "-c", str(project.supervisor / "supervisord.conf"), "pid", "envtest"],
        capture_output=True,
        text=True,
        check=True,
    )
    program = int(answer.stdout.strip())

    supervisor_env, program_env = environ(supervisord), environ(program)

    for seen in (supervisor_env, program_env):
        assert SENTINEL not in json.dumps(seen)
        assert "CONTROLLER_SECRET" not in seen
    assert set(supervisor_env) <= set(MINIMUM_ENV)
    given = {"BIND", "PORT", "GIVEN", "SHIPYARD_REVISION", "SHIPYARD_INSTANCE"}
    assert set(program_env) <= {*MINIMUM_ENV, *SUPERVISOR_ADDS, *given}
    assert program_env["GIVEN"] == "by-config"
    installed = next((project.root / "envtest" / "releases").glob("*/install.env")).read_text()
    assert SENTINEL not in installed
    assert "GIVEN=by-config" in installed.splitlines()


def env_dumping_check(directory: Path) -> dict[str, Any]:
    """A command health check that passes, leaving the environment it got in `directory`."""
    directory.mkdir()
    return {
        "command": ["sh", "-c", f'env > "{directory}/$$.env"'],
        "timeout": 2,
        "retries": 50,
        "interval": 0.2,
    }


def assert_clean(found: list[Path], *, given: set[str]) -> None:
    assert found, "no health check ran"
    for path in found:
        text = path.read_text()
        assert SENTINEL not in text
        names = {line.partition("=")[0] for line in text.splitlines() if "=" in line}
        assert "CONTROLLER_SECRET" not in names
        assert names <= {*MINIMUM_ENV, *SHELL_ADDS, *given}, names


def test_no_controller_variable_reaches_a_canary_soak_health_check(
    make_project: MakeProject, tmp_path: Path
) -> None:
    """The soak's attempts run after the deployment is recorded on the host, each a host step
    with the clean environment, like the deployment's own health check."""
    seen = tmp_path / "health-env"
    project = make_project(
        health=env_dumping_check(seen), strategy={"kind": "canary", "canary": 1, "soak": 1}
    )
    booted = project.shipyard("bootstrap")
    assert booted.returncode == 0, booted.stdout + booted.stderr
    deployed = project.shipyard("deploy")
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr

    recorded = (project.root / "envtest" / "deployed.json").stat().st_mtime
    found = sorted(seen.glob("*.env"))
    soaked = [path for path in found if path.stat().st_mtime > recorded]
    assert soaked, "no health check ran after the deployment was recorded: no soak"
    assert_clean(found, given=set())


def test_no_controller_variable_reaches_a_blue_green_slot_health_check(
    make_project: MakeProject, tmp_path: Path
) -> None:
    """A slot's command check gets the slot's $PORT and SHIPYARD_SLOT, nothing of the
    controller's."""
    if shutil.which("nginx") is None:
        pytest.skip("nginx is not installed")
    seen = tmp_path / "health-env"
    http = free_port()
    project = make_project(
        host={"nginx": {"managed": True}},
        health=env_dumping_check(seen),
        ports={"http": http, "blue": free_port(), "green": free_port()},
        strategy={"kind": "blue-green", "drain_timeout": 1, "front": f"127.0.0.1:{http}"},
    )
    booted = project.shipyard("bootstrap")
    assert booted.returncode == 0, booted.stdout + booted.stderr
    deployed = project.shipyard("deploy")
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr

    found = sorted(seen.glob("*.env"))
    assert_clean(found, given={"PORT", "SHIPYARD_SLOT"})
    assert any("SHIPYARD_SLOT=blue" in path.read_text().splitlines() for path in found)
