"""The Store: deployments and instances, with the concurrency rule the database enforces."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import (
    LABEL_STYLE_TABLENAME_PLUS_COL,
    Connection,
    Select,
    Update,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from shipyard.errors import (
    AlreadyDeployed,
    ConcurrentDeployment,
    NotActive,
    StoreConflict,
)
from shipyard.events import Event, Phase
from shipyard.store import bulk, leases, rows
from shipyard.store.bulk import DeploymentRequest, Finish
from shipyard.store.journal import Journal, must_exist, write_events
from shipyard.store.owner import Controller, Owner, certainly_gone
from shipyard.store.records import (
    ACTIVE_STATUSES,
    FINAL_STATUSES,
    BeganDeployment,
    Deployment,
    DeploymentKind,
    DeploymentStatus,
    InstanceState,
    InstanceStatus,
    JsonMapping,
    JsonObject,
    RolloutStatus,
    Snapshot,
)
from shipyard.store.tables import deployments, instances, rollouts

ACTIVE = sorted(s.value for s in ACTIVE_STATUSES)
SYSTEM_ACTOR = "shipyard"
# A begin that collides with a holder which finishes before we can read it is simply retried.
BEGIN_ATTEMPTS = 3
# Deployments and rollouts from before controller leases: gone after this long without a beat.
LEGACY_LEASE_SECONDS = 60.0


class Store(Journal):
    """The state store. Each public method is one transaction; the database enforces the rules."""

    # Deployments: begin, mark in progress, heartbeat, finish, recover.

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
        would insert, so a rival that finished meanwhile counts), unless `force`.
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
            pending = {"status": InstanceStatus.PENDING.value, "last_deployment_id": deployment_id}
            conn.execute(_update_instance(instance).values(**pending, **place))
            change = {"deployment": deployment_id, "revision": row["revision"], "kind": kind}
            self._audit(conn, str(row["actor"]), f"{kind}.begin", instance, "pending", change)
            return must_exist(self._deployment(conn, deployment_id), "deployment", deployment_id)

    def mark_in_progress(self, deployment_id: str) -> Deployment:
        """Move a pending deployment to in_progress (again: a no-op)."""
        with self._write() as conn:
            moved = conn.execute(
                _update_deployment(deployment_id, DeploymentStatus.PENDING.value).values(
                    status=DeploymentStatus.IN_PROGRESS.value, heartbeat_at=self._clock()
                )
            ).rowcount
            found = must_exist(self._deployment(conn, deployment_id), "deployment", deployment_id)
            if not moved and found.status is not DeploymentStatus.IN_PROGRESS:
                raise NotActive("deployment", deployment_id, found.status.value)
            if moved:
                conn.execute(_update_instance(found.instance).values(status=found.status.value))
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

    # The same for many deployments at once: one transaction, a statement per kind of row.

    def begin_deployments(
        self,
        requests: Sequence[DeploymentRequest],
        *,
        actor: str,
        owner_host: str,
        owner_pid: int,
        controller_id: str | None = None,
    ) -> list[BeganDeployment | ConcurrentDeployment | AlreadyDeployed]:
        """`begin_deployment` for each request, in order: the began deployment, the
        ConcurrentDeployment naming the holder for an instance that has one in flight, or
        AlreadyDeployed for an instance already at the revision (unless the request forces)."""
        if len({r.instance for r in requests}) != len(requests):
            raise ValueError("one deployment per instance in a batch")
        answers: dict[str, BeganDeployment | ConcurrentDeployment | AlreadyDeployed] = {}
        try:
            with self._write() as conn:
                now = self._clock()
                known = bulk.deployments_by_id(conn, [r.deployment_id for r in requests])
                holders = bulk.active_holders(conn, [r.instance for r in requests])
                current = bulk.already_deployed(conn, requests)
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
    ) -> BeganDeployment | ConcurrentDeployment | AlreadyDeployed:
        try:
            return self.begin_deployment(
                deployment_id=r.deployment_id, instance=r.instance, service=r.service,
                host=r.host, site=r.site, revision=r.revision, actor=actor,
                owner_host=owner_host, owner_pid=owner_pid, rollout_id=r.rollout_id, kind=r.kind,
                controller_id=controller_id,
                force=r.force,
            )  # fmt: skip
        except (ConcurrentDeployment, AlreadyDeployed) as answer:
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

    def finish_deployments(self, finishes: Sequence[Finish]) -> None:
        """`finish_deployment` for each (success or failed); one that is no longer active
        (recovery marked it interrupted meanwhile) raises NotActive and nothing is written."""
        for f in finishes:
            if f.status not in (DeploymentStatus.SUCCESS, DeploymentStatus.FAILED):
                raise ValueError(f"a batch finishes as success or failed, not {f.status}")
            if f.status is DeploymentStatus.SUCCESS and f.snapshot is None:
                raise ValueError("a successful deployment needs the snapshot it deployed")
        if not finishes:
            return
        with self._write() as conn:
            found = bulk.deployments_by_id(conn, [f.deployment_id for f in finishes])
            for f in finishes:
                known = must_exist(found.get(f.deployment_id), "deployment", f.deployment_id)
                if not known.status.active:
                    raise NotActive("deployment", f.deployment_id, known.status.value)
            finished = bulk.write_outcomes(conn, found, finishes, now=self._clock())
            if finished != len(finishes):  # a row changed under us (PostgreSQL): write nothing
                raise StoreConflict(f"{len(finishes) - finished} deployment(s) changed meanwhile")

    # Controllers' leases, and recovery from controllers that are gone.

    def register_controller(self, controller: Controller, *, lease_seconds: float) -> None:
        """Record a controller holding a lease of `lease_seconds` from now (database clock)."""
        with self._write() as conn:
            leases.register(conn, controller, lease_seconds=lease_seconds)

    def renew_lease(
        self, controller_id: str, *, lease_seconds: float, deployment_ids: Sequence[str] = ()
    ) -> bool:
        """Extend the controller's lease and mark its running deployments' heartbeat.

        False when the lease had already run out (or was released): the controller has lost
        its deployments, which recovery may have failed meanwhile, and must stop.
        """
        with self._write() as conn:
            held = leases.renew(conn, controller_id, lease_seconds=lease_seconds)
            if held and deployment_ids:
                conn.execute(
                    update(deployments)
                    .where(deployments.c.id.in_(list(deployment_ids)))
                    .where(deployments.c.status.in_(ACTIVE))
                    .where(deployments.c.controller_id == controller_id)
                    .values(heartbeat_at=self._clock())
                )
            return held

    def release_controller(self, controller_id: str) -> None:
        """End the controller's lease now: it is done (what it left active is recoverable)."""
        with self._write() as conn:
            leases.end(conn, controller_id)

    def recover_interrupted(
        self, *, here: Controller, legacy_lease_seconds: float = LEGACY_LEASE_SECONDS
    ) -> Recovered:
        """Fail the deployments, then finish the rollouts, whose controller is gone.

        A controller is gone when its lease has run out by the database's clock, or sooner when
        its process has certainly ended (`certainly_gone`, judged from `here`). Rows written
        before leases (no controller) are gone once their last heartbeat is older than
        `legacy_lease_seconds`. It reads first: with nothing to recover, nothing is written.
        """
        with self._read() as conn:
            now = leases.read_now(conn)
            active = conn.execute(
                select(
                    deployments.c.id, deployments.c.controller_id, deployments.c.heartbeat_at,
                    deployments.c.owner_host, deployments.c.owner_pid,
                )
                .where(deployments.c.status.in_(ACTIVE))
                .order_by(deployments.c.started_at, deployments.c.id)
            ).all()  # fmt: skip
            running = conn.execute(
                select(rollouts.c.id, rollouts.c.controller_id, rollouts.c.started_at)
                .where(rollouts.c.status == RolloutStatus.IN_PROGRESS.value)
                .order_by(rollouts.c.started_at, rollouts.c.id)
            ).all()
            ids = [r.controller_id for r in [*active, *running] if r.controller_id is not None]
            owners = leases.owners(conn, ids)
        if not active and not running:
            return Recovered([], [])
        legacy_expired = self._clock() - timedelta(seconds=legacy_lease_seconds)
        verdicts: dict[str, str | None] = {}

        def gone(controller_id: str | None, last_seen: datetime) -> str | None:
            if controller_id is None:
                return "its last heartbeat is too old" if last_seen < legacy_expired else None
            if controller_id not in verdicts:
                verdicts[controller_id] = _verdict(owners.get(controller_id), now, here)
            return verdicts[controller_id]

        recovered = Recovered([], [])
        for found in active:
            why = gone(found.controller_id, found.heartbeat_at)
            if why is None:
                continue
            error = f"interrupted (controller process {found.owner_pid} on {found.owner_host}"
            try:
                with self._write() as conn:
                    if found.controller_id is not None:
                        leases.end(conn, found.controller_id)  # in case it only seemed alive
                    self._finish(
                        conn, found.id, DeploymentStatus.FAILED, error=f"{error} is gone: {why})",
                        actor=SYSTEM_ACTOR, action="interrupted", heartbeat_at=found.heartbeat_at,
                    )  # fmt: skip
            except NotActive:
                continue  # it finished while we looked
            recovered.deployments.append(found.id)
        for rollout in running:
            why = gone(rollout.controller_id, rollout.started_at)
            if why is not None and self._interrupt_rollout(
                rollout.id, f"its controller is gone: {why}"
            ):
                recovered.rollouts.append(rollout.id)
        return recovered

    def _interrupt_rollout(self, rollout_id: str, why: str) -> bool:
        """Finish a rollout left in progress as failed, with a summary of its deployments; False
        when one of them is still active or the rollout finished meanwhile."""
        with self._write() as conn:
            statuses = conn.execute(
                select(deployments.c.instance, deployments.c.status).where(
                    deployments.c.rollout_id == rollout_id
                )
            ).all()
            if any(status in ACTIVE for _, status in statuses):
                return False
            counts: dict[str, int] = {}
            for _, status in statuses:
                counts[status] = counts.get(status, 0) + 1
            failed = sorted(i for i, status in statuses if status == DeploymentStatus.FAILED.value)
            summary: JsonObject = {"interrupted": why, "counts": counts, "failed": failed}
            finished = conn.execute(
                update(rollouts)
                .where(rollouts.c.id == rollout_id)
                .where(rollouts.c.status == RolloutStatus.IN_PROGRESS.value)
                .values(
                    status=RolloutStatus.FAILED.value, finished_at=self._clock(), summary=summary
                )
            ).rowcount
            if not finished:
                return False
            target = f"rollout:{rollout_id}"
            self._audit(conn, SYSTEM_ACTOR, "rollout.interrupted", target, "failed", summary)
            done = Event(Phase.ROLLOUT_FINISHED, self._clock(), rollout_id, result="failed")
            write_events(conn, [replace(done, detail=f"interrupted: {why}")])
            return True

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
        statement = _update_deployment(deployment_id, *ACTIVE).values(
            status=status.value, finished_at=now, error=error, **kept
        )
        if heartbeat_at is not None:
            statement = statement.where(deployments.c.heartbeat_at == heartbeat_at)
        finished = conn.execute(statement).rowcount
        found = must_exist(self._deployment(conn, deployment_id), "deployment", deployment_id)
        if not finished:
            raise NotActive("deployment", deployment_id, found.status.value)
        if success:
            changes: dict[str, object] = {
                "status": InstanceStatus.SUCCESS.value, "deployed_revision": found.revision,
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
        conn.execute(_update_instance(found.instance).values(changes))
        detail: JsonObject = {"deployment": found.id, "revision": found.revision}
        if error:
            detail["error"] = error
        what = f"{found.kind.value}.{action}"
        self._audit(conn, actor or found.actor, what, found.instance, status.value, detail)
        if action == "interrupted":  # no deployer says so: the store's own event
            self._recovered(conn, found, error or "interrupted")
        return found

    # Reading deployments and instances.

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

    def _active_deployment(self, instance: str) -> Deployment | None:
        query = select(deployments).where(
            deployments.c.instance == instance, deployments.c.status.in_(ACTIVE)
        )
        return next(iter(self._all(query, rows.deployment)), None)

    def instance_states(self, *, site: str | None = None) -> list[InstanceState]:
        """Every instance the store knows (optionally of one site), by name."""
        query = _instance_query()
        if site is not None:
            query = query.where(instances.c.site == site)
        return self._all(query.order_by(instances.c.name), rows.instance_state)

    def instance_state(self, name: str) -> InstanceState | None:
        query = _instance_query().where(instances.c.name == name)
        return next(iter(self._all(query, rows.instance_state)), None)

    def snapshot_of(self, instance: str, revision: str) -> Snapshot | None:
        """What the latest successful deployment of `revision` to `instance` deployed."""
        query = (
            select(deployments)
            .where(deployments.c.instance == instance, deployments.c.revision == revision)
            .where(deployments.c.status == DeploymentStatus.SUCCESS.value)
            .order_by(deployments.c.finished_at.desc())
        )
        return next(iter(self._all(query.limit(1), rows.deployment_snapshot)), None)

    def _deployment(self, conn: Connection, deployment_id: str) -> Deployment | None:
        query = select(deployments).where(deployments.c.id == deployment_id)
        found = conn.execute(query).mappings().first()
        return rows.deployment(found) if found else None


def _update_deployment(deployment_id: str, *statuses: str) -> Update:
    """UPDATE of one deployment, only while it is in one of `statuses`."""
    return update(deployments).where(
        deployments.c.id == deployment_id, deployments.c.status.in_(statuses)
    )


def _update_instance(name: str) -> Update:
    return update(instances).where(instances.c.name == name)


def _same_request(known: Deployment, instance: str, revision: str) -> Deployment:
    if (known.instance, known.revision) != (instance, revision):
        raise StoreConflict(
            f"deployment id {known.id} is already used for {known.instance}"
            f" at revision {known.revision}"
        )
    return known


def _instance_query() -> Select[tuple[object, ...]]:
    # Each instance with its last deployment; columns come out as instances_name, last_status, ...
    last = deployments.alias("last")
    joined = instances.outerjoin(last, last.c.id == instances.c.last_deployment_id)
    query = select(instances, last).select_from(joined)
    return query.set_label_style(LABEL_STYLE_TABLENAME_PLUS_COL)


@dataclass(frozen=True)
class Recovered:
    """What recovery finished: deployments failed as interrupted, rollouts finished as failed."""

    deployments: list[str]
    rollouts: list[str]


def _verdict(owner: Owner | None, now: float, here: Controller) -> str | None:
    """Why a controller is gone, or None while it holds its lease and may be alive."""
    if owner is None:
        return "the store holds no lease of it"
    if owner.lease_expires <= now:
        return "its lease ran out"
    if certainly_gone(owner.controller, here=here):
        return "its process has exited"
    return None
