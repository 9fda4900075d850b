"""Signing in: browser sessions (the cookie's sha256 only) and the failed sign-ins that lock an
account or a client address out for a while, kept in the store so a restart forgets nothing.

The policy (how many failures, for how long) is the caller's (app/accounts.py); the store
counts, locks and audits, each in one transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, delete, insert, select, update

from shipyard.store.records import as_utc
from shipyard.store.tables import login_failures, user_sessions, users
from shipyard.store.tokens import Tokens
from shipyard.store.users import User, user_of


@dataclass(frozen=True)
class BrowserSession:
    """A signed-in browser as the store knows it (its user, and the CSRF token's hash)."""

    hash: str
    user: User
    csrf_hash: str
    created_at: datetime
    seen_at: datetime
    expires_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True)
class Limit:
    """How many failures within `window` lock a key (user:NAME, address:ADDR) for `lockout`."""

    key: str
    failures: int
    window: timedelta
    lockout: timedelta


class Logins(Tokens):
    """Browser sessions and failed sign-ins; each public method is one transaction."""

    def open_session(
        self,
        *,
        session_hash: str,
        csrf_hash: str,
        user_id: str,
        address: str,
        lifetime: timedelta,
        clear: Sequence[str] = (),
    ) -> None:
        """Record a signed-in browser, forget the failures under `clear`, audit the sign-in."""
        now = self._clock()
        with self._write() as conn:
            conn.execute(
                insert(user_sessions).values(
                    hash=session_hash, user_id=user_id, csrf_hash=csrf_hash, address=address,
                    created_at=now, seen_at=now, expires_at=now + lifetime,
                )
            )  # fmt: skip
            if clear:
                conn.execute(delete(login_failures).where(login_failures.c.key.in_(clear)))
            name = conn.execute(select(users.c.name).where(users.c.id == user_id)).scalar_one()
            self._audit(conn, name, "login", f"user:{name}", "success", {"address": address})

    def browser_session(self, session_hash: str) -> BrowserSession | None:
        columns = [c.label(f"owner_{c.name}") for c in users.c]
        query = (
            select(user_sessions, *columns)
            .join(users, users.c.id == user_sessions.c.user_id)
            .where(user_sessions.c.hash == session_hash)
        )
        with self._read() as conn:
            row = conn.execute(query).mappings().first()
        if row is None:
            return None
        user = user_of({c.name: row[f"owner_{c.name}"] for c in users.c})
        return BrowserSession(
            hash=row["hash"],
            user=user,
            csrf_hash=row["csrf_hash"],
            created_at=as_utc(row["created_at"]),
            seen_at=as_utc(row["seen_at"]),
            expires_at=as_utc(row["expires_at"]),
            revoked_at=as_utc(row["revoked_at"]) if row["revoked_at"] is not None else None,
        )

    def touch_session(self, session_hash: str) -> None:
        with self._write() as conn:
            conn.execute(
                update(user_sessions)
                .where(user_sessions.c.hash == session_hash)
                .values(seen_at=self._clock())
            )

    def end_session(self, session_hash: str, *, actor: str, address: str = "") -> bool:
        """Revoke a browser session (sign out); False when it was not open."""
        with self._write() as conn:
            ended = conn.execute(
                update(user_sessions)
                .where(user_sessions.c.hash == session_hash)
                .where(user_sessions.c.revoked_at.is_(None))
                .values(revoked_at=self._clock())
            ).rowcount
            if ended:
                detail = {"address": address} if address else {}
                self._audit(conn, actor, "logout", f"user:{actor}", "success", detail)
            return bool(ended)

    def locked_until(self, keys: Sequence[str]) -> datetime | None:
        """The latest end of a lockout in force on any of `keys`, or None."""
        now = self._clock()
        with self._read() as conn:
            found = conn.execute(
                select(login_failures.c.locked_until)
                .where(login_failures.c.key.in_(keys))
                .where(login_failures.c.locked_until > now)
            ).scalars()
            ends = [as_utc(end) for end in found]
        return max(ends) if ends else None

    def note_failed_login(
        self, *, name: str, address: str, limits: Sequence[Limit], reason: str
    ) -> datetime | None:
        """Count a failed sign-in against every limit's key and audit it; a key that reaches
        its limit is locked (audited as a lockout). Returns the lockout's end, if one began."""
        now = self._clock()
        locked: list[tuple[str, datetime]] = []
        with self._write() as conn:
            for limit in limits:
                end = self._count_failure(conn, limit, now)
                if end is not None:
                    locked.append((limit.key, end))
            detail = {"address": address, "reason": reason}
            self._audit(conn, name or "anonymous", "login", f"user:{name}", "failed", detail)
            for key, end in locked:
                detail = {"address": address, "key": key, "until": end.isoformat()}
                self._audit(conn, name or "anonymous", "login.lockout", key, "locked", detail)
        return max((end for _, end in locked), default=None)

    def clear_failures(self, keys: Sequence[str]) -> None:
        """Forget the failed sign-ins (and lift the lockouts) of `keys`."""
        with self._write() as conn:
            conn.execute(delete(login_failures).where(login_failures.c.key.in_(keys)))

    def note_locked_out(self, *, name: str, address: str, until: datetime) -> None:
        """Audit a sign-in refused because of a lockout in force (its password unchecked)."""
        detail = {"address": address, "until": until.isoformat()}
        with self._write() as conn:
            self._audit(conn, name or "anonymous", "login", f"user:{name}", "locked", detail)

    def _count_failure(self, conn: Connection, limit: Limit, now: datetime) -> datetime | None:
        table = login_failures
        row = conn.execute(select(table).where(table.c.key == limit.key)).mappings().first()
        if row is None or as_utc(row["first_at"]) <= now - limit.window:
            conn.execute(delete(table).where(table.c.key == limit.key))
            conn.execute(insert(table).values(key=limit.key, failures=1, first_at=now))
            failures = 1
        else:
            failures = row["failures"] + 1
            conn.execute(update(table).where(table.c.key == limit.key).values(failures=failures))
        if failures < limit.failures:
            return None
        end = now + limit.lockout
        # A lockout starts a new window: the next failures after it count afresh.
        conn.execute(
            update(table)
            .where(table.c.key == limit.key)
            .values(locked_until=end, failures=0, first_at=end)
        )
        return end
