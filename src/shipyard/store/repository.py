"""The Store: deployments and instances, with the concurrency rule the database enforces.

`Store` is the one public class. Its methods come in layers, a module each: the Journal's
transactions, rollouts, audit and events (journal.py), reads (reads.py), outcomes (finish.py),
leases and recovery (recovery.py), the server's users (users.py), API tokens (tokens.py) and
sign-ins (logins.py), webhooks and their deliveries (webhooks.py), config versions
(versions.py), the site event log (eventlog.py), and here beginning deployments and moving
them along.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import insert, update
from sqlalchemy.dialects import postgresql, sqlite

from shipyard.errors import (
    AlreadyDeployed,
    ConcurrentDeployment,
    NotActive,
    StoreConflict,
)
from shipyard.plan.lifecycle import LifecycleRefused
from shipyard.store import bulk, lifecycle
from shipyard.store.artifacts import Artifacts
from shipyard.store.bulk import ACTIVE, DeploymentRequest
from shipyard.store.eventlog import EventLog
from shipyard.store.finish import update_deployment, update_instance
from shipyard.store.health import Health
from shipyard.store.journal import must_exist
from shipyard.store.logins import Logins
from shipyard.store.records import (
    BeganDeployment,
    Deployment,
    DeploymentKind,
    DeploymentStatus,
    InstanceStatus,
    JsonMapping,
)
from shipyard.store.recovery import Recovered, Recovery
from shipyard.store.tables import deployments, instances
from shipyard.store.versions import Versions
from shipyard.store.webhooks import Webhooks

__all__ = ["Recovered", "Store"]

# What beginning one request of a batch answers.
Began = BeganDeployment | ConcurrentDeployment | AlreadyDeployed | LifecycleRefused
# A begin that collides with a holder which finishes before we can read it is simply retried.
BEGIN_ATTEMPTS = 3


class Store(Recovery, Logins, Versions, Webhooks, Health, EventLog, Artifacts):
    """The state store. Each public method is one transaction; the database enforces the rules."""

    # Deployments: begin, mark in progress, heartbeat (finishing: finish.py; recovery: recovery.py).

    def begin_deployment(
        self,
        *,
        deployment_id: str,
        instance: str,
        service: str,
        host: str,
        site: str,
        revision: str,
        actor: str,
        owner_host: str,
        owner_pid: int,
        rollout_id: str | None = None,
        kind: DeploymentKind = DeploymentKind.DEPLOY,
        detail: JsonMapping | None = None,
        controller_id: str | None = None,
        force: bool = False,
    ) -> BeganDeployment:
        """Record a pending deployment, or raise ConcurrentDeployment naming the holder.

        A repeated `deployment_id` returns the stored deployment with `created=False`. An
        instance already at `revision` raises AlreadyDeployed (decided in the transaction that
        would insert, so a rival that finished meanwhile counts), unless `force`; one whose
        state does not allow `kind` (plan.lifecycle) raises LifecycleRefused.
        """
        now, kind = self._clock(), DeploymentKind(kind)  # a plain "deploy" works too
        place = {"service": service, "host": host, "site": site}
        row: dict[str, object] = {
            "id": deployment_id, "instance": instance, "kind": kind.value, "revision": revision,
            "status": DeploymentStatus.PENDING.value, "actor": actor, "rollout_id": rollout_id,
            "started_at": now, "owner_host": owner_host, "owner_pid": owner_pid,
            "heartbeat_at": now, "detail": detail or {}, "controller_id": controller_id,
        }  # fmt: skip
        for attempt in range(BEGIN_ATTEMPTS):
            known = self.deployment(deployment_id)
            if known is not None:
                return BeganDeployment(_same_request(known, instance, revision), created=False)
            try:
                return BeganDeployment(self._insert_deployment(row, place, force), created=True)
            except StoreConflict:
                holder = self._active_deployment(instance)
                if holder is not None and holder.id != deployment_id:
                    since = holder.started_at.isoformat(timespec="seconds")
                    raise ConcurrentDeployment(instance, holder.id, holder.actor, since) from None
                if attempt == BEGIN_ATTEMPTS - 1:
                    raise
                # The holder finished meanwhile, or a twin request with our id won: look again.
        raise AssertionError("unreachable")

    def _insert_deployment(
        self, row: dict[str, object], place: dict[str, str], force: bool
    ) -> Deployment:
        instance, deployment_id, kind = str(row["instance"]), str(row["id"]), str(row["kind"])
        with self._write() as conn:
            dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
            new_instance = dialect.insert(instances).values(name=instance, **place)
            conn.execute(new_instance.on_conflict_do_nothing())
            # The partial unique index rejects this insert while another one is active.
            conn.execute(insert(deployments).values(row))
            # Only now: once past the index, no rival can still finish (PostgreSQL waited for
            # the one that held it), so the deployed revision read here is the last word.
            request = DeploymentRequest(
                deployment_id, instance, place["service"], place["host"], place["site"],
                str(row["revision"]), force=force,
            )  # fmt: skip
            done = bulk.already_deployed(conn, [request])
            if instance in done:
                raise done[instance]
            refused = lifecycle.refusals(conn, [(instance, DeploymentKind(kind))])
            if instance in refused:
                raise refused[instance]
            pending = {"status": InstanceStatus.PENDING.value, "last_deployment_id": deployment_id}
            conn.execute(update_instance(instance).values(**pending, **place))
            change = {"deployment": deployment_id, "revision": row["revision"], "kind": kind}
            self._audit(conn, str(row["actor"]), f"{kind}.begin", instance, "pending", change)
            return must_exist(self._deployment(conn, deployment_id), "deployment", deployment_id)

    def mark_in_progress(self, deployment_id: str) -> Deployment:
        """Move a pending deployment to in_progress (again: a no-op)."""
        with self._write() as conn:
            moved = conn.execute(
                update_deployment(deployment_id, DeploymentStatus.PENDING.value).values(
                    status=DeploymentStatus.IN_PROGRESS.value, heartbeat_at=self._clock()
                )
            ).rowcount
            found = must_exist(self._deployment(conn, deployment_id), "deployment", deployment_id)
            if not moved and found.status is not DeploymentStatus.IN_PROGRESS:
                raise NotActive("deployment", deployment_id, found.status.value)
            if moved:
                conn.execute(update_instance(found.instance).values(status=found.status.value))
            return found

    def heartbeat(self, deployment_ids: Sequence[str]) -> int:
        """Renew the lease of running deployments; returns how many of them are still active."""
        if not deployment_ids:
            return 0
        statement = update(deployments).where(
            deployments.c.id.in_(list(deployment_ids)), deployments.c.status.in_(ACTIVE)
        )
        with self._write() as conn:
            return conn.execute(statement.values(heartbeat_at=self._clock())).rowcount

    # The same for many deployments at once: one transaction, a statement per kind of row.

    def begin_deployments(
        self,
        requests: Sequence[DeploymentRequest],
        *,
        actor: str,
        owner_host: str,
        owner_pid: int,
        controller_id: str | None = None,
    ) -> list[Began]:
        """`begin_deployment` for each request, in order: the began deployment, the
        ConcurrentDeployment naming the holder for an instance that has one in flight,
        LifecycleRefused when the instance's state does not allow the request's kind (a deploy
        of a disabled instance, say), or AlreadyDeployed for an instance already at the
        revision (unless the request forces)."""
        if len({r.instance for r in requests}) != len(requests):
            raise ValueError("one deployment per instance in a batch")
        answers: dict[str, Began] = {}
        try:
            with self._write() as conn:
                now = self._clock()
                known = bulk.deployments_by_id(conn, [r.deployment_id for r in requests])
                holders = bulk.active_holders(conn, [r.instance for r in requests])
                current = bulk.already_deployed(conn, requests)
                refused = lifecycle.refusals(conn, [(r.instance, r.kind) for r in requests])
                fresh = []
                for r in requests:
                    if r.deployment_id in known:
                        same = _same_request(known[r.deployment_id], r.instance, r.revision)
                        answers[r.deployment_id] = BeganDeployment(same, created=False)
                    elif r.instance in holders:
                        holder = holders[r.instance]
                        since = holder.started_at.isoformat(timespec="seconds")
                        answers[r.deployment_id] = ConcurrentDeployment(
                            r.instance, holder.id, holder.actor, since
                        )
                    elif r.instance in refused:
                        answers[r.deployment_id] = refused[r.instance]
                    elif r.instance in current:
                        answers[r.deployment_id] = current[r.instance]
                    else:
                        fresh.append(r)
                bulk.insert_pending(
                    conn, fresh, actor=actor, owner_host=owner_host, owner_pid=owner_pid, now=now,
                    controller_id=controller_id,
                )  # fmt: skip
                made = bulk.deployments_by_id(conn, [r.deployment_id for r in fresh])
                answers.update({i: BeganDeployment(d, created=True) for i, d in made.items()})
        except StoreConflict:
            # Another controller got in between our reads and the insert: go one at a time,
            # which sorts out who holds what exactly as it does for a single request.
            return [
                self._begin_one(r, actor, owner_host, owner_pid, controller_id) for r in requests
            ]
        return [answers[r.deployment_id] for r in requests]

    def _begin_one(
        self,
        r: DeploymentRequest,
        actor: str,
        owner_host: str,
        owner_pid: int,
        controller_id: str | None = None,
    ) -> Began:
        try:
            return self.begin_deployment(
                deployment_id=r.deployment_id, instance=r.instance, service=r.service,
                host=r.host, site=r.site, revision=r.revision, actor=actor,
                owner_host=owner_host, owner_pid=owner_pid, rollout_id=r.rollout_id, kind=r.kind,
                controller_id=controller_id,
                force=r.force,
            )  # fmt: skip
        except (ConcurrentDeployment, AlreadyDeployed, LifecycleRefused) as answer:
            return answer

    def mark_in_progress_many(self, deployment_ids: Sequence[str]) -> None:
        """`mark_in_progress` for each id; NotActive (nothing written) if one is finished."""
        with self._write() as conn:
            found = bulk.deployments_by_id(conn, deployment_ids)
            for deployment_id in deployment_ids:
                known = must_exist(found.get(deployment_id), "deployment", deployment_id)
                if not known.status.active:
                    raise NotActive("deployment", deployment_id, known.status.value)
            pending = [d for d in found.values() if d.status is DeploymentStatus.PENDING]
            bulk.move_to_in_progress(conn, pending, now=self._clock())


def _same_request(known: Deployment, instance: str, revision: str) -> Deployment:
    if (known.instance, known.revision) != (instance, revision):
        raise StoreConflict(
            f"deployment id {known.id} is already used for {known.instance}"
            f" at revision {known.revision}"
        )
    return known
