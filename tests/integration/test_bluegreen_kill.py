"""A controller killed at every step boundary of a blue/green deployment, under load: the next
deployment converges, and not one request fails.

The host is the truth about which slot is live, so whatever a `shipyard deploy` (a real
subprocess) had done on the host when it got SIGKILL, the next one reads it back from there.
To stop a deployment at a boundary deterministically, the host-side commands the config names
(install, the health check, nginx's test and reload commands) wait at a hold file while it
exists and say that they arrived; the test kills the controller while they wait. A killed
controller's host step then ends (`abort`) or goes on to its end, as a host step cut off from
its controller may; the test waits for it before deploying again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from deploy_project import service_dir
from loadgen import Load, Reply, Target, explain, failures, fetch, rate_of
from nginx_fleet import (
    FrontProject,
    bootstrapped_fronts,
    front_service,
    slot_file,
    slot_ports,
    slot_template,
)

from fleet import Fleet, FleetHost
from shipyard.commands import nginx

pytestmark = pytest.mark.integration

SERVICE = "kb"
RATE = 60.0  # requests per second over the fronts
TIMEOUT = 30.0
STEP_TIMEOUT = 90.0  # one `shipyard deploy`, or a wait for a host, on a busy machine
HOLD_LIMIT = 600  # tenths of a second a held command waits at most
DRAIN_TIMEOUT = 10  # > the long request that keeps the old slot draining
LONG = "/slow?seconds=8"  # in flight on the old slot well past the switch, on a busy machine


@dataclass(frozen=True)
class Boundary:
    """Where a deployment is stopped: the held command (`hold`), whether its host step ends
    when the controller is gone (`abort`), and what the host says afterwards: the slot nginx's
    site file names and the `live-slot` record, as "old" or "new" (None: not checked)."""

    name: str
    hold: str
    abort: bool
    site: str
    record: str
    draining: bool = False  # kill once the old slot is draining, with a request in flight
    new_slot_dies: bool = False  # and then the new slot's program stops


BOUNDARIES = [
    Boundary("uploading", "install", abort=True, site="old", record="old"),
    Boundary("health-checking", "check", abort=True, site="old", record="old"),
    Boundary("site written, nginx not reloaded", "test", abort=True, site="new", record="old"),
    Boundary(
        "site written, nginx not reloaded, the new slot dead",
        "test",
        abort=True,
        site="new",
        record="old",
        new_slot_dies=True,
    ),
    Boundary("nginx reloaded, switch not recorded", "reload", abort=True, site="new", record="old"),
    Boundary("switch recorded, deployment not", "reload", abort=False, site="new", record="new"),
    Boundary("draining", "check", abort=False, site="new", record="new", draining=True),
]


class Holds:
    """Hold files for the host-side commands: while `<dir>/<host>.<what>.hold` exists the command
    waits; it touches `.arrived` on getting there and `.done` on leaving; with `.abort` present
    it ends its host step there (nginx's commands kill the switch script that runs them)."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        directory.mkdir(parents=True, exist_ok=True)

    def prefix(self, host: str, what: str, *, kill_step: bool) -> str:
        end = "kill -9 $PPID; exit 1" if kill_step else "exit 1"
        g = f"{self.dir}/{host}.{what}"
        return (
            f"g='{g}'; : > \"$g.arrived\"; i=0; "
            f'while [ -e "$g.hold" ] && [ $i -lt {HOLD_LIMIT} ]; do sleep 0.05; i=$((i+1)); done; '
            f'if [ -e "$g.abort" ]; then : > "$g.done"; {end}; fi; : > "$g.done"'
        )

    def path(self, host: FleetHost, what: str, kind: str) -> Path:
        return self.dir / f"{host.name}.{what}.{kind}"

    def hold(self, hosts: list[FleetHost], what: str) -> None:
        for host in hosts:
            for kind in ("arrived", "done", "abort"):
                self.path(host, what, kind).unlink(missing_ok=True)
            self.path(host, what, "hold").touch()

    def release(self, hosts: list[FleetHost], what: str, *, abort: bool) -> None:
        for host in hosts:
            if abort:
                self.path(host, what, "abort").touch()
            self.path(host, what, "hold").unlink(missing_ok=True)

    def release_all(self) -> None:
        """Every hold released, and no command told to end its step any more."""
        for held in [*self.dir.glob("*.hold"), *self.dir.glob("*.abort")]:
            held.unlink(missing_ok=True)

    def all(self, hosts: list[FleetHost], what: str, kind: str) -> bool:
        return all(self.path(h, what, kind).exists() for h in hosts)


def kill_template(holds: Holds) -> dict[str, Any]:
    """The hello server in a slot; its install and its health check (a command: it needs the
    slot's $PORT and runs in the release directory) each wait at their hold."""
    template = slot_template()
    install = holds.prefix("{{ host.name }}", "install", kill_step=False)
    template["commands"]["install"] = ["sh", "-c", install]
    probe = (
        "import os, urllib.request; "
        "urllib.request.build_opener(urllib.request.ProxyHandler({})).open("
        "'http://{{ host.address }}:' + os.environ['PORT'] + '/healthz', timeout=2)"
    )
    check = holds.prefix("{{ host.name }}", "check", kill_step=False)
    template["health"] = {
        "command": ["sh", "-c", f'{check}; [ -f server.py ] && exec python3 -I -c "{probe}"'],
        "timeout": 20,  # a held attempt is not cut short
        "retries": 100,
        "interval": 0.1,
    }
    return template


def nginx_with_holds(root: str, host: str, holds: Holds) -> dict[str, Any]:
    """The host's own nginx (started by bootstrap) as explicit settings whose test and reload
    commands wait at their holds: the test before checking, the reload after reloading."""
    paths = nginx.NginxPaths(f"{root.rstrip('/')}/nginx")
    test = list(nginx.check_config_argv(paths.conf, error_log=paths.error_log))
    reload = list(nginx.reload_argv(paths.conf, error_log=paths.error_log))
    before = holds.prefix(host, "test", kill_step=True)
    after = holds.prefix(host, "reload", kill_step=True)
    return {
        "managed": False,
        "conf_dir": paths.conf_dir,
        "test": ["sh", "-c", f'{before}; exec "$@"', "test", *test],
        "reload": ["sh", "-c", f'"$@" || exit $?; {after}', "reload", *reload],
    }


@pytest.fixture(scope="module")
def fronts(fleet: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """The session's four fleet hosts, each with its supervisord and own nginx."""
    found: Fleet = fleet(4)
    project = FrontProject(tmp_path_factory.mktemp("kill-fronts"), found)
    bootstrap = front_service(slot_ports(found.hosts), found.hosts, {"kind": "blue-green"})
    with bootstrapped_fronts(project, {"bootstrap": bootstrap}):
        yield found


def site_slot(host: FleetHost, ports: dict[str, int]) -> str | None:
    """The slot the service's nginx site file names on `host`."""
    path = Path(host.root) / "nginx" / "conf.d" / f"shipyard-{SERVICE}.conf"
    try:
        port = nginx.upstream_port(path.read_text())
    except FileNotFoundError:
        return None
    return next((c for c in ("blue", "green") if ports[c] == port), None)


def test_a_controller_killed_at_any_step_boundary_leaves_the_next_deployment_zero_downtime(
    fronts: Fleet, tmp_path: Path
) -> None:
    hosts = fronts.hosts[:2]
    project = FrontProject(tmp_path / "project", fronts)
    holds = Holds(tmp_path / "holds")
    for host in hosts:
        settings = project.base["sites"]["fleet"]["hosts"][host.name]
        settings["nginx"] = nginx_with_holds(settings["root"], host.name, holds)
    ports = slot_ports(hosts)
    strategy = {"kind": "blue-green", "drain_timeout": DRAIN_TIMEOUT}
    template = kill_template(holds)

    def write(release: str) -> None:
        services = {SERVICE: front_service(ports, hosts, strategy)}
        project.write(services, vars={"release": release}, template=template)

    write("r0")
    assert {o["result"] for o in project.deploy().values()} == {"success"}
    fronts_ = [Target(h.address, ports["http"]) for h in hosts]

    rounds, replies = asyncio.run(_kill_and_redeploy(project, hosts, fronts_, holds, ports, write))

    assert rate_of(replies) >= RATE / 3, explain(replies)
    bad = failures(replies)
    by_round = {r.boundary.name: [b for b in bad if r.began <= b.started < r.ended] for r in rounds}
    assert bad == [], f"{by_round}\n{explain(replies)}"


@dataclass
class Round:
    boundary: Boundary
    began: float = 0.0
    ended: float = 0.0


async def _kill_and_redeploy(
    project: FrontProject,
    hosts: list[FleetHost],
    fronts: list[Target],
    holds: Holds,
    ports: dict[str, int],
    write: Any,
) -> tuple[list[Round], list[Reply]]:
    load = Load(fronts, rate=RATE, timeout=TIMEOUT, max_seconds=600.0)
    load.begin()
    rounds: list[Round] = []
    release = 0
    try:
        await asyncio.sleep(0.5)
        for boundary in BOUNDARIES:
            current = Round(boundary, began=time.monotonic())
            rounds.append(current)
            old = {h.name: slot_file(h, SERVICE, "live-slot") for h in hosts}
            assert all(old.values()), old
            new = {n: "green" if c == "blue" else "blue" for n, c in old.items()}
            release += 1
            write(f"r{release}")
            holds.hold(hosts, boundary.hold)
            process = await asyncio.create_subprocess_exec(
                *project.argv("deploy", "--json"),
                cwd=project.dir,
                env=project.env(),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
            try:
                await _until(partial(holds.all, hosts, boundary.hold, "arrived"), process, boundary)
                if boundary.draining:  # a request on the old slot keeps it draining
                    sent = [asyncio.Event() for _ in fronts]
                    for target, event in zip(fronts, sent, strict=True):
                        load.start(target, LONG, sent=event)
                    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in sent)), TIMEOUT)
                    await asyncio.sleep(0.5)  # through nginx to the old slot
                    holds.release(hosts, boundary.hold, abort=False)
                    draining = partial(_slots_are, hosts, "draining-slot", old)
                    await _until(draining, process, boundary)
                process.send_signal(signal.SIGKILL)
                await process.wait()
            finally:
                if process.returncode is None:
                    process.kill()
                    await process.wait()
            holds.release(hosts, boundary.hold, abort=boundary.abort)
            await _until(partial(holds.all, hosts, boundary.hold, "done"), None, boundary)
            if not boundary.abort and not boundary.draining:  # the switch script goes on
                await _until(partial(_slots_are, hosts, "live-slot", new), None, boundary)
            if boundary.new_slot_dies:
                for host in hosts:
                    stop_program(host, f"{SERVICE}-{new[host.name]}")
            want = {"old": old, "new": new}
            for host in hosts:
                here = (site_slot(host, ports), slot_file(host, SERVICE, "live-slot"))
                expected = (want[boundary.site][host.name], want[boundary.record][host.name])
                assert here == expected, (boundary.name, host.name)

            release += 1
            write(f"r{release}")
            holds.release_all()
            code, stdout, stderr = await _deploy(project)
            assert code == 0, f"{boundary.name}: {stdout} {stderr}"
            outcomes = json.loads(stdout)["outcomes"]
            assert {o["result"] for o in outcomes} == {"success"}, (boundary.name, stdout)
            for host, front in zip(hosts, fronts, strict=True):
                assert (await fetch(front, "/version")).body == f"r{release}", boundary.name
                live = slot_file(host, SERVICE, "live-slot")
                assert site_slot(host, ports) == live, (boundary.name, host.name)
                assert slot_file(host, SERVICE, "draining-slot") is None, boundary.name
                assert (service_dir(host, SERVICE) / "slots" / (live or "")).exists()
            current.ended = time.monotonic()
            await asyncio.sleep(0.5)  # the last requests of the round come back
            assert failures(load.replies) == [], f"{boundary.name}: {explain(load.replies)}"
        await asyncio.sleep(0.5)
    finally:
        holds.release_all()
        replies = await load.finish()
    return rounds, replies


def stop_program(host: FleetHost, program: str) -> None:
    """Stop a program of the host's supervisord, as a crash or an operator might."""
    conf = Path(host.root) / "supervisor" / "supervisord.conf"
    argv = ["supervisorctl", "-c", str(conf), "stop", program]
    subprocess.run(argv, check=True, capture_output=True, timeout=STEP_TIMEOUT)


def _slots_are(hosts: list[FleetHost], name: str, colors: dict[str, str | None]) -> bool:
    return all(slot_file(h, SERVICE, name) == colors[h.name] for h in hosts)


async def _until(
    condition: Callable[[], bool], process: asyncio.subprocess.Process | None, boundary: Boundary
) -> None:
    deadline = time.monotonic() + STEP_TIMEOUT
    while not condition():
        if process is not None and process.returncode is not None:
            err = await process.stderr.read() if process.stderr else b""
            raise AssertionError(f"deploy ended before {boundary.name}: {err.decode()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting at {boundary.name}")
        await asyncio.sleep(0.01)


async def _deploy(project: FrontProject) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *project.argv("deploy", "--json"),
        cwd=project.dir,
        env=project.env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), STEP_TIMEOUT)
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()
