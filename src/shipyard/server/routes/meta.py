"""The server itself: liveness, and who the caller is."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from shipyard.server.routes.deps import Caller, State

router = APIRouter(tags=["server"])


class Health(BaseModel):
    ok: bool
    stopping: bool
    rollouts_running: int
    version: int | None


class WhoAmI(BaseModel):
    name: str
    roles: list[str]
    sites: list[str] | None = Field(description="The deployment role's sites; null: every site.")
    permissions: list[str]
    via: str = Field(description="token, session, or local (a server run with --no-auth).")
    read_only: bool


@router.get("/api/health")
async def health(state: State) -> Health:
    """Whether the server is up (no token needed): a load balancer's probe."""
    return Health(
        ok=not state.jobs.stopping,
        stopping=state.jobs.stopping,
        rollouts_running=len(state.jobs.running),
        version=state.version,
    )


@router.get("/api/whoami")
async def whoami(caller: Caller) -> WhoAmI:
    """The caller as the server knows it."""
    access = caller.access
    return WhoAmI(
        name=caller.name,
        roles=caller.roles,
        sites=sorted(access.sites) if access.scoped and access.sites is not None else None,
        permissions=sorted(p.value for p in access.permissions),
        via=caller.via,
        read_only=access.read_only,
    )
