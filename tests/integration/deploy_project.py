"""A Shipyard project on the test fleet, driven through the `shipyard` CLI, and what its hosts hold.

The project file starts from the fleet's own `shipyard.yaml` (ssh settings, roots, supervisord
configs) with each host's address set to its loopback address, so a service can bind it and its
health check can reach it: `{{ host.address }}`.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fleet import Fleet, FleetHost
from shipyard.commands.release import MARKER

REPO = Path(__file__).resolve().parents[2]
HELLO_APP = REPO / "examples" / "hello" / "app"
CLI_TIMEOUT = 60.0

Json = dict[str, Any]


def hello_template() -> Json:
    """The hello server bound to its host's own loopback address, with a quick health check."""
    return {
        "artifact": {"path": "app", "exclude": ["__pycache__/*", "*.pyc"]},
        "commands": {"start": ["python3", "server.py"]},
        "env": {
            "BIND": "{{ host.address }}",
            "PORT": "{{ ports.http }}",
            "RELEASE": "{{ release }}",
        },
        "health": {
            "http": "http://{{ host.address }}:{{ ports.http }}/healthz",
            "timeout": 2,
            "retries": 30,
            "interval": 0.1,
        },
    }


def gated_install(gate: Path) -> list[str]:
    """An install command that waits while `gate` exists (at most 30 s): a deploy held open."""
    loop = 'i=0; while [ -e "$1" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done'
    return ["sh", "-c", loop, "gate", str(gate)]


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


_ports = itertools.count(18300)


def free_port(addresses: list[str]) -> int:
    """A port nothing listens on at any of `addresses`, different on every call."""
    while True:
        port = next(_ports)
        if all(_bindable(address, port) for address in addresses):
            return port


def _bindable(address: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
        except OSError:
            return False
    return True


@dataclass
class Project:
    """A project directory whose `shipyard.yaml` reaches the fleet; `write` replaces its services."""

    dir: Path
    fleet: Fleet
    actor: str = "tester"
    base: Json = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        shutil.copytree(HELLO_APP, self.dir / "app", dirs_exist_ok=True)
        base = yaml.safe_load(self.fleet.project_file.read_text())
        for name, host in base["sites"]["fleet"]["hosts"].items():
            host["address"] = self.fleet.host(name).address
        base["name"] = "deploytest"
        self.base = base

    @property
    def hosts(self) -> list[FleetHost]:
        return self.fleet.hosts

    def write(
        self,
        services: Json,
        *,
        vars: Json | None = None,
        template: Json | None = None,
        addresses: dict[str, str] | None = None,
    ) -> None:
        """Write the project: the fleet's hosts (some at other `addresses`), one template."""
        document = copy.deepcopy(self.base)
        for name, address in (addresses or {}).items():
            document["sites"]["fleet"]["hosts"][name]["address"] = address
        document["vars"] = {"release": "v1", **(vars or {})}
        document["templates"] = {"hello": template or hello_template()}
        document["services"] = services
        (self.dir / "shipyard.yaml").write_text(yaml.safe_dump(document, sort_keys=False))

    def env(self, actor: str | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
        env["SHIPYARD_ACTOR"] = actor or self.actor
        return env

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "shipyard", *args]

    def shipyard(self, *args: str, actor: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(*args),
            cwd=self.dir,
            env=self.env(actor),
            capture_output=True,
            text=True,
            check=False,
            timeout=CLI_TIMEOUT,
        )

    def start(self, *args: str, actor: str | None = None) -> subprocess.Popen[str]:
        """Start a command in the background; its output goes to pipes read at `finish`."""
        return subprocess.Popen(
            self.argv(*args),
            cwd=self.dir,
            env=self.env(actor),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def json(self, *args: str, expect: int = 0, actor: str | None = None) -> Any:
        """Run a command with `--json`; check its exit code and return what it printed."""
        done = self.shipyard(*args, "--json", actor=actor)
        assert done.returncode == expect, _explain(done)
        return json.loads(done.stdout)

    def deploy(self, *names: str, expect: int = 0) -> dict[str, Json]:
        """`shipyard deploy --json`: the outcomes by instance."""
        report = self.json("deploy", *names, expect=expect)
        return {o["instance"]: o for o in report["outcomes"]}

    def rollback(self, *args: str) -> dict[str, Json]:
        """`shipyard rollback --json`: the outcome by instance."""
        report = self.json("rollback", *args)
        return {o["instance"]: o for o in report["outcomes"]}

    def status(self) -> dict[str, Json]:
        """`shipyard status --json`: the rows by instance."""
        return {row["instance"]: row for row in self.json("status")}


def finish(process: subprocess.Popen[str], timeout: float = CLI_TIMEOUT) -> tuple[int, str, str]:
    """Wait for a background command (killed if it overruns); its exit code, stdout and stderr."""
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise
    return process.returncode, stdout, stderr


def outcomes_of(stdout: str) -> dict[str, Json]:
    return {o["instance"]: o for o in json.loads(stdout)["outcomes"]}


def _explain(done: subprocess.CompletedProcess[str]) -> str:
    return f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"


# What the hosts hold.


def service_dir(host: FleetHost, service: str) -> Path:
    return Path(host.root) / service


def current_target(host: FleetHost, service: str) -> str | None:
    """Where `current` points (`releases/<revision>`), or None when there is no `current`."""
    link = service_dir(host, service) / "current"
    return os.readlink(link) if link.is_symlink() else None


def release_is_complete(host: FleetHost, service: str, revision: str) -> bool:
    marker = service_dir(host, service) / "releases" / revision / MARKER
    return marker.is_file() and marker.read_text().strip() == revision


def releases(host: FleetHost, service: str) -> dict[str, int]:
    """The release directories on the host, with each one's modification time (ns)."""
    found = service_dir(host, service) / "releases"
    return {p.name: p.stat().st_mtime_ns for p in sorted(found.iterdir())}


def host_record(host: FleetHost, service: str) -> Json:
    found: Json = json.loads((service_dir(host, service) / "deployed.json").read_text())
    return found


def version(host: FleetHost, port: int, timeout: float = 10.0) -> str:
    """What the service on `host` answers on /version (retried while it is not listening yet)."""
    url = f"http://{host.address}:{port}/version"
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                text: str = answer.read().decode().strip()
                return text
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


# supervisord, started on each host by `shipyard bootstrap`.


def daemon_pid(host: FleetHost, folder: str, program: str, pidfile: str, conf: str) -> int | None:
    """The pid of a daemon `shipyard bootstrap` started under the host's root, if it runs:
    its pid file names a live `program` whose command line has our config path."""
    base = Path(host.root) / folder
    try:
        pid = int((base / pidfile).read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except (OSError, ValueError):
        return None
    ours = program.encode() in cmdline and str(base / conf).encode() in cmdline
    return pid if ours else None


def supervisord_pid(host: FleetHost) -> int | None:
    """The pid of this host's own supervisord, if it runs."""
    return daemon_pid(host, "supervisor", "supervisord", "supervisord.pid", "supervisord.conf")


def stop_supervisors(hosts: list[FleetHost], timeout: float = 15.0) -> None:
    """Stop each host's supervisord by its pid (it stops its programs first), then wait."""
    pids = [pid for pid in map(supervisord_pid, hosts) if pid is not None]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in pids:
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


@contextlib.contextmanager
def bootstrapped(project: Project) -> Iterator[Project]:
    """Hosts with their own supervisord for the duration; stopped afterwards, whatever happened."""
    try:
        project.write({})
        report = project.json("bootstrap")
        assert all(not host["error"] for host in report), report
        yield project
    finally:
        stop_supervisors(project.hosts)
