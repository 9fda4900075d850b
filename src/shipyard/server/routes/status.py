"""The status of every instance: filters, keyset pages, and blue/green slots on request.

The rows come from the server's kept view (server/status_view.py), already encoded: the
answer is joined from bytes, not rendered per request. `slots=true` asks the hosts and is
made for its request alone.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel

from shipyard.app import queries
from shipyard.server.routes.answers import READ_ERRORS
from shipyard.server.routes.deps import CallerSession
from shipyard.server.status_view import (
    NO_LIMIT,
    StatusFilter,
    StatusView,
    check_filter,
    page_of,
    page_of_report,
)

router = APIRouter(tags=["status"], responses=READ_ERRORS)

Status = Literal["pending", "in_progress", "success", "failed", "skipped", "never deployed"]


class Slots(BaseModel):
    live: str | None = None
    draining: str | None = None
    blue: str | None = None
    green: str | None = None
    error: str | None = None


class LastDeployment(BaseModel):
    id: str
    kind: str
    actor: str
    started: str
    finished: str | None
    status: str
    error: str | None


class StatusRow(BaseModel):
    instance: str
    service: str
    site: str
    host: str
    status: str
    deployed_revision: str | None
    revision: str
    stale: bool
    attention: bool
    last: LastDeployment | None
    slots: Slots | None


class StatusPage(BaseModel):
    rows: list[StatusRow]
    total: int
    next_after: str | None


def status_view(request: Request) -> StatusView:
    """The server's kept view, made at the first status request."""
    found = getattr(request.app.state, "status_view", None)
    if not isinstance(found, StatusView):
        found = StatusView()
        request.app.state.status_view = found
    return found


@router.get("/api/status", response_model=StatusPage)
async def status(
    request: Request,
    session: CallerSession,
    site: Annotated[str | None, Query(max_length=200)] = None,
    service: Annotated[str | None, Query(max_length=200)] = None,
    status: Status | None = None,
    stale: bool | None = None,
    after: Annotated[
        str | None, Query(max_length=400, description="The last instance of the page before.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=NO_LIMIT)] = 1000,
    slots: Annotated[
        bool, Query(description="Ask the hosts for blue/green slot states (slower).")
    ] = False,
) -> Response:
    """Per instance: site, host, status, deployed revision, stale or not, the last deployment.
    A page ends at `limit` rows; `next_after` (None on the last page) is the next's `after`."""
    wanted = StatusFilter(site=site, service=service, status=status, stale=stale)
    snapshot = await status_view(request).current(session)
    if slots:
        check_filter(snapshot, wanted)
        report = await queries.status(session, site=site, slots=True)
        page = page_of_report(report, wanted, session.masker(), after=after, limit=limit)
    else:
        page = page_of(snapshot, wanted, after=after, limit=limit)
    return Response(page.render(), media_type="application/json")
