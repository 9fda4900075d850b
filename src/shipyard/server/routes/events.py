"""Stored events, oldest first, after an id: what a client that missed some reads back; the
site event log, newest first, filtered and searched; and its purge."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from shipyard.app import eventlog, logs
from shipyard.events import Severity
from shipyard.server.routes.answers import READ_ERRORS
from shipyard.server.routes.deps import Caller, CallerSession, State
from shipyard.server.scope import require_sites

router = APIRouter(tags=["events"], responses=READ_ERRORS)

Name = Annotated[str | None, Query(max_length=400)]


class EventOut(BaseModel):
    id: int
    kind: str
    phase: str
    at: str
    rollout_id: str | None
    deployment_id: str | None
    instance: str | None
    site: str | None
    host: str | None
    result: str | None
    detail: str


class EventPage(BaseModel):
    events: list[EventOut]
    last_id: int  # pass as `after` for the next page (the `after` given when none came)


@router.get("/api/events")
def events(
    session: CallerSession,
    after: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 500,
    rollout: Name = None,
    instance: Name = None,
    site: Name = None,
) -> EventPage:
    """Events stored after id `after` (of one rollout, instance or site), oldest first."""
    found = list(
        logs.events(
            session, after_id=after, rollout_id=rollout, instance=instance, site=site, limit=limit
        )
    )
    return EventPage.model_validate(
        {"events": [e.to_json() for e in found], "last_id": found[-1].id if found else after}
    )


class LogEventOut(EventOut):
    subject: str | None
    severity: str
    source: str
    message: str


class EventLogOut(BaseModel):
    events: list[LogEventOut]
    next_before: int | None  # pass as `before` for the next (older) page; None: no more


class EventLogQuery(BaseModel):
    """The filters of the event log; an unknown one is refused (422), not ignored."""

    model_config = ConfigDict(extra="forbid")

    site: str | None = Field(None, max_length=255)
    severity: Severity | None = None
    since: datetime | None = None
    until: datetime | None = None
    source: str | None = Field(None, max_length=400)
    search: str | None = Field(None, max_length=400, description="All of these words.")
    before: int | None = Field(None, ge=1, le=2**62, description="Only events older than this id.")
    limit: int = Field(500, ge=1, le=10_000)


class PurgeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    days: int | None = Field(None, ge=1, le=100_000, description="Default: the server's setting.")


class Purged(BaseModel):
    deleted: int
    days: int


@router.get("/api/events/log")
def event_log(
    filters: Annotated[EventLogQuery, Query()],
    session: CallerSession,
    state: State,
    caller: Caller,
    http: Request,
) -> EventLogOut:
    """The site event log, newest first, 500 a page (`next_before` pages back). A caller
    limited to some sites sees only theirs; naming another site is refused (403)."""
    scope = None
    if caller.access.scoped:
        scope = caller.access.sites or frozenset()
        if filters.site is not None:
            require_sites(state, http, caller, [filters.site], "the event log")
    page = eventlog.event_log(
        session, **filters.model_dump(exclude={"limit"}), limit=filters.limit, scope=scope
    )
    return EventLogOut.model_validate(page.to_json())


@router.post("/api/events/purge")
def purge(session: CallerSession, state: State, body: PurgeRequest | None = None) -> Purged:
    """Delete the events older than `days` (default: the server's event_retention_days), in
    bounded transactions; audited."""
    days = (body or PurgeRequest()).days or state.settings.event_retention_days
    deleted = eventlog.purge_events(session, days=days)
    return Purged(deleted=deleted, days=days)
