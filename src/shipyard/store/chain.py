"""The audit log's hash chain: every row stores a hash over its content and the previous row's.

Triggers refuse UPDATE and DELETE, but whoever can write the database file (or own the table on
PostgreSQL) can get past them: `INSERT OR REPLACE`, a forged INSERT, a dropped trigger. The chain
makes such a change visible: `verify` walks the rows in id order and names the first one whose
hash or link does not match. Appending is serialised (SQLite's write lock; on PostgreSQL an
advisory lock any role may take), so concurrent writers never fork the chain.

What it cannot show on its own: rows rewritten from some point to the end, hashes recomputed.
`verify` returns the head hash, so a copy kept elsewhere settles that too.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, RowMapping, Text, insert, select, text, type_coerce

from shipyard.store.engine import masker_of
from shipyard.store.records import JsonMapping
from shipyard.store.tables import audit

GENESIS = "0" * 64  # the previous hash of the first row
VERSION = "shipyard-audit-1"  # hashed into every row: a new scheme gets a new name
# Any fixed number: names the PostgreSQL advisory lock that serialises appends.
AUDIT_LOCK = 0x5A1D_0002

# (actor, action, target, result, detail) of one audit row to append.
AuditLine = tuple[str, str, str, str, JsonMapping]


@dataclass(frozen=True)
class ChainBreak:
    """The first row where the chain does not hold, and how."""

    row_id: int
    reason: str

    def __str__(self) -> str:
        return f"audit row {self.row_id}: {self.reason}"


@dataclass(frozen=True)
class ChainReport:
    """What `verify` found: how many rows hold together, the head hash, the first break."""

    count: int  # rows verified before the break (all of them when whole)
    head: str  # the hash of the last verified row (GENESIS for an empty log)
    broken: ChainBreak | None

    @property
    def whole(self) -> bool:
        return self.broken is None


def row_hash(
    *,
    row_id: int,
    at: datetime,
    actor: str,
    action: str,
    target: str,
    result: str,
    detail: str,
    prev_hash: str,
) -> str:
    """sha256 over a row's content (detail as canonical JSON text) and the previous hash."""
    instant = at.astimezone(UTC).isoformat(timespec="microseconds")
    body = [VERSION, row_id, instant, actor, action, target, result, detail, prev_hash]
    encoded = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    return hashlib.sha256(encoded).hexdigest()


def canonical_json(value: JsonMapping) -> str:
    """The text a JSON object is stored and hashed as (tables.JsonText writes the same)."""
    return json.dumps(dict(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def append(conn: Connection, lines: Sequence[AuditLine], *, now: datetime) -> list[int]:
    """Append `lines` to the audit log in this transaction, chained; returns their ids.

    Masks each detail with the engine's masker first, so the hash covers what is stored.
    Call it last in a transaction: on PostgreSQL it holds the append lock until commit.
    """
    if not lines:
        return []
    if conn.dialect.name == "postgresql":
        # SQLite writers already hold the database's write lock (BEGIN IMMEDIATE).
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": AUDIT_LOCK})
    last = conn.execute(
        select(audit.c.id, audit.c.hash).order_by(audit.c.id.desc()).limit(1)
    ).first()
    next_id, prev = (int(last.id) + 1, str(last.hash)) if last else (1, GENESIS)
    masker = masker_of(conn.dialect)
    rows = []
    for actor, action, target, result, detail in lines:
        masked = masker.json(dict(detail))
        assert isinstance(masked, dict)
        digest = row_hash(
            row_id=next_id, at=now, actor=actor, action=action, target=target, result=result,
            detail=canonical_json(masked), prev_hash=prev,
        )  # fmt: skip
        values = {"at": now, "actor": actor, "action": action, "target": target, "result": result}
        rows.append({"id": next_id, **values, "detail": masked, "prev_hash": prev, "hash": digest})
        prev, next_id = digest, next_id + 1
    conn.execute(insert(audit), rows)
    return [int(str(row["id"])) for row in rows]


def verify(conn: Connection) -> ChainReport:
    """Walk the audit log in id order and report the first row that breaks the chain."""
    with contextlib.closing(stored_hashes(conn, link=None)) as found:
        return _walk(found)


def _walk(found: Iterator[tuple[int, str | None, str | None, str | None]]) -> ChainReport:
    prev, count = GENESIS, 0
    previous_id: int | None = None
    for row_id, stored_prev, stored_hash, expected in found:
        if stored_prev != prev:
            after = f"row {previous_id}" if previous_id is not None else "the start of the log"
            why = f"its previous hash does not match the hash of {after}"
            return ChainReport(
                count, prev, ChainBreak(row_id, f"{why} (a row removed or slipped in)")
            )
        if expected is None:
            return ChainReport(count, prev, ChainBreak(row_id, "its content cannot be read"))
        if stored_hash != expected:
            why = "its content does not match its hash (changed after it was written)"
            return ChainReport(count, prev, ChainBreak(row_id, why))
        prev, previous_id, count = stored_hash, row_id, count + 1
    return ChainReport(count, prev, None)


def stored_hashes(
    conn: Connection, *, link: str | None
) -> Generator[tuple[int, str | None, str | None, str | None]]:
    """(id, stored prev_hash, stored hash, hash recomputed from its content) per row, in order.

    The recomputed hash uses the stored prev_hash, or, with `link` given, the previous row's
    recomputed hash starting from `link` (how a migration chains rows that had no hash yet).
    It is None for a row whose content cannot be read (a timestamp or detail that is not ours).
    """
    query = select(
        audit.c.id,
        type_coerce(audit.c.at, Text).label("at"),  # parsed here: a forged value must not raise
        audit.c.actor,
        audit.c.action,
        audit.c.target,
        audit.c.result,
        type_coerce(audit.c.detail, Text).label("detail"),
        audit.c.prev_hash,
        audit.c.hash,
    ).order_by(audit.c.id)
    with conn.execute(query.execution_options(yield_per=1000)) as result:
        for row in result.mappings():
            prev = link if link is not None else row["prev_hash"]
            expected = _recompute(row, prev)
            yield int(row["id"]), row["prev_hash"], row["hash"], expected
            if link is not None and expected is not None:
                link = expected


def _recompute(row: RowMapping, prev: object) -> str | None:
    at = _instant(row["at"])
    detail = _detail(row["detail"])
    fields = [row["actor"], row["action"], row["target"], row["result"]]
    if at is None or detail is None or not all(isinstance(f, str) for f in [*fields, prev]):
        return None
    actor, action, target, result = (str(f) for f in fields)
    return row_hash(
        row_id=int(str(row["id"])), at=at, actor=actor, action=action, target=target,
        result=result, detail=detail, prev_hash=str(prev),
    )  # fmt: skip


def _instant(value: object) -> datetime | None:
    # PostgreSQL hands back a datetime; SQLite the text SQLAlchemy wrote: "2024-05-01 12:00:00.0".
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _detail(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        loaded = json.loads(value)
    except ValueError:
        return None
    return canonical_json(loaded) if isinstance(loaded, dict) else None
