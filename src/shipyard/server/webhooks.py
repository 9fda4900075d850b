"""The webhook dispatcher: a background service of the server that sends every new event to the
subscriptions that want it, signed, retried, each send on its own.

One loop: match new events from the store's events table (CLI processes' events count too)
to the subscriptions, claim the due deliveries up to the free sending slots, start a task per
delivery, then wait for a rollout's news (`state.heard`), a finished send or a second. Sends run
`concurrency` at a time with an httpx.AsyncClient, each bounded by `settings.webhook_timeout`,
so a slow or failing receiver holds one slot and never a deployment. Store calls run in worker
threads to keep the server's loop free.

Delivery is at least once: a send cut short by a stop (or a crash) is tried again when its
claim expires, so receivers should treat `Shipyard-Delivery` as the key to deduplicate on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import FastAPI

from shipyard.app import webhook_dispatch
from shipyard.app.webhook_dispatch import Backoff, GapWatch, Outgoing
from shipyard.app.webhooks import shown_url
from shipyard.events import Event
from shipyard.server.state import ServerState

log = logging.getLogger("shipyard.server.webhooks")

POLL = 1.0  # seconds between looks at the store when nothing wakes the dispatcher
CONCURRENCY = 16  # sends at once
PER_WEBHOOK = 4  # of them to one webhook: a slow receiver holds these and no more
LEASE_MARGIN = 30.0  # seconds a claim outlives the send's timeout
STOP_WAIT = 5.0  # seconds a stop waits for cancelled sends and the client's close


class Dispatcher:
    """Sends deliveries for one server; `backoff` may be changed (tests use short ones)."""

    def __init__(
        self,
        state: ServerState,
        *,
        backoff: Backoff | None = None,
        concurrency: int = CONCURRENCY,
        per_webhook: int = PER_WEBHOOK,
        poll: float = POLL,
    ) -> None:
        self.state = state
        self.backoff = backoff or Backoff()
        self.concurrency = concurrency
        self.per_webhook = per_webhook
        self.poll = poll
        self._gaps = GapWatch()
        self._nudge = asyncio.Event()
        self._sending: dict[asyncio.Task[None], str] = {}  # each send and its webhook
        self._loop_task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        timeout = httpx.Timeout(self.state.settings.webhook_timeout)
        self._client = httpx.AsyncClient(timeout=timeout, follow_redirects=False)
        self.state.listeners.append(self.heard)
        self._loop_task = asyncio.create_task(self._run(), name="webhook-dispatcher")

    async def stop(self) -> None:
        """Stop the loop and cancel the sends in flight (their claims expire and they are sent
        again by the next server), waiting for them at most STOP_WAIT seconds."""
        with contextlib.suppress(ValueError):
            self.state.listeners.remove(self.heard)
        tasks = [t for t in (self._loop_task, *self._sending) if t is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            _, stuck = await asyncio.wait(tasks, timeout=STOP_WAIT)
            for task in stuck:
                log.warning("webhook task %s did not stop within %g s", task.get_name(), STOP_WAIT)
        if self._client is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(STOP_WAIT):
                    await self._client.aclose()

    def heard(self, event: Event) -> None:
        """A rollout of this server wrote an event: look at the store now (from any thread)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._nudge.set()
        else:
            loop.call_soon_threadsafe(self._nudge.set)

    async def _run(self) -> None:
        while not self.state.closing.is_set():
            self._nudge.clear()  # before the pass: news during it wakes the next one
            try:
                await self._pass()
            except Exception:  # the store may be away for a while: log, wait, try again
                log.exception("webhook dispatch failed; trying again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._nudge.wait(), self.poll)

    async def _pass(self) -> None:
        session = self.state.session
        while await asyncio.to_thread(webhook_dispatch.queue_new_events, session, self._gaps):
            pass  # a full page was read: read on
        free = self.concurrency - len(self._sending)
        lease = self.state.settings.webhook_timeout + LEASE_MARGIN
        busy = Counter(self._sending.values())
        claimed = await asyncio.to_thread(
            webhook_dispatch.claim_due,
            session,
            limit=free,
            lease=lease,
            per_webhook=self.per_webhook,
            busy=busy,
        )
        for outgoing in claimed:
            task = asyncio.create_task(self._send(outgoing), name=f"webhook-{outgoing.delivery_id}")
            self._sending[task] = outgoing.webhook_id
            task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._sending.pop(task, None)
        self._nudge.set()  # a slot is free: take the next due one

    async def _send(self, outgoing: Outgoing) -> None:
        assert self._client is not None
        status_code: int | None = None
        error: str | None = None
        settings = self.state.settings
        try:
            async with asyncio.timeout(settings.webhook_timeout):  # the whole send, not a phase
                answer = await self._client.post(
                    outgoing.url, content=outgoing.body, headers=outgoing.headers()
                )
            status_code = answer.status_code
        except TimeoutError:
            error = f"timed out: no answer within {settings.webhook_timeout:g} s"
        except Exception as exc:  # httpx.HTTPError, InvalidURL, ...: the receiver's failure
            error = _described(exc, outgoing.url)
        try:
            outcome = await asyncio.to_thread(
                webhook_dispatch.record_result,
                self.state.session,
                outgoing,
                status_code=status_code,
                error=error,
                backoff=self.backoff,
                give_up=settings.webhook_give_up,
            )
        except Exception:  # its claim expires and it is sent again
            log.exception("could not record webhook delivery %s", outgoing.delivery_id)
            return
        if outcome.status == "pending" and outcome.next_attempt_at is not None:
            # Look again when the retry is due, not only at the next poll.
            wait = (outcome.next_attempt_at - datetime.now(UTC)).total_seconds()
            asyncio.get_running_loop().call_later(max(0.0, wait), self._nudge.set)


def _described(exc: Exception, url: str) -> str:
    """What went wrong, without the URL's credentials."""
    kind = {
        httpx.TimeoutException: "timed out",
        httpx.ConnectError: "could not connect",
    }
    what = next((text for cls, text in kind.items() if isinstance(exc, cls)), "failed")
    detail = str(exc).replace(url, shown_url(url)) or type(exc).__name__
    return f"{what}: {detail}"[:500]


def install(app: FastAPI) -> None:
    """Run a dispatcher beside the routes (it is app.state.webhooks while the server runs)."""

    async def start(state: ServerState) -> None:
        dispatcher = Dispatcher(state)
        app.state.webhooks = dispatcher
        await dispatcher.start()

    async def stop(state: ServerState) -> None:
        dispatcher: Any = getattr(app.state, "webhooks", None)
        if isinstance(dispatcher, Dispatcher):
            await dispatcher.stop()

    app.state.starters.append(start)
    app.state.stoppers.append(stop)
