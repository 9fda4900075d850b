"""API tokens: made for a user (by themself or an admin), shown once, checked, revoked.

Tokens look like `shy_<43 characters>`: a recognisable prefix and 256 bits from `secrets`. With
that much randomness a fast hash is the right one, and a token is found by one indexed lookup of
its hash. A token acts as its user with the user's roles at the time of each request (a read-only
token with the reading part of them): a disabled user's tokens stop working at once, and so does
a revoked or expired token.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from shipyard.app.accounts import digest, ensure_first_admin, find_user
from shipyard.app.session import Session
from shipyard.errors import UsageError
from shipyard.store import ApiToken, User

PREFIX = "shy_"
SHOWN = 8  # characters of a token a listing shows: shy_ and four more
DEFAULT_DAYS = 90
MAX_DAYS = 365
FIRST_TOKEN_NAME = "first admin token"


@dataclass(frozen=True)
class TokenInfo:
    """A token as a listing shows it (never the token or its hash)."""

    id: str
    user: str
    name: str
    prefix: str
    read_only: bool
    created_at: datetime
    created_by: str
    expires_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    def to_json(self) -> dict[str, object]:
        def when(value: datetime | None) -> str | None:
            return value.isoformat() if value is not None else None

        return {
            "id": self.id, "user": self.user, "name": self.name, "prefix": self.prefix,
            "read_only": self.read_only, "created_at": self.created_at.isoformat(),
            "created_by": self.created_by, "expires_at": self.expires_at.isoformat(),
            "last_used_at": when(self.last_used_at), "revoked_at": when(self.revoked_at),
        }  # fmt: skip


@dataclass(frozen=True)
class Made:
    """A new token: the token itself (to show this once) and what the listing will show."""

    token: str
    info: TokenInfo


def new_token() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def create_token(
    session: Session,
    user: str,
    *,
    name: str,
    days: int = DEFAULT_DAYS,
    read_only: bool = False,
    address: str = "",
) -> Made:
    """A token for `user`, valid `days` days (1 to 365); the store keeps only its hash."""
    if not 1 <= days <= MAX_DAYS:
        raise UsageError(f"a token lasts 1 to {MAX_DAYS} days, not {days}")
    name = name.strip()
    if not name or len(name) > 100:
        raise UsageError("a token's name has 1 to 100 characters")
    owner = find_user(session, user)
    if not owner.enabled:
        raise UsageError(f"user {user!r} is disabled")
    token = new_token()
    made = session.store.add_token(
        token_id=str(uuid.uuid4()), name=name, prefix=token[:SHOWN], token_hash=digest(token),
        user_id=owner.id, actor=session.actor, read_only=read_only,
        expires_at=session.store.clock() + timedelta(days=days), address=address,
    )  # fmt: skip
    return Made(token=token, info=_info(made, owner.name))


def tokens(session: Session, user: str | None = None) -> list[TokenInfo]:
    """The tokens of `user` (every user's when None), the oldest first."""
    owners = {u.id: u.name for u in session.store.users()}
    owner_id = find_user(session, user).id if user is not None else None
    return [_info(t, owners.get(t.user_id, "?")) for t in session.store.tokens(owner_id)]


def token_info(session: Session, token_id: str) -> TokenInfo | None:
    found = session.store.token(token_id)
    if found is None:
        return None
    owner = session.store.user_by_id(found.user_id)
    return _info(found, owner.name if owner else "?")


def revoke(session: Session, token_id: str, *, address: str = "") -> TokenInfo:
    """Revoke a token: refused from the next request on."""
    found = token_info(session, token_id)
    if found is None:
        raise UsageError(f"no token {token_id!r}")
    revoked = session.store.revoke_token(token_id, actor=session.actor, address=address)
    return _info(revoked, found.user)


def authenticate(session: Session, token: str) -> tuple[ApiToken, User] | None:
    """The token and its user, or None when the token is malformed, unknown, revoked or
    expired, or its user disabled."""
    if not token.startswith(PREFIX) or len(token) > 100:
        return None
    store = session.store
    found = store.token_holder(digest(token))
    if found is None:
        return None
    made, user = found
    if not made.usable_at(store.clock()) or not user.enabled:
        return None
    return made, user


def first_admin_token(session: Session) -> str | None:
    """On a store with no user yet: the user `admin` and a token of theirs, to print once."""
    admin = ensure_first_admin(session)
    if admin is None:
        return None
    return create_token(session, admin.name, name=FIRST_TOKEN_NAME, days=MAX_DAYS).token


def note_use(session: Session, token_id: str, *, actor: str, address: str = "") -> None:
    session.store.touch_token(token_id, actor=actor, address=address)


def _info(made: ApiToken, owner: str) -> TokenInfo:
    return TokenInfo(
        id=made.id, user=owner, name=made.name, prefix=made.prefix, read_only=made.read_only,
        created_at=made.created_at, created_by=made.created_by, expires_at=made.expires_at,
        last_used_at=made.last_used_at, revoked_at=made.revoked_at,
    )  # fmt: skip
