"""A copy of the hello example for a test module: its files in a directory of the test's, its
hosts on free loopback addresses (scripts/demo_addresses.py), and their supervisords and nginx
stopped by the pids in their files at the end."""

from __future__ import annotations

import base64
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HELLO = REPO / "examples" / "hello"


def copy_hello(root: Path, *, net: str | None = None) -> Path:
    """The example's files in `root`, on `net` (127.0.N) or on the first free network."""
    for name in ("shipyard.yaml", "app", "files"):
        source = HELLO / name
        if source.is_dir():
            shutil.copytree(source, root / name)
        else:
            shutil.copy(source, root / name)
    env = {**os.environ, **({"SHIPYARD_DEMO_NET": net} if net else {})}
    subprocess.run(
        [sys.executable, str(REPO / "scripts" / "demo_addresses.py"), str(root / "shipyard.yaml")],
        check=True, capture_output=True, text=True, env=env,
    )  # fmt: skip
    return root


def stop_hosts(root: Path) -> None:
    """The hello hosts' supervisords and nginx, by the pids in their files."""
    for pidfile in [
        *root.glob(".shipyard/hosts/*/supervisor/supervisord.pid"),
        *root.glob(".shipyard/hosts/*/nginx/nginx.pid"),
    ]:
        try:
            os.kill(int(pidfile.read_text().strip()), signal.SIGTERM)
        except (OSError, ValueError):
            continue


def upload(root: Path, *changes: tuple[str, str]) -> dict[str, str]:
    """The project's files (base64, its state left out) with `changes` made to shipyard.yaml,
    as `POST /api/versions` takes them."""
    files = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        if path.is_file() and not relative.startswith(".shipyard/"):
            data = path.read_bytes()
            if relative == "shipyard.yaml":
                for old, new in changes:
                    assert old.encode() in data, f"{old!r} is not in shipyard.yaml"
                    data = data.replace(old.encode(), new.encode())
            files[relative] = base64.b64encode(data).decode()
    return files
