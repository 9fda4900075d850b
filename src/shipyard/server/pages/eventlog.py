"""The events page: the site event log, newest first, 500 a page, searched by keywords and
filtered by site, severity, source and time; a caller limited to some sites sees theirs."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from shipyard.app import eventlog
from shipyard.events import Severity
from shipyard.server.pages.render import page
from shipyard.server.routes.deps import Caller, CallerSession, State
from shipyard.server.scope import require_sites

router = APIRouter(include_in_schema=False)

Text = Annotated[str | None, Query(max_length=400)]
SEVERITY_SIGNS = {"info": "i", "warning": "!", "error": "✗"}


@router.get("/events", response_class=HTMLResponse)
async def events(
    request: Request,
    caller: Caller,
    session: CallerSession,
    state: State,
    q: Text = None,
    site: Annotated[str | None, Query(max_length=255)] = None,
    severity: Annotated[str | None, Query(max_length=16)] = None,
    source: Text = None,
    since: Annotated[str | None, Query(max_length=64)] = None,
    until: Annotated[str | None, Query(max_length=64)] = None,
    before: Annotated[int | None, Query(ge=1, le=2**62)] = None,
) -> HTMLResponse:
    scope = None
    if caller.access.scoped:
        scope = caller.access.sites or frozenset()
        if site:
            require_sites(state, request, caller, [site], "the event log")
    now = datetime.now(UTC)
    found = await asyncio.to_thread(
        eventlog.event_log,
        session,
        site=site or None,
        severity=eventlog.parse_severity(severity, what="severity") if severity else None,
        since=eventlog.parse_when(since, now=now, what="since") if since else None,
        until=eventlog.parse_when(until, now=now, what="until") if until else None,
        source=source or None,
        search=(q or "").strip() or None,
        before=before,
        limit=eventlog.PAGE,
        scope=scope,
    )
    sites = [s for s in session.load().project.sites if scope is None or s in scope]
    chosen = {
        "q": q or "",
        "site": site or "",
        "severity": severity or "",
        "source": source or "",
        "since": since or "",
        "until": until or "",
    }
    values: dict[str, Any] = {
        "events": found.events,
        "next_before": found.next_before,
        "paged": before is not None,
        "sites": sites,
        "severities": [s.value for s in Severity],
        "severity_signs": SEVERITY_SIGNS,
        "chosen": chosen,
        "filtered": any(chosen.values()),
        "page_size": eventlog.PAGE,
    }
    return page(request, caller, "events.html.j2", values, title="Events")
