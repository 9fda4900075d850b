"""A real `shipyard serve` process on a free loopback port, for tests that need the server as
users run it (signals, restarts, the CLI as a client). Stopped by its PID, also when the test
fails."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from tests.store.local_project import free_port

START_TIMEOUT = 60.0


@dataclass
class ServeProcess:
    """One running server: its URL, the admin token (from its first start), its output."""

    process: subprocess.Popen[str]
    url: str
    token: str | None
    log: Path
    output: list[str] = field(default_factory=list)

    def client(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30.0)

    def signal(self, number: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.process.pid, number)

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout=timeout)


@contextlib.contextmanager
def serving(
    project: Path,
    env: Mapping[str, str],
    *,
    port: int | None = None,
    args: tuple[str, ...] = (),
    log: Path | None = None,
) -> Iterator[ServeProcess]:
    """Start `shipyard -p PROJECT serve` and wait until /api/health answers; SIGKILL it by PID
    at the end if it still runs."""
    port = port or free_port()
    log = log or project.parent / f"serve-{port}.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "shipyard", "-p", str(project), "serve",
             "--listen", f"127.0.0.1:{port}", *args],
            env={**os.environ, "SHIPYARD_HEALTH_INTERVAL": "0", **env}, stdout=out, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
    served = ServeProcess(process, f"http://127.0.0.1:{port}", None, log)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                raise AssertionError(
                    f"shipyard serve exited {process.returncode}:\n{log.read_text()}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{served.url}/api/health", timeout=2.0).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise AssertionError(f"shipyard serve did not start:\n{log.read_text()}")
            time.sleep(0.1)
        served.token = next((w for w in log.read_text().split() if w.startswith("shy_")), None)
        yield served
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
