"""Rollouts as server jobs: started under a limit, followed, cancelled, and drained on SIGTERM.

A job is a rollout the application layer started on the server's loop (`start_deploy`,
`start_rollback`); each runs under a controller identity of its own, so that one rollout ending
(and releasing its lease) never touches another's. On shutdown no new rollout starts, every
running one is cancelled (steps in flight finish, the rest are skipped with the reason); those
still running when the grace period ends are stopped and their deployments marked interrupted
with the reason in the store. A server killed outright leaves its leases to run out, and the
next start (or any CLI) recovers what it left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from shipyard.app.rollouts import interrupt
from shipyard.server.errors import ApiError

if TYPE_CHECKING:
    from shipyard.app.rollouts import RolloutHandle, RolloutResult
    from shipyard.app.session import Session

log = logging.getLogger("shipyard.server")
SHUTDOWN_REASON = "the server is shutting down"


@dataclass
class Job:
    """One running rollout."""

    handle: RolloutHandle
    session: Session  # the rollout's own, with a controller of its own

    started: float = field(default_factory=time.monotonic)
    watcher: asyncio.Task[RolloutResult | None] | None = None


class Jobs:
    """The rollouts this server runs."""

    def __init__(self, session: Session, *, limit: int, grace: float) -> None:
        self.session = session
        self.limit = limit
        self.grace = grace
        self.stopping = False
        self._jobs: dict[str, Job] = {}
        self._starting = 0
        self._drain: asyncio.Task[None] | None = None

    @property
    def running(self) -> list[Job]:
        return list(self._jobs.values())

    def get(self, rollout_id: str) -> Job | None:
        return self._jobs.get(rollout_id)

    async def start(
        self, session: Session, launch: Callable[[Session], Awaitable[RolloutHandle]]
    ) -> RolloutHandle:
        """Start a rollout under the limit: `launch` starts it with `session` (which acts with
        a lease of its own) and returns once its row is written."""
        if self.stopping:
            raise ApiError(503, "shutting_down", "the server is shutting down: no new rollout")
        if len(self._jobs) + self._starting >= self.limit:
            raise ApiError(
                429,
                "too_many_rollouts",
                f"{self.limit} rollouts are running, the server's limit (max_rollouts)",
                {"limit": self.limit},
                headers={"Retry-After": "5"},
            )
        self._starting += 1
        try:
            handle = await launch(session)
        finally:
            self._starting -= 1
        job = Job(handle, session)
        self._jobs[handle.id] = job
        job.watcher = asyncio.get_running_loop().create_task(
            self._watch(job), name=f"job {handle.id}"
        )
        return handle

    def cancel(self, rollout_id: str, reason: str) -> bool:
        """Cancel a rollout this server runs; False when it runs none of that id."""
        job = self._jobs.get(rollout_id)
        if job is None:
            return False
        job.handle.cancel(reason)
        return True

    async def shutdown(self, reason: str = SHUTDOWN_REASON) -> None:
        """No new rollout; cancel the running ones; after the grace period stop what is left
        and mark it interrupted in the store. A second call waits for the first's drain."""
        self.stopping = True
        if self._drain is None:
            self._drain = asyncio.get_running_loop().create_task(self._shutdown(reason))
        await asyncio.shield(self._drain)

    async def _shutdown(self, reason: str) -> None:
        jobs = self.running
        for job in jobs:
            job.handle.cancel(reason)
        watchers = [j.watcher for j in jobs if j.watcher is not None]
        if watchers:
            _, pending = await asyncio.wait(watchers, timeout=self.grace)
        else:
            pending = set()
        for job in jobs:
            if job.watcher in pending:
                log.warning("rollout %s did not finish within %gs", job.handle.id, self.grace)
                job.handle.abort(reason)
        for job in jobs:
            if job.watcher is not None:
                with contextlib.suppress(BaseException):
                    await job.watcher
            if job.watcher in pending:
                controller = job.session.controller.id
                await asyncio.to_thread(interrupt, job.session, controller, reason)

    async def _watch(self, job: Job) -> RolloutResult | None:
        try:
            return await job.handle.wait()
        except asyncio.CancelledError:
            return None
        except Exception:
            log.exception("rollout %s failed", job.handle.id)
            return None
        finally:
            self._jobs.pop(job.handle.id, None)
