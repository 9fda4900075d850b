"""Live streams (Server-Sent Events): every event as it is stored, and one deployment's step
output as it runs. See server/sse.py for how one reader serves every client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request

from shipyard.app.logs import DeploymentLog, deployment_log
from shipyard.server import sse
from shipyard.server.routes.deps import CallerSession, State
from shipyard.server.state import ServerState

router = APIRouter(tags=["streams"])

LOG_POLL_SECONDS = 0.5
STREAM: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events."}
}


@router.get("/api/events/stream", response_class=sse.EventStream, responses=STREAM, status_code=200)
async def event_stream(
    request: Request,
    state: State,
    rollout: Annotated[str | None, Query(max_length=64, description="Only this rollout.")] = None,
    instance: Annotated[
        str | None, Query(max_length=500, description="Only this instance.")
    ] = None,
    site: Annotated[str | None, Query(max_length=200, description="Only this site.")] = None,
    after: Annotated[
        int | None,
        Query(
            ge=0,
            description="Only events after this id (default: from now on;"
            " with `rollout`, from its first event).",
        ),
    ] = None,
    last_event_id: Annotated[
        str | None, Header(max_length=32, description="Resume after this event id.")
    ] = None,
) -> sse.EventStream:
    """Every event as it is stored: `id: <event id>`, `event: <phase>`, `data: <event>`.
    Reconnect with `Last-Event-ID` (or `after`) to miss nothing; with `rollout`, the stream
    ends after its `rollout-finished`; `event: resume` with `data: {"after": id}` says the
    client fell behind and must reconnect from that id."""
    resume = _event_id(last_event_id) if last_event_id else after
    wants = sse.Filter(rollout=rollout, instance=instance, site=site)
    hub = sse.hub_of(request.app)
    return sse.EventStream(sse.follow_events(state, hub, wants, resume))


@router.get(
    "/api/deployments/{deployment_id}/log/stream",
    response_class=sse.EventStream,
    status_code=200,
    responses=STREAM,
)
async def log_stream(deployment_id: str, state: State, session: CallerSession) -> sse.EventStream:
    """One deployment's step output as each step is stored (`event: step`, `id: <seq>`), then
    `event: end` with its status and error once it is over."""
    first = await asyncio.to_thread(deployment_log, session, deployment_id)  # 400 if unknown
    return sse.EventStream(_follow_log(state, first))


async def _follow_log(state: ServerState, first: DeploymentLog) -> AsyncIterator[str]:
    masker = state.masker()
    log, seen = first, 0
    while True:
        for step in log.steps[seen:]:
            yield sse.frame("step", step.to_json(), masker, step.seq)
        seen = len(log.steps)
        if log.over:
            yield sse.frame("end", {"status": log.status, "error": log.error}, masker)
            return
        if state.closing.is_set():
            return
        closing = asyncio.ensure_future(state.closing.wait())
        await asyncio.wait([closing], timeout=LOG_POLL_SECONDS)
        closing.cancel()
        log = await asyncio.to_thread(deployment_log, state.session, first.deployment_id)


def _event_id(text: str) -> int:
    from shipyard.errors import UsageError

    try:
        value = int(text.strip())
    except ValueError:
        raise UsageError(f"Last-Event-ID: expected an event id (a number), got {text!r}") from None
    if value < 0:
        raise UsageError(f"Last-Event-ID: expected an event id of 0 or more, got {value}")
    return value
