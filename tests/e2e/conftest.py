"""Fixtures for CLI tests: the `shipyard init` project on this machine, its supervisord ended."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_runner import shipyard


def free_port() -> int:
    """A port nothing listens on at 127.0.0.1 now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def stop_local_supervisors(project: Path) -> None:
    """End the supervisord that `shipyard bootstrap` started for each local host, by its PID."""
    for pidfile in project.glob(".shipyard/hosts/*/supervisor/supervisord.pid"):
        try:
            pid = int(pidfile.read_text().strip())
            os.kill(pid, signal.SIGTERM)
        except (ValueError, ProcessLookupError):
            continue
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)


@pytest.fixture
def local_project() -> Iterator[Path]:
    """`shipyard init`'s project (one service on the local host) on a free port, bootstrapped.

    In a short directory of its own: supervisord's unix socket path must stay under 108 bytes.
    """
    project = Path(tempfile.mkdtemp(prefix="sy-e2e-")) / "web"
    written = shipyard("init", str(project), "--port", str(free_port()), cwd=project.parent)
    assert written.returncode == 0, written.stderr
    try:
        booted = shipyard("bootstrap", cwd=project)
        assert booted.returncode == 0, booted.stdout + booted.stderr
        yield project
    finally:
        stop_local_supervisors(project)
        shutil.rmtree(project.parent)
