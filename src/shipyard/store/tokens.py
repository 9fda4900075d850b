"""API tokens: each acts as its user. A token is shown once; the store keeps its sha256 only.

A token carries 256 bits of randomness, so a fast hash is the right one (nothing to slow down:
guessing is hopeless), and a lookup by hash finds it in one indexed read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Label, RowMapping, insert, select, update

from shipyard.store.journal import must_exist
from shipyard.store.records import as_utc
from shipyard.store.tables import api_tokens, users
from shipyard.store.users import User, Users, user_of


@dataclass(frozen=True)
class ApiToken:
    """A token as the store knows it: never the token itself."""

    id: str
    user_id: str
    name: str
    prefix: str
    read_only: bool
    created_at: datetime
    created_by: str
    expires_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    def usable_at(self, now: datetime) -> bool:
        return self.revoked_at is None and now < self.expires_at


class Tokens(Users):
    """The store's API tokens; each public method is one transaction."""

    def add_token(
        self,
        *,
        token_id: str,
        name: str,
        prefix: str,
        token_hash: str,
        user_id: str,
        actor: str,
        expires_at: datetime,
        read_only: bool = False,
        address: str = "",
    ) -> ApiToken:
        """Record a new token (its hash) of the user `user_id` and audit who made it."""
        with self._write() as conn:
            owner = conn.execute(select(users.c.name).where(users.c.id == user_id)).scalar()
            must_exist(owner, "user", user_id)
            conn.execute(
                insert(api_tokens).values(
                    id=token_id, user_id=user_id, name=name, prefix=prefix, hash=token_hash,
                    read_only=read_only, created_at=self._clock(), created_by=actor,
                    expires_at=expires_at,
                )
            )  # fmt: skip
            detail: dict[str, object] = {
                "name": name, "prefix": prefix, "user": owner, "read_only": read_only,
                "expires_at": expires_at.isoformat(),
            }  # fmt: skip
            if address:
                detail["address"] = address
            self._audit(conn, actor, "token.create", f"token:{token_id}", "success", detail)
            found = conn.execute(select(api_tokens).where(api_tokens.c.id == token_id))
            return _token(found.mappings().one())

    def token_holder(self, token_hash: str) -> tuple[ApiToken, User] | None:
        """The token with this hash and its user, in one indexed read (None: no such token)."""
        query = (
            select(api_tokens, *_user_columns())
            .join(users, users.c.id == api_tokens.c.user_id)
            .where(api_tokens.c.hash == token_hash)
        )
        with self._read() as conn:
            row = conn.execute(query).mappings().first()
            return (_token(row), user_of(_unprefixed(row))) if row else None

    def token(self, token_id: str) -> ApiToken | None:
        with self._read() as conn:
            found = conn.execute(select(api_tokens).where(api_tokens.c.id == token_id))
            row = found.mappings().first()
            return _token(row) if row else None

    def tokens(self, user_id: str | None = None) -> list[ApiToken]:
        """Every token (of one user), the oldest first (revoked ones too: the listing says so)."""
        query = select(api_tokens).order_by(api_tokens.c.created_at, api_tokens.c.id)
        if user_id is not None:
            query = query.where(api_tokens.c.user_id == user_id)
        return self._all(query, _token)

    def touch_token(self, token_id: str, *, actor: str, address: str = "") -> None:
        """Note that the token was used now; its first use is audited."""
        with self._write() as conn:
            first = conn.execute(
                update(api_tokens)
                .where(api_tokens.c.id == token_id)
                .where(api_tokens.c.last_used_at.is_(None))
                .values(last_used_at=self._clock())
            ).rowcount
            if first:
                detail = {"address": address} if address else {}
                self._audit(conn, actor, "token.first-use", f"token:{token_id}", "success", detail)
                return
            conn.execute(
                update(api_tokens)
                .where(api_tokens.c.id == token_id)
                .values(last_used_at=self._clock())
            )

    def revoke_token(self, token_id: str, *, actor: str, address: str = "") -> ApiToken:
        with self._write() as conn:
            conn.execute(
                update(api_tokens)
                .where(api_tokens.c.id == token_id)
                .where(api_tokens.c.revoked_at.is_(None))
                .values(revoked_at=self._clock())
            )
            found = conn.execute(select(api_tokens).where(api_tokens.c.id == token_id))
            row = must_exist(found.mappings().first(), "token", token_id)
            detail = {"address": address} if address else {}
            self._audit(conn, actor, "token.revoke", f"token:{token_id}", "success", detail)
            return _token(row)


def _token(row: RowMapping) -> ApiToken:
    def when(value: datetime | None) -> datetime | None:
        return as_utc(value) if value is not None else None

    return ApiToken(
        id=row["id"],
        user_id=row["user_id"],
        name=row["name"],
        prefix=row["prefix"],
        read_only=bool(row["read_only"]),
        created_at=as_utc(row["created_at"]),
        created_by=row["created_by"],
        expires_at=as_utc(row["expires_at"]),
        last_used_at=when(row["last_used_at"]),
        revoked_at=when(row["revoked_at"]),
    )


def _user_columns() -> list[Label[Any]]:
    return [column.label(f"owner_{column.name}") for column in users.c]


def _unprefixed(row: RowMapping) -> dict[str, object]:
    return {column.name: row[f"owner_{column.name}"] for column in users.c}
