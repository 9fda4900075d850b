"""Benchmark: the dashboard in Chromium at fleet size (issue 14's goals), with the ratio figure /
goal printed beside each.

    paint    a 10,000-instance project with a full store (bench/scale.py's project and filling)
             served by `shipyard serve`; Debian's Chromium (Playwright) opens the instances page
             (a page of 200 rows, then of 1,000) and the overview, each --runs times after one
             warm-up: first contentful paint (the server-rendered table is in the first paint).
             Goal: under 1 s.
    live     a real SSH fleet (bench/deploy.py: --hosts sshd hosts x --services services, 1,000
             instances by default), bootstrapped and deployed once; the instances page shows all
             1,000 cells and follows the event stream while the server redeploys every instance
             (force). For each event the page's handler has applied to its cell, the time from
             the event's publication (its `at`, the server's clock, this machine's) to that
             moment is collected. Goal: 99th percentile under 200 ms. Then forced redeploys go on
             for --minutes while the page's JS heap and DOM node count are sampled every 10 s
             (Chrome's Performance.getMetrics). Goal: bounded, the last minute's largest heap
             at most 1.5x the first minute's. The fleet's processes get only idle CPU (they
             stand for other machines: bench/server.py's `background`).

Every process started here is stopped by its PID. Not a timed test: the figures depend on the
machine and its load (printed).

    .venv/bin/python bench/dashboard.py [--runs 5] [--hosts 50] [--services 20] [--minutes 10]
                                        [--only paint,live]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from server import (  # noqa: E402 (the benchmark's own helpers, beside this file)
    HEALTH_TIMEOUT,
    Server,
    all_succeeded,
    background,
    full_store,
    goal_line,
    serving,
    wait_rollout,
)

CHROMIUM = "/usr/bin/chromium"
PAINT_SECONDS = 1.0
EVENT_P99_SECONDS = 0.200
HEAP_GROWTH = 1.5
SAMPLE_SECONDS = 10.0

# In the page: a listener after the dashboard's own (so the cell is already changed) keeps,
# per event, how long after its publication the page had applied it.
WATCH = """() => {
    window.delays = [];
    const source = window.shipyardEvents;
    const phases = ["queued", "uploading", "installing", "switching", "restarting",
        "health-checking", "soaking", "draining", "finished", "rollout-started",
        "rollout-finished"];
    for (const phase of phases) {
        source.addEventListener(phase, (message) => {
            const data = JSON.parse(message.data);
            window.delays.push(Date.now() - Date.parse(data.at));
        });
    }
    return source.readyState;
}"""


def browser_context(driver: Any, server: Server) -> tuple[Any, Any]:
    browser = driver.chromium.launch(executable_path=CHROMIUM, headless=True)
    context = browser.new_context(
        viewport={"width": 1280, "height": 800},
        extra_http_headers={"Authorization": f"Bearer {server.token}"},
    )
    return browser, context


def first_paint(context: Any, url: str) -> float:
    """A new tab's first contentful paint of `url`, in seconds from its navigation."""
    page = context.new_page()
    try:
        page.goto(url, wait_until="load")
        page.wait_for_function(
            "() => performance.getEntriesByType('paint')"
            ".some(e => e.name === 'first-contentful-paint')"
        )
        found = page.evaluate(
            "() => performance.getEntriesByType('paint')"
            ".filter(e => e.name === 'first-contentful-paint').map(e => e.startTime)"
        )
    finally:
        page.close()
    return float(found[0]) / 1000


def measure_paint(args: argparse.Namespace, lines: list[str]) -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="shipyard-bench-dashboard-") as tmp:
        directory = Path(tmp)
        project, url = full_store(directory)
        env = {**os.environ, "SHIPYARD_DATABASE_URL": url, "SHIPYARD_HEALTH_INTERVAL": "0"}
        with serving(project, env, directory / "serve.log") as server, sync_playwright() as driver:
            server.request("GET", "/api/status?limit=1")  # the kept view, built once
            browser, context = browser_context(driver, server)
            try:
                for path, label in (
                    ("/instances", "instances page (200 of 10,000 rows)"),
                    ("/instances?limit=1000", "instances page (1,000 of 10,000 rows)"),
                    ("/", "overview of 10,000 instances"),
                ):
                    first_paint(context, server.url + path)  # warm-up
                    times = [first_paint(context, server.url + path) for _ in range(args.runs)]
                    shown = ", ".join(f"{t:.3f}" for t in times)
                    lines.append(f"  {label}: first contentful paint runs {shown} s")
                    lines.append(
                        goal_line(f"paint: {label}", statistics.median(times), PAINT_SECONDS)
                    )
            finally:
                browser.close()


def heap(page: Any) -> tuple[float, int]:
    """The page's JS heap in use (MiB) and its DOM node count."""
    client = page.context.new_cdp_session(page)
    client.send("Performance.enable")
    metrics = {m["name"]: m["value"] for m in client.send("Performance.getMetrics")["metrics"]}
    client.detach()
    return metrics["JSHeapUsedSize"] / 2**20, int(metrics["Nodes"])


def measure_live(args: argparse.Namespace, lines: list[str]) -> None:
    from playwright.sync_api import sync_playwright

    import deploy as bench_deploy

    scenario = bench_deploy.Scenario(args.hosts, args.services)
    expected = args.hosts * args.services
    fleet = bench_deploy.start_fleet(args.hosts)
    try:
        bench_deploy.bootstrap(fleet, scenario)
        bench_deploy.clear_tool(fleet, "shipyard")
        bench_deploy.write_project(fleet, scenario, health_timeout=HEALTH_TIMEOUT)
        project = bench_deploy.PROJECT_DIR / "shipyard.yaml"
        env = {**bench_deploy.shipyard_env(), "SHIPYARD_HEALTH_INTERVAL": "0"}
        log_file = bench_deploy.WORK / "serve-dashboard.log"
        with serving(project, env, log_file) as server, sync_playwright() as driver:
            first = server.request("POST", "/api/rollouts", {"instances": []})
            all_succeeded(wait_rollout(server, first["id"], 3600), expected)
            with background(fleet) as how:
                lines.append(f"  {how}")
                browser, context = browser_context(driver, server)
                try:
                    page = context.new_page()
                    page.goto(f"{server.url}/instances?limit={expected}", wait_until="load")
                    page.wait_for_function(
                        "() => window.shipyardEvents && window.shipyardEvents.readyState === 1"
                    )
                    page.evaluate(WATCH)
                    started = time.perf_counter()
                    rollout = server.request(
                        "POST", "/api/rollouts", {"instances": [], "force": True}
                    )
                    all_succeeded(wait_rollout(server, rollout["id"], 3600), expected)
                    seconds = time.perf_counter() - started
                    time.sleep(2.0)  # the last events on their way
                    delays = sorted(d / 1000 for d in page.evaluate("window.delays"))
                    if not delays:
                        raise RuntimeError("the page received no event")
                    p99 = delays[max(0, int(len(delays) * 0.99) - 1)]
                    lines.append(
                        f"  a forced redeploy of {expected} instances ({seconds:.1f} s) while"
                        f" the page shows every cell: {len(delays)} events applied; publish ->"
                        f" cell p50 {statistics.median(delays) * 1000:.1f} ms,"
                        f" p99 {p99 * 1000:.1f} ms, max {delays[-1] * 1000:.1f} ms"
                    )
                    lines.append(
                        goal_line(
                            "live: event -> changed cell, 99th percentile", p99, EVENT_P99_SECONDS
                        )
                    )
                    lines.extend(_memory(server, page, args.minutes, expected))
                finally:
                    browser.close()
    finally:
        bench_deploy.clear_tool(fleet, "shipyard")
        bench_deploy.stop_everything(fleet)


def _memory(server: Server, page: Any, minutes: float, expected: int) -> list[str]:
    """Forced redeploys one after another for `minutes` while the page follows them."""
    samples: list[tuple[float, float, int]] = []
    start = time.monotonic()
    end = start + minutes * 60
    rollouts = 0
    next_sample = start
    while time.monotonic() < end:
        rollout = server.request("POST", "/api/rollouts", {"instances": [], "force": True})
        while True:
            now = time.monotonic()
            if now >= next_sample:
                used, nodes = heap(page)
                samples.append((now - start, used, nodes))
                next_sample = now + SAMPLE_SECONDS
            found = server.request("GET", f"/api/rollouts/{rollout['id']}")
            if found["status"] != "in_progress" and not found.get("running_here"):
                break
            time.sleep(1.0)
        all_succeeded(found, expected)
        rollouts += 1
    used, nodes = heap(page)
    samples.append((time.monotonic() - start, used, nodes))
    first = [s for s in samples if s[0] <= 60] or samples[:1]
    last = [s for s in samples if s[0] >= samples[-1][0] - 60] or samples[-1:]
    first_max = max(s[1] for s in first)
    last_max = max(s[1] for s in last)
    growth = last_max / first_max if first_max else float("inf")
    shown = ", ".join(f"{s[1]:.1f}" for s in samples[:: max(1, len(samples) // 12)])
    return [
        f"  {rollouts} forced redeploys in {minutes:g} min while the page followed them;"
        f" JS heap (MiB) {shown}; DOM nodes {samples[0][2]} -> {samples[-1][2]}",
        goal_line("live: heap, last minute / first minute", growth, HEAP_GROWTH, "x"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--services", type=int, default=20)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--only", default="paint,live")
    args = parser.parse_args()
    only = {w.strip() for w in args.only.split(",")}
    commit = subprocess.run(
        ["git", "log", "-1", "--format=%h %s"], cwd=BENCH.parent, capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    print(f"commit: {commit.stdout.strip()[:100]}")
    print(f"load average at start: {', '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    started = time.perf_counter()
    print("figures (ratio = figure / goal):", flush=True)
    for part, measure in (("paint", measure_paint), ("live", measure_live)):
        if part not in only:
            continue
        lines: list[str] = []
        try:
            measure(args, lines)
        finally:
            print("\n".join(lines), flush=True)  # what was measured, also when a part failed
    print(f"load average at end:   {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"whole benchmark: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
