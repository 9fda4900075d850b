"""Preparing hosts: bootstrap those of the project (or of one site), each host's result."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from shipyard.app import hosts
from shipyard.server.routes.answers import READ_ERRORS
from shipyard.server.routes.deps import Caller, CallerSession, State
from shipyard.server.scope import require_sites

router = APIRouter(tags=["hosts"], responses=READ_ERRORS)


class BootstrapRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    site: str | None = Field(None, max_length=200, description="Only this site's hosts.")


class BootstrapResult(BaseModel):
    host: str
    found: list[str]
    did: list[str]
    error: str = Field(description="Empty when it went well.")


class BootstrapAnswer(BaseModel):
    hosts: list[BootstrapResult]
    ok: bool


@router.post("/api/bootstrap")
async def bootstrap(
    session: CallerSession, state: State, caller: Caller, request: Request,
    body: BootstrapRequest | None = None,
) -> BootstrapAnswer:  # fmt: skip
    """Prepare the hosts once: deploy root, a reachable supervisor, rights, nginx where needed.
    A host's trouble is its result; the others go on. Every chosen host's site must be the
    caller's."""
    site = body.site if body is not None else None
    chosen = hosts.bootstrap_hosts(session, site=site)
    require_sites(state, request, caller, {h.site for h in chosen}, "the bootstrap")
    results = await hosts.bootstrap(session, site=site)
    return BootstrapAnswer.model_validate(
        {"hosts": [r.to_json() for r in results], "ok": all(not r.error for r in results)}
    )
