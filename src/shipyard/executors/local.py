"""The local executor: the same interface on this machine, with subprocesses and no shell."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from typing import ClassVar

from shipyard.executors.base import DEFAULT_OUTPUT_LIMIT, Script
from shipyard.executors.runner import Channel, Invocation, Runner, Sink, signal_status

READ_SIZE = 64 * 1024


class LocalExecutor(Runner):
    """Runs argv directly (no shell) as this user, or via sudo; env is given to the process."""

    def __init__(
        self,
        name: str,
        root: str,
        *,
        sudo: bool = False,
        sudo_password: str | None = None,
        output_limit: int = DEFAULT_OUTPUT_LIMIT,
    ) -> None:
        super().__init__(name, root, sudo=sudo, output_limit=output_limit)
        self._sudo_password = sudo_password

    async def _ready(self) -> None:
        """Nothing to connect to."""

    async def close(self) -> None:
        """Nothing to release."""

    async def _open(
        self, invocation: Invocation, stdout: Sink, stderr: Sink
    ) -> tuple[Channel, bytes]:
        prelude = b""
        if isinstance(invocation.command, Script):
            argv: list[str] = ["sh", "-s", "--", *invocation.command.args]
            prelude = invocation.command.text.encode()
        else:
            argv = list(invocation.command)
        if invocation.sudo:
            await self._validate_sudo()
            keep = [f"--preserve-env={','.join(invocation.env)}"] if invocation.env else []
            argv = ["sudo", "-n", *keep, "--", *argv]
        env = {**os.environ, **invocation.env}
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=invocation.cwd,
                env=env,
                start_new_session=True,  # so a timeout stops the command's children too
            )
        except (FileNotFoundError, PermissionError, NotADirectoryError) as exc:
            # What a shell would say: 127 for a missing command, 126 for one it may not run.
            stderr.write(f"{exc}\n".encode())
            return _Finished(127 if isinstance(exc, FileNotFoundError) else 126), b""
        return _ProcessChannel(process, stdout, stderr), prelude

    async def _validate_sudo(self) -> None:
        # `sudo -v` reads the password on its own stdin; the command's `sudo -n` then uses the
        # cached credential (same parent process), so the password never reaches the command.
        if self._sudo_password is None:
            return
        process = await asyncio.create_subprocess_exec(
            "sudo",
            "-S",
            "-p",
            "",
            "-v",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        await process.communicate(f"{self._sudo_password}\n".encode())


class _Finished:
    """A command that never started; it has only an exit status."""

    def __init__(self, status: int) -> None:
        self._status = status

    async def write(self, data: bytes) -> bool:
        return False

    def write_eof(self) -> None:
        pass

    async def wait(self) -> tuple[int, str | None]:
        return self._status, None

    def abort(self) -> None:
        pass


class _ProcessChannel:
    """A subprocess seen as a channel: pumps its stdout and stderr into sinks."""

    BROKEN: ClassVar[tuple[type[Exception], ...]] = (BrokenPipeError, ConnectionResetError)

    def __init__(self, process: asyncio.subprocess.Process, stdout: Sink, stderr: Sink) -> None:
        self._process = process
        assert process.stdout is not None
        assert process.stderr is not None
        self._pumps = [
            asyncio.ensure_future(_pump(process.stdout, stdout)),
            asyncio.ensure_future(_pump(process.stderr, stderr)),
        ]

    async def write(self, data: bytes) -> bool:
        stdin = self._process.stdin
        if stdin is None or stdin.is_closing():
            return False
        try:
            stdin.write(data)
            await stdin.drain()
        except self.BROKEN:
            return False
        return True

    def write_eof(self) -> None:
        stdin = self._process.stdin
        if stdin is not None and not stdin.is_closing():
            stdin.close()

    async def wait(self) -> tuple[int, str | None]:
        status = await self._process.wait()
        await asyncio.gather(*self._pumps)
        stdin = self._process.stdin
        if stdin is not None:
            with contextlib.suppress(*self.BROKEN):
                await stdin.wait_closed()
        if status < 0:
            name = signal.Signals(-status).name.removeprefix("SIG")
            return signal_status(name), name
        return status, None

    def abort(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, signal.SIGKILL)


async def _pump(stream: asyncio.StreamReader, sink: Sink) -> None:
    while chunk := await stream.read(READ_SIZE):
        sink.write(chunk)
