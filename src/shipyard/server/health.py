"""The server's health monitor: a round over every host every `health_interval` seconds
(app.health.Watch), its changes published as events to this server's listeners (the SSE hub,
metrics, webhooks) and stored.

While this server runs a rollout a round waits (at most MAX_DEFER intervals in a row): the
rollout health-checks what it deploys, and a round beside it would double its SSH work and
report its restarts as failures. The first round comes FIRST_DELAY seconds after the start.

The monitor keeps one executor pool open between rounds (a host's connection is reused, so a
round costs one round trip per host). It follows the served config version: when the server
serves another, the next round watches the new project through a new pool. A round that fails
(the store away, a bug) is logged and the next one runs at its time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi import FastAPI

from shipyard.app.health import Watch
from shipyard.events import EventBus
from shipyard.server.state import ServerState

if TYPE_CHECKING:
    from shipyard.app.session import Session

log = logging.getLogger("shipyard.server.health")

FIRST_DELAY = 5.0  # seconds after the start before the first round (at most the interval)
DEFER_SECONDS = 5.0  # how often a deferred round looks again whether the rollouts are over
MAX_DEFER = 3  # intervals a round may be put off by rollouts, at most, in a row


@dataclass
class Monitor:
    """One server's monitor task and what it last measured."""

    state: ServerState
    task: asyncio.Task[None] | None = None
    rounds: int = 0
    deferred: int = 0  # rounds put off while a rollout of this server ran
    last_round_seconds: float = 0.0
    _stopped: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        settings = self.state.settings
        interval = settings.health_interval
        while not self._stopped.is_set():
            try:
                await self._rounds(self.state.session, interval)
            except Exception:  # the pool would not open: try again a round later
                log.exception("the health monitor stopped; it starts again in %g s", interval)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopped.wait(), timeout=interval)

    async def _rounds(self, session: Session, interval: float) -> None:
        state = self.state
        bus = EventBus(session.store.append_events)
        bus.subscribe(state.heard)
        offline_after = state.settings.offline_after
        async with Watch.opened(session, bus.publish, offline_after=offline_after) as watch:
            last = time.monotonic()
            if not self.rounds:  # the first round lets the start (and a first rollout) be
                await self._pause(min(interval, FIRST_DELAY))
            while not self._stopped.is_set() and state.session is session:
                if state.jobs.running and time.monotonic() - last < MAX_DEFER * interval:
                    # A rollout of this server health-checks what it deploys; a round beside it
                    # would double its SSH work and see its restarts as failures.
                    self.deferred += 1
                    await self._pause(min(interval, DEFER_SECONDS))
                    continue
                last = began = time.monotonic()
                try:
                    await watch.round(wait=interval)
                    await bus.flush()
                except Exception:  # the next round runs at its time
                    log.exception("a health round failed")
                self.rounds += 1
                self.last_round_seconds = time.monotonic() - began
                left = max(0.0, interval - self.last_round_seconds)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopped.wait(), timeout=left)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopped.wait(), timeout=seconds)

    async def stop(self) -> None:
        self._stopped.set()
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


def install(app: FastAPI) -> None:
    """The monitor, started with the server unless `health_interval` is 0."""
    holder: dict[str, Monitor] = {}

    async def start(state: ServerState) -> None:
        if state.settings.health_interval <= 0:
            return
        monitor = Monitor(state)
        monitor.task = asyncio.create_task(monitor.run(), name="health-monitor")
        holder["monitor"] = monitor
        app.state.health_monitor = monitor

    async def stop(state: ServerState) -> None:
        monitor = holder.pop("monitor", None)
        if monitor is not None:
            await monitor.stop()

    app.state.starters.append(start)
    app.state.stoppers.append(stop)
