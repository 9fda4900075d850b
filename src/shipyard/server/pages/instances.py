"""The instances: a page at a time of every instance (filters by site, service, status, label,
stale and free text; cells follow the event stream), and one instance's page (its diff, its
history, the revisions kept to roll back to, blue/green slots, lifecycle buttons)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from shipyard.app import history, project, queries
from shipyard.app.queries import StatusRow
from shipyard.app.session import Session
from shipyard.errors import UsageError
from shipyard.server.pages.render import page
from shipyard.server.routes.deps import Caller, CallerSession
from shipyard.server.routes.status import status_view

router = APIRouter(include_in_schema=False)

PAGE_ROWS = 200
MAX_PAGE_ROWS = 1000
Text = Annotated[str | None, Query(max_length=200)]


@router.get("/instances", response_class=HTMLResponse)
async def instances(
    request: Request,
    caller: Caller,
    session: CallerSession,
    site: Text = None,
    service: Text = None,
    status: Text = None,
    label: Text = None,
    stale: Annotated[str | None, Query(pattern="^(true|false)?$")] = None,
    q: Text = None,
    after: Annotated[str | None, Query(max_length=400)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_ROWS)] = PAGE_ROWS,
    view: Annotated[str, Query(pattern="^(list|grid)$")] = "list",
) -> HTMLResponse:
    snapshot = await status_view(request).current(session)
    if site and site not in snapshot.sites:
        raise UsageError(f'unknown site "{site}"')
    if service and service not in snapshot.services:
        raise UsageError(f'unknown service "{service}"')
    host_labels = _label_hosts(session)
    labelled = {h for h, labels in host_labels.items() if label in labels} if label else None
    wanted = (stale == "true") if stale else None
    needle = (q or "").strip().lower()
    kept = [
        row
        for row in snapshot.rows
        if (not site or row.site == site)
        and (not service or row.service == service)
        and (not status or row.status == status)
        and (wanted is None or row.stale == wanted)
        and (labelled is None or row.host in labelled)
        and (not needle or needle in row.instance.lower() or needle in row.host.lower())
    ]
    if view == "grid":
        keys = list(dict.fromkeys(row.host for row in kept))  # a page of hosts, all services
    else:
        keys = [row.instance for row in kept]
    start = keys.index(after) + 1 if after in keys else 0
    page_keys = set(keys[start : start + limit])
    shown = [row for row in kept if (row.host if view == "grid" else row.instance) in page_keys]
    more = start + limit < len(keys)
    values: dict[str, Any] = {
        "view": view,
        "rows": shown,
        "grid": _grid(shown) if view == "grid" else None,
        "total": len(kept),
        "first": start + 1 if shown else 0,
        "last": min(start + limit, len(keys)),
        "unit": "host(s)" if view == "grid" else "instance(s)",
        "next_after": keys[start + limit - 1] if more and shown else None,
        "sites": sorted(snapshot.sites),
        "services": sorted(snapshot.services),
        "statuses": sorted({row.status for row in snapshot.rows}),
        "labels": sorted({one for labels in host_labels.values() for one in labels}),
        "chosen": {
            "site": site or "",
            "service": service or "",
            "status": status or "",
            "label": label or "",
            "stale": stale or "",
            "q": q or "",
            "limit": limit,
            "view": view,
        },
    }
    return page(request, caller, "instances.html.j2", values, title="Instances")


@router.get("/instances/{instance}", response_class=HTMLResponse)
async def instance_page(
    request: Request, instance: str, caller: Caller, session: CallerSession
) -> HTMLResponse:
    shown = project.show(session, instance)  # 400 naming an unknown instance
    snapshot = await status_view(request).current(session)
    at = snapshot.position.get(instance)
    row: StatusRow | None = snapshot.rows[at] if at is not None else None
    [found] = await asyncio.to_thread(queries.diff, session, [instance])
    past = await asyncio.to_thread(history.instance_history, session, instance)
    chosen = session.flatten(empty_ok=True).instances.get(instance)
    slots = None
    if chosen is not None and chosen.strategy.uses_slots:
        slots = (await queries.slot_states(session, [chosen])).get(instance)
    values: dict[str, Any] = {
        "instance": instance,
        "row": row,
        "revision": shown.revision,
        "entries": found.entries,
        "history": past,
        "slots": slots,
        "strategy": chosen.strategy.kind if chosen is not None else "",
    }
    return page(request, caller, "instance.html.j2", values, title=instance)


def _grid(rows: Sequence[StatusRow]) -> dict[str, Any]:
    """Rows by host (in order) and service: the grid's cells."""
    services = sorted({row.service for row in rows})
    hosts: dict[str, dict[str, StatusRow]] = {}
    sites: dict[str, str] = {}
    for row in rows:
        hosts.setdefault(row.host, {})[row.service] = row
        sites[row.host] = row.site
    return {"services": services, "hosts": hosts, "sites": sites}


def _label_hosts(session: Session) -> dict[str, Sequence[str]]:
    """host -> its labels, from the served project."""
    loaded = session.load()
    return {
        name: list(host.labels)
        for site in loaded.project.sites.values()
        for name, host in site.hosts.items()
    }
