"""`GET /metrics`: the server's Prometheus metrics (see server/metrics.py for what each means)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse

from shipyard.server import metrics, sse
from shipyard.server.routes.deps import State

router = APIRouter(tags=["server"])

TEXT: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/plain": {}}, "description": "Prometheus text format."}
}


@router.get("/metrics", response_class=PlainTextResponse, responses=TEXT)
async def scrape(request: Request, state: State) -> PlainTextResponse:
    """Deployments, durations, instances, rollouts in flight, SSE clients, HTTP requests."""
    clients = len(sse.hub_of(request.app).clients)
    text = await metrics.scrape(request.app, state, clients)
    return PlainTextResponse(text, media_type=metrics.CONTENT_TYPE)
