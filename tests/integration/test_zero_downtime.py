"""Zero downtime, proved under load: blue/green, rolling and canary switches behind each host's
own nginx, a release that fails its health check, the failure budget at its boundary, and what
the drain counts as a request in flight.

A load generator in the test sends 100 requests per second through the three fronts for as long
as the deployments take (about a minute on a quiet machine; never more than LOAD_SECONDS) while
`shipyard deploy` runs as a subprocess. Each deployment is held at its install step on a host
(a gate file) until 5-second requests are in flight through that host's front, so they are sure
to start on the old release and to be in flight when nginx switches.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from deploy_project import finish, free_port, hello_template, service_dir, wait_for
from loadgen import Load, Reply, Target, explain, failures, fetch, rate_of
from nginx_fleet import (
    FrontProject,
    Gates,
    bootstrapped_fronts,
    front_service,
    slot_file,
    slot_ports,
    slot_template,
)

from fleet import Fleet, FleetHost
from shipyard.commands import nginx

pytestmark = pytest.mark.integration

RATE = 100.0  # requests per second, in total over the fronts
MIN_RATE = 50.0  # what a busy machine must still have sent for the test to mean anything
TIMEOUT = 30.0  # for one short request (a hung one fails); a busy machine can be slow
LONG = "/slow?seconds=5"
LONG_PER_FRONT = 3
DEPLOY_TIMEOUT = 150.0  # one `shipyard deploy`, on a busy machine
LOAD_SECONDS = 300.0


@pytest.fixture(scope="module")
def fronts(fleet: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """Four fleet hosts, each with its supervisord and its own nginx; both stopped by pid."""
    found: Fleet = fleet(4)
    project = FrontProject(tmp_path_factory.mktemp("fronts"), found)
    bootstrap = front_service(slot_ports(found.hosts), found.hosts, {"kind": "blue-green"})
    with bootstrapped_fronts(project, {"bootstrap": bootstrap}):
        yield found


@pytest.fixture
def project(fronts: Fleet, tmp_path: Path) -> FrontProject:
    return FrontProject(tmp_path / "project", fronts)


# a. Three kinds of switch under load.


@dataclass
class Switch:
    """One deployment under load: the release it replaced, the one it made live, and when."""

    old: str
    new: str
    began: float = 0.0
    ended: float = 0.0
    long: list[asyncio.Task[Reply]] = field(default_factory=list)
    live_before: dict[str, str | None] = field(default_factory=dict)


STRATEGIES: list[tuple[str, dict[str, Any]]] = [
    ("v2", {"kind": "blue-green"}),
    ("v3", {"kind": "rolling", "batch": 1, "switch": "blue-green"}),
    ("v4", {"kind": "canary", "canary": 1, "soak": 2, "switch": "blue-green"}),
]


def test_requests_in_flight_finish_on_their_release_through_blue_green_rolling_and_canary(
    project: FrontProject, tmp_path: Path
) -> None:
    hosts = project.hosts[:3]
    ports = slot_ports(hosts)
    gates = Gates(tmp_path / "gates")
    template = slot_template(gate_dir=gates.dir)

    def write(release: str, strategy: dict[str, Any]) -> None:
        services = {"zd": front_service(ports, hosts, strategy)}
        project.write(services, vars={"release": release}, template=template)

    write("v1", {"kind": "blue-green"})
    assert {o["result"] for o in project.deploy().values()} == {"success"}
    fronts = [Target(h.address, ports["http"]) for h in hosts]

    switches, replies = asyncio.run(_switch_under_load(project, hosts, fronts, gates, write))

    assert failures(replies) == [], explain(replies)
    assert rate_of([r for r in replies if r.path == "/version"]) >= MIN_RATE, explain(replies)
    assert all(r.body == r.release for r in replies)
    for switch in switches:
        assert len(switch.long) == LONG_PER_FRONT * len(hosts)
        for task in switch.long:
            reply = task.result()
            assert (reply.body, reply.release) == (switch.old, switch.old), reply
            assert reply.ended - reply.started >= 5.0
        # The switch completes once the old slot has drained: after its last request ended.
        assert switch.ended > max(task.result().ended for task in switch.long)
        during = [r for r in replies if switch.began <= r.started < switch.ended]
        assert {r.release for r in during} <= {switch.old, switch.new}
        assert {r.release for r in during if r.path == "/version"} == {switch.old, switch.new}
    for switch, following in zip(switches, [*switches[1:], None], strict=True):
        until = following.began if following else float("inf")
        after = [r for r in replies if switch.ended <= r.started < until and r.path == "/version"]
        assert after
        assert {r.release for r in after} == {switch.new}, switch.new


async def _switch_under_load(
    project: FrontProject,
    hosts: list[FleetHost],
    fronts: list[Target],
    gates: Gates,
    write: Callable[[str, dict[str, Any]], None],
) -> tuple[list[Switch], list[Reply]]:
    load = Load(fronts, rate=RATE, timeout=TIMEOUT, max_seconds=LOAD_SECONDS)
    load.begin()
    switches: list[Switch] = []
    old = "v1"
    try:
        await asyncio.sleep(1.0)
        for new, strategy in STRATEGIES:
            switch = Switch(old, new)
            switches.append(switch)
            write(new, strategy)
            together = strategy["kind"] == "blue-green"
            groups = [hosts] if together else [[h] for h in hosts]
            switch.live_before = {h.name: slot_file(h, "zd", "live-slot") for h in hosts}
            gates.close(hosts)
            switch.began = time.monotonic()
            process = await asyncio.create_subprocess_exec(
                *project.argv("deploy", "--json"),
                cwd=project.dir,
                env=project.env(),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            try:
                for group in groups:
                    await _wait_arrival(gates, group, process)
                    sent = [asyncio.Event() for _ in range(LONG_PER_FRONT * len(group))]
                    for index, host in enumerate(group):
                        target = Target(host.address, fronts[0].port)
                        mine = sent[index * LONG_PER_FRONT : (index + 1) * LONG_PER_FRONT]
                        switch.long += [load.start(target, LONG, sent=e) for e in mine]
                    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in sent)), TIMEOUT)
                    await asyncio.sleep(0.5)  # through nginx to the old slot before the gate opens
                    for host in group:
                        gates.open(host)
                stdout, stderr = await asyncio.wait_for(process.communicate(), DEPLOY_TIMEOUT)
            finally:
                gates.open_all()
                if process.returncode is None:
                    process.kill()
                    await process.communicate()
            switch.ended = time.monotonic()
            output = f"{stdout.decode()}\n{stderr.decode()}"
            assert process.returncode == 0, output
            outcomes = json.loads(stdout)["outcomes"]
            assert {o["result"] for o in outcomes} == {"success"}, output
            for host, front in zip(hosts, fronts, strict=True):
                assert (await fetch(front, "/version")).body == new
                before = switch.live_before[host.name]
                assert slot_file(host, "zd", "live-slot") == (
                    "green" if before == "blue" else "blue"
                )
                assert slot_file(host, "zd", "draining-slot") is None
            old = new
        await asyncio.sleep(1.0)
    finally:
        gates.open_all()
        replies = await load.finish()
    return switches, replies


async def _wait_arrival(
    gates: Gates, group: list[FleetHost], process: asyncio.subprocess.Process
) -> None:
    """Until the deployment waits at the gate on every host of `group` (bounded)."""
    deadline = time.monotonic() + DEPLOY_TIMEOUT
    while not all(gates.arrived(h) for h in group):
        if process.returncode is not None or time.monotonic() > deadline:
            out, err = await process.communicate()
            names = [h.name for h in group]
            raise AssertionError(f"deploy never reached the gate on {names}:\n{out!r}\n{err!r}")
        await asyncio.sleep(0.05)


# b. A release that fails its health check is never served.


def test_a_release_failing_its_health_check_never_answers_and_the_old_slot_stays_live(
    project: FrontProject,
) -> None:
    hosts = project.hosts[:3]
    ports = slot_ports(hosts)
    strategy = {"kind": "blue-green", "deploy_timeout": 2}
    project.write({"sick": front_service(ports, hosts, strategy)}, template=slot_template())
    assert {o["result"] for o in project.deploy().values()} == {"success"}
    live = {h.name: slot_file(h, "sick", "live-slot") for h in hosts}
    assert set(live.values()) == {"blue"}
    broken = slot_template()
    broken["health"]["http"] = "http://{{ host.address }}:{{ ports.http }}/nope"
    project.write(
        {"sick": front_service(ports, hosts, strategy)}, vars={"release": "bad"}, template=broken
    )
    fronts = [Target(h.address, ports["http"]) for h in hosts]
    idle = [Target(h.address, ports["green"]) for h in hosts]

    code, report, replies, witnessed = asyncio.run(_deploy_under_load(project, fronts, idle))

    assert code == 1, report
    assert failures(replies) == [], explain(replies)
    assert rate_of(replies) >= MIN_RATE, explain(replies)
    assert {r.release for r in replies} == {"v1"}
    assert witnessed == {"bad"}  # it did run, on the idle slot nginx never sent anything to
    outcomes = {o["instance"]: o for o in report["outcomes"]}
    status = project.status()
    for host, front in zip(hosts, fronts, strict=True):
        name = f"sick@{host.name}"
        assert outcomes[name]["result"] == "failed"
        assert "green slot failed its health check" in outcomes[name]["reason"]
        assert "/nope" in outcomes[name]["reason"]
        row = status[name]
        assert row["last"]["status"] == "failed"
        assert "green slot failed its health check" in row["last"]["error"]
        assert row["stale"] is True
        assert (row["slots"]["live"], row["slots"]["draining"]) == ("blue", None)
        assert slot_file(host, "sick", "live-slot") == "blue"
        assert asyncio.run(fetch(front, "/version")).body == "v1"
    assert not any(asyncio.run(_answers(t)) for t in idle)  # the failed slot was stopped


async def _deploy_under_load(
    project: FrontProject, fronts: list[Target], idle: list[Target]
) -> tuple[int, dict[str, Any], list[Reply], set[str]]:
    """Run `shipyard deploy --json` under load while watching the idle slots directly."""
    load = Load(fronts, rate=RATE, timeout=TIMEOUT, max_seconds=LOAD_SECONDS)
    load.begin()
    witnessed: set[str] = set()
    try:
        await asyncio.sleep(1.0)
        process = await asyncio.create_subprocess_exec(
            *project.argv("deploy", "--json"),
            cwd=project.dir,
            env=project.env(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        done = asyncio.create_task(process.communicate())
        while not done.done():
            for target in idle:
                reply = await fetch(target, "/version", timeout=1.0)
                if reply.ok:
                    witnessed.add(reply.body)
            await asyncio.sleep(0.05)
        stdout, stderr = await asyncio.wait_for(done, DEPLOY_TIMEOUT)
        await asyncio.sleep(1.0)
    finally:
        replies = await load.finish()
    assert process.returncode is not None
    report: dict[str, Any] = json.loads(stdout) if stdout.strip() else {"stderr": stderr.decode()}
    return process.returncode, report, replies, witnessed


async def _answers(target: Target) -> bool:
    return (await fetch(target, "/version", timeout=2.0)).error is None


# c. The failure budget at its boundary: 1 of 4.


@pytest.mark.parametrize("failing", [1, 2])
def test_a_rolling_deploy_with_a_budget_of_one_goes_on_after_one_failure_and_stops_after_two(
    project: FrontProject, failing: int
) -> None:
    hosts = project.hosts
    assert [h.name for h in hosts] == ["h001", "h002", "h003", "h004"]  # batches in this order
    port = free_port([h.address for h in hosts])
    closed = free_port([h.address for h in hosts])
    for host in hosts[:failing]:
        project.base["sites"]["fleet"]["hosts"][host.name]["vars"] = {"probe_port": closed}
    template = hello_template()
    template["health"] = {
        "http": "http://{{ host.address }}:{{ probe_port | default(ports.http) }}/healthz",
        "timeout": 1,
        "retries": 10,
        "interval": 0.1,
    }
    name = f"budget-{failing}"
    strategy = {"kind": "rolling", "batch": 1, "max_failures": 1}
    overrides = {"ports": {"http": port}, "strategy": strategy}
    service = {"template": "hello", "sites": ["fleet"], "overrides": overrides}
    project.write({name: service}, template=template)

    report = project.json("deploy", expect=1)

    outcomes = {o["instance"]: o for o in report["outcomes"]}
    assert report["ok"] is False
    assert list(outcomes) == [f"{name}@{h.name}" for h in hosts]
    for host in hosts[:failing]:
        failed = outcomes[f"{name}@{host.name}"]
        assert failed["result"] == "failed"
        assert "health check failed" in failed["reason"]
        assert f":{closed}/healthz" in failed["reason"]
    rest = hosts[failing:]
    if failing == 1:
        assert [outcomes[f"{name}@{h.name}"]["result"] for h in rest] == ["success"] * 3
    else:
        for host in rest:
            skipped = outcomes[f"{name}@{host.name}"]
            assert skipped["result"] == "skipped"
            assert skipped["reason"] == "failure budget exceeded: 2 failed > budget 1"
            assert not service_dir(host, name).exists()
    status = project.status()
    served = [h for h in hosts if status[f"{name}@{h.name}"]["deployed_revision"]]
    assert served == (rest if failing == 1 else [])


# d. What the drain counts.


def test_a_slot_whose_listen_queue_overflowed_does_not_look_drained() -> None:
    """A burst overflows a slot's listen queue (Python's default backlog is 5): the kernel drops
    handshakes, so nginx is still connecting, or has sent its request, while the slot's own end
    of the connection is not established. Counting the slot's end alone, the slot looks drained
    and is stopped under those requests (nginx answers 502); nginx's end shows them."""
    address = "127.0.0.1"
    with socket.socket() as slot, contextlib.ExitStack() as stack:
        slot.bind((address, 0))
        slot.listen(1)
        port = slot.getsockname()[1]
        clients = [stack.enter_context(socket.socket()) for _ in range(8)]
        for client in clients:
            client.setblocking(False)
            client.connect_ex((address, port))
        time.sleep(0.3)
        slot.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            for _ in clients:  # the slot serves what it accepted and closes it
                slot.accept()[0].close()

        def count(argv: tuple[str, ...]) -> int:
            listed = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=10)
            return nginx.count_established(listed.stdout)

        slot_end = ("ss", "-Htn", "state", "established", f"( src {address}:{port} )")
        assert count(slot_end) == 0
        assert count(nginx.established_argv(port, address=address)) >= len(clients) - 3


# e. A slot that can't be served fails at once, and says why.


@pytest.mark.parametrize(
    ("start", "said"),
    [
        (["shipyard-no-such-program"], "can't find command"),
        (["sh", "-c", "echo the-slot-gave-up >&2; exit 3"], "the-slot-gave-up"),
    ],
)
def test_a_slot_whose_program_exits_at_once_fails_as_the_supervisor_reports_it(
    project: FrontProject, start: list[str], said: str
) -> None:
    hosts = project.hosts[:1]
    ports = slot_ports(hosts)
    template = slot_template()
    template["commands"]["start"] = start
    template["health"]["retries"] = 100_000  # only the supervisor's word can end the wait early
    strategy = {"kind": "blue-green", "deploy_timeout": 150}
    project.write({"dead": front_service(ports, hosts, strategy)}, template=template)

    report = project.json("deploy", expect=1)

    (outcome,) = report["outcomes"]
    reason = outcome["reason"]
    assert outcome["result"] == "failed"
    assert "blue slot failed its health check: its program dead-blue is" in reason, reason
    assert said in reason, reason
    assert slot_file(hosts[0], "dead", "live-slot") is None


def test_a_health_check_answered_by_a_foreign_process_on_the_slot_port_fails_naming_it(
    project: FrontProject, tmp_path: Path
) -> None:
    host = project.hosts[0]
    ports = slot_ports([host])
    www = tmp_path / "www"
    www.mkdir()
    (www / "healthz").write_text("ok\n")
    argv = [sys.executable, "-m", "http.server", "--bind", host.address, "-d", str(www)]
    foreign = subprocess.Popen(
        [*argv, str(ports["blue"])], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        blue = Target(host.address, ports["blue"])
        wait_for(lambda: asyncio.run(fetch(blue, "/healthz", timeout=1.0)).ok, "the foreign server")
        project.write({"squat": front_service(ports, [host], {"kind": "blue-green"})})

        report = project.json("deploy", expect=1)

        (outcome,) = report["outcomes"]
        assert outcome["result"] == "failed"
        assert (
            f"port {ports['blue']} of the blue slot is held by pid {foreign.pid}"
            in (outcome["reason"])
        ), outcome["reason"]
        assert "not by its program squat-blue" in outcome["reason"]
        assert slot_file(host, "squat", "live-slot") is None  # nginx never sent it anything
    finally:
        foreign.terminate()
        foreign.wait(timeout=10)


def test_a_blue_green_canary_soaks_at_its_live_slot_port(project: FrontProject) -> None:
    """The health URL names `ports.http`, where nothing listens: nginx's front is elsewhere. The
    slots are checked at their own ports, and so is the canary while it soaks."""
    hosts = project.hosts[:2]
    ports = {**slot_ports(hosts), "front": free_port([h.address for h in hosts])}
    strategy = {
        "kind": "canary",
        "canary": 1,
        "soak": 1,
        "switch": "blue-green",
        "front": "{{ host.address }}:{{ ports.front }}",
    }
    project.write({"soak": front_service(ports, hosts, strategy)}, template=slot_template())

    outcomes = project.deploy()

    assert {o["result"] for o in outcomes.values()} == {"success"}, outcomes
    for host in hosts:
        assert asyncio.run(fetch(Target(host.address, ports["front"]), "/version")).body == "v1"


def test_a_blue_green_rollback_switches_back_to_the_slot_it_kept(project: FrontProject) -> None:
    host = project.hosts[0]
    ports = slot_ports([host])
    service = {"back": front_service(ports, [host], {"kind": "blue-green"})}
    front = Target(host.address, ports["http"])
    project.write(service, template=slot_template())
    v1 = project.deploy()["back@h001"]["revision"]
    project.write(service, vars={"release": "v2"}, template=slot_template())
    project.deploy()
    assert slot_file(host, "back", "live-slot") == "green"

    back = project.rollback("back@h001")["back@h001"]

    assert (back["result"], back["revision"]) == ("success", v1)
    assert asyncio.run(fetch(front, "/version")).body == "v1"
    assert slot_file(host, "back", "live-slot") == "blue"
    assert project.status()["back@h001"]["slots"]["live"] == "blue"


def test_a_canary_whose_slot_dies_while_it_soaks_fails_on_one_probe_and_is_rolled_back(
    project: FrontProject,
) -> None:
    hosts = project.hosts[:2]
    ports = slot_ports(hosts)
    first = {"soak2": front_service(ports, hosts, {"kind": "blue-green"})}
    project.write(first, template=slot_template())
    assert {o["result"] for o in project.deploy().values()} == {"success"}
    strategy = {"kind": "canary", "canary": 1, "soak": 60, "switch": "blue-green"}
    service = {"soak2": front_service(ports, hosts, strategy)}
    project.write(service, vars={"release": "v2"}, template=slot_template())
    canary = hosts[0]
    process = project.start("deploy", "--json")
    try:
        wait_for(lambda: slot_file(canary, "soak2", "live-slot") == "green", "the canary switch")
        wait_for(lambda: slot_file(canary, "soak2", "draining-slot") is None, "its drain")
        conf = Path(canary.root) / "supervisor" / "supervisord.conf"
        stop = ["supervisorctl", "-c", str(conf), "stop", "soak2-green"]
        subprocess.run(stop, check=True, capture_output=True, timeout=60)
        code, stdout, stderr = finish(process, timeout=DEPLOY_TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    assert code == 1, stderr
    outcomes = {o["instance"]: o for o in json.loads(stdout)["outcomes"]}
    reason = outcomes[f"soak2@{canary.name}"]["reason"]
    assert "canary failed: soak2@h001: green slot: GET" in reason, reason
    assert "time(s)" not in reason  # one probe, not a health check's whole retry loop
    assert outcomes["soak2@h002"]["result"] == "skipped"
    assert asyncio.run(fetch(Target(canary.address, ports["http"]), "/version")).body == "v1"
