"""Who is calling: the bearer token of each request (app.tokens), checked against the route
table. Until the accounts issue brings users and roles, the one admin token (made at first
start, printed once) holds every permission."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import Request
from fastapi.routing import APIRoute

from shipyard.app import tokens
from shipyard.server.errors import ApiError
from shipyard.server.policy import Permission, permission_of

if TYPE_CHECKING:
    from shipyard.server.state import ServerState

ROLE_PERMISSIONS: dict[str, frozenset[Permission]] = {
    "admin": frozenset(Permission),
    "viewer": frozenset({Permission.PUBLIC, Permission.READ}),
}


@dataclass(frozen=True)
class Principal:
    """The caller of one request."""

    name: str  # what the audit log records as the actor
    role: str
    token_id: str | None = None

    def may(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS.get(self.role, frozenset())


ANONYMOUS = Principal(name="anonymous", role="none")
LOCAL_ADMIN = Principal(name="local-admin", role="admin")  # --no-auth, on loopback only


def principal_for(state: ServerState, authorization: str | None) -> Principal:
    """The principal a request's Authorization header names; 401 when it names none."""
    if state.settings.no_auth:
        return LOCAL_ADMIN
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise _unauthorized("a bearer token is required (Authorization: Bearer shy_...)")
    found = tokens.authenticate(state.session, token)
    if found is None:
        raise _unauthorized("the token is unknown, revoked or expired")
    state.note_token_use(found.id)
    return Principal(name=f"token:{found.name}", role=found.role, token_id=found.id)


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
    principal = principal_for(state, request.headers.get("authorization"))
    if not principal.may(needed):
        raise ApiError(403, "forbidden", f"{principal.name} may not {needed.value}")
    request.state.principal = principal
    return principal


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})
