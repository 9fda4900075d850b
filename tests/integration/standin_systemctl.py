#!/usr/bin/env python3
"""A stand-in `systemctl` for hosts without systemd (this machine has none running as PID 1).

It keeps systemctl's interface for what Shipyard sends (daemon-reload, enable, restart, stop,
is-active) and really runs each unit: it reads the installed unit file (WorkingDirectory,
Environment, ExecStart, unquoted as systemd does) and starts the command in a session of its
own, its pid kept in $STANDIN_SYSTEMD_STATE. Every call is logged there as a JSON line.
Units live in $STANDIN_SYSTEMD_UNITS.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

STATE = Path(os.environ["STANDIN_SYSTEMD_STATE"])
UNITS = Path(os.environ["STANDIN_SYSTEMD_UNITS"])


def words(value: str) -> list[str]:
    """systemd's double-quoted words; the writer escapes \\ and " only, which shlex undoes."""
    return [w.replace("%%", "%") for w in shlex.split(value)]


def parse(unit: str) -> tuple[list[str], dict[str, str], str]:
    argv: list[str] = []
    env: dict[str, str] = {}
    cwd = "/"
    for line in (UNITS / unit).read_text().splitlines():
        key, _, value = line.partition("=")
        if key == "ExecStart":
            argv = [w.replace("$$", "$") for w in words(value)]
        elif key == "Environment":
            name, _, text = words(value)[0].partition("=")
            env[name] = text
        elif key == "WorkingDirectory":
            cwd = value.replace("%%", "%")
    return argv, env, cwd


def pid_of(unit: str) -> int | None:
    try:
        pid = int((STATE / f"{unit}.pid").read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def stop(unit: str) -> None:
    pid = pid_of(unit)
    if pid is not None:
        os.killpg(pid, signal.SIGTERM)
        for _ in range(100):
            if pid_of(unit) is None:
                break
            time.sleep(0.05)
    (STATE / f"{unit}.pid").unlink(missing_ok=True)


def start(unit: str) -> None:
    argv, env, cwd = parse(unit)
    base = {k: os.environ[k] for k in ("PATH", "LANG") if k in os.environ}
    log = (STATE / f"{unit}.log").open("ab")
    process = subprocess.Popen(
        argv, cwd=cwd, env={**base, **env}, stdout=log, stderr=log, start_new_session=True
    )
    (STATE / f"{unit}.pid").write_text(str(process.pid))


def main(args: list[str]) -> int:
    STATE.mkdir(parents=True, exist_ok=True)
    with (STATE / "calls.jsonl").open("a") as calls:
        calls.write(json.dumps(args) + "\n")
    if args == ["--version"]:
        print("systemd 252 (stand-in for tests)")
        return 0
    command, *rest = [a for a in args if not a.startswith("--")]
    if command in ("daemon-reload", "enable"):
        return 0
    if command == "restart":
        for unit in rest:
            stop(unit)
            start(unit)
        return 0
    if command == "stop":
        for unit in rest:
            stop(unit)
        return 0
    if command == "is-active":
        states = ["active" if pid_of(unit) else "failed" for unit in rest]
        print("\n".join(states))
        return 0 if all(s == "active" for s in states) else 3
    print(f"standin systemctl: {command} is not supported", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
