"""Benchmark: `shipyard status` and `shipyard plan` of 10,000 instances with a full store.

Builds bench/plan.py's project (500 hosts x 20 services: 10,000 instances), fills a store with a
successful deployment of every instance through the Store's bulk API (begin_deployments,
mark_in_progress_many, finish_deployments with each instance's snapshot), then times whole
`.venv/bin/shipyard` processes against it: `status --json`, `status`, `plan`, `plan --json`, on
SQLite and on PostgreSQL (a private server in a temporary directory on 127.0.0.1, stopped by its
pid at the end); `shipyard --help`; `shipyard plan` of examples/hello. Each figure is the median
wall time of --runs processes and the largest peak RSS among them (os.wait4), printed beside
its goal with the ratio figure / goal. The store's reads for status and plan are timed
in-process too (median of 11, after one warm-up), and beside them, with no goal, the full
read of every deployed snapshot that deploy and rollback load (`instance_states()`).

This process imports only the standard library and stays small: a child's peak RSS on Linux
starts from its parent's at the fork, so the project, the store and the PostgreSQL server are
handled by helper processes of this same script (`_build`, `_fill`, `_postgres`).

    .venv/bin/python bench/scale.py [--hosts 500] [--services 20] [--runs 3]
                                    [--engines sqlite,postgresql] [--instances N]

--instances N picks the hosts for N instances at --services per host (it overrides --hosts).
Not a timed test: figures depend on the machine and its load (the load average is printed).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
SHIPYARD = REPO / ".venv" / "bin" / "shipyard"
HELLO = REPO / "examples" / "hello"
BATCH = 1000  # deployments per bulk call while filling the store
TEMPLATES = 50
QUERY_RUNS = 11  # the in-process reads take ~0.1 s: a steadier median of more

# Goals of issue 10: seconds and MiB per whole process; the store's query in seconds.
FLEET_SECONDS, FLEET_MIB = 1.5, 300.0
HELP_SECONDS = 0.3
HELLO_SECONDS = 0.6
QUERY_SECONDS = 0.150
# Reads timed for scale but not the status query the goal names: what deploy and rollback load.
UNTIMED_READS = {"instance_states()": "no goal: every deployed snapshot, what deploy reads"}


@dataclass(frozen=True)
class Run:
    """One figure: wall time of each run, the largest peak RSS, the output's size."""

    seconds: list[float]
    peak_mib: float
    out_bytes: int

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def run_process(argv: Sequence[str], env: dict[str, str], runs: int) -> Run:
    """Run `argv` `runs` times: wall times, peak RSS (os.wait4 of that child), stdout size."""
    times, peaks, size = [], [], 0
    for _ in range(runs):
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            start = time.perf_counter()
            proc = subprocess.Popen(argv, stdout=out, stderr=err, env=env)
            _, status, usage = os.wait4(proc.pid, 0)
            times.append(time.perf_counter() - start)
            proc.returncode = os.waitstatus_to_exitcode(status)
            peaks.append(usage.ru_maxrss / 1024)  # KiB on Linux
            size = out.tell()
            if proc.returncode != 0:
                err.seek(0)
                tail = err.read().decode(errors="replace")[-2000:]
                raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}:\n{tail}")
    return Run(times, max(peaks), size)


def goal_line(label: str, seconds: float, goal: float, mib: float | None = None) -> str:
    text = f"  {label:<44} {seconds:7.3f} s  goal < {goal:g} s  ({seconds / goal:5.2f}x)"
    if mib is not None:
        text += f"   {mib:6.1f} MiB  goal < {FLEET_MIB:g} MiB  ({mib / FLEET_MIB:4.2f}x)"
    met = seconds < goal and (mib is None or mib < FLEET_MIB)
    return text + ("   met" if met else "   NOT met")


def helper(*words: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), *words]


# --- helper processes: fill and read the store, run PostgreSQL ----------------------------------


def fill_and_query(url: str, project: str, runs: int) -> None:
    """`_fill`: flatten the project, deploy every instance into the store at `url` (bulk API),
    time the store's reads; prints one JSON document."""
    from shipyard.config.flatten import flatten_project
    from shipyard.config.loader import load_project
    from shipyard.store import DeploymentRequest, DeploymentStatus, Finish, open_store
    from shipyard.store.quick import open_quick

    flat = flatten_project(load_project(Path(project)), secret_key=b"", environ={})
    chosen = list(flat.instances.values())
    with open_store(url) as store:
        start = time.perf_counter()
        for first in range(0, len(chosen), BATCH):
            batch = chosen[first : first + BATCH]
            requests = [
                DeploymentRequest(
                    f"d-{first + n:06d}", i.name, i.service, i.host, i.site, i.revision
                )
                for n, i in enumerate(batch)
            ]
            store.begin_deployments(
                requests, actor="bench", owner_host="bench", owner_pid=os.getpid()
            )
            store.mark_in_progress_many([r.deployment_id for r in requests])
            store.finish_deployments(
                [
                    Finish(r.deployment_id, DeploymentStatus.SUCCESS, snapshot=i.config)
                    for r, i in zip(requests, batch, strict=True)
                ]
            )
        filled = time.perf_counter() - start
        reads: dict[str, Callable[[], object]] = {"instance_states()": store.instance_states}
        for method in ("status_rows", "deployed_revisions"):  # the fast reads, where they exist
            read = getattr(store, method, None)
            if read is not None:
                reads[f"{method}()"] = read
        queries = [(name, *time_call(read, runs)) for name, read in reads.items()]
    quick = open_quick(url)  # what status and plan read on SQLite (None on PostgreSQL)
    if quick is not None:
        with quick:
            queries.append(("quick status_rows()", *time_call(quick.status_rows, runs)))
    print(json.dumps({"instances": len(chosen), "filled": filled, "queries": queries}))


def time_call(call: Callable[[], object], runs: int) -> tuple[float, float, int]:
    """Median and least seconds of `call` over `runs` (after one warm-up), its answer's size."""
    found = call()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        found = call()
        times.append(time.perf_counter() - start)
    size = len(found) if isinstance(found, list | dict) else 0
    return statistics.median(times), min(times), size


def serve_postgresql() -> None:
    """`_postgres`: start a private server (tests/store_fixtures.py), print a database URL,
    and stop the server by its pid when stdin closes (the benchmark ended, or died)."""
    sys.path.insert(0, str(REPO / "tests"))
    from store_fixtures import find_bindir, start_postgres, stop_postgres

    bindir = find_bindir()
    if bindir is None:
        raise SystemExit("PostgreSQL is not installed (make system-deps installs it)")
    server = start_postgres(bindir)
    try:
        with server.admin() as admin:
            admin.execute('CREATE DATABASE "shipyard_bench" TEMPLATE template0')
        print(server.url("shipyard_bench"), flush=True)
        sys.stdin.read()
    finally:
        stop_postgres(server)


@contextmanager
def engine_url(engine: str, directory: Path) -> Iterator[str]:
    if engine == "sqlite":
        yield f"sqlite:///{directory / 'state.db'}"
        return
    if engine != "postgresql":
        raise SystemExit(f"unknown engine {engine!r}: sqlite or postgresql")
    server = subprocess.Popen(helper("_postgres"), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert server.stdin is not None
    assert server.stdout is not None
    try:
        url = server.stdout.readline().decode().strip()
        if not url:
            raise RuntimeError("the PostgreSQL helper did not start a server")
        yield url
    finally:
        server.stdin.close()  # it stops its server, by pid
        server.wait(timeout=60)


# --- the benchmark -----------------------------------------------------------------------------


def fleet(engine: str, project: Path, runs: int, directory: Path) -> list[str]:
    lines = []
    with engine_url(engine, directory) as url:
        filled = subprocess.run(
            helper("_fill", url, str(project), str(QUERY_RUNS)),
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        found = json.loads(filled.stdout)
        print(f"{engine}: store filled with {found['instances']} deployments in "
              f"{found['filled']:.1f} s", flush=True)  # fmt: skip
        for name, seconds, least, size in found["queries"]:
            label = f"{engine}: store {name} ({size} rows)"
            if name in UNTIMED_READS:  # beside the goals, for scale; held to none
                lines.append(f"  {label:<44} {seconds:7.3f} s  {UNTIMED_READS[name]}")
                continue
            lines.append(goal_line(label, seconds, QUERY_SECONDS) + f"   (least {least:.3f} s)")
        env = {**os.environ, "SHIPYARD_DATABASE_URL": url, "COLUMNS": "200"}
        base = [str(SHIPYARD), "--project", str(project)]
        for words in (["status", "--json"], ["status"], ["plan", "--json"], ["plan"]):
            run = run_process([*base, *words], env, runs)
            label = f"{engine}: shipyard {' '.join(words)}"
            lines.append(goal_line(label, run.median, FLEET_SECONDS, run.peak_mib))
            shown = ", ".join(f"{s:.2f}" for s in run.seconds)
            lines.append(f"  {'':<44} runs {shown}; {run.out_bytes} bytes out")
    return lines


def main() -> None:
    if sys.argv[1:2] == ["_fill"]:
        fill_and_query(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    if sys.argv[1:2] == ["_build"]:  # bench/plan.py imports shipyard: not in this process
        sys.path.insert(0, str(BENCH))
        from plan import build_project

        print(build_project(Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), TEMPLATES))
        return
    if sys.argv[1:2] == ["_postgres"]:
        serve_postgresql()
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=500)
    parser.add_argument("--services", type=int, default=20)
    parser.add_argument("--instances", type=int, default=None)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--engines", default="sqlite,postgresql")
    args = parser.parse_args()
    hosts = args.hosts if args.instances is None else max(1, args.instances // args.services)
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    started = time.perf_counter()
    head = subprocess.run(
        ["git", "-C", str(REPO), "log", "-1", "--format=%h %s"],
        check=False, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    print(f"commit: {head[:100]}")
    print("load average at start: " + ", ".join(f"{v:.2f}" for v in os.getloadavg()))
    lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="shipyard-scale-") as tmp:
        directory = Path(tmp)
        built = subprocess.run(
            helper("_build", tmp, str(hosts), str(args.services)),
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        project = Path(built.stdout.strip())
        print(
            f"project: {hosts} hosts x {args.services} services; {args.runs} run(s) per figure "
            "(median wall time; peak RSS the largest of the runs)",
            flush=True,
        )
        for engine in engines:
            (directory / engine).mkdir()
            lines.extend(fleet(engine, project, args.runs, directory / engine))
        hello = directory / "hello"
        shutil.copytree(HELLO, hello)
        env = {**os.environ, "SHIPYARD_DATABASE_URL": f"sqlite:///{hello / 'state.db'}"}
        env.pop("SHIPYARD_PROJECT", None)
        found = run_process([str(SHIPYARD), "--help"], env, max(args.runs, 5))
        lines.append(goal_line("shipyard --help", found.median, HELP_SECONDS))
        hello_plan = [str(SHIPYARD), "--project", str(hello / "shipyard.yaml"), "plan"]
        found = run_process(hello_plan, env, max(args.runs, 5))
        lines.append(goal_line("shipyard plan (examples/hello)", found.median, HELLO_SECONDS))
    print("figures (ratio = figure / goal):")
    print("\n".join(lines))
    print("load average at end:   " + ", ".join(f"{v:.2f}" for v in os.getloadavg()))
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"this process's peak RSS {own:.1f} MiB (a floor under each child's figure)")
    print(f"whole benchmark: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
