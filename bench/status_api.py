"""GET /api/status of 10,000 instances from a running `shipyard serve`: the goal is < 200 ms
for all of them in one request (limit=10000).

Builds bench/plan.py's project (500 hosts x 20 services), fills a SQLite store with a
successful deployment of every instance (bench/scale.py's `_build` and `_fill`), starts the
server on a free loopback port, and times requests over HTTP: the first (which builds the
server's kept view), then warm ones, whole and filtered. A benchmark, not a test.

    .venv/bin/python bench/status_api.py [--hosts 500] [--services 20] [--runs 20]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

BENCH = Path(__file__).resolve().parent
GOAL_SECONDS = 0.200


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_server(
    project: Path, env: dict[str, str], log: Path
) -> tuple[subprocess.Popen[bytes], str, str]:
    """The server process, its URL and the admin token it printed."""
    port = free_port()
    with log.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "shipyard", "--project", str(project), "serve",
             "--listen", f"127.0.0.1:{port}"],
            env=env, stdout=subprocess.DEVNULL, stderr=err,
        )  # fmt: skip
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server ended: {log.read_text()}")
        lines = log.read_text().splitlines()
        if any(line.startswith("shipyard serving") for line in lines):
            token = next(line.strip() for line in lines if line.strip().startswith("shy_"))
            return process, f"http://127.0.0.1:{port}", token
        time.sleep(0.2)
    process.kill()
    raise SystemExit("the server did not start in time")


def timed(client: httpx.Client, params: dict[str, object]) -> tuple[float, int, int]:
    """Seconds for one whole request (body read), its rows and its bytes."""
    start = time.perf_counter()
    response = client.get("/api/status", params=params)
    body = response.content
    seconds = time.perf_counter() - start
    response.raise_for_status()
    return seconds, len(response.json()["rows"]), len(body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=500)
    parser.add_argument("--services", type=int, default=20)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    print("load average at start: " + ", ".join(f"{v:.2f}" for v in os.getloadavg()))
    with tempfile.TemporaryDirectory(prefix="shipyard-status-") as tmp:
        scale = [sys.executable, str(BENCH / "scale.py")]
        built = subprocess.run(
            [*scale, "_build", tmp, str(args.hosts), str(args.services)],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        project = Path(built.stdout.strip())
        url = f"sqlite:///{tmp}/state.db"
        subprocess.run([*scale, "_fill", url, str(project), "1"], check=True, capture_output=True)
        env = {**os.environ, "SHIPYARD_DATABASE_URL": url, "SHIPYARD_ACTOR": "bench"}
        process, base, token = start_server(project, env, Path(tmp) / "serve.log")
        try:
            headers = {"Authorization": f"Bearer {token}"}
            with httpx.Client(base_url=base, headers=headers, timeout=300) as client:
                whole = {"limit": 10_000}
                first, rows, size = timed(client, whole)
                print(f"project: {rows} instances; answer {size / 1e6:.1f} MB")
                print(f"first request (builds the kept view): {first * 1000:.0f} ms")
                cases = {
                    "all rows, limit=10000": whole,
                    "default page (limit=1000)": {},
                    "filtered (one site, limit=10000)": {"site": "site00", "limit": 10_000},
                    "filtered (stale=true)": {"stale": "true", "limit": 10_000},
                }
                for label, params in cases.items():
                    times = [timed(client, params)[0] for _ in range(args.runs)]
                    median = statistics.median(times)
                    verdict = f"goal {GOAL_SECONDS * 1000:.0f} ms" if params is whole else ""
                    print(
                        f"{label}: median {median * 1000:.1f} ms, best {min(times) * 1000:.1f}"
                        f" ms over {args.runs} {verdict}"
                    )
        finally:
            process.terminate()
            process.wait(timeout=60)
    print("load average at end: " + ", ".join(f"{v:.2f}" for v in os.getloadavg()))


if __name__ == "__main__":
    main()
