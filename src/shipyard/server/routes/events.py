"""Stored events, oldest first, after an id: what a client that missed some reads back."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from shipyard.app import logs
from shipyard.server.routes.answers import READ_ERRORS
from shipyard.server.routes.deps import CallerSession

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
