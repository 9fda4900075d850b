"""The dashboard's own style sheet and script, from the package (nothing else is served)."""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import Response

from shipyard.server.errors import ApiError

router = APIRouter(include_in_schema=False)

KINDS = {"dashboard.css": "text/css", "dashboard.js": "text/javascript"}


@cache
def _content(name: str) -> bytes:
    return files("shipyard.server").joinpath("static", name).read_bytes()


@router.get("/static/{name}")
def static_file(name: str) -> Response:
    kind = KINDS.get(name)
    if kind is None:
        raise ApiError(404, "not_found", f"no static file {name!r}")
    return Response(
        _content(name),
        media_type=f"{kind}; charset=utf-8",
        headers={"Cache-Control": "max-age=300"},
    )


@router.get("/favicon.ico")
def no_icon() -> Response:
    """Nothing (a browser asks for it on every page, the JSON answers' too)."""
    return Response(status_code=204, headers={"Cache-Control": "max-age=86400"})
