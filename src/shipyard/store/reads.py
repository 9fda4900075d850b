"""Reading deployments and instances: the store's queries, on top of the Journal's transactions."""

from __future__ import annotations

from sqlalchemy import LABEL_STYLE_TABLENAME_PLUS_COL, Connection, Select, select

from shipyard.store import rows, status
from shipyard.store.bulk import ACTIVE
from shipyard.store.journal import Journal
from shipyard.store.records import Deployment, DeploymentStatus, InstanceState, Snapshot, StatusRow
from shipyard.store.tables import deployments, instances


class Reads(Journal):
    """The store's reads of deployments and instances; each public method is one transaction."""

    def deployment(self, deployment_id: str) -> Deployment | None:
        with self._read() as conn:
            return self._deployment(conn, deployment_id)

    def deployments(
        self, *, instance: str | None = None, rollout_id: str | None = None, limit: int = 100
    ) -> list[Deployment]:
        """The newest deployments first, optionally of one instance or of one rollout."""
        query = select(deployments)
        if instance is not None:
            query = query.where(deployments.c.instance == instance)
        if rollout_id is not None:
            query = query.where(deployments.c.rollout_id == rollout_id)
        query = query.order_by(deployments.c.started_at.desc(), deployments.c.id.desc())
        return self._all(query.limit(limit), rows.deployment)

    def active_deployments(self) -> list[Deployment]:
        """Pending and in-progress deployments, the oldest first."""
        query = select(deployments).where(deployments.c.status.in_(ACTIVE))
        return self._all(query.order_by(deployments.c.started_at), rows.deployment)

    def instance_states(self, *, site: str | None = None) -> list[InstanceState]:
        """Every instance the store knows (optionally of one site), by name, with its deployed
        snapshot (config and secret fingerprints) and last deployment: what a rollback needs.
        To show status or plan, `status_rows` and `deployed_revisions` read far less."""
        query = _instance_query()
        if site is not None:
            query = query.where(instances.c.site == site)
        return self._all(query.order_by(instances.c.name), rows.instance_state)

    def instance_state(self, name: str) -> InstanceState | None:
        query = _instance_query().where(instances.c.name == name)
        return next(iter(self._all(query, rows.instance_state)), None)

    def status_rows(self, *, site: str | None = None) -> list[StatusRow]:
        """Every instance (optionally of one site), by name: status, deployed revision and last
        deployment, in one SELECT of only those columns (no config or secrets loaded)."""
        with self._read() as conn:
            return status.status_rows(conn, site=site)

    def deployed_revisions(self) -> dict[str, str]:
        """instance -> deployed revision, for every instance with a successful deployment."""
        with self._read() as conn:
            return status.deployed_revisions(conn)

    def lifecycles(self) -> dict[str, str]:
        """instance -> lifecycle (disabled, deleted), for every instance that is not active."""
        with self._read() as conn:
            return status.lifecycles(conn)

    def snapshot_of(self, instance: str, revision: str) -> Snapshot | None:
        """What the latest successful deployment of `revision` to `instance` deployed."""
        query = (
            select(deployments)
            .where(deployments.c.instance == instance, deployments.c.revision == revision)
            .where(deployments.c.status == DeploymentStatus.SUCCESS.value)
            .order_by(deployments.c.finished_at.desc())
        )
        return next(iter(self._all(query.limit(1), rows.deployment_snapshot)), None)

    def _active_deployment(self, instance: str) -> Deployment | None:
        query = select(deployments).where(
            deployments.c.instance == instance, deployments.c.status.in_(ACTIVE)
        )
        return next(iter(self._all(query, rows.deployment)), None)

    def _deployment(self, conn: Connection, deployment_id: str) -> Deployment | None:
        query = select(deployments).where(deployments.c.id == deployment_id)
        found = conn.execute(query).mappings().first()
        return rows.deployment(found) if found else None


def _instance_query() -> Select[tuple[object, ...]]:
    # Each instance with its last deployment; columns come out as instances_name, last_status, ...
    last = deployments.alias("last")
    joined = instances.outerjoin(last, last.c.id == instances.c.last_deployment_id)
    query = select(instances, last).select_from(joined)
    return query.set_label_style(LABEL_STYLE_TABLENAME_PLUS_COL)
