"""Users and signing in: accounts made by an admin, passwords hashed with argon2id, browser
sessions with an idle and an absolute expiry, and sign-in throttling per account and per client
address whose lockouts the store keeps (so a restart does not lift them).

A session cookie and its CSRF token are 256 random bits each, shown to the browser only; the
store keeps their sha256. Every sign-in, failure, lockout and change of a user is audited.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from shipyard.app.access import Access, Role, parse_roles
from shipyard.app.session import Session
from shipyard.errors import UsageError
from shipyard.store import BrowserSession, Limit, User

# What the front ends read of a user and of a browser session, with the use cases below.
__all__ = [
    "BrowserSession", "LoginPolicy", "LoginRefused", "SignedIn", "User", "access_of",
    "add_user", "browser_session", "change_user", "check_name", "csrf_matches", "digest",
    "ensure_first_admin", "find_user", "hash_password", "login", "logout", "reset_password",
]  # fmt: skip

USER_NAME = re.compile(r"[a-z0-9][a-z0-9._@-]{0,63}")
MIN_PASSWORD = 12
MAX_PASSWORD = 1024
FIRST_ADMIN = "admin"


@dataclass(frozen=True)
class LoginPolicy:
    """How sign-ins are throttled and how long a browser session lasts."""

    account_failures: int = 5  # failed sign-ins of one account within `window` lock it
    address_failures: int = 20  # ... and of one client address, whatever the account
    window: timedelta = timedelta(minutes=15)
    lockout: timedelta = timedelta(minutes=15)
    idle: timedelta = timedelta(hours=1)  # a session unused this long is over
    lifetime: timedelta = timedelta(hours=12)  # and any session this long after sign-in


@dataclass(frozen=True)
class SignedIn:
    """A new browser session: the cookie's value and its CSRF token (shown to it only)."""

    user: User
    cookie: str
    csrf: str


class LoginRefused(Exception):
    """A sign-in that did not succeed; `retry_after` when a lockout is in force."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def digest(secret: str) -> str:
    """What the store keeps of a token, cookie or CSRF token: its sha256, hex."""
    return hashlib.sha256(secret.encode()).hexdigest()


def access_of(user: User, *, read_only: bool = False) -> Access:
    roles = frozenset(Role(r) for r in user.roles if r in Role.__members__.values())
    sites = None if user.sites is None else frozenset(user.sites)
    return Access(name=user.name, roles=roles, sites=sites, read_only=read_only)


# Users.


def add_user(
    session: Session,
    name: str,
    *,
    roles: Sequence[str],
    sites: Sequence[str] | None = None,
    password: str | None = None,
    address: str = "",
) -> User:
    """A new user; UsageError naming what is wrong (the name, a role, a site, the password)."""
    check_name(name)
    chosen = _roles(roles)
    if session.store.user(name) is not None:
        raise UsageError(f"user {name!r} exists already")
    return session.store.add_user(
        user_id=str(uuid.uuid4()),
        name=name,
        roles=[r.value for r in chosen],
        sites=_sites(session, sites),
        password_hash=None if password is None else hash_password(password),
        actor=session.actor,
        address=address,
    )


def change_user(
    session: Session,
    name: str,
    *,
    roles: Sequence[str] | None = None,
    sites: Sequence[str] | bool | None = False,
    disabled: bool | None = None,
    password: str | None = None,
    address: str = "",
) -> User:
    """Change a user's roles, sites (None: every site), state or password; disabling ends
    their sessions and makes their tokens useless at once."""
    existing = find_user(session, name)
    chosen = [r.value for r in _roles(roles)] if roles is not None else None
    scope = sites if isinstance(sites, bool) else _sites(session, sites)
    if disabled and existing.name == session.actor:
        raise UsageError("a user cannot disable themself")
    admin = Role.ADMIN.value
    loses_admin = (chosen is not None and admin not in chosen) or bool(disabled)
    if loses_admin and existing.enabled and admin in existing.roles:
        others = [u for u in session.store.users() if u.name != name]
        if not any(u.enabled and admin in u.roles for u in others):
            raise UsageError(
                f"{name!r} is the last enabled admin: give another user the admin role first"
            )
    hashed: str | bool = False if password is None else hash_password(password)
    changed = session.store.change_user(
        name, actor=session.actor, roles=chosen, sites=scope, password_hash=hashed,
        disabled=disabled, address=address,
    )  # fmt: skip
    if password is not None:
        session.store.clear_failures([f"user:{name}"])
    return changed


def reset_password(session: Session, name: str, password: str | None = None) -> str | None:
    """Give `name` a new password (a generated one, returned to show once, when none is given);
    ends their sessions and lifts a lockout of the account."""
    new = password or secrets.token_urlsafe(15)
    change_user(session, name, password=new)
    return None if password else new


def users(session: Session) -> list[User]:
    """Every user, by name."""
    return sorted(session.store.users(), key=lambda u: u.name)


def find_user(session: Session, name: str) -> User:
    found = session.store.user(name)
    if found is None:
        raise UsageError(f"no user {name!r}")
    return found


def ensure_first_admin(session: Session) -> User | None:
    """The user `admin` (admin role, no password) when the store has no user at all."""
    if session.store.users():
        return None
    return add_user(session, FIRST_ADMIN, roles=[Role.ADMIN.value])


def check_name(name: str) -> None:
    if not USER_NAME.fullmatch(name):
        raise UsageError(
            f"user name {name!r}: 1 to 64 of a-z, 0-9, '.', '_', '@', '-', starting with a"
            " letter or digit"
        )


def hash_password(password: str) -> str:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise UsageError(f"a password has {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    return _hasher().hash(password)


# Signing in.


def login(
    session: Session, name: str, password: str, *, address: str, policy: LoginPolicy
) -> SignedIn:
    """A browser session for `name`, or LoginRefused. While a lockout of the account or the
    address is in force the password is not even checked; failures count towards one."""
    store = session.store
    keys = [f"user:{name}", f"address:{address}"]
    locked = store.locked_until(keys)
    if locked is not None:
        store.note_locked_out(name=name, address=address, until=locked)
        raise LoginRefused("too many failed sign-ins: try again later", _after(session, locked))
    found = store.password_hash(name) if USER_NAME.fullmatch(name) else None
    user, hashed = found if found is not None else (None, None)
    ok = _verify(hashed, password)  # a dummy check for an unknown user: the same time spent
    if user is None or not ok or not user.enabled:
        reason = "unknown user" if user is None else "wrong password" if not ok else "user disabled"
        limits = [
            Limit(keys[0], policy.account_failures, policy.window, policy.lockout),
            Limit(keys[1], policy.address_failures, policy.window, policy.lockout),
        ]
        until = store.note_failed_login(name=name, address=address, limits=limits, reason=reason)
        if until is not None:
            raise LoginRefused("too many failed sign-ins: try again later", _after(session, until))
        raise LoginRefused("wrong user name or password")
    cookie, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    store.open_session(
        session_hash=digest(cookie), csrf_hash=digest(csrf), user_id=user.id, address=address,
        lifetime=policy.lifetime, clear=[keys[0]],
    )  # fmt: skip
    return SignedIn(user=user, cookie=cookie, csrf=csrf)


def browser_session(session: Session, cookie: str, policy: LoginPolicy) -> BrowserSession | None:
    """The open session a cookie names: not revoked, not idle too long, not past its lifetime,
    its user enabled. None otherwise."""
    if not cookie or len(cookie) > 128:
        return None
    found = session.store.browser_session(digest(cookie))
    now = session.store.clock()
    if found is None or found.revoked_at is not None or not found.user.enabled:
        return None
    if now >= found.expires_at or now >= found.seen_at + policy.idle:
        return None
    return found


def csrf_matches(found: BrowserSession, given: str) -> bool:
    return bool(given) and hmac.compare_digest(found.csrf_hash, digest(given))


def logout(session: Session, cookie: str, *, address: str = "") -> bool:
    found = session.store.browser_session(digest(cookie))
    if found is None:
        return False
    return session.store.end_session(found.hash, actor=found.user.name, address=address)


def _verify(hashed: str | None, password: str) -> bool:
    try:
        return _hasher().verify(hashed or _dummy_hash(), password) and hashed is not None
    except (VerificationError, InvalidHashError):
        return False


def _after(session: Session, until: datetime) -> float:
    return max(1.0, (until - session.store.clock()).total_seconds())


@cache
def _hasher() -> PasswordHasher:
    return PasswordHasher()  # argon2id, RFC 9106's second recommended parameters


@cache
def _dummy_hash() -> str:
    return _hasher().hash(secrets.token_urlsafe(16))


def _roles(names: Sequence[str]) -> tuple[Role, ...]:
    try:
        chosen = parse_roles(names)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if not chosen:
        raise UsageError("a user needs at least one role (admin, design, deployment, viewer)")
    return chosen


def _sites(session: Session, sites: Sequence[str] | None) -> list[str] | None:
    """The deployment role's sites, each a site of the project (a typo would lock one out)."""
    if sites is None:
        return None
    chosen = sorted({s.strip() for s in sites if s.strip()})
    if not chosen:
        raise UsageError("name at least one site, or none for every site")
    known = set(session.load().project.sites)
    unknown = [s for s in chosen if s not in known]
    if unknown:
        raise UsageError(
            f"unknown site {', '.join(unknown)} (sites: {', '.join(sorted(known)) or 'none'})"
        )
    return chosen
