"""Signing in from a browser: the login form, the sign-in, the sign-out.

The form carries a one-time value that must match a cookie set with it (so another site cannot
sign a browser in to an account of its choosing), and a sign-in from another origin is refused.
A signed-in browser holds two cookies: the session (`HttpOnly`, `SameSite=Lax`) and its CSRF
token (readable by the page's own script, sent back as `X-CSRF-Token`); both are `Secure` when
served over TLS. Throttling and lockouts are app/accounts.py's.
"""

from __future__ import annotations

import hmac
import secrets
from functools import cache
from typing import Annotated

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, PackageLoader, Template, select_autoescape

from shipyard.app import accounts
from shipyard.server.auth import SESSION_COOKIE, client_address, same_origin
from shipyard.server.errors import ApiError
from shipyard.server.routes.deps import Caller, State

# Pages for a browser, not API operations: the OpenAPI document leaves them out.
router = APIRouter(tags=["sign-in"])

LOGIN_COOKIE = "shipyard_login"  # the login form's one-time value
CSRF_COOKIE = "shipyard_csrf"
AFTER_LOGIN = "/"  # the dashboard's overview


@router.get("/login", response_class=HTMLResponse, include_in_schema=False)
def login_form(request: Request, next: str = AFTER_LOGIN) -> HTMLResponse:
    """The sign-in form."""
    return _form(request, next=_local(next))


@router.post("/login", response_class=HTMLResponse, include_in_schema=False)
def login(
    request: Request,
    state: State,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=accounts.MAX_PASSWORD)],
    csrf_token: Annotated[str, Form(max_length=100)] = "",
    next: Annotated[str, Form(max_length=2000)] = AFTER_LOGIN,
) -> Response:
    """Sign in: a session cookie and a redirect on success; the form again, with why, on
    failure (429 with Retry-After while a lockout is in force)."""
    expected = request.cookies.get(LOGIN_COOKIE, "")
    if not same_origin(request) or not expected or not hmac.compare_digest(expected, csrf_token):
        raise ApiError(403, "csrf", "the sign-in form is stale or from another site: reload it")
    try:
        signed = accounts.login(
            state.session, username.strip(), password, address=client_address(request),
            policy=state.login_policy,
        )  # fmt: skip
    except accounts.LoginRefused as refused:
        status = 401 if refused.retry_after is None else 429
        again = _form(request, next=_local(next), message=str(refused), status=status,
                      username=username)  # fmt: skip
        if refused.retry_after is not None:
            again.headers["Retry-After"] = str(int(refused.retry_after))
        return again
    response = RedirectResponse(_local(next), status_code=303)
    secure = request.url.scheme == "https"
    lifetime = int(state.login_policy.lifetime.total_seconds())
    response.set_cookie(
        SESSION_COOKIE, signed.cookie, max_age=lifetime, path="/", secure=secure,
        httponly=True, samesite="lax",
    )  # fmt: skip
    response.set_cookie(
        CSRF_COOKIE, signed.csrf, max_age=lifetime, path="/", secure=secure, httponly=False,
        samesite="strict",
    )  # fmt: skip
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    return response


@router.post("/logout", include_in_schema=False)
def logout(request: Request, state: State, caller: Caller) -> Response:
    """Sign out: the session is revoked in the store, its cookies cleared."""
    if caller.session is None:
        raise ApiError(
            400, "bad_request", "sign-out ends a browser session; revoke a token with"
            " DELETE /api/tokens/{id}",
        )  # fmt: skip
    cookie = request.cookies.get(SESSION_COOKIE, "")
    accounts.logout(state.session, cookie, address=client_address(request))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")
    return response


def _form(
    request: Request,
    *,
    next: str,
    message: str = "",
    status: int = 200,
    username: str = "",
) -> HTMLResponse:
    value = secrets.token_urlsafe(32)
    page = _template().render(csrf=value, next=next, message=message, username=username)
    response = HTMLResponse(page, status_code=status)
    response.set_cookie(
        LOGIN_COOKIE, value, max_age=3600, path="/login", secure=request.url.scheme == "https",
        httponly=True, samesite="strict",
    )  # fmt: skip
    return response


def _local(target: str) -> str:
    """Where to go after signing in: a path on this server only (never another site)."""
    if not target.startswith("/") or target.startswith(("//", "/\\")) or "\n" in target:
        return AFTER_LOGIN
    return target


@cache
def _template() -> Template:
    env = Environment(
        loader=PackageLoader("shipyard.server", "templates"),
        autoescape=select_autoescape(default=True),
    )
    return env.get_template("login.html.j2")
