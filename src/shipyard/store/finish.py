"""Finishing deployments: the outcome of one or many, and the instance's state with it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, Update, select, update

from shipyard.errors import NotActive, StoreConflict
from shipyard.events import Event, Phase
from shipyard.store import bulk, lifecycle
from shipyard.store.bulk import ACTIVE, Finish
from shipyard.store.journal import must_exist, write_events
from shipyard.store.reads import Reads
from shipyard.store.records import (
    FINAL_STATUSES,
    Deployment,
    DeploymentStatus,
    InstanceStatus,
    JsonMapping,
    JsonObject,
    Lifecycle,
)
from shipyard.store.tables import deployments, instances


class Finishing(Reads):
    """Recording outcomes; each public method is one transaction."""

    def finish_deployment(
        self,
        deployment_id: str,
        *,
        status: DeploymentStatus,
        error: str | None = None,
        snapshot: JsonMapping | None = None,
        secrets: dict[str, str] | None = None,
    ) -> Deployment:
        """Record the outcome; on success the instance's deployed snapshot changes with it."""
        status = DeploymentStatus(status)
        if status not in FINAL_STATUSES:
            raise ValueError(f"a deployment finishes as success, failed or skipped, not {status}")
        if status is DeploymentStatus.SUCCESS and snapshot is None:
            raise ValueError("a successful deployment needs the snapshot it deployed")
        with self._write() as conn:
            return self._finish(
                conn, deployment_id, status, error=error, snapshot=snapshot, secrets=secrets
            )

    def withdraw(self, deployment_id: str, *, reason: str, actor: str) -> bool:
        """A successful deployment whose program was stopped again at once (a canary new to
        its service that failed its soak): the instance has nothing deployed any more, as
        before it (status failed, no deployed snapshot), so the next deploy deploys it again.
        The deployment keeps its row (it ran); False when the instance has moved on since."""
        with self._write() as conn:
            found = must_exist(self._deployment(conn, deployment_id), "deployment", deployment_id)
            withdrawn = conn.execute(
                update_instance(found.instance)
                .where(instances.c.deployed_deployment_id == deployment_id)
                .values(
                    status=InstanceStatus.FAILED.value, deployed_revision=None,
                    deployed_config=None, deployed_secrets=None, deployed_at=None,
                    deployed_deployment_id=None,
                )
            ).rowcount  # fmt: skip
            if withdrawn:
                detail: JsonObject = {"deployment": found.id, "revision": found.revision}
                detail["error"] = reason
                what = f"{found.kind.value}.withdrawn"
                self._audit(conn, actor, what, found.instance, "failed", detail)
            return bool(withdrawn)

    def finish_deployments(self, finishes: Sequence[Finish]) -> None:
        """`finish_deployment` for each (success or failed); one that is no longer active
        (recovery marked it interrupted meanwhile) raises NotActive and nothing is written."""
        for f in finishes:
            if f.status not in (DeploymentStatus.SUCCESS, DeploymentStatus.FAILED):
                raise ValueError(f"a batch finishes as success or failed, not {f.status}")
        if not finishes:
            return
        with self._write() as conn:
            found = bulk.deployments_by_id(conn, [f.deployment_id for f in finishes])
            for f in finishes:
                known = must_exist(found.get(f.deployment_id), "deployment", f.deployment_id)
                if not known.status.active:
                    raise NotActive("deployment", f.deployment_id, known.status.value)
                # A lifecycle command changes no snapshot (store.lifecycle).
                needs_snapshot = f.status is DeploymentStatus.SUCCESS and not known.kind.lifecycle
                if needs_snapshot and f.snapshot is None:
                    raise ValueError("a successful deployment needs the snapshot it deployed")
            finished = bulk.write_outcomes(conn, found, finishes, now=self._clock())
            if finished != len(finishes):  # a row changed under us (PostgreSQL): write nothing
                raise StoreConflict(f"{len(finishes) - finished} deployment(s) changed meanwhile")

    def _finish(
        self,
        conn: Connection,
        deployment_id: str,
        status: DeploymentStatus,
        *,
        error: str | None,
        snapshot: JsonMapping | None = None,
        secrets: dict[str, str] | None = None,
        actor: str | None = None,
        action: str = "finish",
        heartbeat_at: datetime | None = None,
    ) -> Deployment:
        now = self._clock()
        success = status is DeploymentStatus.SUCCESS
        # On success the deployment keeps its snapshot, so a rollback can restore it later.
        kept = {"config": snapshot, "secrets": secrets or {}} if success else {}
        statement = update_deployment(deployment_id, *ACTIVE).values(
            status=status.value, finished_at=now, error=error, **kept
        )
        if heartbeat_at is not None:
            statement = statement.where(deployments.c.heartbeat_at == heartbeat_at)
        finished = conn.execute(statement).rowcount
        found = must_exist(self._deployment(conn, deployment_id), "deployment", deployment_id)
        if not finished:
            raise NotActive("deployment", deployment_id, found.status.value)
        if found.kind.lifecycle:
            changes: dict[str, object] = lifecycle.instance_changes(conn, found, status)
        elif success:
            changes = {
                "status": InstanceStatus.SUCCESS.value, "lifecycle": Lifecycle.ACTIVE.value,
                "deployed_revision": found.revision,
                "deployed_config": snapshot, "deployed_secrets": secrets or {},
                "deployed_at": now, "deployed_deployment_id": found.id,
            }  # fmt: skip
        elif status is DeploymentStatus.FAILED:
            changes = {"status": InstanceStatus.FAILED.value}
        else:  # skipped before it ran: the instance is as its previous deployment left it
            previous = conn.execute(
                select(deployments.c.status)
                .where(deployments.c.instance == found.instance)
                .where(deployments.c.status.in_(["success", "failed"]))
                .order_by(deployments.c.started_at.desc())
                .limit(1)
            ).scalar()
            changes = {"status": previous or InstanceStatus.NONE.value}
        conn.execute(update_instance(found.instance).values(changes))
        detail: JsonObject = {"deployment": found.id, "revision": found.revision}
        if error:
            detail["error"] = error
        what = f"{found.kind.value}.{action}"
        self._audit(conn, actor or found.actor, what, found.instance, status.value, detail)
        if action == "interrupted":  # no deployer says so: the store's own event
            self._recovered(conn, found, error or "interrupted")
        return found

    def _recovered(self, conn: Connection, found: Deployment, why: str) -> None:
        """The event of a deployment that recovery failed: its controller is gone."""
        place = conn.execute(
            select(instances.c.site, instances.c.host).where(instances.c.name == found.instance)
        ).first()
        event = Event(
            Phase.FINISHED, self._clock(), found.rollout_id, found.id, found.instance,
            place.site if place else None, place.host if place else None, "lost", why,
        )  # fmt: skip
        write_events(conn, [event])


def update_deployment(deployment_id: str, *statuses: str) -> Update:
    """UPDATE of one deployment, only while it is in one of `statuses`."""
    return update(deployments).where(
        deployments.c.id == deployment_id, deployments.c.status.in_(statuses)
    )


def update_instance(name: str) -> Update:
    return update(instances).where(instances.c.name == name)
