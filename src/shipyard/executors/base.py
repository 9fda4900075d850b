"""The executor interface: what running commands and moving files on a host offers and returns."""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from shipyard.commands.script import Script
from shipyard.errors import ExecutionError

# Output kept per stream and command; a hostile or broken host can't exhaust our memory.
DEFAULT_OUTPUT_LIMIT = 1024 * 1024
STDERR_TAIL_LINES = 10

# Script is commands.script's, the one Script type for builders and executors, re-exported here.
__all__ = [
    "DEFAULT_OUTPUT_LIMIT",
    "STDERR_TAIL_LINES",
    "Command",
    "CommandFailed",
    "CommandResult",
    "CommandTimeout",
    "Executor",
    "Script",
    "as_command",
    "describe",
    "stderr_tail",
]

Command = Sequence[str] | Script


def describe(command: tuple[str, ...] | Script) -> str:
    """How a command is shown to a person (in errors, logs and tables); never how it is run."""
    return str(command) if isinstance(command, Script) else shlex.join(command)


def as_command(command: Command) -> tuple[str, ...] | Script:
    """Freeze a command given as any sequence of strings into a tuple; refuse an empty one."""
    if isinstance(command, Script):
        return command
    if isinstance(command, str):
        raise TypeError(f"give a command as a list of arguments, not the string {command!r}")
    argv = tuple(command)
    if not argv:
        raise ValueError("empty command")
    return argv


@dataclass(frozen=True)
class CommandResult:
    """What a finished command left behind: exit status, output (the tail, if capped), duration."""

    host: str
    command: tuple[str, ...] | Script
    exit_status: int
    stdout: str = ""
    stderr: str = ""
    duration: float = 0.0
    exit_signal: str | None = None
    stdout_truncated: bool = False
    stderr_truncated: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_status == 0

    @property
    def argv(self) -> tuple[str, ...]:
        """The argv of the command, or () when it was a script."""
        return () if isinstance(self.command, Script) else self.command

    @property
    def script(self) -> Script | None:
        return self.command if isinstance(self.command, Script) else None

    def first_line(self) -> str:
        """The first non-empty line of stdout, else of stderr: what a summary table shows."""
        for text in (self.stdout, self.stderr):
            for line in text.splitlines():
                if line.strip():
                    return line.strip()
        return ""


def stderr_tail(text: str, lines: int = STDERR_TAIL_LINES, *, cut: bool = False) -> str:
    """The last `lines` non-empty lines of `text`, indented; `cut` says the output was capped."""
    kept = [line for line in text.rstrip().splitlines() if line.strip()][-lines:]
    marker = ["  | [... earlier output cut ...]"] if cut and kept else []
    return "\n".join([*marker, *(f"  | {line}" for line in kept)])


class CommandFailed(ExecutionError):
    """A command exited with a non-zero status (or was killed by a signal)."""

    def __init__(self, result: CommandResult) -> None:
        self.result = result
        how = (
            f"was killed by signal {result.exit_signal}"
            if result.exit_signal
            else f"exited with status {result.exit_status}"
        )
        message = f"`{describe(result.command)}` {how}"
        tail = stderr_tail(result.stderr, cut=result.stderr_truncated)
        if tail:
            message += "; last lines of stderr:\n" + tail
        super().__init__(result.host, message)


class CommandTimeout(ExecutionError):
    """A command ran past its timeout; it was stopped and its partial output is kept."""

    def __init__(self, result: CommandResult, timeout: float) -> None:
        self.result = result
        self.timeout = timeout
        message = (
            f"`{describe(result.command)}` did not finish within {timeout:g} s and was stopped"
        )
        tail = stderr_tail(result.stderr, cut=result.stderr_truncated)
        if tail:
            message += "; last lines of stderr:\n" + tail
        super().__init__(result.host, message)


@runtime_checkable
class Executor(Protocol):
    """Runs commands and moves files on one host. Local and SSH implement it; a fake records.

    `sudo=None` means the host's own default (`sudo:` in shipyard.yaml). Secrets given in `env`
    or `stdin` reach the host on stdin, never in argv or in an environment `ps` can show.
    """

    @property
    def name(self) -> str:
        """The host's name in shipyard.yaml."""
        ...

    @property
    def root(self) -> str:
        """The host's deploy root (its `root:`, or the default for its kind of connection)."""
        ...

    async def run(
        self,
        command: Command,
        *,
        check: bool = True,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        stdin: bytes | str | Path | None = None,
        sudo: bool | None = None,
        cwd: str | None = None,
    ) -> CommandResult:
        """Run argv (no shell) or a Script; raise CommandFailed if `check` and it failed.

        A `stdin` given as a Path is streamed from that local file, never read whole.
        """
        ...

    async def put(
        self,
        source: Path | bytes,
        remote_path: str,
        *,
        mode: int | None = None,
        sudo: bool | None = None,
    ) -> None:
        """Write a local file or bytes to `remote_path` atomically (default mode 0644)."""
        ...

    async def get(self, remote_path: str, local_path: Path, *, sudo: bool | None = None) -> None:
        """Copy `remote_path` to `local_path` (streamed, not capped)."""
        ...

    async def put_dir(self, local_dir: Path, remote_dir: str, *, sudo: bool | None = None) -> bool:
        """Make `remote_dir` hold exactly `local_dir`'s files, streamed as one tar.

        Returns False when the host already had identical content and nothing was sent.
        """
        ...

    async def close(self) -> None:
        """Release the connection, if any. The executor may be used again afterwards."""
        ...
