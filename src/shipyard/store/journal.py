"""The record of what happened: rollouts, the append-only audit log and the event stream.

`Journal` also owns the store's transactions; `Store` (repository.py) builds on it, so that a
deployment's status change and its audit line commit together.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from types import TracebackType
from typing import Self, TypeVar

from sqlalchemy import Connection, Engine, RowMapping, Select, func, insert, select, text, update
from sqlalchemy.exc import (
    DBAPIError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
)

from shipyard.errors import NotActive, RecordNotFound, StoreConflict, StoreError, StoreUnavailable
from shipyard.events import Event, Phase
from shipyard.masking import NO_SECRETS, Masker
from shipyard.store import chain, notices, rows
from shipyard.store.chain import ChainReport
from shipyard.store.engine import read_only, use_masker
from shipyard.store.records import AuditEntry, JsonMapping, Rollout, RolloutStatus, StepLog
from shipyard.store.tables import audit, events, rollouts, step_logs

T = TypeVar("T")


def utc_now() -> datetime:
    return datetime.now(UTC)


class Journal:
    """Rollouts, audit log and events; each public method is one transaction."""

    def __init__(
        self,
        engine: Engine,
        *,
        clock: Callable[[], datetime] = utc_now,
        masker: Masker = NO_SECRETS,
    ) -> None:
        # Every free-text column this engine writes is masked (tables.MaskedText, chain.append).
        use_masker(engine, masker)
        self._engine = engine
        self._reader = read_only(engine)
        self._clock = clock

    def clock(self) -> datetime:
        """The time now, as the store stamps what it writes."""
        return self._clock()

    @property
    def engine(self) -> Engine:
        return self._engine

    def event_notices(self) -> notices.EventNotices | None:
        """A listener for the wake-ups other processes send as they store events (PostgreSQL);
        None where there are none (SQLite: readers poll)."""
        if self._engine.dialect.name != "postgresql":
            return None
        return notices.EventNotices(self._engine.url)

    def close(self) -> None:
        """Close every pooled connection; the store is unusable afterwards."""
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # Rollouts.

    def begin_rollout(
        self,
        *,
        rollout_id: str,
        actor: str,
        request: str,
        strategy: str,
        controller_id: str | None = None,
        config_version: int | None = None,
    ) -> Rollout:
        """Record a rollout in progress; `config_version` is the config version it deploys
        from (None: a project read by a CLI, not a server's version)."""
        started: dict[str, object] = {
            "status": RolloutStatus.IN_PROGRESS.value,
            "started_at": self._clock(),
        }
        started["config_version"] = config_version
        started["controller_id"] = controller_id  # recovery finishes it once that one is gone
        with self._write() as conn:
            conn.execute(
                insert(rollouts).values(
                    id=rollout_id, actor=actor, request=request, strategy=strategy, summary={},
                    **started,
                )
            )  # fmt: skip
            detail: JsonMapping = {"request": request, "strategy": strategy}
            if config_version is not None:
                detail = {**detail, "config_version": config_version}
            target = f"rollout:{rollout_id}"
            self._audit(conn, actor, "rollout.begin", target, "in_progress", detail)
            return must_exist(self._rollout(conn, rollout_id), "rollout", rollout_id)

    def finish_rollout(
        self, rollout_id: str, *, status: RolloutStatus, summary: JsonMapping
    ) -> Rollout:
        status = RolloutStatus(status)
        if status is RolloutStatus.IN_PROGRESS:
            raise ValueError("a rollout finishes as success or failed")
        with self._write() as conn:
            finished = conn.execute(
                update(rollouts)
                .where(rollouts.c.id == rollout_id)
                .where(rollouts.c.status == RolloutStatus.IN_PROGRESS.value)
                .values(status=status.value, finished_at=self._clock(), summary=summary)
            ).rowcount
            found = must_exist(self._rollout(conn, rollout_id), "rollout", rollout_id)
            if not finished:
                raise NotActive("rollout", rollout_id, found.status.value)
            target = f"rollout:{rollout_id}"
            self._audit(conn, found.actor, "rollout.finish", target, status.value, summary)
            return found

    def rollout(self, rollout_id: str) -> Rollout | None:
        with self._read() as conn:
            return self._rollout(conn, rollout_id)

    def rollouts(self, *, limit: int = 50, before: str | None = None) -> list[Rollout]:
        """The newest rollouts first; `before` (a rollout's id) starts after that one."""
        query = select(rollouts)
        if before is not None:
            with self._read() as conn:
                mark = self._rollout(conn, before)
            if mark is None:
                raise RecordNotFound("rollout", before)
            query = query.where(
                (rollouts.c.started_at < mark.started_at)
                | ((rollouts.c.started_at == mark.started_at) & (rollouts.c.id < mark.id))
            )
        query = query.order_by(rollouts.c.started_at.desc(), rollouts.c.id.desc())
        return self._all(query.limit(limit), rows.rollout)

    # The audit log and the event feed.

    def append_audit(
        self,
        *,
        actor: str,
        action: str,
        target: str,
        result: str,
        detail: JsonMapping | None = None,
    ) -> AuditEntry:
        """Add one line to the audit log (lifecycle commands, artifacts, ...)."""
        with self._write() as conn:
            entry_id = self._audit(conn, actor, action, target, result, detail or {})
            found = conn.execute(select(audit).where(audit.c.id == entry_id)).mappings().one()
            return rows.audit_entry(found)

    def audit(
        self,
        *,
        instance: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        actor: str | None = None,
        action: str | None = None,
        limit: int | None = None,
        before: int | None = None,
    ) -> list[AuditEntry]:
        """Audit lines in the order they were written; with `limit`, the newest `limit` of them;
        with `before`, only lines older than the one with that id (to page back). `instance` is
        the target; `since` and `until` bound the time (both included)."""
        query = select(audit).order_by(audit.c.id.desc()).limit(limit)
        if before is not None:
            query = query.where(audit.c.id < before)
        if instance is not None:
            query = query.where(audit.c.target == instance)
        if actor is not None:
            query = query.where(audit.c.actor == actor)
        if action is not None:
            query = query.where(audit.c.action == action)
        if since is not None:
            query = query.where(audit.c.at >= since)
        if until is not None:
            query = query.where(audit.c.at <= until)
        return self._all(query, rows.audit_entry)[::-1]

    def verify_audit(self) -> ChainReport:
        """Check the audit log's hash chain: how many rows hold, and the first that does not."""
        with self._read() as conn:
            return chain.verify(conn)

    def append_events(self, batch: Sequence[Event]) -> list[int]:
        """Store `batch` in one transaction; returns the ids given to them, in their order.

        Ids only grow, so a reader in another process paging with `events(after_id=...)` sees
        the same events in the same order. `detail` is masked on its way in (MaskedText).
        """
        if not batch:
            return []
        with self._write() as conn:
            return write_events(conn, batch)

    def events(
        self,
        *,
        after_id: int = 0,
        limit: int = 500,
        rollout_id: str | None = None,
        instance: str | None = None,
        site: str | None = None,
        phase: Phase | None = None,
    ) -> list[Event]:
        """Events stored after `after_id`, oldest first (of one rollout, instance, site or
        phase when named): what a live view has not seen yet."""
        query = select(events).where(events.c.id > after_id)
        if phase is not None:
            query = query.where(events.c.phase == phase.value)
        if rollout_id is not None:
            query = query.where(events.c.rollout_id == rollout_id)
        if instance is not None:
            query = query.where(events.c.instance == instance)
        if site is not None:
            query = query.where(events.c.site == site)
        return self._all(query.order_by(events.c.id).limit(limit), rows.event)

    def append_step_logs(self, logs: Sequence[StepLog]) -> None:
        """Store the host output of deployment steps, in one transaction (`output` masked)."""
        if not logs:
            return
        with self._write() as conn:
            conn.execute(insert(step_logs), [asdict(log) for log in logs])

    def step_logs(self, deployment_id: str) -> list[StepLog]:
        """The host output of each step of a deployment, in the order the steps ran."""
        query = (
            select(step_logs)
            .where(step_logs.c.deployment_id == deployment_id)
            .order_by(step_logs.c.seq, step_logs.c.id)
        )
        return self._all(query, rows.step_log)

    def last_event_id(self) -> int:
        """Where a live view that wants only new events starts (0 when there are none)."""
        with self._read() as conn:
            return int(conn.execute(select(func.coalesce(func.max(events.c.id), 0))).scalar_one())

    # Plumbing: transactions, and the statements several methods share.

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        try:
            with self._engine.begin() as conn:
                yield conn
        except IntegrityError as exc:
            raise StoreConflict(f"the state store refused a write: {exc.orig}") from exc
        except SQLAlchemyError as exc:
            raise store_failure(exc) from exc

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        try:
            with self._reader.begin() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise store_failure(exc) from exc

    def _all(
        self, query: Select[tuple[object, ...]], convert: Callable[[RowMapping], T]
    ) -> list[T]:
        with self._read() as conn:
            return [convert(row) for row in conn.execute(query).mappings()]

    def _rollout(self, conn: Connection, rollout_id: str) -> Rollout | None:
        found = conn.execute(select(rollouts).where(rollouts.c.id == rollout_id)).mappings().first()
        return rows.rollout(found) if found else None

    def _audit(
        self,
        conn: Connection,
        actor: str,
        action: str,
        target: str,
        result: str,
        detail: JsonMapping,
    ) -> int:
        return chain.append(conn, [(actor, action, target, result, detail)], now=self._clock())[0]


# Any fixed number: names the PostgreSQL advisory lock that serialises event inserts.
EVENTS_LOCK = 0x5A1D_0003


def write_events(conn: Connection, batch: Sequence[Event]) -> list[int]:
    """Insert `batch` on `conn` (one statement), returning the ids in the batch's order.

    On PostgreSQL the insert holds a lock until its transaction commits, so events become
    visible in the order of their ids: a reader paging with `events(after_id=...)` (a live
    stream) never moves past an id whose row another writer has not committed yet. (SQLite
    writers hold the database's write lock already.) Taken after the audit lock where a
    transaction takes both, never before it.
    """
    values = [rows.event_values(e) for e in batch]
    if conn.dialect.name == "sqlite":
        # The write transaction began IMMEDIATE: no other writer until it ends, so the batch's
        # rows are the newest ones. One executemany is some ten times faster than RETURNING in
        # the parameters' order, which SQLite can only give a row at a time.
        conn.execute(insert(events), values)
        newest = select(events.c.id).order_by(events.c.id.desc()).limit(len(values))
        return [int(i) for i in reversed(conn.execute(newest).scalars().all())]
    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": EVENTS_LOCK})
    statement = insert(events).returning(events.c.id, sort_by_parameter_order=True)
    found = conn.execute(statement, values).scalars().all()
    notices.ring(conn)  # other replicas read the table when this commits
    return [int(i) for i in found]


def store_failure(exc: SQLAlchemyError) -> StoreError:
    """StoreUnavailable for what a retry may cure (no connection, locked), else StoreError."""
    transient = isinstance(exc, OperationalError | InterfaceError) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    )
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if transient:
        return StoreUnavailable(f"the state store is unavailable: {first}")
    return StoreError(f"the state store failed: {exc}")


def must_exist(record: T | None, kind: str, record_id: str) -> T:
    """The record, or RecordNotFound naming what was looked for."""
    if record is None:
        raise RecordNotFound(kind, record_id)
    return record
