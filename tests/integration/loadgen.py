"""A small HTTP/1.1 load generator on asyncio streams: a steady rate over several fronts, every
answer kept with its timings and the release that served it (`X-Release`). Stdlib only.

Each request opens its own connection and asks the server to close it (`Connection: close`).
An idle keep-alive connection that a server closes (nginx's old workers do at a reload) races
with the next request sent on it; HTTP clients retry those (RFC 9112, 9.3.1), so counting them
would measure the client, not the switch.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

HEADER_LIMIT = 100
MAX_LAG = 0.25  # seconds behind schedule after which requests are skipped rather than bunched


@dataclass(frozen=True)
class Target:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Reply:
    """One request: when it started and ended (time.monotonic), and what came back."""

    target: str
    path: str
    started: float
    ended: float
    status: int | None = None
    release: str | None = None  # the X-Release header
    body: str = ""
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.status == 200

    def describe(self) -> str:
        what = self.error or f"status {self.status}"
        return f"GET {self.path} at {self.target}: {what} (started {self.started:.3f})"


async def fetch(
    target: Target, path: str, *, timeout: float = 10.0, sent: asyncio.Event | None = None
) -> Reply:
    """One GET on a fresh connection; never raises: a failure is a Reply with `error`.
    `sent` is set once the request has been handed to the kernel."""
    started = time.monotonic()
    try:
        status, headers, body = await asyncio.wait_for(_exchange(target, path, sent), timeout)
    except TimeoutError:
        return Reply(str(target), path, started, time.monotonic(), error=f"no answer in {timeout}s")
    except (OSError, asyncio.IncompleteReadError, ValueError) as failure:
        error = f"{type(failure).__name__}: {failure}"
        return Reply(str(target), path, started, time.monotonic(), error=error)
    return Reply(
        str(target),
        path,
        started,
        time.monotonic(),
        status=status,
        release=headers.get("x-release"),
        body=body.decode(errors="replace").strip(),
    )


async def _exchange(
    target: Target, path: str, sent: asyncio.Event | None
) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection(target.host, target.port)
    try:
        request = f"GET {path} HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n"
        writer.write(request.encode())
        await writer.drain()
        if sent is not None:
            sent.set()
        words = (await reader.readline()).decode("latin-1").split(maxsplit=2)
        if len(words) < 2 or not words[0].startswith("HTTP/") or not words[1].isdigit():
            raise ValueError(f"not an HTTP status line: {' '.join(words)!r}")
        headers: dict[str, str] = {}
        for _ in range(HEADER_LIMIT):
            line = (await reader.readline()).decode("latin-1").strip()
            if not line:
                break
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        else:
            raise ValueError("too many header lines")
        length = headers.get("content-length")
        body = await (reader.readexactly(int(length)) if length else reader.read())
        return int(words[1]), headers, body
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


@dataclass
class Load:
    """`rate` requests per second in total, round-robin over `targets`, until stopped or
    `max_seconds` have passed; then it waits for the requests still in flight (each bounded by
    `timeout`). Extra requests (`start`) run beside it and are kept in `replies` too.

    When this process falls behind (a busy machine), the requests it missed are counted in
    `skipped` rather than sent all at once: a burst would measure the burst, not the switch."""

    targets: Sequence[Target]
    rate: float = 100.0
    path: str = "/version"
    timeout: float = 10.0
    max_seconds: float = 120.0
    replies: list[Reply] = field(default_factory=list)
    skipped: int = 0  # requests not sent because this process fell behind by over MAX_LAG
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: set[asyncio.Task[Reply]] = field(default_factory=set)
    _runner: asyncio.Task[None] | None = None

    def begin(self) -> None:
        self._runner = asyncio.create_task(self._run())

    def start(
        self,
        target: Target,
        path: str,
        *,
        timeout: float | None = None,
        sent: asyncio.Event | None = None,
    ) -> asyncio.Task[Reply]:
        """One extra request beside the steady load (a long one, say); its reply is kept too."""
        task = asyncio.create_task(fetch(target, path, timeout=timeout or self.timeout, sent=sent))
        self._tasks.add(task)
        task.add_done_callback(self._keep)
        return task

    def _keep(self, task: asyncio.Task[Reply]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            self.replies.append(task.result())

    async def _run(self) -> None:
        began = time.monotonic()
        limit = int(self.max_seconds * self.rate)
        index = 0
        while index < limit and not self._stop.is_set():
            due = began + index / self.rate
            now = time.monotonic()
            if now - due > MAX_LAG:  # this process was not scheduled: skip, don't burst
                skipped = max(1, int((now - began) * self.rate) - index)
                self.skipped += skipped
                index += skipped
                continue
            if due > now:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), due - now)
                if self._stop.is_set():
                    break
            self.start(self.targets[index % len(self.targets)], self.path)
            index += 1

    async def finish(self) -> list[Reply]:
        """Stop sending, wait for what is in flight; every reply, in the order they ended."""
        self._stop.set()
        if self._runner is not None:
            await self._runner
        while self._tasks:
            await asyncio.wait(set(self._tasks))
        return sorted(self.replies, key=lambda r: r.ended)


def failures(replies: Iterable[Reply]) -> list[Reply]:
    return [r for r in replies if not r.ok]


def rate_of(replies: Sequence[Reply]) -> float:
    """Requests per second over the span the replies started in."""
    if len(replies) < 2:
        return 0.0
    starts = [r.started for r in replies]
    return (len(starts) - 1) / max(max(starts) - min(starts), 1e-9)


def explain(replies: Sequence[Reply], *, show: int = 10) -> str:
    """How many requests there were, the failures counted by kind, and the first few."""
    bad = failures(replies)
    kinds = Counter(
        (r.target, r.path.split("?")[0], r.error.split(":")[0] if r.error else r.status)
        for r in bad
    )
    lines = [f"{len(replies)} requests at {rate_of(replies):.0f}/s, {len(bad)} failed"]
    lines += [f"  {count} x {kind}" for kind, count in kinds.most_common()]
    lines += [f"  {r.describe()}" for r in bad[:show]]
    return "\n".join(lines)
