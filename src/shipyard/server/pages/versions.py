"""The versions page: the config versions newest first (the one served marked), a diff of any
two of them (files as unified diffs, and each instance whose revision changes), and a publish
of the served directory for designers."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from shipyard.app import versiondiff, versions
from shipyard.server.pages.render import link, page
from shipyard.server.routes.deps import Caller, CallerSession, State

router = APIRouter(include_in_schema=False)

PAGE_VERSIONS = 50
Number = Annotated[int | None, Query(ge=1, le=2**31 - 1)]
VersionNumber = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.get("/versions", response_class=HTMLResponse)
async def versions_page(
    request: Request,
    caller: Caller,
    session: CallerSession,
    state: State,
    before: Number = None,
    old: Number = None,
    new: Number = None,
) -> Response:
    if old is not None and new is not None:  # the compare form: to the diff's own page
        return RedirectResponse(link(f"/versions/{old}/diff/{new}"), status_code=303)
    found = await asyncio.to_thread(versions.versions, session, limit=PAGE_VERSIONS, before=before)
    shown = found.versions
    newest = shown[0].id if shown else None
    values: dict[str, Any] = {
        "versions": shown,
        "next_before": found.next_before,
        "paged": before is not None,
        "serving": state.version,
        "default_old": shown[1].id if len(shown) > 1 else newest,
        "default_new": newest,
    }
    return page(request, caller, "versions.html.j2", values, title="Versions")


@router.get("/versions/{old}/diff/{new}", response_class=HTMLResponse)
async def version_diff(
    request: Request, caller: Caller, session: CallerSession, old: VersionNumber, new: VersionNumber
) -> HTMLResponse:
    found = await asyncio.to_thread(versiondiff.diff_versions, session, old, new)
    values: dict[str, Any] = {"diff": found}
    return page(
        request, caller, "version_diff.html.j2", values, title=f"Version {old} against {new}"
    )
