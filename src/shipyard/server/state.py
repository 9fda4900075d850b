"""What a running server holds: its settings, the served project's session, the store, the
rollouts it runs, and who listens to the events it writes. Made by `create_app`'s lifespan; no
module-level state."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from shipyard.app import tokens, versions
from shipyard.app.accounts import LoginPolicy
from shipyard.events import Event
from shipyard.server.jobs import Jobs
from shipyard.server.settings import Settings

if TYPE_CHECKING:
    from shipyard.app.accounts import BrowserSession
    from shipyard.app.session import Session
    from shipyard.masking import Masker

log = logging.getLogger("shipyard.server")
TOKEN_TOUCH_SECONDS = 60.0  # a token's (or session's) last-used time is written at most this often
EventListener = Callable[[Event], None]


@dataclass
class ServerState:
    """One server's state. `session` is the current config version's session; each request
    acts through `session_for` its caller."""

    settings: Settings
    session: Session
    jobs: Jobs
    login_policy: LoginPolicy = field(default_factory=LoginPolicy)
    admin_token: str | None = None  # made at this start: shown once, then forgotten
    version: int | None = None  # the config version being served
    listeners: list[EventListener] = field(default_factory=list)
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)  # the SSE hub: read the store
    closing: asyncio.Event = field(default_factory=asyncio.Event)  # streams end when set
    publishing: threading.Lock = field(default_factory=threading.Lock)  # one publish at a time
    _touched: dict[str, float] = field(default_factory=dict)
    _drain: asyncio.Task[None] | None = None

    def serve(self, session: Session, version: int, *, record: bool = True) -> None:
        """Serve config version `version` from now on, through `session` (a request already
        running goes on with the session it began with); with `record`, every replica is to
        serve it too (the store keeps which: server/sweeper.py)."""
        if record:
            versions.record_served(session, version, replica=self.settings.replica_name)
        self.session, self.version = session, version
        self.jobs.session = session

    def masker(self) -> Masker:
        return self.session.masker()

    def session_for(self, actor: str) -> Session:
        return self.session.acting_as(actor)

    def heard(self, event: Event) -> None:
        """An event a rollout of this server stored (the EventBus hands its subscribers each
        event after the write, with its id): tell every listener (the SSE hub, metrics,
        webhooks)."""
        for listener in self.listeners:
            listener(event)

    def stopping(self) -> None:
        """SIGTERM: refuse new rollouts, cancel the running ones, end the streams (on the loop)."""
        self.closing.set()
        self.wakeup.set()
        self._drain = asyncio.get_running_loop().create_task(self.jobs.shutdown())

    def note_token_use(self, token_id: str, actor: str, address: str) -> None:
        if self._due(f"token:{token_id}"):
            tokens.note_use(self.session, token_id, actor=actor, address=address)

    def note_session_use(self, found: BrowserSession) -> None:
        """Keep a browser session from going idle (its last-seen time, once a minute)."""
        if self._due(f"session:{found.hash}"):
            self.session.store.touch_session(found.hash)

    def _due(self, key: str) -> bool:
        now = time.monotonic()
        if now - self._touched.get(key, -TOKEN_TOUCH_SECONDS) < TOKEN_TOUCH_SECONDS:
            return False
        self._touched[key] = now
        return True


def open_state(settings: Settings, environ: Mapping[str, str]) -> ServerState:
    """The served project loaded and flattened, its store opened (recovery done), the admin
    token made if there is none, and the served directory published as a config version if
    no version holds it yet (source "start")."""
    from shipyard.app.session import Session

    session = Session.from_environment(
        settings.project, environ, replica=settings.replica_name,
        lease_seconds=lease_seconds(settings, environ),
    )  # fmt: skip
    try:
        session.flatten(empty_ok=True)
        token = None if settings.no_auth else tokens.first_admin_token(session)
        published = versions.publish_directory(session, source="start")
        served = published.version.id
        current = versions.served(session)
        if published.created or current is None:
            versions.record_served(session, served, replica=settings.replica_name)
        elif current != served:
            # The directory holds an older known version (kept in the store): serve the one
            # the replicas serve, written into the directory, rather than roll them all back.
            log.warning(
                "the served directory holds config version %d; serving version %d, which the"
                " store says is served (POST /api/versions/reload publishes the directory)",
                served, current,
            )  # fmt: skip
            session = versions.follow(session, current)
            served = current
    except BaseException:
        session.close()
        raise
    jobs = Jobs(session, limit=settings.max_rollouts, grace=settings.shutdown_grace)
    return ServerState(
        settings=settings, session=session, jobs=jobs, admin_token=token, version=served,
        login_policy=login_policy(settings),
    )  # fmt: skip


REPLICA_LEASE_SECONDS = 20.0  # on PostgreSQL: a dead replica's work is failed within ~25 s
ONE_SERVER_LEASE_SECONDS = 60.0  # on SQLite: one server, whose store may stall under load


def lease_seconds(settings: Settings, environ: Mapping[str, str]) -> float:
    """The lease the server's rollouts hold: as set, else by the store (see the constants)."""
    if settings.lease_seconds is not None:
        return settings.lease_seconds
    from shipyard.app.session import shared_store

    return REPLICA_LEASE_SECONDS if shared_store(environ) else ONE_SERVER_LEASE_SECONDS


def login_policy(settings: Settings) -> LoginPolicy:
    from datetime import timedelta

    return LoginPolicy(
        account_failures=settings.login_failures,
        address_failures=settings.login_address_failures,
        window=timedelta(seconds=settings.login_window),
        lockout=timedelta(seconds=settings.login_lockout),
        idle=timedelta(seconds=settings.session_idle),
        lifetime=timedelta(seconds=settings.session_lifetime),
    )
