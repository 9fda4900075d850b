"""Benchmark: the site event log with 1,000,000 events in the store (issue 13: a page and a
keyword search each under 100 ms).

Fills a store with --events events (20 sites of 10 hosts, deployment phases and site events,
details from a small vocabulary and a few rare words) in big transactions of executemany
through the store's own table and row values (so the FTS5 triggers or the GIN index do their
real work), then times Store.event_log in-process: the first page, a site's first page, a deep
page by cursor, a page of errors, a keyword search of a common word, of two words and of a
rare prefix. Each figure is the median and p99 of --runs calls after one warm-up, beside the
goal. On SQLite and on PostgreSQL (a private server in a temporary directory on 127.0.0.1,
tests/store_fixtures.py, stopped by its pid at the end).

    .venv/bin/python bench/events.py [--events 1000000] [--runs 30] [--engines sqlite,postgresql]

Writes what it prints to bench/results/events.txt too. Not a timed test: figures depend on the
machine and its load (the load average is printed).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "tests"))

from sqlalchemy import insert, text  # noqa: E402

from shipyard.events import Event, Phase, Severity  # noqa: E402
from shipyard.store import EventFilter, Store, open_store  # noqa: E402
from shipyard.store import rows as store_rows  # noqa: E402
from shipyard.store.tables import events  # noqa: E402

GOAL_SECONDS = 0.100
CHUNK = 50_000  # events a transaction while filling
SITES = [f"site-{n:02d}" for n in range(20)]
HOSTS = [(site, f"{site}-h{n}") for site in SITES for n in range(10)]
SERVICES = ["api", "web", "worker", "cache", "queue"]
WORDS = [
    "health",
    "check",
    "passed",
    "returned",
    "timeout",
    "connection",
    "refused",
    "release",
    "switched",
    "drained",
    "upstream",
    "config",
    "rendered",
    "artifact",
    "pushed",
    "certificate",
    "rotated",
    "unchanged",
    "process",
    "started",
    "stopped",
    "restarted",
    "port",
    "listening",
    "slot",
    "blue",
    "green",
    "canary",
    "batch",
    "budget",
]
RESULTS = ["success"] * 12 + ["failed", "skipped", "unchanged", "cancelled"]


def made_events(count: int, seed: int = 13) -> Iterator[Event]:
    chance = random.Random(seed)
    start = datetime.now(UTC) - timedelta(days=40)
    step = timedelta(days=40) / count
    phases = [Phase.QUEUED, Phase.UPLOADING, Phase.INSTALLING, Phase.SWITCHING, Phase.FINISHED]
    for n in range(count):
        site, host = HOSTS[chance.randrange(len(HOSTS))]
        instance = f"{SERVICES[chance.randrange(len(SERVICES))]}@{host}"
        detail = " ".join(chance.choice(WORDS) for _ in range(chance.randint(3, 9)))
        if n % 10_000 == 7:
            detail += " zebrafish"  # the rare word: about 100 events
        kind = chance.random()
        at = start + step * n
        if kind < 0.80:
            phase = phases[chance.randrange(len(phases))]
            result = chance.choice(RESULTS) if phase is Phase.FINISHED else None
            yield Event(phase, at, f"r{n // 50}", f"d{n}", instance, site, host, result, detail)
        elif kind < 0.9:
            result = chance.choice(["online", "offline", "degraded"])
            yield Event(Phase.HEALTH, at, site=site, host=host, result=result, detail=detail)
        elif kind < 0.95:
            yield Event(Phase.ARTIFACT, at, site=site, host=host, result=chance.choice(RESULTS),
                        detail=detail, subject=f"certs-{n % 7}")  # fmt: skip
        else:
            yield Event(Phase.HOST_ERROR, at, site=site, host=host, detail=detail)


def fill(store: Store, count: int) -> float:
    started = time.perf_counter()
    batch: list[dict[str, object]] = []
    for event in made_events(count):
        batch.append(store_rows.event_values(event))
        if len(batch) == CHUNK:
            with store.engine.begin() as conn:
                conn.execute(insert(events), batch)
            batch = []
    if batch:
        with store.engine.begin() as conn:
            conn.execute(insert(events), batch)
    with store.engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    return time.perf_counter() - started


def timed(call: Callable[[], list[Event]], runs: int) -> tuple[float, float, int]:
    found = call()  # the warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        found = call()
        times.append(time.perf_counter() - start)
    times.sort()
    p99 = times[min(len(times) - 1, round(0.99 * (len(times) - 1)))]
    return statistics.median(times), p99, len(found)


def measure(store: Store, runs: int, engine: str) -> list[str]:
    newest = store.last_event_id()
    deep = newest - newest * 9 // 10  # 90% of the way back
    cases: list[tuple[str, Callable[[], list[Event]]]] = [
        ("first page", store.event_log),
        ("first page of a site", lambda: store.event_log(where=EventFilter(site="site-07"))),
        ("deep page by cursor (90% back)", lambda: store.event_log(before_id=deep)),
        (
            "deep page of a site by cursor",
            lambda: store.event_log(before_id=deep, where=EventFilter(site="site-07")),
        ),
        ("errors, first page", lambda: store.event_log(where=EventFilter(severity=Severity.ERROR))),
        ("search 'health'", lambda: store.event_log(where=EventFilter(search="health"))),
        (
            "search 'connection refused'",
            lambda: store.event_log(where=EventFilter(search="connection refused")),
        ),
        (
            "search 'zebra' (rare prefix)",
            lambda: store.event_log(where=EventFilter(search="zebra")),
        ),
        (
            "search 'refused' at a site",
            lambda: store.event_log(where=EventFilter(search="refused", site="site-07")),
        ),
    ]
    lines = []
    for label, call in cases:
        median, p99, size = timed(call, runs)
        met = "met" if median <= GOAL_SECONDS and p99 <= GOAL_SECONDS else "NOT met"
        lines.append(
            f"  {engine}: {label:<34} median {median * 1000:7.1f} ms  p99 {p99 * 1000:7.1f} ms"
            f"  ({size} events)  goal < {GOAL_SECONDS * 1000:.0f} ms"
            f"  ({median / GOAL_SECONDS:4.2f}x)  {met}"
        )
    return lines


@contextmanager
def store_url(engine: str, directory: Path) -> Iterator[str]:
    if engine == "sqlite":
        yield f"sqlite:///{directory / 'events.db'}"
        return
    from store_fixtures import find_bindir, start_postgres, stop_postgres

    bindir = find_bindir()
    if bindir is None:
        raise SystemExit("PostgreSQL is not installed (make system-deps installs it)")
    server = start_postgres(bindir)
    try:
        with server.admin() as admin:
            admin.execute('CREATE DATABASE "shipyard_events" TEMPLATE template0')
        yield server.url("shipyard_events")
    finally:
        stop_postgres(server)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--engines", default="sqlite,postgresql")
    args = parser.parse_args()
    out: list[str] = []

    def say(line: str) -> None:
        print(line, flush=True)
        out.append(line)

    head = subprocess.run(
        ["git", "-C", str(REPO), "log", "-1", "--format=%h %s"],
        check=False, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    say(f"commit: {head[:100]}")
    say("load average at start: " + ", ".join(f"{v:.2f}" for v in os.getloadavg()))
    say(f"{args.events} events; {args.runs} runs a figure after one warm-up (median, p99)")
    lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="shipyard-events-") as tmp:
        for engine in [e.strip() for e in args.engines.split(",") if e.strip()]:
            with store_url(engine, Path(tmp)) as url, open_store(url) as store:
                seconds = fill(store, args.events)
                say(f"{engine}: store filled with {args.events} events in {seconds:.1f} s")
                lines.extend(measure(store, args.runs, engine))
    say("figures:")
    for line in lines:
        say(line)
    say("load average at end:   " + ", ".join(f"{v:.2f}" for v in os.getloadavg()))
    results = BENCH / "results" / "events.txt"
    results.write_text("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
