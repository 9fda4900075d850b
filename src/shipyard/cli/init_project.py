"""`shipyard init`: a small project that validates, plans and deploys on this machine as it is."""

from __future__ import annotations

import errno
import socket
from pathlib import Path

from shipyard.errors import UsageError

ADDRESS = "127.0.0.1"
DEFAULT_PORT = 8080
PORTS_TRIED = 100

PROJECT = """\
# A Shipyard project: one site with one local host, one service from one template.
# Reference: `shipyard schema` prints the JSON Schema of this file.
name: {name}

vars:
  message: Hello from Shipyard

templates:
  web:
    artifact:
      path: app
    files:
      message.txt: files/message.txt.j2
    commands:
      start: [python3, -m, http.server, "{{{{ ports.http }}}}", --bind, 127.0.0.1]
    health:
      http: "http://127.0.0.1:{{{{ ports.http }}}}/message.txt"
    ports:
      http: {port}
    locked: [health]

sites:
  dev:
    hosts:
      local: {{connection: local}}

services:
  web:
    template: web
    sites: [dev]
"""

FILES = {
    "app/index.html": "<!doctype html><title>Shipyard</title><p>It works.</p>\n",
    "files/message.txt.j2": "{{ message }} ({{ instance }}, site {{ site }})\n",
}


def write_example(directory: Path, *, port: int = DEFAULT_PORT, force: bool = False) -> list[Path]:
    """Write the project files, the service on `port`; refuse to overwrite unless `force`."""
    contents = {"shipyard.yaml": PROJECT.format(name=_name(directory), port=port), **FILES}
    targets = {directory / relative: text for relative, text in contents.items()}
    existing = [str(path) for path in targets if path.exists()]
    if existing and not force:
        raise UsageError(f"refusing to overwrite {', '.join(existing)} (use --force)")
    for path, text in targets.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return list(targets)


def _name(directory: Path) -> str:
    name = "".join(c if c.isalnum() or c in "-_" else "-" for c in directory.resolve().name)
    return name.strip("-_") or "shipyard"


def in_use(port: int, address: str = ADDRESS) -> bool:
    """True when another program holds address:port (bound as a server binds: SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError as trouble:
            if trouble.errno == errno.EADDRINUSE:
                return True
            raise
    return False


def free_port(start: int = DEFAULT_PORT) -> int:
    """The first port from `start` that nothing on this machine holds at 127.0.0.1."""
    for port in range(start, min(start + PORTS_TRIED, 65536)):
        if not in_use(port):
            return port
    raise UsageError(
        f"ports {start} to {start + PORTS_TRIED - 1} on {ADDRESS} are all in use: "
        "choose one with --port"
    )
