"""API tokens: made, shown once, checked. The store keeps each token's sha256 only.

Tokens look like `shy_<43 characters>`: a recognisable prefix and 256 bits from `secrets`. With
that much randomness a fast hash is the right one, and a token is found by one indexed lookup of
its hash. Until the accounts issue brings users and roles, the admin token made at a server's
first start holds every permission.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass

from shipyard.app.session import Session

PREFIX = "shy_"
SHOWN = 8  # characters of a token a listing shows: shy_ and four more
ADMIN_TOKEN_NAME = "admin"


@dataclass(frozen=True)
class TokenView:
    """A usable token as a caller is known by it (never the token itself)."""

    id: str
    name: str
    prefix: str
    role: str


def new_token() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def ensure_admin_token(session: Session) -> str | None:
    """A new admin token when no usable one exists (to print once); None when one does."""
    store = session.store
    now = store.clock()
    if any(t.role == "admin" and t.usable_at(now) for t in store.tokens()):
        return None
    token = new_token()
    store.add_token(
        token_id=str(uuid.uuid4()),
        name=ADMIN_TOKEN_NAME,
        prefix=token[:SHOWN],
        token_hash=token_hash(token),
        role="admin",
        actor=session.actor,
    )
    return token


def authenticate(session: Session, token: str) -> TokenView | None:
    """The token's holder, or None when the token is malformed, unknown, revoked or expired."""
    if not token.startswith(PREFIX):
        return None
    store = session.store
    found = store.token_by_hash(token_hash(token))
    if found is None or not found.usable_at(store.clock()):
        return None
    return TokenView(found.id, found.name, found.prefix, found.role)


def note_use(session: Session, token_id: str) -> None:
    session.store.touch_token(token_id)
