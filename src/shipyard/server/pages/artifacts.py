"""The artifacts page: each system-wide artifact at each site it goes to (its state, its
hosts' states, why the failed ones failed), with deploy and a retry of a failed site."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from shipyard.app.artifacts import MatrixCellView, artifact_status
from shipyard.server.pages.render import Viewer, page
from shipyard.server.routes.deps import Caller, CallerSession

router = APIRouter(include_in_schema=False)

# An artifact cell's state as a sign beside its text (the page renderer's signs know no
# `stale` or `not deployed`).
SIGNS = {"success": "✓", "unchanged": "=", "failed": "✗", "stale": "~", "not deployed": "○"}


@dataclass(frozen=True)
class ArtifactRow:
    """One row of the matrix: an artifact, its cell per site (None: not sent there), and the
    sites this caller may push it to."""

    name: str
    cells: dict[str, MatrixCellView | None]
    deployable: tuple[str, ...]
    everywhere: bool  # the caller may push it to every site it goes to


@router.get("/artifacts", response_class=HTMLResponse)
async def artifacts(request: Request, caller: Caller, session: CallerSession) -> HTMLResponse:
    found = await asyncio.to_thread(artifact_status, session)
    mine = [c for c in found.cells if not caller.access.outside([c.site])]
    sites = list(dict.fromkeys(c.site for c in mine))
    viewer = Viewer.of(caller)
    values: dict[str, Any] = {
        "rows": rows_of(mine, sites, viewer),
        "sites": sites,
        "signs": SIGNS,
        "failed": sum(1 for c in mine if c.state == "failed"),
        "stale": sum(1 for c in mine if c.state == "stale"),
    }
    return page(request, caller, "artifacts.html.j2", values, title="Artifacts")


def rows_of(cells: list[MatrixCellView], sites: list[str], viewer: Viewer) -> list[ArtifactRow]:
    """The matrix's rows, in the order the artifacts come."""
    by_artifact: dict[str, dict[str, MatrixCellView]] = {}
    for cell in cells:
        by_artifact.setdefault(cell.artifact, {})[cell.site] = cell
    out = []
    for name, placed in by_artifact.items():
        allowed = tuple(s for s in placed if viewer.deploys_to(s))
        out.append(
            ArtifactRow(
                name=name,
                cells={s: placed.get(s) for s in sites},
                deployable=allowed,
                everywhere=bool(allowed) and len(allowed) == len(placed),
            )
        )
    return out
