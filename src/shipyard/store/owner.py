"""Who runs a deployment: this controller's host name, and whether a process id still lives."""

from __future__ import annotations

import os
import socket
from pathlib import Path


def this_host() -> str:
    """The name this controller records as the owner of the deployments it runs."""
    return socket.gethostname()


def process_alive(pid: int) -> bool:
    """True when a process with this id runs on this machine (a zombie counts as gone)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    # A killed child nobody has waited for yet still answers kill(pid, 0).
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The state follows the command name, which is in parentheses and may itself hold spaces.
    return stat.rpartition(")")[2].split()[:1] == ["Z"]
