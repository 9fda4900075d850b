"""The dashboard: server-rendered pages over the application layer, live through the SSE
stream, every action through the API routes (see render.py)."""

from __future__ import annotations

from fastapi import APIRouter

from shipyard.server.pages import instances, overview, rollouts, static

ROUTERS: list[APIRouter] = [static.router, overview.router, instances.router, rollouts.router]
