"""System-wide artifacts: the matrix, and deploy and retry (run synchronously: a push is one
round trip or two per host, and the answer is the run's result per host).

A caller scoped to sites deploys and retries only there (a request reaching another site is
refused whole), and reads the matrix of its own sites only."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from shipyard.app.artifacts import (
    ArtifactMatrix,
    artifact_status,
    deploy_artifacts,
    retry_artifacts,
)
from shipyard.server.routes.deps import Caller, State
from shipyard.server.scope import require_sites

router = APIRouter(tags=["artifacts"])


class ArtifactRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    artifacts: list[str] = Field(default_factory=list, max_length=10_000,
                                 description="Artifacts (none: all).")  # fmt: skip
    site: str | None = Field(None, description="Only this site.")


class DeployRequest(ArtifactRequest):
    dry_run: bool = False


@router.get("/api/artifacts")
def artifacts_matrix(
    state: State,
    caller: Caller,
    http: Request,
    site: Annotated[str | None, Query(description="Only this site.")] = None,
) -> dict[str, Any]:
    """The matrix: each artifact at each site, its state and its hosts' (the caller's sites)."""
    if site is not None:
        require_sites(state, http, caller, [site], "the artifact matrix")
    session = state.session_for(caller.name)
    found = artifact_status(session, site=site)
    mine = [c for c in found.cells if not caller.access.outside([c.site])]
    return ArtifactMatrix(tuple(mine)).to_json()


@router.post("/api/artifacts/deploy")
async def artifacts_deploy(
    body: DeployRequest, state: State, caller: Caller, http: Request
) -> dict[str, Any]:
    """Push the artifacts that changed to every host of their sites; the result per host."""
    session = state.session.acting_as(caller.name, own_lease=True)

    def scope(sites: set[str]) -> None:
        require_sites(state, http, caller, sites, "the artifact deploy")

    report = await deploy_artifacts(
        session, body.artifacts or None, site=body.site, dry_run=body.dry_run, scope=scope
    )
    return report.to_json()


@router.post("/api/artifacts/retry")
async def artifacts_retry(
    body: ArtifactRequest, state: State, caller: Caller, http: Request
) -> dict[str, Any]:
    """Push again only where the last attempt failed; the result per host."""
    session = state.session.acting_as(caller.name, own_lease=True)

    def scope(sites: set[str]) -> None:
        require_sites(state, http, caller, sites, "the artifact retry")

    report = await retry_artifacts(session, body.artifacts or None, site=body.site, scope=scope)
    return report.to_json()
