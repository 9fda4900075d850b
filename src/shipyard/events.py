"""The event stream: every phase of every deployment and every rollout transition, as values.

An `Event` is frozen and carries only masked text. An `EventBus` hands each published event to
every subscriber in this process and, through its `writer`, to the store's events table, where
the store gives it an id that only grows, so that another process follows the same events in
the same order with `Store.events(after_id=...)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

log = logging.getLogger(__name__)


class Phase(StrEnum):
    """What an event says happened. Deployment phases first, then rollout transitions."""

    QUEUED = "queued"
    UPLOADING = "uploading"
    INSTALLING = "installing"
    SWITCHING = "switching"
    RESTARTING = "restarting"
    HEALTH_CHECKING = "health-checking"
    SOAKING = "soaking"
    DRAINING = "draining"
    ROLLING_BACK = "rolling-back"
    DISABLING = "disabling"  # lifecycle commands (an enable shows the phases of a switch)
    DELETING = "deleting"
    FINISHED = "finished"  # `result` says how: success, failed, skipped, unchanged, ...
    # Site operations. Each names what it is about in `subject` where no instance does.
    ARTIFACT = "artifact"  # an artifact pushed to a host: result success, failed or unchanged
    HEALTH = "health"  # a host's or instance's health changed: result online, offline, ...
    DRIFT = "drift"  # what a host runs differs from the store: `detail` says how
    HOST_ERROR = "host-error"  # a host did not answer, or answered what cannot be read
    ROLLOUT_STARTED = "rollout-started"
    ROLLOUT_CANCELLING = "rollout-cancelling"
    ROLLOUT_FINISHED = "rollout-finished"

    @property
    def of_rollout(self) -> bool:
        return self.value.startswith("rollout-")

    @property
    def of_site(self) -> bool:
        """True for what site operations report (not a deployment's or a rollout's phase)."""
        return self in _SITE_PHASES


_SITE_PHASES = frozenset({Phase.ARTIFACT, Phase.HEALTH, Phase.DRIFT, Phase.HOST_ERROR})


class Severity(StrEnum):
    """How much an event asks for attention, from what it says (see `Event.severity`)."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


# Results that call for attention; any other result is information.
_ERRORS = frozenset({"failed", "offline", "failing", "interrupted", "error"})
_WARNINGS = frozenset({"skipped", "cancelled", "degraded", "unknown", "rolled-back", "drifted"})
MESSAGE_DETAIL = 500  # characters of the detail an event's one-line message keeps


@dataclass(frozen=True)
class Event:
    """One thing that happened. `detail` is masked text; `id` is 0 until the store has it."""

    phase: Phase
    at: datetime
    rollout_id: str | None = None
    deployment_id: str | None = None
    instance: str | None = None
    site: str | None = None
    host: str | None = None
    result: str | None = None  # with FINISHED and ROLLOUT_FINISHED
    detail: str = ""
    id: int = 0
    subject: str | None = None  # what a site event is about where no instance is (an artifact)

    @property
    def kind(self) -> str:
        if self.phase.of_rollout:
            return "rollout"
        if self.phase is Phase.ARTIFACT:
            return "artifact"
        if self.phase.of_site:
            return "host" if self.instance is None else "instance"
        return "deployment"

    @property
    def severity(self) -> Severity:
        if self.phase is Phase.HOST_ERROR or self.result in _ERRORS:
            return Severity.ERROR
        if self.phase in (Phase.DRIFT, Phase.ROLLING_BACK) or self.result in _WARNINGS:
            return Severity.WARNING
        return Severity.INFO

    @property
    def source(self) -> str:
        """What the event is about, as the event log names it: `instance api@h1`,
        `artifact certs`, `host h1`, `rollout <id>` or `system`."""
        if self.instance is not None:
            return f"instance {self.instance}"
        if self.subject is not None:
            return f"artifact {self.subject}" if self.phase is Phase.ARTIFACT else self.subject
        if self.host is not None:
            return f"host {self.host}"
        if self.rollout_id is not None:
            return f"rollout {self.rollout_id}"
        return "system"

    @property
    def message(self) -> str:
        """The one line the site event log shows and searches: phase, result and the start of
        the detail (`finished failed: health check ...`); the source is beside it, not in it."""
        line = self.phase.value if self.result is None else f"{self.phase.value} {self.result}"
        detail = " ".join(self.detail[:MESSAGE_DETAIL].split())
        if len(self.detail) > MESSAGE_DETAIL:
            detail += " ..."
        return f"{line}: {detail}" if detail else line

    @property
    def final(self) -> bool:
        """True for the last event of a rollout."""
        return self.phase is Phase.ROLLOUT_FINISHED

    def to_json(self) -> dict[str, Any]:
        # Spelt out, not dataclasses.asdict (ten times the cost): the server renders every
        # event of a rollout once for its SSE clients.
        return {
            "phase": self.phase.value,
            "at": self.at.isoformat(),
            "rollout_id": self.rollout_id,
            "deployment_id": self.deployment_id,
            "instance": self.instance,
            "site": self.site,
            "host": self.host,
            "result": self.result,
            "detail": self.detail,
            "id": self.id,
            "subject": self.subject,
            "kind": self.kind,
            "severity": self.severity.value,
            "source": self.source,
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Event:
        known = {k: v for k, v in value.items() if k in cls.__dataclass_fields__}
        known["phase"] = Phase(known["phase"])
        known["at"] = datetime.fromisoformat(known["at"])
        return cls(**known)


WRITE_BATCH = 200  # events stored in one transaction at most (see EventBus._drain)
Subscriber = Callable[[Event], None]
Writer = Callable[[Sequence[Event]], list[int]]  # stores events in one go, returns their ids


class EventBus:
    """Publishes events to subscribers in this process and, in order, to the store.

    `publish` never blocks: the store writes run in a worker thread of the bus's own (not the
    loop's default pool, which a big rollout's store calls keep busy: an event must not wait
    behind them), one batch at a time, in the order of publishing; subscribers receive each
    event once it is stored, with its id (with id 0 when the store could not take it: the live
    view still learns of it). `await flush()` waits until everything published so far is
    stored and delivered.
    """

    def __init__(self, writer: Writer | None = None) -> None:
        self._writer = writer
        self._subscribers: list[Subscriber] = []
        self._pending: list[Event] = []
        self._flushing: asyncio.Task[None] | None = None

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Call `subscriber` with every event from now on; returns what unsubscribes it."""
        self._subscribers.append(subscriber)
        return lambda: self._unsubscribe(subscriber)

    def _unsubscribe(self, subscriber: Subscriber) -> None:
        with contextlib.suppress(ValueError):
            self._subscribers.remove(subscriber)

    def publish(self, event: Event) -> None:
        if self._writer is None:
            self._deliver([event])
            return
        self._pending.append(event)
        if self._flushing is None or self._flushing.done():
            try:
                self._flushing = asyncio.get_running_loop().create_task(self._drain())
            except RuntimeError:  # no loop: write here and now
                self._write_now()

    async def flush(self) -> None:
        while self._flushing is not None and not self._flushing.done():
            await asyncio.shield(self._flushing)
        if self._pending:
            self._write_now()

    async def follow(self) -> AsyncIterator[Event]:
        """Every event from now on, as they come (until the caller stops iterating)."""
        queue: asyncio.Queue[Event] = asyncio.Queue()
        stop = self.subscribe(queue.put_nowait)
        try:
            while True:
                yield await queue.get()
        finally:
            stop()

    async def _drain(self) -> None:
        """Write what is pending, WRITE_BATCH events at a time; while the loop delivers one
        batch the thread writes the next, so that a burst (a rollout's thousand `queued`
        events) reaches subscribers in pieces as it is stored, not all after the last."""
        loop = asyncio.get_running_loop()
        # One thread for as long as there is something to write; it ends when the bus is idle.
        writer = ThreadPoolExecutor(1, thread_name_prefix="events")
        try:
            writing: asyncio.Future[list[Event]] | None = loop.run_in_executor(
                writer, self._store, self._take()
            )
            while writing is not None:
                stored = await writing
                writing = None
                if self._pending:  # the next write starts before this batch is delivered
                    writing = loop.run_in_executor(writer, self._store, self._take())
                self._deliver(stored)
        finally:
            writer.shutdown(wait=False)

    def _take(self) -> list[Event]:
        batch, self._pending = self._pending[:WRITE_BATCH], self._pending[WRITE_BATCH:]
        return batch

    def _write_now(self) -> None:
        batch, self._pending = self._pending, []
        self._deliver(self._store(batch))

    def _store(self, batch: list[Event]) -> list[Event]:
        assert self._writer is not None
        try:
            ids = self._writer(batch)
        except Exception as failure:  # a live view must not stop a deployment
            log.warning("%d event(s) not stored: %s", len(batch), failure)
            return batch
        return [replace(e, id=i) for e, i in zip(batch, ids, strict=True)]

    def _deliver(self, events: Sequence[Event]) -> None:
        for event in events:
            for subscriber in list(self._subscribers):
                try:
                    subscriber(event)
                except Exception:
                    log.exception("an event subscriber failed")
