"""A fake executor for unit tests of the layers above: records calls, returns scripted replies.

Replies are chosen by what a command is, never by call order: an argv prefix, words anywhere in
an argv, a script's name, or (for a batch, one host step of several scripts: commands.batch) a
text each part's script holds; each part then gets its own answer, framed as the host would
frame it. A reply may take time (`delay`), which a `timeout` (or a batch's own time limit) cuts
short as the real executors do, or wait until the test opens its `gate` (a step held in
flight). An unreachable host raises ConnectError at every call. Fakes given one `journal`
record every call there too, in the order they were made across hosts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
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
from shipyard.executors.fake_batch import DecodedBatch, PartAnswer, decode_batch, encode_answers
from shipyard.executors.tarball import build_manifest

# What a batch exits with when the host stopped it at its time limit (coreutils `timeout`).
STOPPED_ON_HOST = 124


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
    parts: tuple[str, ...] = ()  # a batch's parts' script texts, in order

    @property
    def step(self) -> str:
        """The name of a script (a batch's: its host step), "" for an argv."""
        return self.command.name if isinstance(self.command, Script) else ""


@dataclass(frozen=True)
class Reply:
    """What a matching command (or batch part) answers; `delay` seconds pass before it does,
    and then it waits for `gate`, if given, to be set."""

    exit_status: int = 0
    stdout: str = ""
    stderr: str = ""
    delay: float = 0.0
    gate: asyncio.Event | None = None


@dataclass(frozen=True)
class Part:
    """One part of a batch the fake ran: its host step (the batch's name) and script text."""

    step: str
    text: str


Matcher = Callable[[tuple[str, ...] | Script], bool]
Journal = list[tuple[str, Call]]  # (host, call), shared by fakes of several hosts


class FakeExecutor:
    """An Executor that touches nothing: `reply(("uname",), stdout="6.1\\n")` scripts an answer."""

    def __init__(
        self,
        name: str = "fake",
        *,
        root: str = "/srv/shipyard",
        sudo: bool = False,
        unreachable: str | None = None,
        journal: Journal | None = None,
    ) -> None:
        self._name = name
        self._root = root
        self._sudo = sudo
        self.unreachable = unreachable  # a reason: every call raises ConnectError with it
        self.calls: list[Call] = []
        self.files: dict[str, bytes] = {}
        self.closed = False
        self.journal = journal
        self._replies: list[tuple[Matcher, Reply]] = []
        self._part_replies: list[tuple[str | None, str, Reply]] = []
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
        gate: asyncio.Event | None = None,
    ) -> None:
        """Answer commands whose argv starts with `prefix` (or Scripts named `prefix`, a str).

        The latest matching reply wins; a command nothing matches exits 0 with no output (a
        batch: each of its parts, unless `reply_part` says otherwise). A reply to a batch's
        name answers the whole batch as it is (a host step that broke, say).
        """
        if isinstance(prefix, str):
            name = prefix

            def matches(command: tuple[str, ...] | Script) -> bool:
                return isinstance(command, Script) and command.name == name
        else:
            start = tuple(prefix)

            def matches(command: tuple[str, ...] | Script) -> bool:
                return not isinstance(command, Script) and command[: len(start)] == start

        self._replies.insert(0, (matches, Reply(exit_status, stdout, stderr, delay, gate)))

    def reply_containing(
        self,
        words: Sequence[str],
        *,
        exit_status: int = 0,
        stdout: str = "",
        stderr: str = "",
        delay: float = 0.0,
        gate: asyncio.Event | None = None,
    ) -> None:
        """Answer commands whose argv holds `words` one after another, anywhere in it."""
        wanted = tuple(words)
        if not wanted or isinstance(words, str):
            raise ValueError("give the words as a non-empty sequence of strings")

        def matches(command: tuple[str, ...] | Script) -> bool:
            if isinstance(command, Script):
                return False
            return any(
                command[i : i + len(wanted)] == wanted
                for i in range(len(command) - len(wanted) + 1)
            )

        self._replies.insert(0, (matches, Reply(exit_status, stdout, stderr, delay, gate)))

    def reply_part(
        self,
        pattern: str,
        *,
        step: str | None = None,
        exit_status: int = 0,
        stdout: str = "",
        stderr: str = "",
        delay: float = 0.0,
        gate: asyncio.Event | None = None,
    ) -> None:
        """Answer each part of a batch whose script text holds `pattern`, in batches named
        `step` (any batch if None). The latest matching reply wins; an unmatched part exits 0
        with no output. The batch takes its parts' delays one after another (all at once for a
        parallel batch); past its time limit the host stops it (exit 124, no frames)."""
        self._part_replies.insert(
            0, (step, pattern, Reply(exit_status, stdout, stderr, delay, gate))
        )

    def forget(self) -> None:
        """Drop every scripted reply (what was recorded stays)."""
        self._replies.clear()
        self._part_replies.clear()

    @property
    def parts(self) -> list[Part]:
        """Every batch part run, in order."""
        return [Part(call.step, text) for call in self.calls for text in call.parts]

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
        reply = self._match(frozen)
        decoded = None
        if reply is None and isinstance(frozen, Script):
            decoded = decode_batch(frozen.text)
        parts = decoded.parts if decoded is not None else ()
        self._record(
            Call(
                "run",
                frozen,
                env=dict(env or {}),
                stdin=data,
                sudo=use_sudo,
                cwd=cwd,
                timeout=timeout,
                parts=parts,
            )
        )
        gates: list[asyncio.Event] = []
        if decoded is not None:
            step = frozen.name if isinstance(frozen, Script) else ""
            reply, gates = self._answer_batch(step, decoded)
        reply = reply or Reply()
        gates = gates or ([reply.gate] if reply.gate is not None else [])
        if timeout is not None and reply.delay > timeout:
            await asyncio.sleep(timeout)
            raise CommandTimeout(CommandResult(self._name, frozen, 255, duration=timeout), timeout)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if gates:  # a batch's parts' gates, all of them
            left = None if timeout is None else max(0.0, timeout - reply.delay)
            try:
                await asyncio.wait_for(asyncio.gather(*(g.wait() for g in gates)), left)
            except TimeoutError:
                result = CommandResult(self._name, frozen, 255, duration=timeout or 0.0)
                raise CommandTimeout(result, timeout or 0.0) from None
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
        self._record(Call("put", path=remote_path, data=data, sudo=self._use_sudo(sudo)))
        self.files[remote_path] = data

    async def get(self, remote_path: str, local_path: Path, *, sudo: bool | None = None) -> None:
        self._reachable()
        self._record(Call("get", path=remote_path, sudo=self._use_sudo(sudo)))
        if remote_path not in self.files:
            raise TransferError(self._name, f"download of {remote_path} failed: no such file")
        local_path.write_bytes(self.files[remote_path])

    async def put_dir(self, local_dir: Path, remote_dir: str, *, sudo: bool | None = None) -> bool:
        self._reachable()
        self._record(Call("put_dir", path=remote_dir, sudo=self._use_sudo(sudo)))
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

    def _record(self, call: Call) -> None:
        self.calls.append(call)
        if self.journal is not None:
            self.journal.append((self._name, call))

    def _match(self, command: tuple[str, ...] | Script) -> Reply | None:
        for matches, reply in self._replies:
            if matches(command):
                return reply
        return None

    def _answer_batch(self, step: str, decoded: DecodedBatch) -> tuple[Reply, list[asyncio.Event]]:
        """Each part's scripted answer, framed; the host's own stop past the time limit."""
        replies = [self._match_part(step, text) for text in decoded.parts]
        delays = [r.delay for r in replies]
        delay = max(delays) if decoded.parallel else sum(delays)
        if delay > decoded.limit:
            return Reply(STOPPED_ON_HOST, "", "", decoded.limit), []
        answers = [PartAnswer(r.exit_status, r.stdout, r.stderr) for r in replies]
        gates = [r.gate for r in replies if r.gate is not None]
        return Reply(0, encode_answers(decoded.boundary, answers), "", delay), gates

    def _match_part(self, step: str, text: str) -> Reply:
        for wanted, pattern, reply in self._part_replies:
            if (wanted is None or wanted == step) and pattern in text:
                return reply
        return Reply()
