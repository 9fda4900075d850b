"""Health monitoring and drift: each site's, host's and instance's health as the monitor last
saw it, a round now, drift (a deep round) and accepting files changed on purpose."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from shipyard.app import health
from shipyard.server.auth import Principal
from shipyard.server.routes.answers import READ_ERRORS
from shipyard.server.routes.deps import Caller, CallerSession, State
from shipyard.server.scope import require_sites
from shipyard.server.state import ServerState

router = APIRouter(tags=["health"], responses=READ_ERRORS)


class SiteChoice(BaseModel):
    model_config = ConfigDict(extra="forbid")

    site: str | None = Field(None, max_length=200, description="Only this site's hosts.")


class AcceptRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    instances: list[str] = Field(
        min_length=1, max_length=10_000, description="Instances, service@host."
    )


@router.get("/api/hosts/health")
def host_health(
    session: CallerSession,
    site: str | None = Query(None, max_length=200, description="Only this site."),
) -> dict[str, Any]:
    """Each site's health (from its hosts, its instances and its deployment failures of the
    last hour), each host's (online, offline, unknown) and each instance's, as the monitor
    last saw them."""
    return health.health(session, site=site).to_json()


@router.post("/api/hosts/health/check")
async def check_health(
    session: CallerSession, state: State, caller: Caller, request: Request,
    body: SiteChoice | None = None,
) -> dict[str, Any]:  # fmt: skip
    """One health round now over the chosen hosts (the caller's sites), stored; the report."""
    site = body.site if body is not None else None
    sites = _scope(state, request, caller, site, "the health check")
    report = await health.check(session, site=site, sites=sites, on_event=state.heard)
    return report.to_json()


@router.post("/api/drift")
async def drift(
    session: CallerSession, state: State, caller: Caller, request: Request,
    body: SiteChoice | None = None,
) -> dict[str, Any]:  # fmt: skip
    """A deep round over the chosen hosts (every file's checksum verified): the report, its
    drift per instance and the services hosts hold that the store does not know."""
    site = body.site if body is not None else None
    sites = _scope(state, request, caller, site, "the drift check")
    report = await health.check(session, site=site, sites=sites, deep=True, on_event=state.heard)
    return report.to_json()


@router.post("/api/drift/accept")
async def accept(
    body: AcceptRequest, session: CallerSession, state: State, caller: Caller, request: Request
) -> dict[str, Any]:
    """Take the named instances' live files as they are now (their checksums written again on
    the host). Every instance's site must be the caller's."""
    require_sites(state, request, caller, health.sites_of(session, body.instances), "the accept")
    accepted = await health.accept(session, body.instances, sites=caller.access.sites)
    return {"accepted": accepted}


def _scope(
    state: ServerState, request: Request, caller: Principal, site: str | None, what: str
) -> frozenset[str] | None:
    """The sites a round may reach: the named one (if the caller's), else the caller's."""
    if site is not None:
        require_sites(state, request, caller, {site}, what)
    return caller.access.sites if caller.access.scoped else None
