"""Fleet hosts that run their own nginx (`nginx: {managed: true}`) in front of blue/green slots.

`bootstrapped_fronts` starts each host's supervisord and nginx through `shipyard bootstrap` and
stops both by PID afterwards, whatever happened. `Gates` holds a deployment at its install step
on a chosen host, so a test knows the switch has not happened yet and comes within seconds.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy_project import (
    Json,
    Project,
    daemon_pid,
    free_port,
    hello_template,
    service_dir,
    stop_supervisors,
)

from fleet import FleetHost

GATE_SECONDS = 60  # the longest an install waits at its gate


@dataclass
class FrontProject(Project):
    """A project whose every host runs its own nginx under <root>/nginx; its commands may take
    longer than `deploy_project`'s (a drain waits for the requests in flight)."""

    timeout: float = 180.0

    def __post_init__(self) -> None:
        super().__post_init__()
        for host in self.base["sites"]["fleet"]["hosts"].values():
            host["nginx"] = {"managed": True}

    def shipyard(self, *args: str, actor: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(*args),
            cwd=self.dir,
            env=self.env(actor),
            capture_output=True,
            text=True,
            check=False,
            timeout=self.timeout,
        )


def slot_template(*, gate_dir: Path | None = None) -> Json:
    """The hello server in a blue/green slot: it binds its host's address on the slot's $PORT,
    and its health check (retargeted at the slot's port by Shipyard) is quick."""
    template = hello_template()
    del template["env"]["PORT"]  # the slot's port comes from Shipyard as $PORT
    template["health"] = {
        "http": "http://{{ host.address }}:{{ ports.http }}/healthz",
        "timeout": 2,
        "retries": 50,
        "interval": 0.1,
    }
    if gate_dir is not None:
        template["commands"]["install"] = Gates(gate_dir).install_argv()
    return template


def slot_ports(hosts: list[FleetHost]) -> dict[str, int]:
    """Free ports on every host: `http` for nginx, `blue` and `green` for the slots."""
    addresses = [h.address for h in hosts]
    return {name: free_port(addresses) for name in ("http", "blue", "green")}


def front_service(
    ports: dict[str, int], hosts: list[FleetHost], strategy: Json, **more: Any
) -> Json:
    """A service on `hosts` behind each host's nginx at `{{ host.address }}:<http>`."""
    overrides: Json = {
        "ports": ports,
        "strategy": {
            "front": "{{ host.address }}:{{ ports.http }}",
            "upstream_host": "{{ host.address }}",
            **strategy,
        },
        **more,
    }
    return {"template": "hello", "hosts": [h.name for h in hosts], "overrides": overrides}


class Gates:
    """One gate file per host: while it exists, a deployment's install step on that host waits
    (at most GATE_SECONDS); it touches `<host>.arrived` when it gets there."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        directory.mkdir(parents=True, exist_ok=True)

    def install_argv(self) -> list[str]:
        wait = (
            ': > "$2"; i=0; '
            f'while [ -e "$1" ] && [ $i -lt {GATE_SECONDS * 10} ]; do sleep 0.1; i=$((i+1)); done'
        )
        gate = f"{self.dir}/{{{{ host.name }}}}"
        return ["sh", "-c", wait, "gate", f"{gate}.gate", f"{gate}.arrived"]

    def close(self, hosts: list[FleetHost]) -> None:
        for host in hosts:
            (self.dir / f"{host.name}.gate").touch()
            (self.dir / f"{host.name}.arrived").unlink(missing_ok=True)

    def arrived(self, host: FleetHost) -> bool:
        return (self.dir / f"{host.name}.arrived").exists()

    def open(self, host: FleetHost) -> None:
        (self.dir / f"{host.name}.gate").unlink(missing_ok=True)

    def open_all(self) -> None:
        for gate in self.dir.glob("*.gate"):
            gate.unlink(missing_ok=True)


def slot_file(host: FleetHost, service: str, name: str) -> str | None:
    """`live-slot` or `draining-slot` of a service on its host (first word), None if absent."""
    path = service_dir(host, service) / name
    try:
        words = path.read_text().split()
    except FileNotFoundError:
        return None
    return words[0] if words else ""


# nginx, started on each host by `shipyard bootstrap`.


def nginx_pid(host: FleetHost) -> int | None:
    """The pid of this host's own nginx master, if it runs."""
    return daemon_pid(host, "nginx", "nginx", "nginx.pid", "nginx.conf")


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def stop_nginxes(hosts: list[FleetHost], timeout: float = 10.0) -> None:
    """Stop each host's nginx by its master's pid (SIGTERM: workers go with it), then wait;
    whatever is left, master and workers, is killed."""
    masters = [pid for pid in map(nginx_pid, hosts) if pid is not None]
    workers = {pid: _children(pid) for pid in masters}
    for pid in masters:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    everyone = masters + [w for group in workers.values() for w in group]
    deadline = time.monotonic() + timeout
    while any(_alive(pid) for pid in everyone) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in everyone:
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def bootstrapped_fronts(project: FrontProject, services: Json) -> Iterator[FrontProject]:
    """`shipyard bootstrap` for a project whose `services` are blue/green on every host: each
    host gets its supervisord and its nginx; both are stopped by pid afterwards."""
    try:
        project.write(services, template=slot_template())
        report = project.json("bootstrap")
        assert all(not host["error"] for host in report), report
        assert all(nginx_pid(host) for host in project.hosts), report
        yield project
    finally:
        try:
            stop_nginxes(project.hosts)
        finally:
            stop_supervisors(project.hosts)
