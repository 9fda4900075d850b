"""Running the server under uvicorn, with Shipyard's shutdown: on SIGTERM or SIGINT the jobs
drain first (no new rollout, running ones cancelled), then uvicorn closes the connections."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from types import FrameType

import uvicorn

from shipyard.server.app import create_app
from shipyard.server.settings import Settings
from shipyard.server.state import ServerState

# Seconds uvicorn waits for open connections (SSE streams end by themselves) after the drain.
CONNECTIONS_GRACE = 5.0


class _Server(uvicorn.Server):
    """uvicorn's server, telling the state it stops before uvicorn begins to."""

    def __init__(self, config: uvicorn.Config, holder: dict[str, ServerState]) -> None:
        super().__init__(config)
        self._holder = holder

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        state = self._holder.get("state")
        if state is not None:
            state.stopping()
        super().handle_exit(sig, frame)


def serve(settings: Settings, on_start: Callable[[ServerState], None] | None = None) -> None:
    """Serve until SIGTERM or SIGINT."""
    holder: dict[str, ServerState] = {}

    def started(state: ServerState) -> None:
        holder["state"] = state
        if on_start is not None:
            on_start(state)

    app = create_app(settings, environ=dict(os.environ), on_start=started)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=int(settings.shutdown_grace + CONNECTIONS_GRACE),
        lifespan="on",
    )
    asyncio.run(_Server(config, holder).serve())
