"""Controller leases: the statements behind registering, renewing and judging them.

A lease's expiry is computed and compared by the database (`now()` on PostgreSQL, `julianday`
on SQLite), as seconds since the epoch, so clock skew between controllers never matters. An
expired lease is never renewed again: whoever judged it expired may already have failed its
deployments, and its controller must learn that it lost them.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, Float, cast, func, insert, literal_column, select, text, update
from sqlalchemy.sql.elements import ColumnElement

from shipyard.store.owner import Controller, Owner
from shipyard.store.tables import controllers, store_identity

EPOCH_LOCK = 0x5A1D_0004  # the transaction lock under which a registration takes its epoch


def db_now(conn: Connection) -> ColumnElement[float]:
    """The database's clock, in seconds since the epoch."""
    if conn.dialect.name == "postgresql":
        return cast(literal_column("extract(epoch from clock_timestamp())"), Float(precision=53))
    return cast(literal_column("(julianday('now') - 2440587.5) * 86400.0"), Float(precision=53))


def read_now(conn: Connection) -> float:
    return float(conn.execute(select(db_now(conn))).scalar_one())


def store_id(conn: Connection) -> str:
    """The store's identity (migration 0012)."""
    return str(conn.execute(select(store_identity.c.id)).scalar_one())


def register(conn: Connection, controller: Controller, *, lease_seconds: float) -> int:
    """The controller's row, with a lease of `lease_seconds` from now (database clock) and a
    fencing epoch larger than any given before; returns the epoch.

    Registering again (a later rollout of the same process) renews it, even once it ran out,
    with a new epoch: what the store failed meanwhile stays failed, and the controller starts
    afresh. On PostgreSQL a transaction lock makes the epochs of rival registrations differ
    (SQLite's writers are one at a time already)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": EPOCH_LOCK})
    epoch = int(conn.execute(select(func.coalesce(func.max(controllers.c.epoch), 0))).scalar_one())
    epoch += 1
    again = update(controllers).where(controllers.c.id == controller.id)
    renewed = again.values(lease_expires=db_now(conn) + lease_seconds, epoch=epoch)
    if conn.execute(renewed).rowcount:
        return epoch
    conn.execute(
        insert(controllers).values(
            id=controller.id,
            host=controller.host,
            pid=controller.pid,
            boot_id=controller.boot_id,
            pid_namespace=controller.pid_namespace,
            process_start=controller.started,
            lease_expires=db_now(conn) + lease_seconds,
            replica=controller.replica,
            epoch=epoch,
        )
    )
    return epoch


def renew(conn: Connection, controller_id: str, *, lease_seconds: float) -> bool:
    """Extend a lease that has not run out; False when it had (or was released)."""
    now = db_now(conn)
    statement = (
        update(controllers)
        .where(controllers.c.id == controller_id, controllers.c.lease_expires > now)
        .values(lease_expires=now + lease_seconds)
    )
    return bool(conn.execute(statement).rowcount)


def end(conn: Connection, controller_id: str) -> None:
    """Let the lease run out now: the controller is done, or known to be gone."""
    now = db_now(conn)
    conn.execute(
        update(controllers)
        .where(controllers.c.id == controller_id, controllers.c.lease_expires > now)
        .values(lease_expires=now)
    )


def owners(conn: Connection, ids: Sequence[str]) -> dict[str, Owner]:
    """The controllers of `ids` that the store knows, with their leases."""
    if not ids:
        return {}
    found = conn.execute(select(controllers).where(controllers.c.id.in_(sorted(set(ids)))))
    return {
        row.id: Owner(
            Controller(
                id=row.id,
                host=row.host,
                pid=row.pid,
                boot_id=row.boot_id,
                pid_namespace=row.pid_namespace,
                started=row.process_start,
                replica=row.replica,
            ),
            float(row.lease_expires),
        )
        for row in found
    }
