"""Benchmark: how fast a blue/green switch takes effect under load, and how long the drain takes.

Starts a small fleet of real sshd hosts on loopback (tests/fleet.py), each with its own
supervisord and nginx (`shipyard bootstrap`), deploys the hello example as a blue/green service
behind each host's nginx, then switches releases a few times while a load generator sends a
steady stream of requests through the fronts. For every host and switch it measures, from the
client's side:

  switch  from "new slot healthy" (the moment the new slot answered the deployment's health
          check: the slot's app writes the time of each /healthz it answers) to "all new
          requests served by the new slot" (the start of the first request after which every
          request through that host's front was answered by the new release);
  drain   from the switch (the first request answered by the new release) to the old slot
          stopped (its port no longer accepts connections, polled every 20 ms).

With `--long S`, an S-second request is started through every front as each deployment starts,
so the drain may have work in flight to wait for (what is left of it when nginx switches).
Everything started is stopped by PID at the end; the fleet's files stay in a temporary folder.

    .venv/bin/python bench/switch.py [--hosts 2] [--switches 5] [--rate 100] [--long 0]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "tests" / "integration"))

from loadgen import Load, Reply, Target, failures  # noqa: E402
from nginx_fleet import (  # noqa: E402
    FrontProject,
    bootstrapped_fronts,
    front_service,
    slot_file,
    slot_ports,
    slot_template,
)

import fleet as fleet_lib  # noqa: E402

GOAL_SWITCH_SECONDS = 1.0
SERVICE = "switchbench"
POLL_SECONDS = 0.02

# The hello app, logging the time of every /healthz it answers: the deployment's health check.
HEALTH_LOGGING_APP = '''\
"""The hello server, noting when it answers /healthz (for bench/switch.py)."""
import os
import time

import server


class Noting(server.Handler):
    def do_GET(self):
        if self.path == "/healthz":
            name = f"{os.environ['RELEASE']}-{os.environ['SHIPYARD_SLOT']}.healthz"
            with open(os.path.join(os.environ["HEALTH_LOG"], name), "a") as log:
                log.write(f"{time.time():.6f}\\n")
        super().do_GET()


server.Handler = Noting
server.main()
'''


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class Sample:
    """One host's part of one switch."""

    release: str
    host: str
    healthy: float | None = None  # monotonic
    first_new: float | None = None
    all_new: float | None = None
    stopped: float | None = None

    @property
    def switch(self) -> float | None:
        if self.healthy is None or self.all_new is None:
            return None
        return self.all_new - self.healthy

    @property
    def drain(self) -> float | None:
        if self.first_new is None or self.stopped is None:
            return None
        return self.stopped - self.first_new


@dataclass
class Bench:
    project: FrontProject
    hosts: list[fleet_lib.FleetHost]
    ports: dict[str, int]
    health_dir: Path
    long: float
    deploy_seconds: list[float] = field(default_factory=list)

    @property
    def fronts(self) -> list[Target]:
        return [Target(h.address, self.ports["http"]) for h in self.hosts]

    def write(self, release: str) -> None:
        template = slot_template()
        template["commands"]["start"] = ["python3", "bench_app.py"]
        template["env"]["HEALTH_LOG"] = str(self.health_dir)
        strategy = {"kind": "blue-green", "deploy_timeout": 30}
        service = front_service(self.ports, self.hosts, strategy)
        self.project.write({SERVICE: service}, vars={"release": release}, template=template)

    def deploy(self) -> None:
        done = self.project.shipyard("deploy", "--json")
        if done.returncode != 0:
            raise RuntimeError(f"deploy failed:\n{done.stdout}\n{done.stderr}")

    async def switch(self, load: Load, old: str, new: str) -> list[Sample]:
        """One deployment under `load`; a sample per host."""
        self.write(new)
        olds = {h.name: slot_file(h, SERVICE, "live-slot") for h in self.hosts}
        samples = {h.name: Sample(new, h.name) for h in self.hosts}
        if self.long:
            for front in self.fronts:
                load.start(front, f"/slow?seconds={self.long:g}", timeout=self.long + 30)
        began = time.monotonic()
        process = await asyncio.create_subprocess_exec(
            *self.project.argv("deploy", "--json"),
            cwd=self.project.dir,
            env=self.project.env(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        done = asyncio.create_task(process.communicate())
        watchers = [
            asyncio.create_task(self._watch_stop(h, olds[h.name], samples[h.name], done))
            for h in self.hosts
        ]
        stdout, stderr = await asyncio.wait_for(done, 300)
        await asyncio.gather(*watchers)
        self.deploy_seconds.append(time.monotonic() - began)
        if process.returncode != 0:
            raise RuntimeError(f"deploy failed:\n{stdout.decode()}\n{stderr.decode()}")
        await asyncio.sleep(0.5)  # requests started just after the deploy came back
        offset = time.time() - time.monotonic()
        for host in self.hosts:
            sample = samples[host.name]
            live = slot_file(host, SERVICE, "live-slot")
            sample.healthy = _first_health(self.health_dir / f"{new}-{live}.healthz", offset)
            where = str(Target(host.address, self.ports["http"]))
            seen = [r for r in load.replies if r.target == where and r.started >= began]
            sample.first_new, sample.all_new = _switch_times(seen, old, new)
        return list(samples.values())

    async def _watch_stop(
        self, host: fleet_lib.FleetHost, old: str | None, sample: Sample, done: asyncio.Task[Any]
    ) -> None:
        """Note when the old slot's port stops taking connections (until the deploy ends)."""
        if old is None:
            return
        target = Target(host.address, self.ports[old])
        while True:
            finished = done.done()
            if not await _listening(target):
                sample.stopped = time.monotonic()
                return
            if finished:
                return
            await asyncio.sleep(POLL_SECONDS)


async def _listening(target: Target) -> bool:
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(target.host, target.port), timeout=1.0
        )
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


def _first_health(path: Path, offset: float) -> float | None:
    try:
        first = path.read_text().split()[0]
    except (OSError, IndexError):
        return None
    return float(first) - offset


def _switch_times(replies: list[Reply], old: str, new: str) -> tuple[float | None, float | None]:
    """The start of the first request answered by `new`, and of the first one after which
    every request was answered by `new`."""
    ordered = sorted((r for r in replies if r.path == "/version" and r.ok), key=lambda r: r.started)
    news = [r.started for r in ordered if r.release == new]
    if not news:
        return None, None
    olds = [r.started for r in ordered if r.release == old]
    last_old = max(olds, default=float("-inf"))
    after = [t for t in news if t > last_old]
    return news[0], (after[0] if after else None)


def _median(values: list[float | None]) -> str:
    found = [v for v in values if v is not None]
    return f"{statistics.median(found):.3f} s" if found else "n/a"


def _fmt(value: float | None) -> str:
    return f"{value:.3f}" if value is not None else "n/a"


async def measure(bench: Bench, switches: int, rate: float) -> tuple[list[Sample], list[Reply]]:
    load = Load(bench.fronts, rate=rate, max_seconds=3600.0, timeout=10.0)
    load.begin()
    samples: list[Sample] = []
    try:
        await asyncio.sleep(1.0)
        for index in range(switches):
            old, new = f"v{index + 1}", f"v{index + 2}"
            found = await bench.switch(load, old, new)
            samples += found
            for s in found:
                log(
                    f"  {old} -> {new} on {s.host}: switch {_fmt(s.switch)} s, "
                    f"drain {_fmt(s.drain)} s"
                )
    finally:
        replies = await load.finish()
    return samples, replies


def _terminated(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _revision() -> str:
    done = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hosts", type=int, default=2, help="fleet hosts (default 2)")
    parser.add_argument("--switches", type=int, default=5, help="switches measured (default 5)")
    parser.add_argument("--rate", type=float, default=100.0, help="requests/s in total")
    parser.add_argument("--long", type=float, default=0.0, help="a long request per switch (s)")
    parser.add_argument("--json", type=Path, help="also write the samples to this file")
    args = parser.parse_args(argv)
    if args.hosts < 1 or args.switches < 1 or args.rate <= 0:
        parser.error("hosts and switches must be at least 1, rate positive")
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminated)
    print(
        f"bench/switch.py at Shipyard {_revision()}: {args.hosts} host(s), {args.switches} "
        f"switches, {args.rate:g} requests/s through the fronts"
        + (f", a {args.long:g}-second request per front and switch" if args.long else "")
        + f"; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start",
        flush=True,
    )
    work = Path(tempfile.mkdtemp(prefix="shipyard-switch-bench-"))
    fleet = None
    try:
        fleet = fleet_lib.start_fleet(args.hosts, work / "fleet")
        project = FrontProject(work / "project", fleet)
        (project.dir / "app" / "bench_app.py").write_text(HEALTH_LOGGING_APP)
        health_dir = work / "health"
        health_dir.mkdir()
        ports = slot_ports(fleet.hosts)
        bench = Bench(project, fleet.hosts, ports, health_dir, args.long)
        bootstrap = {SERVICE: front_service(ports, fleet.hosts, {"kind": "blue-green"})}
        with bootstrapped_fronts(project, bootstrap):
            bench.write("v1")
            bench.deploy()
            log("v1 live; switching under load ...")
            samples, replies = asyncio.run(measure(bench, args.switches, args.rate))
        bad = failures(replies)
        switch = [s.switch for s in samples]
        drain = [s.drain for s in samples]
        print(f"\n{len(replies)} requests, {len(bad)} failed")
        for reply in bad[:10]:
            print(f"  {reply.describe()}")
        print(f"deploy (CLI, start to exit): median {_median(list(bench.deploy_seconds))}")
        print(f"healthy -> all new requests on the new slot: median {_median(switch)}")
        print(f"   (each: {', '.join(_fmt(v) for v in switch)})")
        print(f"switch -> old slot stopped (drain): median {_median(drain)}")
        print(f"   (each: {', '.join(_fmt(v) for v in drain)})")
        measured = [v for v in switch if v is not None]
        met = bool(measured) and statistics.median(measured) < GOAL_SWITCH_SECONDS and not bad
        print(
            f"goal: switch under {GOAL_SWITCH_SECONDS:g} s with no failed request: "
            + ("met" if met else "NOT met")
        )
        print(f"load average at the end: {os.getloadavg()[0]:.2f}")
        if args.json:
            args.json.write_text(json.dumps([vars(s) for s in samples], indent=1) + "\n")
        return 0 if met else 1
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        if fleet is not None:
            fleet_lib.stop_fleet(fleet)
        log(f"fleet stopped; its files are in {work}")


if __name__ == "__main__":
    sys.exit(main())
