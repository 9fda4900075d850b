"""The audit page: the audit log newest first, searched by actor, action, target (an
instance) and time range, a page at a time; and whether its hash chain is intact."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from shipyard.app import queries
from shipyard.app.eventlog import parse_when
from shipyard.server.pages.render import page
from shipyard.server.routes.deps import Caller, CallerSession

router = APIRouter(include_in_schema=False)

PAGE_ENTRIES = 100
Text = Annotated[str | None, Query(max_length=400)]
When = Annotated[str | None, Query(max_length=64)]


@router.get("/audit", response_class=HTMLResponse)
async def audit(
    request: Request,
    caller: Caller,
    session: CallerSession,
    actor: Text = None,
    action: Text = None,
    target: Text = None,
    since: When = None,
    until: When = None,
    before: Annotated[int | None, Query(ge=1, le=2**62)] = None,
) -> HTMLResponse:
    now = datetime.now(UTC)
    found = await asyncio.to_thread(
        queries.audit,
        session,
        actor=actor or None,
        action=action or None,
        instance=target or None,
        since=parse_when(since, now=now, what="since") if since else None,
        until=parse_when(until, now=now, what="until") if until else None,
        limit=PAGE_ENTRIES,
        before=before,
    )
    verdict = await asyncio.to_thread(queries.audit_verify, session)
    chosen = {
        "actor": actor or "",
        "action": action or "",
        "target": target or "",
        "since": since or "",
        "until": until or "",
    }
    values: dict[str, Any] = {
        "entries": found.entries,
        "next_before": found.oldest_id if found.more else None,
        "paged": before is not None,
        "verdict": verdict,
        "chosen": chosen,
        "filtered": any(chosen.values()),
    }
    return page(request, caller, "audit.html.j2", values, title="Audit")
