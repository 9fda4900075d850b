"""Fan-out: one task per host with a bounded number in flight, and a result per host as data."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar, cast

from shipyard.errors import ExecutionError
from shipyard.executors.base import Executor

DEFAULT_IN_FLIGHT = 200

T = TypeVar("T")
E = TypeVar("E", bound=Executor)


@dataclass(frozen=True)
class HostOutcome(Generic[T]):
    """What one host's task returned, or the error that stopped it."""

    host: str
    value: T | None = None
    error: Exception | None = None
    duration: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def reason(self) -> str:
        """Why the host failed, without the host's name in front (empty when it did not)."""
        if self.error is None:
            return ""
        if isinstance(self.error, ExecutionError):
            return self.error.reason
        return f"{type(self.error).__name__}: {self.error}"


@dataclass(frozen=True)
class FanoutResult(Generic[T]):
    """Every host's outcome, in the order the hosts were given."""

    outcomes: tuple[HostOutcome[T], ...]

    @property
    def succeeded(self) -> dict[str, T]:
        # A task may return None itself, so `value` is only known to be a T when `ok`.
        return {o.host: cast(T, o.value) for o in self.outcomes if o.ok}

    @property
    def failed(self) -> dict[str, Exception]:
        return {o.host: o.error for o in self.outcomes if o.error is not None}

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outcomes)

    def __getitem__(self, host: str) -> HostOutcome[T]:
        return next(o for o in self.outcomes if o.host == host)

    def __len__(self) -> int:
        return len(self.outcomes)


async def fan_out(
    executors: Iterable[E],
    task: Callable[[E], Awaitable[T]],
    *,
    limit: int = DEFAULT_IN_FLIGHT,
    progress: Callable[[HostOutcome[T]], None] | None = None,
) -> FanoutResult[T]:
    """Run `task(executor)` for every executor, at most `limit` at once.

    A host that fails (unreachable, refused, a command failed, or any other exception) fails
    alone: its error is its outcome and the other hosts go on. `progress` is called as each
    host finishes.
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    gate = asyncio.Semaphore(limit)

    async def one(executor: E) -> HostOutcome[T]:
        async with gate:
            start = time.monotonic()
            try:
                value = await task(executor)
            except Exception as exc:  # a host's failure is data; the others go on
                outcome: HostOutcome[T] = HostOutcome(
                    executor.name, error=exc, duration=time.monotonic() - start
                )
            else:
                outcome = HostOutcome(executor.name, value, duration=time.monotonic() - start)
        if progress is not None:
            progress(outcome)
        return outcome

    outcomes = await asyncio.gather(*(one(executor) for executor in executors))
    return FanoutResult(tuple(outcomes))
