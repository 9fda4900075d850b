"""Benchmark: the server against the CLI, status over HTTP, and live events to 50 clients.

Three measurements, each printed beside its goal (issue 11) with the ratio figure / goal:

    rollout   the deploy benchmark's first deploy (bench/deploy.py: a real SSH fleet of --hosts
              sshd hosts x --services services, 1,000 instances by default), once as
              `shipyard deploy --json` (a CLI process) and once started over the API
              (`POST /api/rollouts` to a running `shipyard serve`, timed until the rollout is
              finished), each from a clean slate (programs, releases and the store cleared).
              Goal: the API at most 1.05x the CLI (median of --runs).
    sse       --clients SSE clients follow `GET /api/events/stream` while the server redeploys
              every instance (force): each must receive every event of the rollout (compared with
              the store's), and the time from an event's publication (its `at`) to its arrival
              is collected over all clients. Goal: 99th percentile under 100 ms. The server's
              peak RSS (VmHWM) is printed, and each burst (a second in which the rollout
              published more than BURST events) with its delays. Meanwhile the fleet's
              processes get only idle CPU (`background`): they stand for 50 other machines
              and must not take the server's CPU (the rollout measurement above runs without).
    status    `GET /api/status?limit=10000` of a 10,000-instance project with a full store
              (bench/scale.py's project and store filling), median of 10 after a warm-up.
              Goal: under 200 ms.

The clients run in a helper process of this script (`_sse`) using only the standard library
(HTTP/1.0, so the stream comes unchunked); the server and CLI are `.venv/bin/shipyard`. Every
process started here is stopped by its PID. Not a timed test: the figures depend on the machine
and its load (printed).

    .venv/bin/python bench/server.py [--hosts 50] [--services 20] [--runs 3] [--clients 50]
                                     [--only rollout,sse,status]

BENCH_HEALTH=S in the environment sets the server's health_interval (0: no monitor), to compare
a rollout with and without the server's health rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
SHIPYARD = REPO / ".venv" / "bin" / "shipyard"
API_OVER_CLI = 1.05
FLEET_NICE = 19  # the simulated fleet's priority while SSE latency is measured
SSE_P99_SECONDS = 0.100
STATUS_SECONDS = 0.200
STATUS_RUNS = 10
START_TIMEOUT = 120.0
HEALTH_TIMEOUT = 60.0  # a check's time limit, the fleet having only idle CPU (`background`)
POLL_SECONDS = 0.2  # how often a rollout is looked at (GET /api/rollouts/ID)
BURST = 500  # events published within one second: a burst (`bursts`)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def goal_line(label: str, figure: float, goal: float, unit: str = "s") -> str:
    met = "met" if figure <= goal else "NOT met"
    ratio = figure / goal
    return f"  {label:<52} {figure:8.3f} {unit}  goal <= {goal:g} {unit}  ({ratio:5.2f}x)  {met}"


# --- a running `shipyard serve` -----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    token: str

    def request(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.url + path, data=data, method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=120) as answer:
            return json.loads(answer.read())

    def peak_rss_mib(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0


@contextlib.contextmanager
def serving(project: Path, env: dict[str, str], log_file: Path) -> Iterator[Server]:
    """`shipyard serve` over `project` until /api/health answers; stopped by PID (SIGTERM, then
    SIGKILL) at the end."""
    port = free_port()
    with log_file.open("w") as out:
        process = subprocess.Popen(
            [str(SHIPYARD), "-p", str(project), "serve", "--listen", f"127.0.0.1:{port}",
             "--max-rollouts", "4"],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"shipyard serve exited:\n{log_file.read_text()}")
            with contextlib.suppress(OSError):
                urllib.request.urlopen(f"{url}/api/health", timeout=2).read()
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"shipyard serve did not start:\n{log_file.read_text()}")
            time.sleep(0.1)
        token = next(w for w in log_file.read_text().split() if w.startswith("shy_"))
        yield Server(process, url, token)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_rollout(server: Server, rollout_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found: dict[str, Any] = server.request("GET", f"/api/rollouts/{rollout_id}")
        if found["status"] != "in_progress" and not found.get("running_here"):
            return found
        time.sleep(POLL_SECONDS)
    raise RuntimeError(f"rollout {rollout_id} not finished after {timeout:g} s")


def all_succeeded(found: dict[str, Any], expected: int) -> None:
    """Raise, naming the distinct errors (and how many had each), unless all `expected` did."""
    if results(found) == {"success": expected}:
        return
    errors: dict[str, int] = {}
    for deployment in found["deployments"]:
        if deployment["status"] != "success":
            reason = str(deployment.get("error") or deployment["status"])[:300]
            errors[reason] = errors.get(reason, 0) + 1
    shown = "\n".join(f"  {count} x {reason}" for reason, count in errors.items())
    raise AssertionError(f"{results(found)} of {expected} expected to succeed:\n{shown}")


def results(found: dict[str, Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for deployment in found["deployments"]:
        counts[deployment["status"]] = counts.get(deployment["status"], 0) + 1
    return counts


# --- SSE clients (the `_sse` helper process) ----------------------------------------------------


async def _one_client(host: str, port: int, token: str, after: int) -> list[tuple[float, bytes]]:
    """Follow the stream (HTTP/1.0: unchunked) until a rollout finishes: each read's arrival
    time and bytes. Nothing is parsed until the end (`_frames`): 50 clients in one process
    must not stamp an arrival late because the process was busy reading another's JSON."""
    reader, writer = await asyncio.open_connection(host, port, limit=1 << 22)
    writer.write(
        f"GET /api/events/stream?after={after} HTTP/1.0\r\nHost: {host}\r\n"
        f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n".encode()
    )
    await writer.drain()
    reads: list[tuple[float, bytes]] = []
    tail = b""
    try:
        await reader.readuntil(b"\r\n\r\n")  # the response headers
        while True:
            chunk = await reader.read(1 << 20)
            if not chunk:
                break
            reads.append((time.time(), chunk))
            if FINAL in tail + chunk:
                break
            tail = chunk[-len(FINAL) :]
    finally:
        writer.close()
    return reads


FINAL = b"event: rollout-finished"


def _frames(reads: list[tuple[float, bytes]]) -> list[tuple[int, float, str]]:
    """(event id, arrival, its `at`) of every event in a client's reads (a frame's arrival is
    that of the read that completed it)."""
    got: list[tuple[int, float, str]] = []
    buffered = b""
    for arrived, chunk in reads:
        *frames, buffered = (buffered + chunk).split(b"\n\n")
        for raw in frames:
            event_id, data = 0, ""
            for line in raw.decode().split("\n"):
                if line.startswith("id:"):
                    event_id = int(line[3:])
                elif line.startswith("data:"):
                    data += line[5:].strip()
            if data:  # else a keep-alive comment
                got.append((event_id, arrived, json.loads(data).get("at", "")))
    return got


def sse_clients(url: str, token: str, count: int, after: int) -> None:
    """`_sse URL TOKEN COUNT AFTER`: prints `ready`, then at the end one JSON line per client."""
    host, port = url.removeprefix("http://").split(":")

    async def run() -> list[list[tuple[float, bytes]]]:
        tasks = [
            asyncio.create_task(_one_client(host, int(port), token, after)) for _ in range(count)
        ]
        await asyncio.sleep(1.0)  # every client connected
        print("ready", flush=True)
        return list(await asyncio.gather(*tasks))

    for reads in asyncio.run(run()):
        print(json.dumps(_frames(reads)), flush=True)


# --- the measurements ---------------------------------------------------------------------------


def measure_rollout(args: argparse.Namespace, lines: list[str]) -> None:
    sys.path.insert(0, str(BENCH))
    import deploy as bench_deploy

    scenario = bench_deploy.Scenario(args.hosts, args.services)
    expected = args.hosts * args.services
    fleet = bench_deploy.start_fleet(args.hosts)
    try:
        bench_deploy.bootstrap(fleet, scenario)
        project = bench_deploy.PROJECT_DIR / "shipyard.yaml"
        env = bench_deploy.shipyard_env()
        if os.environ.get("BENCH_HEALTH"):
            env["SHIPYARD_HEALTH_INTERVAL"] = os.environ["BENCH_HEALTH"]
        cli, api = [], []
        compare = "rollout" in args.only  # else (sse alone) one API deploy to start from
        for run in range(1, (args.runs if compare else 1) + 1):
            if compare:
                bench_deploy.clear_tool(fleet, "shipyard")
                bench_deploy.write_project(fleet, scenario, health_timeout=HEALTH_TIMEOUT)
                ran, counts = bench_deploy.shipyard_deploy(3600, f"server-cli-r{run}")
                assert counts == {"success": expected}, counts
                cli.append(ran.seconds)
                log(f"  run {run}: CLI first deploy of {expected}: {ran.seconds:.2f} s")
            bench_deploy.clear_tool(fleet, "shipyard")
            bench_deploy.write_project(fleet, scenario, health_timeout=HEALTH_TIMEOUT)
            with serving(project, env, bench_deploy.WORK / f"serve-r{run}.log") as server:
                started = time.perf_counter()
                rollout = server.request("POST", "/api/rollouts", {"instances": []})
                found = wait_rollout(server, rollout["id"], 3600)
                seconds = time.perf_counter() - started
                all_succeeded(found, expected)
                api.append(seconds)
                log(f"  run {run}: API first deploy of {expected}: {seconds:.2f} s")
                if "sse" in args.only and run == (args.runs if compare else 1):
                    with background(fleet) as how:
                        lines.append(f"  {how}")
                        measure_sse(server, args, expected, lines)
        if compare:
            ratio = statistics.median(api) / statistics.median(cli)
            lines.append(
                f"  rollout of {expected} instances: CLI {statistics.median(cli):.2f} s, "
                f"API {statistics.median(api):.2f} s (median of {args.runs})"
            )
            lines.append(
                goal_line("rollout started over the API / from the CLI", ratio, API_OVER_CLI, "x")
            )
    finally:
        bench_deploy.clear_tool(fleet, "shipyard")
        bench_deploy.stop_everything(fleet)


CGROUP = Path("/sys/fs/cgroup/cpu")  # cgroup v1's cpu controller, where this machine has it


@contextlib.contextmanager
def background(fleet: Any) -> Iterator[str]:
    """Every process of the fleet (its sshd daemons and their sessions, each host's supervisord
    and its programs) given only the CPU the server and the clients leave: on this one machine
    they stand for 50 others, and must not take the CPU from the server whose latency is
    measured. A nice value alone does not do it where the kernel groups processes by session
    (sched_autogroup: each sshd session is a group of its own, weighed like the server's
    whole group, nice or not); so, as root, the fleet goes into a cpu cgroup of its own marked
    idle (`cpu.idle`: it runs when nothing else wants the CPU; new sessions inherit it), else
    with the least weight (`cpu.shares` 2), and back into the root group at the end. Without
    the cgroup, nice 19. Says what it did."""
    group = CGROUP / f"shipyard-bench-{os.getpid()}"
    pids = _fleet_pids(fleet)
    for pid in pids:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, pid, FLEET_NICE)
    try:
        group.mkdir()
    except OSError as failure:
        yield f"the fleet's {len(pids)} processes at nice {FLEET_NICE} (no cpu cgroup: {failure})"
        return
    try:
        how = "idle" if _write(group / "cpu.idle", "1") else "shares 2"
        if how != "idle":
            _write(group / "cpu.shares", "2")
        for pid in pids:
            _write(group / "cgroup.procs", str(pid))
        yield f"the fleet's {len(pids)} processes in a cpu cgroup of their own ({how}) at nice 19"
    finally:
        for _ in range(3):  # processes started meanwhile are in the group too
            left = (group / "cgroup.procs").read_text().split()
            if not left:
                break
            for pid in left:
                _write(CGROUP / "cgroup.procs", pid)
        with contextlib.suppress(OSError):
            group.rmdir()


def _write(path: Path, text: str) -> bool:
    try:
        path.write_text(text)
    except OSError:
        return False
    return True


def _fleet_pids(fleet: Any) -> list[int]:
    """The fleet's daemons and supervisords, and every process under them."""
    roots = [daemon.pid for daemon in fleet.daemons]
    for host in fleet.hosts:
        with contextlib.suppress(OSError, ValueError):
            roots.append(int((Path(host.root) / "supervisor" / "supervisord.pid").read_text()))
    seen: list[int] = []
    while roots:
        pid = roots.pop()
        if pid in seen:
            continue
        with contextlib.suppress(OSError):
            children = [
                int(child)
                for task in Path(f"/proc/{pid}/task").iterdir()
                for child in (task / "children").read_text().split()
            ]
            seen.append(pid)
            roots.extend(children)
    return seen


def measure_sse(server: Server, args: argparse.Namespace, expected: int, lines: list[str]) -> None:
    """50 clients follow a forced redeploy of every instance; latency and completeness."""
    last = _last_event_id(server)
    clients = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "_sse", server.url, server.token,
         str(args.clients), str(last)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert clients.stdout is not None
    try:
        assert clients.stdout.readline().strip() == "ready"
        rollout = server.request("POST", "/api/rollouts", {"instances": [], "force": True})
        found = wait_rollout(server, rollout["id"], 3600)
        all_succeeded(found, expected)
        received = [json.loads(line) for line in clients.stdout]
        clients.wait(timeout=120)
    finally:
        if clients.poll() is None:
            clients.kill()
            clients.wait()
    stored = _rollout_event_ids(server, rollout["id"], last)
    delays: list[float] = []
    complete = 0
    for got in received:
        ids = {event_id for event_id, _, _ in got}
        complete += stored <= ids
        delays.extend(
            arrived - datetime.fromisoformat(at).timestamp() for _, arrived, at in got if at
        )
    delays.sort()
    p99 = delays[int(len(delays) * 0.99) - 1] if delays else float("inf")
    lines.append(
        f"  {args.clients} SSE clients, {len(stored)} events of the rollout: {complete} clients"
        f" got every one; publish -> client p50 {statistics.median(delays) * 1000:.1f} ms, "
        f"p99 {p99 * 1000:.1f} ms, max {delays[-1] * 1000:.1f} ms"
    )
    lines.append(goal_line("SSE publish -> client, 99th percentile", p99, SSE_P99_SECONDS))
    lines.extend(bursts(received, args.clients))
    lines.append(
        f"  every client received every event: {'met' if complete == args.clients else 'NOT met'}"
    )
    lines.append(f"  server peak RSS (VmHWM) through the rollouts: {server.peak_rss_mib():.1f} MiB")


def bursts(received: list[list[tuple[int, float, str]]], clients: int) -> list[str]:
    """Where the slow deliveries are: each second of the rollout in which it published more
    than BURST events (its start queues every instance at once, for one), with the median and
    the slowest delay of its events, and the p99 of the events of every other second."""
    published = {
        event_id: datetime.fromisoformat(at).timestamp()
        for got in received
        for event_id, _, at in got
        if at
    }
    if not published:
        return []
    start = min(published.values())
    by_second: dict[int, list[float]] = {}
    for got in received:
        for event_id, arrived, at in got:
            if at:
                second = int(published[event_id] - start)
                by_second.setdefault(second, []).append(arrived - published[event_id])
    out, calm = [], []
    for second, delays in sorted(by_second.items()):
        events = len(delays) // clients
        if events > BURST:
            out.append(
                f"    burst at {second:3d} s: {events} events, median"
                f" {statistics.median(delays) * 1000:.0f} ms, slowest {max(delays) * 1000:.0f} ms"
            )
        else:
            calm.extend(delays)
    calm.sort()
    if calm:
        p99 = calm[int(len(calm) * 0.99) - 1]
        out.append(
            f"    every other second: {len(calm) // clients} events, p99 {p99 * 1000:.0f} ms"
        )
    return out


def _last_event_id(server: Server) -> int:
    last, after = 0, 0
    while True:
        page = server.request("GET", f"/api/events?after={after}&limit=1000")["events"]
        if not page:
            return last
        last = after = page[-1]["id"]


def _rollout_event_ids(server: Server, rollout_id: str, after: int) -> set[int]:
    ids: set[int] = set()
    while True:
        page = server.request("GET", f"/api/events?after={after}&limit=1000&rollout={rollout_id}")
        if not page["events"]:
            return ids
        ids.update(e["id"] for e in page["events"])
        after = page["events"][-1]["id"]


def full_store(directory: Path) -> tuple[Path, str]:
    """bench/scale.py's 10,000-instance project in `directory` and a SQLite store beside it
    holding a successful deployment of every instance: the project file and the store's URL."""
    scale = [sys.executable, str(BENCH / "scale.py")]
    built = subprocess.run(
        [*scale, "_build", str(directory), "500", "20"], check=True, capture_output=True,
        text=True,
    )  # fmt: skip
    project = Path(built.stdout.strip().splitlines()[-1])
    (directory / "store").mkdir()
    url = f"sqlite:///{directory / 'store' / 'state.db'}"
    subprocess.run([*scale, "_fill", url, str(project), "1"], check=True, capture_output=True)
    return project, url


def measure_status(args: argparse.Namespace, lines: list[str]) -> None:
    with tempfile.TemporaryDirectory(prefix="shipyard-bench-server-") as tmp:
        directory = Path(tmp)
        project, url = full_store(directory)
        env = {**os.environ, "SHIPYARD_DATABASE_URL": url}
        with serving(project, env, directory / "serve.log") as server:
            first = server.request("GET", "/api/status?limit=10000")
            rows = len(first["rows"])
            times = []
            for _ in range(STATUS_RUNS):
                started = time.perf_counter()
                server.request("GET", "/api/status?limit=10000")
                times.append(time.perf_counter() - started)
            rss = server.peak_rss_mib()
        lines.append(
            f"  GET /api/status of {rows} instances:"
            f" median {statistics.median(times) * 1000:.0f} ms,"
            f" least {min(times) * 1000:.0f} ms; server peak RSS {rss:.1f} MiB"
        )
        lines.append(
            goal_line("GET /api/status?limit=10000", statistics.median(times), STATUS_SECONDS)
        )


def main() -> None:
    if sys.argv[1:2] == ["_sse"]:
        sse_clients(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--services", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--only", default="rollout,sse,status")
    args = parser.parse_args()
    args.only = {w.strip() for w in args.only.split(",")}
    commit = subprocess.run(
        ["git", "log", "-1", "--format=%h %s"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    print(f"commit: {commit.stdout.strip()[:100]}")
    print(f"load average at start: {', '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    started = time.perf_counter()
    print("figures (ratio = figure / goal):", flush=True)
    if args.only & {"rollout", "sse"}:
        lines: list[str] = []
        try:
            measure_rollout(args, lines)
        finally:
            print("\n".join(lines), flush=True)  # what was measured, also when a part failed
    if "status" in args.only:
        lines = []
        try:
            measure_status(args, lines)
        finally:
            print("\n".join(lines), flush=True)
    print(f"load average at end:   {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"whole benchmark: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
