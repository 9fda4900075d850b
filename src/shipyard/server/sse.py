"""Live events for any number of SSE clients: one reader (the hub) and a bounded buffer each.

The events table is the source: rollouts of this server and of CLI processes all write there.
An event a rollout of this server has stored reaches the hub at once (`Hub.heard`, a listener
of `state.heard`, with its id); when it is the next id the hub hands it out without reading the
store. Otherwise, and every `POLL_SECONDS` for what other processes wrote, the hub reads what is
new (`app.logs.events`); on PostgreSQL also as soon as another process (a replica, a CLI) has
stored some, which LISTEN/NOTIFY tells it (store/notices.py). Each event's SSE frame is
rendered once (masked) and handed to every client whose filter it matches. A client's buffer
holds at most `settings.sse_buffer` frames: one that falls behind is dropped from the hub and
told to resume (`event: resume`, `data: {"after": <the last id it got>}`), so a slow reader
never slows the hub or a rollout. Every stream ends when `state.closing` is set. The hub's
cursor is an event id: the store makes events visible in the order of their ids
(store.journal.write_events), so it never moves past one that another writer has yet to commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections import deque
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from starlette.responses import StreamingResponse

from shipyard.app.logs import event_notices, last_event_id
from shipyard.app.logs import events as stored_events
from shipyard.events import Event
from shipyard.masking import Masker
from shipyard.server.state import ServerState

log = logging.getLogger("shipyard.server")

POLL_SECONDS = 0.5  # how often the hub looks for events other processes wrote
NOTICES_STOP_SECONDS = 3.0  # how long a stop waits for the listener's thread
KEEP_ALIVE_SECONDS = 15.0
PAGE = 500


class EventStream(StreamingResponse):
    """A `text/event-stream` response that proxies pass through unbuffered."""

    media_type = "text/event-stream"

    def __init__(self, content: AsyncIterator[str]) -> None:
        super().__init__(
            content,
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )


def frame(kind: str, data: Any, masker: Masker, event_id: int | str | None = None) -> str:
    """One SSE message; `data` is masked JSON on one line."""
    text = masker.text(json.dumps(masker.json(data), sort_keys=True, default=str))
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {kind}\ndata: {text}\n\n"


def event_frame(event: Event, masker: Masker) -> str:
    return frame(event.phase.value, event.to_json(), masker, event.id)


KEEP_ALIVE = ": keep-alive\n\n"


@dataclass(frozen=True)
class Filter:
    """Which events a client wants: of one rollout, instance and/or site."""

    rollout: str | None = None
    instance: str | None = None
    site: str | None = None

    def matches(self, event: Event) -> bool:
        return (
            (self.rollout is None or event.rollout_id == self.rollout)
            and (self.instance is None or event.instance == self.instance)
            and (self.site is None or event.site == self.site)
        )


Frame = tuple[Event | None, str]  # an event and its rendered frame (None: a keep-alive)


@dataclass(eq=False)
class Client:
    """One connected stream: what it wants and the frames the hub has for it, at most `limit`
    waiting. The hub adds a burst (a thousand `queued` events of a rollout's start) in one go,
    not a frame at a time; the stream takes whatever is waiting in one go too."""

    wants: Filter
    limit: int
    frames: deque[tuple[Event, str]] = field(default_factory=deque)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    overflowed: bool = False
    ended: bool = False

    def add(self, frames: list[tuple[Event, str]]) -> bool:
        """Queue `frames`; False (and nothing queued) when they would pass the limit."""
        if len(self.frames) + len(frames) > self.limit:
            self.overflowed = True
            self.ready.set()
            return False
        self.frames.extend(frames)
        self.ready.set()
        return True

    def end(self) -> None:
        self.ended = True
        self.ready.set()


@dataclass
class Hub:
    """The one reader of new events of a server, fanning them out to its clients."""

    state: ServerState
    poll: float = POLL_SECONDS
    after: int = 0  # the last event id read
    clients: set[Client] = field(default_factory=set)
    _task: asyncio.Task[None] | None = None
    # Reads in a thread of their own: a big rollout's store writes fill the loop's default
    # pool, and a new event must not wait behind them.
    _reader: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="sse-hub")
    )
    # On PostgreSQL, a thread listening for other processes' events (store/notices.py); it
    # ends when `_listening` is set.
    _listener: threading.Thread | None = None
    _listening: threading.Event = field(default_factory=threading.Event)

    async def start(self) -> None:
        self.after = await asyncio.to_thread(last_event_id, self.state.session)
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._run(), name="sse hub")
        self.state.listeners.append(self.heard)
        notices = event_notices(self.state.session)
        if notices is not None:  # another replica's events: read as soon as they are stored
            wakeup = self.state.wakeup

            def rung() -> None:
                loop.call_soon_threadsafe(wakeup.set)

            self._listener = threading.Thread(
                target=notices.run, args=(rung, self._listening), name="event-notices",
                daemon=True,
            )  # fmt: skip
            self._listener.start()

    def heard(self, event: Event) -> None:
        """An event a rollout of this server has just stored: when it is the next id, it goes
        to the clients now, with no read of the store; after a gap (another process's events,
        or a write that failed: id 0) the hub's next read brings them in order."""
        if event.id == self.after + 1:
            self.after = event.id
            if self.clients:
                self._fan_out([event], self.state.masker())
        elif event.id == 0 or event.id > self.after:
            self.state.wakeup.set()

    async def stop(self) -> None:
        if self.heard in self.state.listeners:
            self.state.listeners.remove(self.heard)
        self._listening.set()
        if self._listener is not None:
            await asyncio.to_thread(self._listener.join, NOTICES_STOP_SECONDS)
        self._end_all()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        # A read in flight finishes before the store closes: a connection handed back to a
        # disposed pool would be left open for the garbage collector.
        await asyncio.to_thread(self._reader.shutdown, wait=True, cancel_futures=True)

    def join(self, wants: Filter) -> tuple[Client, int]:
        """A new client, and the id up to which it must read the store itself (the hub gives
        it every matching event after that one)."""
        client = Client(wants, self.state.settings.sse_buffer)
        self.clients.add(client)
        return client, self.after

    def leave(self, client: Client) -> None:
        self.clients.discard(client)

    async def _run(self) -> None:
        state = self.state
        while not state.closing.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(state.wakeup.wait(), self.poll)
            state.wakeup.clear()
            try:
                await self._read()
            except Exception:  # the store is away for a moment: try again at the next poll
                log.exception("the event stream could not read new events")
        self._end_all()

    async def _read(self) -> None:
        session = self.state.session
        while True:
            page = await asyncio.get_running_loop().run_in_executor(
                self._reader,
                lambda: list(stored_events(session, after_id=self.after, limit=PAGE)),
            )
            if not page:
                return
            full = len(page) == PAGE
            # Those `heard` handed out while the read was in flight are not sent twice.
            page = [event for event in page if event.id > self.after]
            if page:
                self.after = page[-1].id
                if self.clients:
                    self._fan_out(page, session.masker())
            if not full:
                return

    def _fan_out(self, page: list[Event], masker: Masker) -> None:
        """Each event rendered once; the clients that want the same events get one list."""
        rendered: dict[int, str] = {}  # by position in the page
        by_filter: dict[Filter, list[tuple[Event, str]]] = {}
        for client in list(self.clients):
            frames = by_filter.get(client.wants)
            if frames is None:
                frames = by_filter[client.wants] = []
                for at, event in enumerate(page):
                    if client.wants.matches(event):
                        if at not in rendered:
                            rendered[at] = event_frame(event, masker)
                        frames.append((event, rendered[at]))
            if frames and not client.add(frames):
                self.clients.discard(client)

    def _end_all(self) -> None:
        for client in list(self.clients):
            client.end()
        self.clients.clear()


async def follow_events(
    state: ServerState, hub: Hub, wants: Filter, after: int | None
) -> AsyncIterator[str]:
    """The frames of one client: what the store has after `after` (None: from now on; from
    the rollout's first event when one is named), then live ones from the hub. Ends after
    ROLLOUT_FINISHED when a rollout is named, at closing, or with `resume` when it fell behind.
    """
    client, upto = hub.join(wants)
    masker = state.masker()
    start = after if after is not None else (0 if wants.rollout is not None else upto)
    last = start
    try:
        # What was stored before the hub took this client on.
        while last < upto and not state.closing.is_set():
            page = await asyncio.to_thread(_page, state, last, wants.rollout)
            for event in page:
                if event.id > upto:
                    break
                last = event.id
                if wants.matches(event):
                    yield event_frame(event, masker)
                    if wants.rollout is not None and event.final:
                        return
            if not page or page[-1].id >= upto or len(page) < PAGE:
                break
        last = max(last, upto)  # what the hub has after `upto` is in its buffer
        async for batch in _live(state, client):
            out: list[str] = []
            for live, rendered in batch:
                if live is not None:  # else a keep-alive comment
                    if live.id <= last:
                        continue
                    last = live.id
                out.append(rendered)
                if live is not None and wants.rollout is not None and live.final:
                    yield "".join(out)
                    return
            if out:
                yield "".join(out)
        if client.overflowed:
            yield frame("resume", {"after": last}, masker)
    finally:
        hub.leave(client)


def _page(state: ServerState, after: int, rollout: str | None) -> list[Event]:
    return list(stored_events(state.session, after_id=after, rollout_id=rollout, limit=PAGE))


async def _live(state: ServerState, client: Client) -> AsyncIterator[list[Frame]]:
    """The client's waiting frames, all at once (one write for many), and a keep-alive comment
    (with no event) when it is quiet, until closing, the hub's end or overflow."""
    while not state.closing.is_set() and not client.overflowed:
        if not client.frames:
            if client.ended:
                return
            client.ready.clear()
            try:
                await asyncio.wait_for(client.ready.wait(), KEEP_ALIVE_SECONDS)
            except TimeoutError:
                yield [(None, KEEP_ALIVE)]
                continue
            if client.overflowed:
                return
        batch: list[Frame] = list(client.frames)
        client.frames.clear()
        if batch:
            yield batch


def install(app: FastAPI) -> None:
    """Run one hub per server, from its start to its stop (`hub_of` finds it)."""

    async def start(state: ServerState) -> None:
        hub = Hub(state)
        app.state.hub = hub
        await hub.start()

    async def stop(state: ServerState) -> None:
        hub: Hub | None = getattr(app.state, "hub", None)
        if hub is not None:
            await hub.stop()

    app.state.starters.append(start)
    app.state.stoppers.append(stop)


def hub_of(app: FastAPI) -> Hub:
    hub: Hub = app.state.hub
    return hub
