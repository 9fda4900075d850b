"""A fake executor for unit tests of the layers above: records calls, returns scripted replies."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from shipyard.errors import ConnectError, TransferError
from shipyard.executors.base import (
    Command,
    CommandFailed,
    CommandResult,
    CommandTimeout,
    Script,
    as_command,
)
from shipyard.executors.tarball import build_manifest


@dataclass(frozen=True)
class Call:
    """One call made on the fake, with the arguments that matter to a test."""

    method: str  # run, put, get or put_dir
    command: tuple[str, ...] | Script | None = None
    path: str = ""  # the remote path of put, get and put_dir
    data: bytes | None = None  # what put uploaded
    env: Mapping[str, str] = field(default_factory=dict)
    stdin: bytes | None = None
    sudo: bool = False
    cwd: str | None = None
    timeout: float | None = None


@dataclass(frozen=True)
class Reply:
    """What a matching command answers; `delay` seconds pass before it does."""

    exit_status: int = 0
    stdout: str = ""
    stderr: str = ""
    delay: float = 0.0


class FakeExecutor:
    """An Executor that touches nothing: `reply(("uname",), stdout="6.1\\n")` scripts an answer."""

    def __init__(
        self,
        name: str = "fake",
        *,
        root: str = "/srv/shipyard",
        sudo: bool = False,
        unreachable: str | None = None,
    ) -> None:
        self._name = name
        self._root = root
        self._sudo = sudo
        self.unreachable = unreachable  # a reason: every call raises ConnectError with it
        self.calls: list[Call] = []
        self.files: dict[str, bytes] = {}
        self.closed = False
        self._replies: list[tuple[tuple[str, ...] | str, Reply]] = []
        self._dirs: dict[str, str] = {}

    @property
    def name(self) -> str:
        return self._name

    @property
    def root(self) -> str:
        return self._root

    def reply(
        self,
        prefix: Sequence[str] | str,
        *,
        exit_status: int = 0,
        stdout: str = "",
        stderr: str = "",
        delay: float = 0.0,
    ) -> None:
        """Answer commands whose argv starts with `prefix` (or Scripts named `prefix`, a str).

        The latest matching reply wins; a command nothing matches exits 0 with no output.
        """
        key = prefix if isinstance(prefix, str) else tuple(prefix)
        self._replies.insert(0, (key, Reply(exit_status, stdout, stderr, delay)))

    @property
    def commands(self) -> list[tuple[str, ...] | Script]:
        """Every command run, in order."""
        return [call.command for call in self.calls if call.method == "run" and call.command]

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
        frozen = as_command(command)
        self._reachable()
        if isinstance(stdin, Path):
            data: bytes | None = stdin.read_bytes()
        else:
            data = stdin.encode() if isinstance(stdin, str) else stdin
        use_sudo = self._use_sudo(sudo)
        self.calls.append(
            Call(
                "run",
                frozen,
                env=dict(env or {}),
                stdin=data,
                sudo=use_sudo,
                cwd=cwd,
                timeout=timeout,
            )
        )
        reply = self._match(frozen)
        if timeout is not None and reply.delay > timeout:
            await asyncio.sleep(timeout)
            raise CommandTimeout(CommandResult(self._name, frozen, 255, duration=timeout), timeout)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        result = CommandResult(
            self._name, frozen, reply.exit_status, reply.stdout, reply.stderr, reply.delay
        )
        if check and not result.ok:
            raise CommandFailed(result)
        return result

    async def put(
        self,
        source: Path | bytes,
        remote_path: str,
        *,
        mode: int | None = None,
        sudo: bool | None = None,
    ) -> None:
        self._reachable()
        data = source if isinstance(source, bytes) else source.read_bytes()
        self.calls.append(Call("put", path=remote_path, data=data, sudo=self._use_sudo(sudo)))
        self.files[remote_path] = data

    async def get(self, remote_path: str, local_path: Path, *, sudo: bool | None = None) -> None:
        self._reachable()
        self.calls.append(Call("get", path=remote_path, sudo=self._use_sudo(sudo)))
        if remote_path not in self.files:
            raise TransferError(self._name, f"download of {remote_path} failed: no such file")
        local_path.write_bytes(self.files[remote_path])

    async def put_dir(self, local_dir: Path, remote_dir: str, *, sudo: bool | None = None) -> bool:
        self._reachable()
        self.calls.append(Call("put_dir", path=remote_dir, sudo=self._use_sudo(sudo)))
        manifest = build_manifest(local_dir)
        if self._dirs.get(remote_dir) == manifest.digest:
            return False
        self._dirs[remote_dir] = manifest.digest
        for entry in manifest.entries:
            if entry.kind == "file":
                self.files[f"{remote_dir}/{entry.path}"] = (local_dir / entry.path).read_bytes()
        return True

    async def close(self) -> None:
        self.closed = True

    def _use_sudo(self, sudo: bool | None) -> bool:
        return self._sudo if sudo is None else sudo

    def _reachable(self) -> None:
        if self.unreachable is not None:
            raise ConnectError(self._name, self.unreachable)

    def _match(self, command: tuple[str, ...] | Script) -> Reply:
        for key, reply in self._replies:
            if isinstance(command, Script):
                if key == command.name:
                    return reply
            elif isinstance(key, tuple) and command[: len(key)] == key:
                return reply
        return Reply()
