"""The dashboard: server-rendered pages over the application layer, live through the SSE
stream, every action through the API routes (see render.py)."""

from __future__ import annotations

from fastapi import APIRouter

from shipyard.server.pages import (
    admin,
    artifacts,
    audit,
    eventlog,
    instances,
    overview,
    rollouts,
    static,
    versions,
)

ROUTERS: list[APIRouter] = [
    static.router,
    overview.router,
    instances.router,
    rollouts.router,
    artifacts.router,
    eventlog.router,
    audit.router,
    versions.router,
    admin.router,
]
