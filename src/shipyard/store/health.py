"""The monitor's last view of each host and instance: state, since when, the last error and
drift. A round writes what it saw in one transaction (`save_health`); the health and drift
views read it back. Rows of hosts and instances no longer in the project are removed by the
round that no longer sees them (`forget_health`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, RowMapping, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite

from shipyard.store.journal import Journal
from shipyard.store.records import DeploymentStatus, as_utc
from shipyard.store.tables import deployments, host_health, instance_health, instances


@dataclass(frozen=True)
class HostHealthRow:
    host: str
    site: str
    state: str  # online, offline, unknown
    since: datetime
    last_ok_at: datetime | None
    checked_at: datetime
    error: str | None = None


@dataclass(frozen=True)
class InstanceHealthRow:
    instance: str
    site: str
    host: str
    health: str  # healthy, failing, disabled, not deployed, unknown
    since: datetime
    detail: str
    checked_at: datetime
    drift: list[dict[str, Any]] = field(default_factory=list)  # [{"kind", "detail"}]


class Health(Journal):
    """The store's health rows; each public method is one transaction."""

    def save_health(
        self, hosts: Sequence[HostHealthRow], found: Sequence[InstanceHealthRow]
    ) -> None:
        """Write (insert or replace) the rows of one round."""
        with self._write() as conn:
            _upsert(conn, host_health, "host", [vars(h) for h in hosts])
            rows = [vars(i) | {"drift": {"items": i.drift}} for i in found]
            _upsert(conn, instance_health, "instance", rows)

    def forget_health(self, *, hosts: Sequence[str] = (), found: Sequence[str] = ()) -> None:
        """Remove the rows of hosts and instances the project no longer has."""
        with self._write() as conn:
            if hosts:
                conn.execute(delete(host_health).where(host_health.c.host.in_(hosts)))
            if found:
                conn.execute(delete(instance_health).where(instance_health.c.instance.in_(found)))

    def host_health(self, *, site: str | None = None) -> list[HostHealthRow]:
        query = select(host_health)
        if site is not None:
            query = query.where(host_health.c.site == site)
        return self._all(query.order_by(host_health.c.site, host_health.c.host), _host_row)

    def instance_health(self, *, site: str | None = None) -> list[InstanceHealthRow]:
        query = select(instance_health)
        if site is not None:
            query = query.where(instance_health.c.site == site)
        order = (instance_health.c.site, instance_health.c.instance)
        return self._all(query.order_by(*order), _instance_row)

    def failures_since(self, since: datetime) -> dict[str, int]:
        """site -> how many deployments failed since `since` (what counts into its health)."""
        query = (
            select(instances.c.site, func.count())
            .select_from(deployments.join(instances, deployments.c.instance == instances.c.name))
            .where(deployments.c.status == DeploymentStatus.FAILED.value)
            .where(deployments.c.finished_at >= since)
            .group_by(instances.c.site)
        )
        with self._read() as conn:
            return {str(site): int(n) for site, n in conn.execute(query)}


def _upsert(conn: Connection, table: Any, key: str, values: list[dict[str, Any]]) -> None:
    if not values:
        return
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table)
    replaced = {c.name: statement.excluded[c.name] for c in table.columns if c.name != key}
    conn.execute(statement.on_conflict_do_update(index_elements=[key], set_=replaced), values)


def _host_row(row: RowMapping) -> HostHealthRow:
    last_ok = row["last_ok_at"]
    return HostHealthRow(
        host=str(row["host"]),
        site=str(row["site"]),
        state=str(row["state"]),
        since=as_utc(row["since"]),
        last_ok_at=None if last_ok is None else as_utc(last_ok),
        checked_at=as_utc(row["checked_at"]),
        error=None if row["error"] is None else str(row["error"]),
    )


def _instance_row(row: RowMapping) -> InstanceHealthRow:
    drift = (row["drift"] or {}).get("items")
    return InstanceHealthRow(
        instance=str(row["instance"]),
        site=str(row["site"]),
        host=str(row["host"]),
        health=str(row["health"]),
        since=as_utc(row["since"]),
        detail=str(row["detail"]),
        checked_at=as_utc(row["checked_at"]),
        drift=list(drift) if isinstance(drift, list) else [],
    )
