"""Who runs a deployment: a controller's identity, and when we can be certain one is gone.

A controller holds its deployments under a lease that the database's clock expires (see
leases.py); whether its process still runs may only shorten that wait when the answer is
certain: the same boot and PID namespace as ours, and the pid's process no longer the one
that started at the recorded time (a pid is reused; a host name is shared by containers).
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
# /proc/PID/stat: the start time is field 22; fields after the command name start at field 3.
START_FIELD = 22 - 3


@dataclass(frozen=True)
class Controller:
    """One controller process: a unique id, and what tells whether its process still runs."""

    id: str
    host: str
    pid: int
    boot_id: str = ""  # /proc/sys/kernel/random/boot_id; "" when unknown
    pid_namespace: str = ""  # the link /proc/self/ns/pid, e.g. "pid:[4026531836]"
    started: int = 0  # the process's start time in clock ticks after boot; 0 when unknown
    replica: str = ""  # the server replica it belongs to ("" for a CLI): recovery names it

    @classmethod
    def of_process(
        cls, pid: int | None = None, *, host: str | None = None, replica: str = ""
    ) -> Controller:
        """The identity of process `pid` (this one by default), with a new unique id."""
        pid = os.getpid() if pid is None else pid
        return cls(
            id=str(uuid.uuid4()),
            host=host or this_host(),
            pid=pid,
            boot_id=boot_id(),
            pid_namespace=pid_namespace(),
            started=process_start(pid) or 0,
            replica=replica,
        )


@dataclass(frozen=True)
class Owner:
    """A controller as the store knows it: its identity and the lease it holds."""

    controller: Controller
    lease_expires: float  # seconds since the epoch, by the database's clock


def this_host() -> str:
    """The host name a controller records (shown to people; it decides nothing)."""
    return socket.gethostname()


def boot_id() -> str:
    try:
        return (PROC / "sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def pid_namespace() -> str:
    try:
        return os.readlink(PROC / "self/ns/pid")
    except OSError:
        return ""


def process_start(pid: int) -> int | None:
    """When process `pid` started (clock ticks after boot); None when there is no such process
    (a zombie counts as gone) or its record cannot be read."""
    if pid <= 0:
        return None
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The state and the rest follow the command name, which is in parentheses and may hold spaces.
    fields = stat.rpartition(")")[2].split()
    if fields[:1] == ["Z"] or len(fields) <= START_FIELD:
        return None
    return int(fields[START_FIELD])


def certainly_gone(other: Controller, *, here: Controller) -> bool:
    """True only when `other`'s process has certainly ended: it ran in this boot and this PID
    namespace, and its pid is free or now belongs to a process started at another time."""
    if not (other.boot_id and other.pid_namespace and other.started and other.pid > 0):
        return False
    if (other.boot_id, other.pid_namespace) != (here.boot_id, here.pid_namespace):
        return False
    started = process_start(other.pid)
    if started is not None:
        return started != other.started  # the pid was reused
    try:
        os.kill(other.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # it exists, and /proc hides it from us (hidepid): not certain
    return _is_zombie(other.pid)


def _is_zombie(pid: int) -> bool:
    # A killed child nobody has waited for yet still answers kill(pid, 0).
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]
