"""The SSH command line for sudo with a password, run by a real sh against a stand-in sudo.

Root is never asked for a password, so the fleet can't show the password path; a stand-in
`sudo` that insists on one can.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from shipyard.executors.command_line import remote_command
from shipyard.executors.runner import Invocation

pytestmark = pytest.mark.integration

PASSWORD = "pa$$ 'word'"
# -S -p "" -v: read the password from stdin and remember it; -n -- CMD: run CMD if remembered.
STAND_IN = """#!/bin/sh
printf '%s\\n' "$*" >> "$SUDO_LOG"
if [ "$1" = -S ]; then
  IFS= read -r given
  [ "$given" = "$SUDO_PASSWORD" ] || { echo "Sorry, try again." >&2; exit 1; }
  touch "$SUDO_TICKET"; exit 0
fi
[ -e "$SUDO_TICKET" ] || { echo "sudo: a password is required" >&2; exit 1; }
shift 2
exec "$@"
"""


def run_line(
    tmp_path: Path, invocation: Invocation, password: str, stdin: bytes
) -> tuple[int, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "sudo").write_text(STAND_IN)
    (bin_dir / "sudo").chmod(0o755)
    command = remote_command(invocation, sudo_password=password)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "SUDO_LOG": str(tmp_path / "sudo.log"),
        "SUDO_TICKET": str(tmp_path / "ticket"),
        "SUDO_PASSWORD": PASSWORD,
    }
    done = subprocess.run(
        ["sh", "-c", command.line],
        input=command.prelude + stdin,
        capture_output=True,
        env=env,
        check=False,
        timeout=10,
    )
    return done.returncode, done.stdout.decode() + done.stderr.decode()


def test_the_password_goes_to_sudo_and_only_the_rest_of_stdin_to_the_command(tmp_path: Path):
    invocation = Invocation(("cat",), sudo=True)
    status, output = run_line(tmp_path, invocation, PASSWORD, b"the caller's data\n")
    assert (status, output) == (0, "the caller's data\n")
    assert PASSWORD not in (tmp_path / "sudo.log").read_text()


def test_environment_passes_through_sudo_after_the_password(tmp_path: Path):
    invocation = Invocation(("sh", "-c", 'echo "$TOKEN"; cat'), env={"TOKEN": "t0k"}, sudo=True)
    status, output = run_line(tmp_path, invocation, PASSWORD, b"rest\n")
    assert (status, output) == (0, "t0k\nrest\n")


def test_a_wrong_password_stops_before_the_command(tmp_path: Path):
    invocation = Invocation(("sh", "-c", "echo ran"), sudo=True)
    status, output = run_line(tmp_path, invocation, "wrong", b"")
    assert status == 1
    assert "Sorry, try again." in output
    assert "ran" not in output
