"""The overview: each site's health, counts by status, stale instances, rollouts in flight."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from shipyard.app import health, history
from shipyard.app.health_values import HealthReport
from shipyard.server.pages.render import page
from shipyard.server.routes.deps import Caller, CallerSession
from shipyard.server.routes.status import status_view

router = APIRouter(include_in_schema=False)

IN_FLIGHT_LOOKED_AT = 200  # the newest rollouts searched for those still running


@router.get("/", response_class=HTMLResponse)
async def overview(request: Request, caller: Caller, session: CallerSession) -> HTMLResponse:
    snapshot = await status_view(request).current(session)
    counts: dict[str, dict[str, int]] = {}
    stale: dict[str, int] = {}
    for row in snapshot.rows:
        per_site = counts.setdefault(row.site, {})
        per_site[row.status] = per_site.get(row.status, 0) + 1
        if row.stale:
            stale[row.site] = stale.get(row.site, 0) + 1
    statuses = sorted({s for per_site in counts.values() for s in per_site})
    report, recent = await asyncio.to_thread(_reads, session)
    values: dict[str, Any] = {
        "sites": report.sites,
        "counts": counts,
        "statuses": statuses,
        "stale": stale,
        "total": len(snapshot.rows),
        "stale_total": sum(stale.values()),
        "failed_total": sum(c.get("failed", 0) for c in counts.values()),
        "running": [r for r in recent.rollouts if r.status == "in_progress"],
        "recent": recent.rollouts[:10],
    }
    return page(request, caller, "overview.html.j2", values, title="Overview")


def _reads(session: Any) -> tuple[HealthReport, history.RolloutPage]:
    return health.health(session), history.rollouts(session, limit=IN_FLIGHT_LOOKED_AT)
