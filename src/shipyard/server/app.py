"""`create_app(settings)`: the FastAPI application of `shipyard serve`.

Nothing happens at import: the lifespan opens the served project and its store when the server
starts, and on shutdown drains the rollouts it runs (jobs.py) before closing the store. Every
JSON response passes through the project's masker (`MaskedJSON`), the one boundary text leaves
the server by.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from shipyard.masking import NO_SECRETS, Masker
from shipyard.server import errors
from shipyard.server.auth import authorize
from shipyard.server.policy import check_routes
from shipyard.server.settings import Settings
from shipyard.server.state import ServerState, open_state

StateHook = Callable[[ServerState], None]

log = logging.getLogger("shipyard.server")

# Seconds a background service (webhooks, metrics, the SSE hub) gets to stop: past it the
# server logs what is stuck and stops without it, so a stop never hangs.
STOP_LIMIT = 10.0


def create_app(
    settings: Settings,
    *,
    environ: Mapping[str, str] | None = None,
    on_start: StateHook | None = None,
) -> FastAPI:
    """The server for `settings`; `environ` (default: this process's) is what the project's
    store URL, secrets and actor are read from; `on_start` sees the state once it is open."""
    from shipyard.server.pages import ROUTERS as PAGES
    from shipyard.server.routes import ROUTERS

    env = dict(os.environ if environ is None else environ)
    holder: dict[str, ServerState] = {}

    def masker() -> Masker:
        state = holder.get("state")
        # A served project that does not load (a config error to report) knows no secret.
        return state.session.masker_if_loaded() if state is not None else NO_SECRETS

    class MaskedJSON(JSONResponse):
        """JSON with every secret value of the project masked, before and after encoding."""

        def render(self, content: Any) -> bytes:
            shown = masker()
            encoded = super().render(shown.json(content))
            return shown.text(encoded.decode()).encode()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = open_state(settings, env)
        holder["state"] = state
        app.state.shipyard = state
        try:
            if on_start is not None:
                on_start(state)
            for start in app.state.starters:
                await start(state)
            yield
        finally:
            drain_limit = settings.shutdown_grace + STOP_LIMIT
            await stop_within(state.jobs.shutdown(), "the rollouts' drain", drain_limit)
            for stop in reversed(app.state.stoppers):
                await stop_within(stop(state), f"{stop.__module__}'s stop", STOP_LIMIT)
            state.session.close()
            holder.clear()

    app = FastAPI(
        title="Shipyard",
        summary="Deploy a fleet over SSH: plan, diff, roll out, follow, roll back.",
        version=_version(),
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
        swagger_ui_oauth2_redirect_url="/api/docs/oauth2-redirect",
        default_response_class=MaskedJSON,
        dependencies=[Depends(authorize)],
        responses=errors.ERROR_RESPONSES,
        lifespan=lifespan,
    )
    # Background services (webhooks, metrics, ...) add a start and a stop coroutine here.
    app.state.starters = []
    app.state.stoppers = []
    errors.install(app, masker)
    for router in [*ROUTERS, *PAGES]:
        app.include_router(router)
    for install in _services():
        install(app)
    check_routes((m, p) for m, p, api in served_routes(app.routes) if api)
    return app


def served_routes(routes: Iterable[BaseRoute]) -> Iterator[tuple[str, str, bool]]:
    """(method, path, whether it is an API route) of every route, in included routers too
    (FastAPI includes a router as one lazy entry holding the original router)."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from served_routes(included.routes)
            continue
        path = getattr(route, "path", None)
        if path is None:
            continue
        for method in getattr(route, "methods", None) or ():
            if method != "HEAD":
                yield method, path, isinstance(route, APIRoute)


async def stop_within(step: Awaitable[None], what: str, limit: float) -> None:
    """Await `step` for at most `limit` seconds; past it log every task's stack (what the step
    waits for) and cancel it. A failure of the step is logged: the stop goes on."""
    task = asyncio.ensure_future(step)
    done, _ = await asyncio.wait({task}, timeout=limit)
    if not done:
        log.warning("%s did not finish within %g s; stopping without it\n%s", what, limit, stacks())
        task.cancel()
        return
    failure = task.exception()
    if failure is not None:
        log.error("%s failed", what, exc_info=failure)


def stacks() -> str:
    """Where every task of the running loop waits (its chain of awaits, innermost last), for
    the log of a stop that hangs."""
    shown = []
    for task in asyncio.all_tasks():
        chain = []
        awaited: Any = task.get_coro()
        while awaited is not None:
            frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
            if frame is not None:
                code = frame.f_code
                chain.append(f"  {code.co_filename}:{frame.f_lineno} in {code.co_name}")
            awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
        shown.append("\n".join([f"task {task.get_name()}:", *chain]))
    return "\n".join(shown)


def _services() -> list[Callable[[FastAPI], None]]:
    """What runs beside the routes; each installs its starters, stoppers and middleware."""
    from shipyard.server import headers, health, metrics, retention, sse, sweeper, webhooks

    return [
        sse.install, metrics.install, webhooks.install, health.install, retention.install,
        sweeper.install, headers.install,
    ]  # fmt: skip


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("shipyard")
    except PackageNotFoundError:
        return "0"
