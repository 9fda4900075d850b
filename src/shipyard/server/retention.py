"""Event retention: a background service of the server that purges, once a day, the events
older than `event_retention_days` (app.eventlog.purge_events: bounded transactions, audited).

The first purge runs a minute after the start (not in the way of it); a purge runs in a worker
thread, a batch at a time, so the server's loop and the event writers never wait for it long.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from fastapi import FastAPI

from shipyard.app.eventlog import purge_events
from shipyard.server.state import ServerState

log = logging.getLogger("shipyard.server.retention")

FIRST_DELAY = 60.0  # seconds after the start
INTERVAL = 86_400.0  # seconds between purges: daily


class Retention:
    """Purges `state`'s old events every `interval` seconds, the first after `first_delay`."""

    def __init__(
        self, state: ServerState, *, first_delay: float = FIRST_DELAY, interval: float = INTERVAL
    ) -> None:
        self.state = state
        self.first_delay = first_delay
        self.interval = interval
        self.purges = 0  # purges done (what a test waits for)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="event-retention")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        await asyncio.sleep(self.first_delay)
        while True:
            await self.purge_once()
            await asyncio.sleep(self.interval)

    async def purge_once(self) -> int:
        """One purge now; a failure is logged and the next day's purge tries again."""
        days = self.state.settings.event_retention_days
        try:
            gone = await asyncio.to_thread(purge_events, self.state.session, days=days)
        except Exception:
            log.exception("the purge of events older than %d day(s) failed", days)
            return 0
        self.purges += 1
        if gone:
            log.info("purged %d event(s) older than %d day(s)", gone, days)
        return gone


def install(app: FastAPI) -> None:
    """Run the daily purge beside the routes (app.state.retention while the server runs)."""

    async def start(state: ServerState) -> None:
        retention = Retention(state)
        app.state.retention = retention
        await retention.start()

    async def stop(state: ServerState) -> None:
        retention: Any = getattr(app.state, "retention", None)
        if isinstance(retention, Retention):
            await retention.stop()

    app.state.starters.append(start)
    app.state.stoppers.append(stop)
