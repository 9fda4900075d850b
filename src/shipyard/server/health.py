"""The server's health monitor: a round over every host every `health_interval` seconds
(app.health.Watch), its changes published as events to this server's listeners (the SSE hub,
metrics, webhooks) and stored.

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


@dataclass
class Monitor:
    """One server's monitor task and what it last measured."""

    state: ServerState
    task: asyncio.Task[None] | None = None
    rounds: int = 0
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
            while not self._stopped.is_set() and state.session is session:
                began = time.monotonic()
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
