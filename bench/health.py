"""Benchmark: the cost of a health round over a real SSH fleet, Shipyard's monitor against an
Ansible poll (`ansible all -m ping`, what a team without a monitor would run from cron).

Starts (or reuses) the fleet of bench/fanout.py at N hosts, writes a project with one service
on every host (never deployed: each host's round still reads its record, links, programs and
deploy root, everything but the files check and the health check, which need a release), and
runs R rounds of each:

    shipyard   app.health.Watch in this process, one executor pool kept open between rounds
               (as `shipyard serve` does): controller CPU (this process) and wall per round
    ansible    `ansible all -m ping` as a fresh process per round, its ssh ControlMasters
               kept between rounds (ControlPersist 60 s): CPU of the process and its children

The first round opens the connections; the figure that matters is the warm round, what a
monitor pays every 30 s. Goal at N = 200: a warm round costs the controller at most 1.5 s of
CPU (5 % of one core at the default 30 s interval), and less than an Ansible poll.

    .venv/bin/python bench/health.py [--hosts 200] [--rounds 5] [--tools shipyard,ansible]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _tools
import fanout
from _tools import BENCH, REPO

GOAL_CPU = 1.5
GOAL_N = 200
RESULTS = BENCH / "results" / "health.txt"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def project_for(inputs: _tools.Inputs) -> Path:
    """The fleet's project with one service on every host, and a store of its own."""
    project = yaml.safe_load(inputs.project_file.read_text())
    hosts = [t.name for t in inputs.targets]
    app = inputs.dir / "app"
    if not app.exists():
        shutil.copytree(REPO / "examples" / "hello" / "app", app)
    project["templates"] = {
        "hello": {
            "artifact": {"path": "app", "exclude": ["__pycache__/*", "*.pyc"]},
            "commands": {"start": ["python3", "server.py"]},
            "health": {"http": "http://127.0.0.1:{{ ports.http }}/healthz"},
        }
    }
    project["services"] = {
        "hello": {"template": "hello", "hosts": hosts, "overrides": {"ports": {"http": 18080}}}
    }
    path = inputs.dir / "health.yaml"
    path.write_text(yaml.safe_dump(project, sort_keys=False))
    return path


def shipyard_rounds(project_file: Path, rounds: int) -> list[tuple[float, float, int]]:
    """(wall, CPU, hosts online) of each round."""
    from shipyard.app.health import Watch
    from shipyard.app.session import Session

    state = project_file.parent / "health-state.db"
    state.unlink(missing_ok=True)
    env = {**os.environ, "SHIPYARD_DATABASE_URL": f"sqlite:///{state}"}
    session = Session.from_environment(project_file, env)

    async def run() -> list[tuple[float, float, int]]:
        out = []
        async with session.executor_pool() as pool:
            watch = Watch(session, pool, lambda event: None)
            for _ in range(rounds):
                wall, cpu = time.perf_counter(), time.process_time()
                result = await watch.round()
                done = (time.perf_counter() - wall, time.process_time() - cpu)
                online = sum(h.state == "online" for h in result.hosts)
                out.append((*done, online))
                log(f"  shipyard round: {done[0]:.2f} s, {done[1]:.2f} s CPU, {online} online")
            watch.close()
        return out

    try:
        return asyncio.run(run())
    finally:
        session.close()


def ansible_rounds(inputs: _tools.Inputs, rounds: int) -> list[tuple[float, float, int]]:
    binary = _tools.venv_bin("ansible") / "ansible"
    control = inputs.dir / "ansible" / "health-control"
    shutil.rmtree(control, ignore_errors=True)
    control.mkdir(parents=True)
    env = {**os.environ, **_tools.ansible_env(inputs, control)}
    out = []
    try:
        for _ in range(rounds):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            wall = time.perf_counter()
            done = subprocess.run(
                [str(binary), "all", "-m", "ping", "-o"], env=env, capture_output=True,
                text=True, timeout=600, check=False,
            )  # fmt: skip
            seconds = time.perf_counter() - wall
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            online = done.stdout.count("SUCCESS")
            out.append((seconds, cpu, online))
            log(f"  ansible round: {seconds:.2f} s, {cpu:.2f} s CPU, {online} answered")
    finally:
        _tools.close_control_masters(control)
    return out


def summary(name: str, rounds: list[tuple[float, float, int]], hosts: int) -> dict[str, object]:
    warm = rounds[1:] or rounds
    return {
        "tool": name,
        "first_wall": rounds[0][0],
        "first_cpu": rounds[0][1],
        "warm_wall": statistics.median(r[0] for r in warm),
        "warm_cpu": statistics.median(r[1] for r in warm),
        "cpu_ms_per_host": 1000 * statistics.median(r[1] for r in warm) / hosts,
        "answered": min(r[2] for r in rounds),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=GOAL_N)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tools", default="shipyard,ansible")
    args = parser.parse_args(argv)
    tools = set(args.tools.split(","))
    fanout.WORK.mkdir(parents=True, exist_ok=True)
    if "ansible" in tools:
        _tools.ensure_venv("ansible", log)
    lines = [
        f"health round over {args.hosts} real sshd hosts, {args.rounds} rounds each;"
        f" load average at the start: {os.getloadavg()[0]:.2f}"
    ]
    fm = fanout.fleet_module()
    fleet = fanout.obtain_fleet(fm, args.hosts)
    try:
        blob = fanout.WORK / "blob-1MiB.bin"
        if not blob.exists():
            blob.write_bytes(os.urandom(1024))
        inputs = fanout.prepare_size(fleet, args.hosts, blob)
        rows = []
        if "shipyard" in tools:
            rows.append(summary("shipyard", shipyard_rounds(project_for(inputs), args.rounds),
                                args.hosts))  # fmt: skip
        if "ansible" in tools:
            rows.append(summary("ansible -m ping", ansible_rounds(inputs, args.rounds), args.hosts))
    finally:
        fm.stop_fleet(fleet)
    lines.append(
        f"{'tool':<16} {'first s':>8} {'first CPU':>10} {'warm s':>8} {'warm CPU':>9}"
        f" {'CPU ms/host':>12} {'answered':>9}"
    )
    for r in rows:
        lines.append(
            f"{r['tool']:<16} {r['first_wall']:>8.2f} {r['first_cpu']:>10.2f}"
            f" {r['warm_wall']:>8.2f} {r['warm_cpu']:>9.2f} {r['cpu_ms_per_host']:>12.2f}"
            f" {r['answered']:>9}"
        )
    mine = next((r for r in rows if r["tool"] == "shipyard"), None)
    for r in rows:
        if mine is not None and r is not mine:
            ratio = float(r["warm_cpu"]) / max(float(mine["warm_cpu"]), 1e-9)  # type: ignore[arg-type]
            wall = float(r["warm_wall"]) / max(float(mine["warm_wall"]), 1e-9)  # type: ignore[arg-type]
            lines.append(f"{r['tool']} / shipyard, warm round: CPU {ratio:.1f}x, wall {wall:.1f}x")
    if mine is not None:
        met = float(mine["warm_cpu"]) <= GOAL_CPU  # type: ignore[arg-type]
        lines.append(
            f"goal: a warm round at most {GOAL_CPU} s of controller CPU at N={GOAL_N}:"
            f" {'met' if met else 'NOT met'} ({float(mine['warm_cpu']):.2f} s at N={args.hosts})"  # type: ignore[arg-type]
        )
    lines.append(f"load average at the end: {os.getloadavg()[0]:.2f}")
    text = "\n".join(lines)
    print(text)
    RESULTS.write_text(text + "\n")
    print(_tools.RESULT_TAG + json.dumps(rows), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
