"""API tokens: who may call the server. A token is shown once; the store keeps its sha256 only.

A token carries 256 bits of randomness, so a fast hash is the right one (nothing to slow down:
guessing is hopeless), and a lookup by hash finds it in one indexed read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import RowMapping, insert, select, update

from shipyard.store.journal import Journal, must_exist
from shipyard.store.records import as_utc
from shipyard.store.tables import api_tokens


@dataclass(frozen=True)
class ApiToken:
    """A token as the store knows it: never the token itself."""

    id: str
    name: str
    prefix: str
    role: str
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None

    def usable_at(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)


class Tokens(Journal):
    """The store's API tokens; each public method is one transaction."""

    def add_token(
        self,
        *,
        token_id: str,
        name: str,
        prefix: str,
        token_hash: str,
        role: str,
        actor: str,
        expires_at: datetime | None = None,
    ) -> ApiToken:
        """Record a new token (its hash) and audit who made it."""
        with self._write() as conn:
            conn.execute(
                insert(api_tokens).values(
                    id=token_id, name=name, prefix=prefix, hash=token_hash, role=role,
                    created_at=self._clock(), created_by=actor, expires_at=expires_at,
                )
            )  # fmt: skip
            detail = {"name": name, "prefix": prefix, "role": role}
            self._audit(conn, actor, "token.create", f"token:{token_id}", "success", detail)
            found = conn.execute(select(api_tokens).where(api_tokens.c.id == token_id))
            return _token(found.mappings().one())

    def token_by_hash(self, token_hash: str) -> ApiToken | None:
        with self._read() as conn:
            found = conn.execute(select(api_tokens).where(api_tokens.c.hash == token_hash))
            row = found.mappings().first()
            return _token(row) if row else None

    def tokens(self) -> list[ApiToken]:
        """Every token, the oldest first (revoked ones too: the listing says so)."""
        query = select(api_tokens).order_by(api_tokens.c.created_at, api_tokens.c.id)
        return self._all(query, _token)

    def touch_token(self, token_id: str) -> None:
        """Note that the token was used now."""
        with self._write() as conn:
            conn.execute(
                update(api_tokens)
                .where(api_tokens.c.id == token_id)
                .values(last_used_at=self._clock())
            )

    def revoke_token(self, token_id: str, *, actor: str) -> ApiToken:
        with self._write() as conn:
            conn.execute(
                update(api_tokens)
                .where(api_tokens.c.id == token_id)
                .where(api_tokens.c.revoked_at.is_(None))
                .values(revoked_at=self._clock())
            )
            found = conn.execute(select(api_tokens).where(api_tokens.c.id == token_id))
            row = must_exist(found.mappings().first(), "token", token_id)
            self._audit(conn, actor, "token.revoke", f"token:{token_id}", "success", {})
            return _token(row)


def _token(row: RowMapping) -> ApiToken:
    def when(value: datetime | None) -> datetime | None:
        return as_utc(value) if value is not None else None

    return ApiToken(
        id=row["id"],
        name=row["name"],
        prefix=row["prefix"],
        role=row["role"],
        created_at=as_utc(row["created_at"]),
        created_by=row["created_by"],
        expires_at=when(row["expires_at"]),
        last_used_at=when(row["last_used_at"]),
        revoked_at=when(row["revoked_at"]),
    )
