"""Rollouts: the newest first, and one rollout as a live grid of its instances by steps (each
cell's state and duration, from the rollout's events), each instance's log as it runs, cancel,
and a retry of the failed instances as a new rollout."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from shipyard.app import history
from shipyard.app.access import Permission
from shipyard.app.logs import events
from shipyard.app.session import Session
from shipyard.events import Event, Phase
from shipyard.server.pages.render import page
from shipyard.server.routes.deps import Caller, CallerSession

router = APIRouter(include_in_schema=False)

# The columns of the grid: the steps a deployment goes through, in order.
STEPS = (
    Phase.QUEUED,
    Phase.UPLOADING,
    Phase.INSTALLING,
    Phase.SWITCHING,
    Phase.RESTARTING,
    Phase.HEALTH_CHECKING,
    Phase.SOAKING,
    Phase.DRAINING,
    Phase.ROLLING_BACK,
    Phase.FINISHED,
)
RETRIED = frozenset({"failed", "lost", "rejected", "skipped"})


@dataclass
class Cell:
    """One instance's one step: when it began and how long it took (until the next step)."""

    at: datetime
    seconds: float | None = None
    result: str | None = None


@dataclass
class Line:
    """One row of the grid."""

    instance: str
    site: str | None = None
    host: str | None = None
    deployment_id: str | None = None
    cells: dict[str, Cell] = field(default_factory=dict)
    result: str | None = None
    reason: str = ""


@router.get("/rollouts", response_class=HTMLResponse)
async def rollouts(
    request: Request,
    caller: Caller,
    session: CallerSession,
    before: Annotated[str | None, Query(max_length=64)] = None,
) -> HTMLResponse:
    found = await asyncio.to_thread(history.rollouts, session, limit=50, before=before)
    values = {"rollouts": found.rollouts, "next_before": found.next_before}
    return page(request, caller, "rollouts.html.j2", values, title="Rollouts")


@router.get("/rollouts/{rollout_id}", response_class=HTMLResponse)
async def rollout_page(
    request: Request, rollout_id: str, caller: Caller, session: CallerSession
) -> HTMLResponse:
    found = await asyncio.to_thread(history.rollout, session, rollout_id)  # 404 if none
    lines = await asyncio.to_thread(_grid, session, rollout_id)
    sites = {line.site for line in lines if line.site} or await asyncio.to_thread(
        history.rollout_sites, session, found
    )
    may_act = caller.may(Permission.DEPLOY) and not caller.access.outside(sites)
    failed = [line.instance for line in lines if line.result in RETRIED]
    values: dict[str, Any] = {
        "rollout": found,
        "lines": lines,
        "steps": [s.value for s in STEPS],
        "failed": failed,
        "may_act": may_act,
        "running": found.status == "in_progress",
    }
    return page(request, caller, "rollout.html.j2", values, title=f"Rollout {rollout_id}")


def _grid(session: Session, rollout_id: str) -> list[Line]:
    """Each instance's steps from the rollout's stored events, in the order they began."""
    lines: dict[str, Line] = {}
    last: dict[str, tuple[str, datetime]] = {}
    for event in events(session, rollout_id=rollout_id):
        if event.instance is None or event.phase.of_rollout or event.phase.of_site:
            continue
        line = lines.setdefault(event.instance, Line(event.instance))
        _note(line, event, last)
    return list(lines.values())


def _note(line: Line, event: Event, last: dict[str, tuple[str, datetime]]) -> None:
    line.site = line.site or event.site
    line.host = line.host or event.host
    line.deployment_id = line.deployment_id or event.deployment_id
    before = last.get(line.instance)
    if before is not None:
        step, at = before
        cell = line.cells.get(step)
        if cell is not None and cell.seconds is None:
            cell.seconds = max(0.0, (event.at - at).total_seconds())
    phase = event.phase.value
    line.cells[phase] = Cell(event.at, result=event.result)
    last[line.instance] = (phase, event.at)
    if event.phase is Phase.FINISHED:
        line.result = event.result
        line.reason = event.detail if event.result != "success" else ""
