"""The server itself: liveness, and who the caller is."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from shipyard.server.routes.deps import Caller, State

router = APIRouter(tags=["server"])


class Health(BaseModel):
    ok: bool
    stopping: bool
    rollouts_running: int
    version: int | None


class WhoAmI(BaseModel):
    name: str
    role: str


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
    return WhoAmI(name=caller.name, role=caller.role)
