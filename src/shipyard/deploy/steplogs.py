"""The host output of each deployment step, kept in the store: bounded, masked, in batches.

`StepLogs.add` never blocks: entries wait in a list and a worker thread writes them, one batch
per write, in order (a step of a host group is one batch for all its deployments). A write
that fails is logged and dropped: a log must never stop a deployment. `await flush()` waits
until everything added so far is written.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from shipyard.executors.base import (
    Command,
    CommandFailed,
    CommandResult,
    Executor,
    Script,
    describe,
)
from shipyard.masking import Masker
from shipyard.store import StepLog, utc_now

log = logging.getLogger(__name__)

# At most this much output is kept per step (its end: where the trouble usually is).
LIMIT = 64 * 1024
Writer = Callable[[Sequence[StepLog]], None]


def bounded(text: str, limit: int = LIMIT) -> str:
    """`text` if it fits in `limit` bytes (UTF-8), else its last bytes after a marker."""
    raw = text.encode()
    if len(raw) <= limit:
        return text
    kept = raw[-limit:].decode(errors="ignore")
    return f"[output cut: the first {len(raw) - len(kept.encode())} bytes are not kept]\n{kept}"


def output_of(stdout: str, stderr: str, *, cut: bool = False) -> str:
    """One text of a step's two streams; `cut` when the executor kept only their tails."""
    parts = []
    if cut:
        parts.append("[only the tail of the output reached the controller]")
    if stdout:
        parts.append(stdout.rstrip("\n"))
    if stderr:
        parts.append("--- stderr ---\n" + stderr.rstrip("\n"))
    return "\n".join(parts)


class StepLogs:
    """Collects step output per deployment and writes it to the store off the event loop."""

    def __init__(self, write: Writer, masker: Masker) -> None:
        self._write = write
        self._masker = masker
        self._seq: dict[str, int] = {}
        self._pending: list[StepLog] = []
        self._task: asyncio.Task[None] | None = None

    def add(
        self,
        deployment_id: str,
        step: str,
        host: str,
        exit_status: int | None,
        output: str,
    ) -> None:
        seq = self._seq[deployment_id] = self._seq.get(deployment_id, 0) + 1
        text = self._masker(bounded(output))
        self._pending.append(StepLog(deployment_id, seq, step, host, utc_now(), exit_status, text))
        if self._task is None or self._task.done():
            try:
                self._task = asyncio.get_running_loop().create_task(self._drain())
            except RuntimeError:  # no loop: write here and now
                self._write_batch(self._take())

    def add_result(self, deployment_id: str, step: str, result: CommandResult) -> None:
        cut = result.stdout_truncated or result.stderr_truncated
        output = output_of(result.stdout, result.stderr, cut=cut)
        self.add(deployment_id, step, result.host, result.exit_status, output)

    async def flush(self) -> None:
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)
        if self._pending:
            await asyncio.to_thread(self._write_batch, self._take())

    async def _drain(self) -> None:
        while self._pending:
            await asyncio.to_thread(self._write_batch, self._take())

    def _take(self) -> list[StepLog]:
        batch, self._pending = self._pending, []
        return batch

    def _write_batch(self, batch: list[StepLog]) -> None:
        try:
            self._write(batch)
        except Exception as failure:  # a log must not stop a deployment
            log.warning("the output of %d step(s) is not stored: %s", len(batch), failure)


class Logged:
    """An executor whose every command's output is kept as a step of one deployment."""

    def __init__(self, executor: Executor, logs: StepLogs, deployment_id: str) -> None:
        self._executor = executor
        self._logs = logs
        self._deployment_id = deployment_id

    @property
    def name(self) -> str:
        return self._executor.name

    @property
    def root(self) -> str:
        return self._executor.root

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
        try:
            result = await self._executor.run(
                command, check=check, timeout=timeout, env=env, stdin=stdin, sudo=sudo, cwd=cwd
            )
        except CommandFailed as failed:
            self._keep(failed.result)
            raise
        self._keep(result)
        return result

    def _keep(self, result: CommandResult) -> None:
        command = result.command
        step = command.name if isinstance(command, Script) and command.name else ""
        step = step or describe(command)
        self._logs.add_result(self._deployment_id, step[:64], result)

    async def put(
        self,
        source: Path | bytes,
        remote_path: str,
        *,
        mode: int | None = None,
        sudo: bool | None = None,
    ) -> None:
        await self._executor.put(source, remote_path, mode=mode, sudo=sudo)

    async def get(self, remote_path: str, local_path: Path, *, sudo: bool | None = None) -> None:
        await self._executor.get(remote_path, local_path, sudo=sudo)

    async def put_dir(self, local_dir: Path, remote_dir: str, *, sudo: bool | None = None) -> bool:
        return await self._executor.put_dir(local_dir, remote_dir, sudo=sudo)

    async def close(self) -> None:
        """Nothing: the executor it wraps is shared, and closed by its owner."""
