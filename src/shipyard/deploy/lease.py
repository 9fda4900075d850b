"""This controller's lease on its deployments: renewed by heartbeats, checked before host steps.

The database's clock expires a lease (store/leases.py); here the controller keeps its own,
stricter deadline by its monotonic clock, counted from when it *sent* the last renewal that the
store took. Past half the lease without a renewal (the store is away, or slow) it stops before
its next host step, so the step in progress can end while nobody else may yet take over; once
the store says the lease ran out, it has lost its deployments for good. Transient store errors
(no connection, locked) are retried with back-off for `patience` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Collection
from dataclasses import dataclass
from typing import TypeVar

from shipyard.errors import LeaseLost, StoreError, StoreUnavailable
from shipyard.store import Controller, Store

T = TypeVar("T")
FIRST_DELAY, MAX_DELAY = 0.1, 2.0


@dataclass(frozen=True)
class LeasePolicy:
    """How long a renewal holds, how often it is sent, how long store errors are retried."""

    seconds: float = 60.0
    heartbeat: float = 10.0
    patience: float = 30.0

    def __post_init__(self) -> None:
        if not 0 < self.heartbeat < self.seconds / 2:
            raise ValueError(
                f"a heartbeat every {self.heartbeat:g} s cannot keep a lease of"
                f" {self.seconds:g} s: it must come well within half of it"
            )
        if self.patience < 0:
            raise ValueError(f"patience must not be negative, not {self.patience:g}")

    @property
    def fence_after(self) -> float:
        """Seconds after the last renewal was sent that no new host step starts."""
        return self.seconds / 2


async def patiently(call: Callable[[], T], *, patience: float) -> T:
    """`call()` in a thread, retried with back-off while the store is unavailable, for at most
    `patience` seconds; then the last StoreUnavailable, saying how long it waited."""
    deadline = time.monotonic() + patience
    delay = FIRST_DELAY
    while True:
        try:
            return await asyncio.to_thread(call)
        except StoreUnavailable as exc:
            if time.monotonic() + delay > deadline:
                raise StoreUnavailable(f"{exc} (retried for {patience:g} s)") from exc
        await asyncio.sleep(delay)
        delay = min(delay * 2, MAX_DELAY)


class Lease:
    """The lease of `controller` in `store`, kept while `held()`; `check()` before host steps."""

    def __init__(
        self,
        store: Store,
        controller: Controller,
        policy: LeasePolicy,
        active: Callable[[], Collection[str]],
    ) -> None:
        self.store = store
        self.controller = controller
        self.policy = policy
        self._active = active
        self._depth = 0
        self._renewed = 0.0  # monotonic time the last accepted renewal was sent
        self._lost = ""
        self._task: asyncio.Task[None] | None = None
        self.epoch = 0  # the fencing epoch of the registration (0: not registered yet)
        self.store_id = ""  # which store the epoch is of (hosts keep both)
        self._lock = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def held(self) -> AsyncIterator[Lease]:
        """Register (the outermost use only), keep renewing, release at the end."""
        async with self._lock:  # deployments of one rollout enter together
            if self._task is None:
                sent = time.monotonic()
                register = self.store.register_controller
                self.epoch = await patiently(
                    lambda: register(self.controller, lease_seconds=self.policy.seconds),
                    patience=self.policy.patience,
                )
                if not self.store_id:
                    self.store_id = await patiently(self.store.store_id, patience=0)
                self._renewed, self._lost = sent, ""
                self._task = asyncio.create_task(self._keep(), name="lease heartbeat")
            self._depth += 1
        try:
            yield self
        finally:
            async with self._lock:
                self._depth -= 1
                if self._depth == 0:
                    await self._stop()

    def check(self) -> None:
        """Raise LeaseLost unless this controller may start another host step."""
        if self._lost:
            raise LeaseLost(self._lost)
        silent = time.monotonic() - self._renewed
        if self._depth and silent >= self.policy.fence_after:
            raise LeaseLost(
                f"controller {self.controller.id} could not renew its lease for {silent:.0f} s"
                " (the state store is unavailable), so it stopped before its next host step"
            )

    async def _keep(self) -> None:
        """Renew every `heartbeat` seconds; after a failure, sooner, and never give up."""
        pause = self.policy.heartbeat
        while True:
            await asyncio.sleep(pause)
            sent = time.monotonic()
            try:
                held = await asyncio.to_thread(
                    self.store.renew_lease,
                    self.controller.id,
                    lease_seconds=self.policy.seconds,
                    deployment_ids=sorted(self._active()),
                )
            except StoreError:
                pause = min(max(pause / 2, FIRST_DELAY), 1.0)
                continue
            if not held:
                self._lost = (
                    f"controller {self.controller.id} lost its lease (it ran out by the state"
                    " store's clock; another controller may have taken its deployments over)"
                )
                return
            self._renewed, pause = sent, self.policy.heartbeat

    async def _stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(StoreError):  # unreachable store: the lease simply runs out
            await asyncio.to_thread(self.store.release_controller, self.controller.id)
