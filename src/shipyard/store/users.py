"""The server's users: name, roles, the sites a deployment role is limited to, and a password
kept only as its argon2id hash (app/accounts.py hashes and checks; the store never sees one).

Every change is audited in the transaction that makes it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, RowMapping, insert, select, update

from shipyard.store.journal import Journal, must_exist
from shipyard.store.tables import user_sessions, users


@dataclass(frozen=True)
class User:
    """A user as the store knows them: never the password or its hash."""

    id: str
    name: str
    roles: tuple[str, ...]
    sites: tuple[str, ...] | None  # the deployment role's sites; None: every site
    has_password: bool
    created_at: datetime
    created_by: str
    changed_at: datetime
    disabled_at: datetime | None

    @property
    def enabled(self) -> bool:
        return self.disabled_at is None


class Users(Journal):
    """Users; each public method is one transaction."""

    def add_user(
        self,
        *,
        user_id: str,
        name: str,
        roles: Sequence[str],
        sites: Sequence[str] | None,
        password_hash: str | None,
        actor: str,
        address: str = "",
    ) -> User:
        """Record a new user and audit who made them; StoreConflict when the name is taken."""
        now = self._clock()
        with self._write() as conn:
            conn.execute(
                insert(users).values(
                    id=user_id, name=name, password_hash=password_hash,
                    access=_access(roles, sites), created_at=now, created_by=actor,
                    changed_at=now,
                )
            )  # fmt: skip
            user = self._user(conn, user_id)
            detail = {"roles": list(user.roles), "sites": _listed(user.sites)}
            self._audit(conn, actor, "user.add", f"user:{name}", "success", _at(detail, address))
            return user

    def user(self, name: str) -> User | None:
        with self._read() as conn:
            found = conn.execute(select(users).where(users.c.name == name)).mappings().first()
            return user_of(found) if found else None

    def user_by_id(self, user_id: str) -> User | None:
        with self._read() as conn:
            found = conn.execute(select(users).where(users.c.id == user_id)).mappings().first()
            return user_of(found) if found else None

    def users(self) -> list[User]:
        return self._all(select(users).order_by(users.c.name), user_of)

    def password_hash(self, name: str) -> tuple[User, str | None] | None:
        """The user and their password's hash, to check a sign-in against."""
        with self._read() as conn:
            found = conn.execute(select(users).where(users.c.name == name)).mappings().first()
            return (user_of(found), found["password_hash"]) if found else None

    def change_user(
        self,
        name: str,
        *,
        actor: str,
        roles: Sequence[str] | None = None,
        sites: Sequence[str] | bool | None = False,
        password_hash: str | bool | None = False,
        disabled: bool | None = None,
        address: str = "",
    ) -> User:
        """Change what is given (`sites=None`: every site; `False`: unchanged). Disabling, and a
        new password, end the user's browser sessions in the same transaction; disabling does
        not revoke tokens, but a disabled user's tokens are refused (tokens.token_holder)."""
        now = self._clock()
        with self._write() as conn:
            found = conn.execute(select(users).where(users.c.name == name)).mappings().first()
            user = user_of(must_exist(found, "user", name))
            values: dict[str, object] = {"changed_at": now}
            detail: dict[str, object] = {}
            if roles is not None or sites is not False:
                new_roles = list(roles) if roles is not None else list(user.roles)
                new_sites = user.sites if sites is False else sites
                assert not isinstance(new_sites, bool)
                values["access"] = _access(new_roles, new_sites)
                detail.update(roles=new_roles, sites=_listed(new_sites))
            if password_hash is not False:
                assert not isinstance(password_hash, bool)
                values["password_hash"] = password_hash
                detail["password"] = "reset"
            if disabled is not None and disabled != (not user.enabled):
                values["disabled_at"] = now if disabled else None
                detail["disabled"] = disabled
            conn.execute(update(users).where(users.c.id == user.id).values(**values))
            if detail.get("disabled") or "password" in detail:
                self._end_sessions(conn, user.id, now)
            action = "user.disable" if detail.get("disabled") else "user.change"
            self._audit(conn, actor, action, f"user:{name}", "success", _at(detail, address))
            return self._user(conn, user.id)

    def _user(self, conn: Connection, user_id: str) -> User:
        return user_of(conn.execute(select(users).where(users.c.id == user_id)).mappings().one())

    def _end_sessions(self, conn: Connection, user_id: str, now: datetime) -> None:
        conn.execute(
            update(user_sessions)
            .where(user_sessions.c.user_id == user_id)
            .where(user_sessions.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )


def _access(roles: Sequence[str], sites: Sequence[str] | None) -> dict[str, object]:
    return {"roles": sorted(set(roles)), "sites": None if sites is None else sorted(set(sites))}


def _listed(sites: Sequence[str] | None) -> list[str] | None:
    return None if sites is None else list(sites)


def _at(detail: Mapping[str, object], address: str) -> dict[str, object]:
    return {**detail, "address": address} if address else dict(detail)


def user_of(row: RowMapping | Mapping[str, Any]) -> User:
    access = row["access"]
    sites = access.get("sites")
    return User(
        id=row["id"],
        name=row["name"],
        roles=tuple(access.get("roles") or ()),
        sites=None if sites is None else tuple(sites),
        has_password=row["password_hash"] is not None,
        created_at=row["created_at"],
        created_by=row["created_by"],
        changed_at=row["changed_at"],
        disabled_at=row["disabled_at"],
    )
