"""A Shipyard project on one local host, driven through the real `shipyard` CLI.

The host's root lies outside the project's `.shipyard` directory, so everything Shipyard keeps
for itself (the state store and its WAL) can be searched apart from what the host holds.
`bootstrapped` starts the host's own supervisord and ends it by its pid afterwards.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

CLI_TIMEOUT = 120.0
HOST = "box"


@dataclass
class LocalProject:
    """`dir/shipyard.yaml` with one local host whose root is `host_root`."""

    dir: Path
    host_root: Path
    env: dict[str, str] = field(default_factory=dict)
    runs: list[subprocess.CompletedProcess[str]] = field(default_factory=list)

    def write(
        self,
        templates: dict[str, Any],
        services: dict[str, Any],
        *,
        host: dict[str, Any] | None = None,
        **extra: Any,
    ) -> None:
        """The project: `extra` top-level sections, the one host (with `host` settings)."""
        settings = {"connection": "local", "root": str(self.host_root), **(host or {})}
        document = {
            "name": "securitytest",
            **extra,
            "sites": {"here": {"hosts": {HOST: settings}}},
            "templates": templates,
            "services": services,
        }
        (self.dir / "shipyard.yaml").write_text(yaml.safe_dump(document, sort_keys=False))

    def shipyard(self, *args: str, expect: int | None = 0) -> subprocess.CompletedProcess[str]:
        """Run `shipyard ARGS` (stdout a pipe, so no live view); check its exit code if given."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
        env.update({"COLUMNS": "300", "SHIPYARD_ACTOR": "tester", **self.env})
        done = subprocess.run(
            [sys.executable, "-m", "shipyard", *args],
            cwd=self.dir,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=CLI_TIMEOUT,
        )
        self.runs.append(done)
        if expect is not None:
            assert done.returncode == expect, explain(done)
        return done


def explain(done: subprocess.CompletedProcess[str]) -> str:
    return f"{done.args}: exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"


@contextlib.contextmanager
def bootstrapped(project: LocalProject) -> Iterator[LocalProject]:
    """The host with its own supervisord for the duration; stopped by pid afterwards."""
    try:
        project.shipyard("bootstrap", "--json")
        yield project
    finally:
        stop_supervisord(project.host_root)


def stop_supervisord(root: Path, timeout: float = 15.0) -> None:
    """End the supervisord `shipyard bootstrap` started under `root` (it stops its programs)."""
    base = root / "supervisor"
    try:
        pid = int((base / "supervisord.pid").read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return
    if b"supervisord" not in cmdline or str(base).encode() not in cmdline:
        return  # the pid was reused by someone else's process
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] != ["Z"]
