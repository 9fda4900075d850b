"""Users (an admin's) and API tokens (each user's own; an admin's for anyone).

A token is returned once, when it is made; listings show its prefix. A user who is not an admin
sees and revokes only their own tokens: another user's token id is, to them, no token (404).
Nobody changes their own roles or sites here but an admin.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from shipyard.app import accounts, tokens
from shipyard.app.access import Permission
from shipyard.app.accounts import User as StoredUser
from shipyard.errors import RecordNotFound
from shipyard.server.auth import Principal, client_address, deny
from shipyard.server.errors import ApiError
from shipyard.server.routes.deps import Caller, CallerSession, State

router = APIRouter(tags=["accounts"])

UserName = Annotated[str, Path(max_length=64, pattern=r"^[a-z0-9][a-z0-9._@-]*$")]
TokenId = Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
SiteName = Annotated[str, Field(min_length=1, max_length=200)]
RoleName = Annotated[str, Field(min_length=1, max_length=32)]


class UserRequest(BaseModel):
    """A new user: roles, the deployment role's sites (none: every site), a password for
    signing in from a browser (none: tokens only)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    roles: list[RoleName] = Field(min_length=1, max_length=4)
    sites: list[SiteName] | None = Field(None, max_length=1000)
    password: str | None = Field(
        None, min_length=accounts.MIN_PASSWORD, max_length=accounts.MAX_PASSWORD
    )


class UserChange(BaseModel):
    """What to change; a field left out stays as it is (`sites: null`: every site)."""

    model_config = ConfigDict(extra="forbid")

    roles: list[RoleName] | None = Field(None, min_length=1, max_length=4)
    sites: list[SiteName] | None = Field(None, max_length=1000)
    disabled: bool | None = None
    password: str | None = Field(
        None, min_length=accounts.MIN_PASSWORD, max_length=accounts.MAX_PASSWORD
    )


class User(BaseModel):
    name: str
    roles: list[str]
    sites: list[str] | None
    has_password: bool
    disabled: bool
    created_at: str
    created_by: str
    changed_at: str


class UserList(BaseModel):
    users: list[User]


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, description="What the token is for.")
    days: int = Field(tokens.DEFAULT_DAYS, ge=1, le=tokens.MAX_DAYS, description="Lifetime.")
    read_only: bool = Field(False, description="Only what reading needs, whatever the roles.")
    user: str | None = Field(None, max_length=64, description="Whose (an admin's choice).")


class Token(BaseModel):
    id: str
    user: str
    name: str
    prefix: str
    read_only: bool
    created_at: str
    created_by: str
    expires_at: str
    last_used_at: str | None
    revoked_at: str | None


class CreatedToken(Token):
    token: str = Field(description="The token itself: shown this once, never again.")


class TokenList(BaseModel):
    tokens: list[Token]


@router.get("/api/users")
def list_users(session: CallerSession) -> UserList:
    """Every user, by name."""
    return UserList(users=[_user(u) for u in accounts.users(session)])


@router.post("/api/users", status_code=201)
def add_user(body: UserRequest, session: CallerSession, request: Request) -> User:
    """Make a user."""
    made = accounts.add_user(
        session, body.name, roles=body.roles, sites=body.sites, password=body.password,
        address=client_address(request),
    )  # fmt: skip
    return _user(made)


@router.get("/api/users/{name}")
def get_user(name: UserName, session: CallerSession) -> User:
    return _user(_find(session, name))


@router.patch("/api/users/{name}")
def change_user(name: UserName, body: UserChange, session: CallerSession, request: Request) -> User:
    """Change a user's roles, sites, password, or disable them (their sessions end and their
    tokens stop working at once)."""
    _find(session, name)
    given = body.model_fields_set
    changed = accounts.change_user(
        session,
        name,
        roles=body.roles if "roles" in given else None,
        sites=body.sites if "sites" in given else False,
        disabled=body.disabled,
        password=body.password,
        address=client_address(request),
    )
    return _user(changed)


@router.get("/api/tokens")
def list_tokens(
    session: CallerSession,
    caller: Caller,
    state: State,
    request: Request,
    user: str | None = Query(None, max_length=64, description="Whose; `*`: everyone's (admin)."),
) -> TokenList:
    """The caller's tokens (an admin may ask for another user's, or everyone's)."""
    whose = _whose(state, request, caller, user)
    listed = tokens.tokens(session, None if whose == "*" else whose)
    return TokenList(tokens=[Token.model_validate(t.to_json()) for t in listed])


@router.post("/api/tokens", status_code=201)
def create_token(
    body: TokenRequest, session: CallerSession, caller: Caller, state: State, request: Request
) -> CreatedToken:
    """A token for the caller (an admin may make one for another user); shown only now."""
    whose = _whose(state, request, caller, body.user)
    if whose == "*":
        raise ApiError(422, "bad_request", "a token belongs to one user")
    made = tokens.create_token(
        session, whose, name=body.name, days=body.days, read_only=body.read_only,
        address=client_address(request),
    )  # fmt: skip
    return CreatedToken.model_validate({**made.info.to_json(), "token": made.token})


@router.delete("/api/tokens/{token_id}")
def revoke_token(
    token_id: TokenId, session: CallerSession, caller: Caller, request: Request
) -> Token:
    """Revoke a token: refused from the next request on."""
    found = tokens.token_info(session, token_id)
    if found is None or not (found.user == caller.name or caller.may(Permission.ADMIN)):
        raise RecordNotFound("token", token_id)  # another user's token is no token to them
    revoked = tokens.revoke(session, token_id, address=client_address(request))
    return Token.model_validate(revoked.to_json())


def _whose(state: State, request: Request, caller: Principal, user: str | None) -> str:
    """The user a token request is about: the caller, unless an admin names another."""
    if user is None or user == caller.name:
        return caller.name
    if not caller.may(Permission.ADMIN):
        deny(state, request, caller, f"tokens of user:{user}", Permission.ADMIN.value)
        raise ApiError(403, "forbidden", f"{caller.name} may manage only their own tokens")
    return user


def _find(session: CallerSession, name: str) -> StoredUser:
    found = session.store.user(name)
    if found is None:
        raise RecordNotFound("user", name)
    return found


def _user(user: StoredUser) -> User:
    return User(
        name=user.name,
        roles=list(user.roles),
        sites=None if user.sites is None else list(user.sites),
        has_password=user.has_password,
        disabled=not user.enabled,
        created_at=user.created_at.isoformat(),
        created_by=user.created_by,
        changed_at=user.changed_at.isoformat(),
    )
