"""How one `run` becomes the single command line sshd hands to the login shell: quoting lives here.

argv is joined with `shlex.join` here and nowhere else. Secrets never enter the line: the sudo
password and the environment travel on stdin, ahead of the caller's own stdin (the prelude).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass

from shipyard.executors.base import Script
from shipyard.executors.runner import Invocation

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Reads `$1` lines of `export NAME='value'` from stdin, byte by byte (the `read` builtin never
# reads ahead), evaluates them and execs the rest of argv, which then reads the caller's stdin.
ENV_LAUNCHER = "\n".join(
    [
        "n=$1; shift; s=",
        'while [ "$n" -gt 0 ]; do IFS= read -r l || exit 125; s="$s$l',
        '"; n=$((n - 1)); done',
        'eval "$s"; exec "$@"',
    ]
)

# The first stdin line is the password: `sudo -v` gets it through a pipe and caches the
# credential for this shell (the ticket is per parent process), then `sudo -n` runs the command
# with the rest of stdin, so a password that sudo did not ask for never reaches the command.
SUDO_WITH_PASSWORD = (
    'IFS= read -r p || exit 125; printf "%s\\n" "$p" | sudo -S -p "" -v || exit $?; '
    'unset p; sudo -n -- "$@"'
)


@dataclass(frozen=True)
class RemoteCommand:
    """The line to execute, and the bytes to send on stdin before the caller's stdin."""

    line: str
    prelude: bytes


def remote_command(invocation: Invocation, *, sudo_password: str | None) -> RemoteCommand:
    """Build the command line for sshd and the stdin prelude that carries env and password."""
    exports = export_lines(invocation.env)
    command = invocation.command
    if isinstance(command, Script):
        argv = ["sh", "-s", "--", *command.args]
        text = command.text if command.text.endswith("\n") else command.text + "\n"
        body = exports + text
    elif exports:
        argv = ["sh", "-c", ENV_LAUNCHER, "sh", str(exports.count("\n")), *command]
        body = exports
    else:
        argv, body = list(command), ""
    if invocation.timeout is not None:
        # sshd can't signal a root session's command, so the host stops it itself: `timeout`
        # puts the command in its own process group and kills all of it (KILL 1 s after TERM).
        argv = ["timeout", "-k", "1", f"{invocation.timeout:g}", *argv]
    if invocation.sudo:
        if sudo_password is None:
            argv = ["sudo", "-n", "--", *argv]
        else:
            argv = ["sh", "-c", SUDO_WITH_PASSWORD, "sh", *argv]
            body = sudo_password + "\n" + body
    line = shlex.join(argv)
    if invocation.cwd:
        # sudo keeps the working directory, so one `cd` in front serves every form above.
        line = f"cd -- {shlex.quote(invocation.cwd)} && {line}"
    return RemoteCommand(line, body.encode())


def export_lines(env: Mapping[str, str]) -> str:
    """Shell text exporting `env`, one `export` per variable (a value may span lines)."""
    lines = []
    for name, value in env.items():
        if not ENV_NAME.match(name):
            raise ValueError(f"not a valid environment variable name: {name!r}")
        if "\0" in value:
            raise ValueError(f"environment variable {name} contains a NUL byte")
        lines.append(f"export {name}={shlex.quote(value)}\n")
    return "".join(lines)


def check_password(password: str) -> str:
    """A sudo password travels as one line; refuse one that would not."""
    if "\n" in password or "\r" in password or "\0" in password:
        raise ValueError("a sudo password can't contain a line break or a NUL byte")
    return password
