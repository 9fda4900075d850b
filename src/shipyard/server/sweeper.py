"""The replicas' sweep: every `recovery_interval` seconds a server fails what a gone controller
left running (another replica whose lease ran out, a CLI killed mid-rollout), so that with
several replicas on one PostgreSQL a replica's death is noticed by the others within its lease
and a sweep, and nothing waits for the dead one to start again. Its deployments are failed
("interrupted: replica R lost its lease"), its rollouts finished as failed; none is resumed:
starting it again is the user's one action (store/recovery.py, app.rollouts.recover_gone).

The same sweep keeps the replicas serving one config version: when another replica has served
another (an upload, a reload), this one serves it too, its files from the store written into
its served directory as an upload's are (app.versions.follow).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from fastapi import FastAPI

from shipyard.app import versions
from shipyard.app.rollouts import recover_gone
from shipyard.server.state import ServerState

log = logging.getLogger("shipyard.server.sweeper")


class Sweeper:
    """Runs `recover_gone` every `interval` seconds in a worker thread."""

    def __init__(self, state: ServerState, *, interval: float) -> None:
        self.state = state
        self.interval = interval
        self.sweeps = 0  # sweeps done
        self._task: asyncio.Task[None] | None = None
        self._unservable: int | None = None  # a newer version that failed to load

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="recovery-sweep")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.sweep_once()

    async def sweep_once(self) -> tuple[list[str], list[str]]:
        """One sweep now; a failure (the store away) is logged and the next sweep tries again."""
        try:
            await asyncio.to_thread(self._follow_version)
        except Exception:
            log.exception("the newest config version could not be served")
        try:
            deployments, rollouts = await asyncio.to_thread(recover_gone, self.state.session)
        except Exception:
            log.exception("the recovery sweep failed")
            return [], []
        self.sweeps += 1
        if deployments or rollouts:
            log.warning(
                "recovered %d deployment(s) and %d rollout(s) a gone controller left running",
                len(deployments), len(rollouts),
            )  # fmt: skip
            self.state.wakeup.set()  # the SSE hub reads the events recovery wrote
        return deployments, rollouts

    def _follow_version(self) -> None:
        """Serve the version the store says the replicas serve, when another replica made it
        another than this one serves."""
        state = self.state
        wanted = versions.served(state.session)
        if wanted is None or state.version is None or wanted == state.version:
            return
        if wanted == self._unservable:
            return  # logged once
        with state.publishing:
            if state.version is not None and wanted != state.version:
                self._unservable = wanted  # until it is served
                fresh = versions.follow(state.session, wanted)
                state.serve(fresh, wanted, record=False)
                self._unservable = None
                log.warning("serving config version %d, as another replica does", wanted)


def install(app: FastAPI) -> None:
    """Sweep beside the routes unless `recovery_interval` is 0 (app.state.sweeper)."""

    async def start(state: ServerState) -> None:
        if state.settings.recovery_interval <= 0:
            return
        sweeper = Sweeper(state, interval=state.settings.recovery_interval)
        app.state.sweeper = sweeper
        await sweeper.start()

    async def stop(state: ServerState) -> None:
        sweeper: Any = getattr(app.state, "sweeper", None)
        if isinstance(sweeper, Sweeper):
            await sweeper.stop()

    app.state.starters.append(start)
    app.state.stoppers.append(stop)
