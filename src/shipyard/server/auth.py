"""Who is calling, and whether they may: every request's credentials checked against the route
table (policy.py) before its route runs.

A caller comes with a bearer token (`Authorization: Bearer shy_...`, app/tokens.py) or with a
browser session cookie (app/accounts.py); either acts as its user with the user's roles at the
time of the request. A cookie-authenticated request that changes anything must carry the
session's CSRF token (`X-CSRF-Token`, or the form field `csrf_token`) and may not come from
another origin. Every refusal for want of a permission is audited with the caller and address.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import Request
from fastapi.routing import APIRoute

from shipyard.app import accounts, tokens
from shipyard.app.access import Access, Permission, Role
from shipyard.server.errors import ApiError
from shipyard.server.policy import permission_of

if TYPE_CHECKING:
    from shipyard.app.accounts import BrowserSession
    from shipyard.server.state import ServerState

SESSION_COOKIE = "shipyard_session"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Principal:
    """The caller of one request: what they may do, and how they proved who they are."""

    access: Access
    via: str  # "token", "session", "local" (--no-auth) or "none"
    token_id: str | None = None
    session: BrowserSession | None = None

    @property
    def name(self) -> str:
        """What the audit log records as the actor."""
        return self.access.name

    @property
    def roles(self) -> list[str]:
        return sorted(r.value for r in self.access.roles)

    def may(self, permission: Permission) -> bool:
        return self.access.may(permission)


ANONYMOUS = Principal(Access(name="anonymous", roles=frozenset()), via="none")
LOCAL_ADMIN = Principal(Access(name="local-admin", roles=frozenset({Role.ADMIN})), via="local")


def client_address(request: Request) -> str:
    return request.client.host if request.client is not None else ""


async def principal_for(state: ServerState, request: Request) -> Principal:
    """The principal a request's credentials name; 401 when they name none."""
    if state.settings.no_auth:
        return LOCAL_ADMIN
    authorization = request.headers.get("authorization")
    if authorization is not None:
        return _by_token(state, request, authorization)
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        return await _by_session(state, request, cookie)
    raise unauthorized("sign in, or send a bearer token (Authorization: Bearer shy_...)")


async def authorize(request: Request) -> Principal:
    """The app-wide dependency: the route's permission from the table, and the caller's."""
    route = request.scope.get("route")
    path = route.path if isinstance(route, APIRoute) else request.url.path
    needed = permission_of(request.method, path)
    if needed is None:  # check_routes makes this unreachable for declared routes
        raise ApiError(403, "forbidden", f"{request.method} {path} is not in the route table")
    if needed is Permission.PUBLIC:
        request.state.principal = ANONYMOUS
        return ANONYMOUS
    state: ServerState = request.app.state.shipyard
    principal = await principal_for(state, request)
    if not principal.may(needed):
        deny(state, request, principal, f"{request.method} {path}", needed.value)
        raise ApiError(403, "forbidden", f"{principal.name} may not {needed.value}")
    request.state.principal = principal
    return principal


def deny(state: ServerState, request: Request, principal: Principal, target: str, why: str) -> None:
    """Audit a refusal: who, from where, what, and what they lacked."""
    detail = {"address": client_address(request), "needs": why, "via": principal.via}
    state.session.store.append_audit(
        actor=principal.name, action="permission.denied", target=target, result="denied",
        detail=detail,
    )  # fmt: skip


def unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


def _by_token(state: ServerState, request: Request, authorization: str) -> Principal:
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise unauthorized("a bearer token is required (Authorization: Bearer shy_...)")
    found = tokens.authenticate(state.session, token)
    if found is None:
        raise unauthorized("the token is unknown, revoked or expired, or its user disabled")
    made, user = found
    access = accounts.access_of(user, read_only=made.read_only)
    state.note_token_use(made.id, user.name, client_address(request))
    return Principal(access, via="token", token_id=made.id)


async def _by_session(state: ServerState, request: Request, cookie: str) -> Principal:
    found = accounts.browser_session(state.session, cookie, state.login_policy)
    if found is None:
        raise unauthorized("the session is over: sign in again")
    if request.method not in SAFE_METHODS:
        await _check_csrf(request, found)
    state.note_session_use(found)
    return Principal(accounts.access_of(found.user), via="session", session=found)


async def _check_csrf(request: Request, found: BrowserSession) -> None:
    """A state-changing request on a session cookie: from this origin, with the CSRF token."""
    if not same_origin(request):
        raise ApiError(403, "csrf", "a cross-site request was refused")
    given = request.headers.get(CSRF_HEADER, "")
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not given and kind in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.form()
        field = form.get(CSRF_FIELD)
        given = field if isinstance(field, str) else ""
    if not accounts.csrf_matches(found, given):
        raise ApiError(403, "csrf", "the CSRF token is missing or wrong: reload the page")


def same_origin(request: Request) -> bool:
    """Whether the browser says the request comes from this server's own pages (a browser
    sends Sec-Fetch-Site or Origin on every cross-site POST; a request with neither is not a
    browser's cross-site one)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:  # the browser's own word: a form post under `Referrer-Policy:
        return site in ("same-origin", "none")  # no-referrer` sends `Origin: null`
    origin = request.headers.get("origin")
    if origin is None:
        return True
    own = f"{request.url.scheme}://{request.headers.get('host', request.url.netloc)}"
    return origin == own
