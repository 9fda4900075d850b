"""A one-instance project on this machine (`connection: local`), driven by many `shipyard` CLIs.

The service is Python's http.server on a free loopback port; `shipyard bootstrap` starts the
project's own supervisord under `.shipyard/hosts/local`, stopped by its pid afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

CLI_TIMEOUT = 400.0
INSTANCE = "web@local"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True)
class LocalProject:
    root: Path
    env: dict[str, str]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "shipyard", *args], cwd=self.root, env=self.env,
            capture_output=True, text=True, check=False, timeout=CLI_TIMEOUT,
        )  # fmt: skip

    def json(self, *args: str) -> object:
        done = self.cli(*args, "--json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def many(self, commands: Sequence[Sequence[str]]) -> list[subprocess.CompletedProcess[str]]:
        """Start every command at once, each its own `shipyard` process; wait for them all."""
        started = [
            subprocess.Popen(
                [sys.executable, "-m", "shipyard", *args],
                cwd=self.root,
                env=self.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for args in commands
        ]
        done = []
        try:
            for args, process in zip(commands, started, strict=True):
                out, err = process.communicate(timeout=CLI_TIMEOUT)
                done.append(subprocess.CompletedProcess(list(args), process.returncode, out, err))
        finally:
            for process in started:
                if process.poll() is None:
                    process.kill()
                    process.wait()
        return done

    def change(self, message: str) -> None:
        """A new revision of the one instance: its environment changes."""
        path = self.root / "shipyard.yaml"
        data = yaml.safe_load(path.read_text())
        data["templates"]["web"]["env"] = {"MESSAGE": message}
        path.write_text(yaml.safe_dump(data))


def write_project(root: Path) -> None:
    (root / "app").mkdir(parents=True)
    (root / "app" / "index.html").write_text("<p>hello</p>\n")
    project = {
        "name": "concurrency",
        "templates": {
            "web": {
                "artifact": {"path": "app"},
                "commands": {
                    "start": [
                        "python3",
                        "-m",
                        "http.server",
                        "{{ ports.http }}",
                        "--bind",
                        "127.0.0.1",
                    ],
                },
                "env": {"MESSAGE": "first"},
                # 50 CLIs at once on two cores can hold the new program back for seconds
                "health": {
                    "http": "http://127.0.0.1:{{ ports.http }}/",
                    "interval": 0.1,
                    "retries": 600,
                },
                "ports": {"http": free_port()},
            }
        },
        "sites": {"dev": {"hosts": {"local": {"connection": "local"}}}},
        "services": {"web": {"template": "web", "sites": ["dev"]}},
    }
    (root / "shipyard.yaml").write_text(yaml.safe_dump(project))


@contextlib.contextmanager
def local_project(database_url: str | None = None) -> Iterator[LocalProject]:
    """The project, bootstrapped; its supervisord (and so its program) stopped afterwards.

    It lives in a short temporary directory: supervisord's socket path must fit in 108 bytes.
    """
    workdir = Path(tempfile.mkdtemp(prefix="shipyard-cli-"))
    root = workdir / "p"
    write_project(root)
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "SHIPYARD_ACTOR": "tester"}
    env.pop("SHIPYARD_DATABASE_URL", None)
    if database_url is not None:
        env["SHIPYARD_DATABASE_URL"] = database_url
    project = LocalProject(root, env)
    try:
        booted = project.cli("bootstrap")
        assert booted.returncode == 0, booted.stdout + booted.stderr
        yield project
    finally:
        stop_supervisord(root / ".shipyard" / "hosts" / "local" / "supervisor")
        shutil.rmtree(workdir, ignore_errors=True)


def stop_supervisord(folder: Path, timeout: float = 15.0) -> None:
    """Stop the supervisord whose pid file is in `folder` (if it is ours), and wait for it."""
    try:
        pid = int((folder / "supervisord.pid").read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return
    if str(folder / "supervisord.conf").encode() not in cmdline:
        return
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
