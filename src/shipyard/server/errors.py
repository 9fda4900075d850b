"""One JSON shape for every error: `{"error": {"code", "message", "details"}}`.

Shipyard's own errors map to their status here (a config error carries each problem's
file:line:field, a rejected concurrent deployment is 409 naming the holder); a request FastAPI
could not validate is 422 with each field; anything unexpected is 500 with no internals shown.
Messages pass through the masker like every other response.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from html import escape
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from shipyard import errors
from shipyard.masking import Masker

log = logging.getLogger("shipyard.server")


class ApiError(Exception):
    """An error a route raises on purpose, with its status and code."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.headers = headers or {}
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: dict[str, Any]


class ErrorBody(BaseModel):
    """Every error the API answers with."""

    error: ErrorDetail


# Declared on every route, so that the OpenAPI schema describes what errors look like.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in (
        (400, "A bad request: it names something that does not exist."),
        (401, "No usable credentials (token or session)."),
        (403, "The caller may not do this (a permission, a site, or CSRF)."),
        (404, "No such record."),
        (409, "A conflict: e.g. the instance is being deployed (the holder is named)."),
        (422, "The request or the project is invalid (each field or problem named)."),
        (429, "Too many rollouts running, or too many failed sign-ins."),
        (503, "The server is shutting down, or the store is unavailable."),
    )
}


def body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


# The most specific class first.
STATUS: list[tuple[type[errors.ShipyardError], int, str]] = [
    (errors.ConfigError, 422, "invalid_config"),
    (errors.ConcurrentDeployment, 409, "deployment_in_flight"),
    (errors.AlreadyDeployed, 409, "already_deployed"),
    (errors.RecordNotFound, 404, "not_found"),
    (errors.NotActive, 409, "not_active"),
    (errors.StoreUnavailable, 503, "store_unavailable"),
    (errors.LeaseLost, 503, "lease_lost"),
    (errors.UsageError, 400, "bad_request"),
    (errors.DeployError, 409, "deploy_refused"),
    (errors.ExecutionError, 502, "host_failed"),
    (errors.StoreError, 500, "store_failed"),
]


def shipyard_error(exc: errors.ShipyardError) -> ApiError:
    for kind, status, code in STATUS:
        if isinstance(exc, kind):
            return ApiError(status, code, str(exc), details_of(exc))
    return ApiError(500, "error", str(exc))


def details_of(exc: errors.ShipyardError) -> dict[str, Any]:
    if isinstance(exc, errors.ConfigError):
        return {
            "problems": [
                {
                    "file": p.file,
                    "line": p.line,
                    "column": p.column,
                    "field": p.path,
                    "message": p.message,
                }
                for p in exc.problems
            ]
        }
    if isinstance(exc, errors.ConcurrentDeployment):
        return {
            "instance": exc.instance,
            "holder": {"deployment": exc.deployment_id, "actor": exc.actor, "since": exc.since},
        }
    if isinstance(exc, errors.AlreadyDeployed):
        return {"instance": exc.instance, "revision": exc.revision, "deployment": exc.deployment_id}
    if isinstance(exc, errors.RecordNotFound):
        return {"kind": exc.kind, "id": exc.record_id}
    if isinstance(exc, errors.ExecutionError):
        return {"host": exc.host}
    return {}


def install(app: FastAPI, masker: Callable[[], Masker]) -> None:
    """The handlers that turn every failure into the one shape, masked."""

    def respond(error: ApiError, request: Request | None = None) -> Response:
        if request is not None and wants_page(request):
            return page_error(error, request, masker())
        shown = masker()
        content = shown.json(body(error.code, shown.text(error.message), error.details))
        headers = {"Retry-After": "1"} if error.status == 503 else {}
        headers.update(error.headers)
        return JSONResponse(content, status_code=error.status, headers=headers)

    async def on_api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return respond(exc, request)

    async def on_shipyard_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, errors.ShipyardError)
        return respond(shipyard_error(exc), request)

    async def on_invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        fields = [
            {
                "field": ".".join(str(p) for p in e.get("loc", ())),
                "message": str(e.get("msg", "")),
                "type": str(e.get("type", "")),
            }
            for e in exc.errors()
        ]
        where = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
        return respond(
            ApiError(422, "invalid_request", f"invalid request: {where}", {"fields": fields})
        )

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed"}
        error = ApiError(exc.status_code, code.get(exc.status_code, "http_error"), str(exc.detail))
        response = respond(error, request)
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        return response

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        return respond(ApiError(500, "internal", "internal error (see the server's log)"), request)

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(errors.ShipyardError, on_shipyard_error)
    app.add_exception_handler(RequestValidationError, on_invalid)
    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)


def wants_page(request: Request) -> bool:
    """A browser asking for a dashboard page (not the API, its docs, the metrics or a stream)."""
    path = request.url.path
    if request.method != "GET" or path.startswith(("/api/", "/metrics", "/static/")):
        return False
    return "text/html" in request.headers.get("accept", "")


def page_error(error: ApiError, request: Request, masker: Masker) -> Response:
    """A page's failure for a browser: to the sign-in form when nobody is signed in (and back
    here after), else a short page saying what is wrong, masked and escaped."""
    if error.status == 401:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
    message = escape(masker.text(error.message))
    html = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{error.status} · Shipyard</title>"
        '<link rel="stylesheet" href="/static/dashboard.css"></head><body><main id="main">'
        f'<h1>{error.status}: {escape(error.code)}</h1><p role="alert">{message}</p>'
        '<p><a href="/">Back to the overview</a></p></main></body></html>'
    )
    return HTMLResponse(html, status_code=error.status, headers=error.headers)
