"""The logic every transport shares: run, put, get and put_dir on top of one channel primitive."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from shipyard.errors import TransferError
from shipyard.executors.base import (
    DEFAULT_OUTPUT_LIMIT,
    Command,
    CommandFailed,
    CommandResult,
    CommandTimeout,
    Script,
    as_command,
    stderr_tail,
)
from shipyard.executors.tarball import Manifest, build_manifest, tar_chunks

CHUNK = 256 * 1024
# After a timeout we stop the command, then wait this long for its last output.
ABORT_GRACE = 2.0
# What coreutils' `timeout` exits with when it had to stop the command.
TIMED_OUT = 124
# A host that enforces the timeout itself gets this much longer before we hang up on it.
REMOTE_TIMEOUT_SLACK = 3.0

# Files are written beside their target and renamed into place, so a reader never sees half.
# $2 is a mode for chmod, or empty when the umask ($3) alone gives the file its mode: one
# process less per upload, which counts when hundreds of hosts receive the same file.
PUT_SCRIPT = (
    't="$1.shipyard-tmp.$$"; umask "$3"; '
    'if cat > "$t" && { [ -z "$2" ] || chmod "$2" "$t"; }; then exec mv -f "$t" "$1"; fi; '
    'rm -f "$t"; exit 1'
)
# Answers `same` (nothing to send) or `send`, then unpacks the tar from stdin beside the target
# and swaps it in. The digest is the first line of the manifest the tar carries.
PUT_DIR_SCRIPT = """set -e
dir=$1 digest=$2 tmp="$1.shipyard-tmp.$$" old="$1.shipyard-old.$$"
m="$dir/.shipyard-manifest"
if [ -f "$m" ] && IFS= read -r have < "$m" && [ "$have" = "$digest" ]; then
  echo same; exit 0
fi
echo send
trap 'rm -rf "$tmp" "$old"' EXIT
rm -rf "$tmp"; mkdir -p "$tmp"
# -o: files belong to whoever unpacks them, not to the uid recorded in the archive
tar -x -o -f - -C "$tmp"
if [ -e "$dir" ]; then mv "$dir" "$old"; fi
mv "$tmp" "$dir"
"""


class Sink(Protocol):
    def write(self, data: bytes, /) -> object: ...


class Channel(Protocol):
    """One running command on a host: stdin in, exit status out (output goes to the sinks)."""

    async def write(self, data: bytes) -> bool:
        """Send stdin, waiting while the host is not reading; False once it stopped reading."""
        ...

    def write_eof(self) -> None: ...

    async def wait(self) -> tuple[int, str | None]:
        """Wait for the command to end and all its output; return (exit status, signal name)."""
        ...

    def abort(self) -> None:
        """Stop the command (timeout or cancellation): signal it and close the channel."""
        ...


@dataclass(frozen=True)
class Invocation:
    """One command as the runner hands it to a transport."""

    command: tuple[str, ...] | Script
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    sudo: bool = False
    timeout: float | None = None  # set only for transports that stop the command on the host


class TailBuffer:
    """Keeps the last `limit` bytes written to it and counts the bytes it dropped before them
    (`truncated` then; an error showing the output says it was cut)."""

    def __init__(self, limit: int = DEFAULT_OUTPUT_LIMIT) -> None:
        self.limit = limit
        self.dropped = 0
        self._chunks: deque[bytes] = deque()
        self._size = 0

    @property
    def truncated(self) -> bool:
        return self.dropped > 0

    def write(self, data: bytes) -> None:
        if len(data) >= self.limit:
            self.dropped += self._size + len(data) - self.limit
            self._chunks.clear()
            data = data[-self.limit :]
            self._size = 0
        self._chunks.append(data)
        self._size += len(data)
        while self._size > self.limit:
            excess = self._size - self.limit
            head = self._chunks[0]
            if len(head) <= excess:
                self._chunks.popleft()
                self._size -= len(head)
                self.dropped += len(head)
            else:
                self._chunks[0] = head[excess:]
                self._size -= excess
                self.dropped += excess

    def getvalue(self) -> bytes:
        return b"".join(self._chunks)

    def text(self) -> str:
        return self.getvalue().decode("utf-8", errors="replace")


class FirstLine:
    """A stdout sink that hands its first line to a future and keeps the rest in a tail buffer."""

    def __init__(self, rest: TailBuffer) -> None:
        self.line: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._rest = rest
        self._head = b""

    def write(self, data: bytes) -> None:
        if self.line.done():
            self._rest.write(data)
            return
        self._head += data
        if b"\n" in self._head:
            line, _, rest = self._head.partition(b"\n")
            self.line.set_result(line.decode("utf-8", errors="replace"))
            self._rest.write(rest)


def signal_status(name: str | None) -> int:
    """The exit status a shell reports for a command killed by the named signal."""
    if not name:
        return 255
    try:
        return 128 + signal.Signals[f"SIG{name.removeprefix('SIG')}"].value
    except KeyError:
        return 255


async def byte_chunks(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), CHUNK):
        yield data[start : start + CHUNK]


async def file_chunks(path: Path) -> AsyncIterator[bytes]:
    # Small reads from the page cache; not worth a thread.
    with path.open("rb") as source:
        while chunk := source.read(CHUNK):
            yield chunk


class Runner(ABC):
    """An executor built from a transport that can open channels: the logic lives here."""

    # Whether the host stops a timed-out command itself (the transport wraps it in `timeout`).
    # Otherwise aborting the channel must kill it.
    remote_timeout: ClassVar[bool] = False

    def __init__(
        self,
        name: str,
        root: str,
        *,
        sudo: bool = False,
        output_limit: int = DEFAULT_OUTPUT_LIMIT,
    ) -> None:
        self._name = name
        self._root = root
        self._sudo = sudo
        self.output_limit = output_limit

    @property
    def name(self) -> str:
        return self._name

    @property
    def root(self) -> str:
        return self._root

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._name!r})"

    @abstractmethod
    async def _ready(self) -> None:
        """Make the transport usable (connect); raise ConnectError if it can't be."""

    @abstractmethod
    async def _open(
        self, invocation: Invocation, stdout: Sink, stderr: Sink
    ) -> tuple[Channel, bytes]:
        """Start the command; return its channel and the bytes to send before the caller's stdin."""

    @abstractmethod
    async def close(self) -> None:
        """Release the transport; the executor may be used again afterwards."""

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
        if isinstance(frozen, Script) and stdin is not None:
            raise ValueError("a Script reads its text on stdin; upload its data with put instead")
        feed: AsyncIterator[bytes] | None = None
        if isinstance(stdin, Path):
            feed = file_chunks(stdin)
        elif stdin:
            feed = byte_chunks(stdin.encode() if isinstance(stdin, str) else stdin)
        remote = timeout if self.remote_timeout else None
        use_sudo = self._sudo if sudo is None else sudo
        invocation = Invocation(frozen, dict(env or {}), cwd, use_sudo, remote)
        stdout, stderr = TailBuffer(self.output_limit), TailBuffer(self.output_limit)
        limit = None if timeout is None else timeout + (REMOTE_TIMEOUT_SLACK if remote else 0.0)
        start = time.monotonic()
        await self._ready()
        channel, prelude = await self._open(invocation, stdout, stderr)
        try:
            status, signal_name = await asyncio.wait_for(self._drive(channel, prelude, feed), limit)
        except TimeoutError:
            await self._abort(channel)
            partial = self._result(frozen, 255, None, stdout, stderr, start)
            raise CommandTimeout(partial, timeout or 0.0) from None
        except BaseException:
            channel.abort()
            raise
        result = self._result(frozen, status, signal_name, stdout, stderr, start)
        if remote is not None and status == TIMED_OUT:
            raise CommandTimeout(result, remote)
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
        feed = byte_chunks(source) if isinstance(source, bytes) else file_chunks(source)
        bits = 0o644 if mode is None else mode
        if bits & 0o7111:  # executable or special bits: only chmod can set them
            chmod, umask = f"{bits:o}", "077"
        else:
            chmod, umask = "", f"{0o777 & ~bits:03o}"
        command = ("sh", "-c", PUT_SCRIPT, "sh", remote_path, chmod, umask)
        result = await self._transfer(command, feed, TailBuffer(self.output_limit), sudo)
        if not result.ok:
            raise TransferError(self._name, _transfer_failure(f"upload to {remote_path}", result))

    async def get(self, remote_path: str, local_path: Path, *, sudo: bool | None = None) -> None:
        partial = local_path.with_name(f".{local_path.name}.shipyard-tmp.{os.getpid()}")
        try:
            with partial.open("wb") as target:
                result = await self._transfer(("cat", "--", remote_path), None, target, sudo)
            if not result.ok:
                raise TransferError(
                    self._name, _transfer_failure(f"download of {remote_path}", result)
                )
            partial.replace(local_path)
        finally:
            partial.unlink(missing_ok=True)

    async def put_dir(self, local_dir: Path, remote_dir: str, *, sudo: bool | None = None) -> bool:
        manifest = await asyncio.to_thread(build_manifest, local_dir)
        command = ("sh", "-c", PUT_DIR_SCRIPT, "sh", remote_dir, manifest.digest)
        invocation = Invocation(command, sudo=self._sudo if sudo is None else sudo)
        stdout, stderr = TailBuffer(self.output_limit), TailBuffer(self.output_limit)
        answer = FirstLine(stdout)
        start = time.monotonic()
        await self._ready()
        channel, prelude = await self._open(invocation, answer, stderr)
        try:
            (status, signal_name), sent = await self._send_if_asked(
                channel, prelude, answer, manifest
            )
        except BaseException:
            channel.abort()
            raise
        result = self._result(command, status, signal_name, stdout, stderr, start)
        if not result.ok:
            raise TransferError(self._name, _transfer_failure(f"upload to {remote_dir}/", result))
        return sent

    async def _transfer(
        self,
        command: tuple[str, ...],
        feed: AsyncIterator[bytes] | None,
        stdout: Sink,
        sudo: bool | None,
    ) -> CommandResult:
        invocation = Invocation(command, sudo=self._sudo if sudo is None else sudo)
        stderr = TailBuffer(self.output_limit)
        start = time.monotonic()
        await self._ready()
        channel, prelude = await self._open(invocation, stdout, stderr)
        try:
            status, signal_name = await self._drive(channel, prelude, feed)
        except BaseException:
            channel.abort()
            raise
        return self._result(command, status, signal_name, TailBuffer(), stderr, start)

    @staticmethod
    async def _send_if_asked(
        channel: Channel, prelude: bytes, answer: FirstLine, manifest: Manifest
    ) -> tuple[tuple[int, str | None], bool]:
        """Wait for the host's `same` or `send`; stream the tar only after `send`."""
        if prelude:
            await channel.write(prelude)
        ended = asyncio.ensure_future(channel.wait())
        try:
            waiters: list[asyncio.Future[Any]] = [answer.line, ended]
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            sent = answer.line.done() and answer.line.result() == "send"
            if sent:
                async for chunk in tar_chunks(manifest):
                    if not await channel.write(chunk):
                        break
            channel.write_eof()
            return await ended, sent
        finally:
            if not ended.done():
                ended.cancel()

    @staticmethod
    async def _drive(
        channel: Channel, prelude: bytes, feed: AsyncIterator[bytes] | None
    ) -> tuple[int, str | None]:
        if prelude:
            await channel.write(prelude)
        if feed is not None:
            async for chunk in feed:
                if not await channel.write(chunk):
                    break  # the command stopped reading (it may have exited already)
        channel.write_eof()
        return await channel.wait()

    @staticmethod
    async def _abort(channel: Channel) -> None:
        channel.abort()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(channel.wait(), ABORT_GRACE)

    def _result(
        self,
        command: tuple[str, ...] | Script,
        status: int,
        signal_name: str | None,
        stdout: TailBuffer,
        stderr: TailBuffer,
        start: float,
    ) -> CommandResult:
        return CommandResult(
            host=self._name,
            command=command,
            exit_status=status,
            stdout=stdout.text(),
            stderr=stderr.text(),
            duration=time.monotonic() - start,
            exit_signal=signal_name,
            stdout_truncated=stdout.truncated,
            stderr_truncated=stderr.truncated,
        )


def _transfer_failure(what: str, result: CommandResult) -> str:
    message = f"{what} failed (exit status {result.exit_status})"
    tail = stderr_tail(result.stderr)
    return f"{message}:\n{tail}" if tail else message
