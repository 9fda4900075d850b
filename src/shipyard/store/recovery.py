"""Controllers' leases, and recovery from controllers that are gone."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import select, update

from shipyard.errors import NotActive
from shipyard.events import Event, Phase
from shipyard.store import leases
from shipyard.store.bulk import ACTIVE
from shipyard.store.finish import Finishing
from shipyard.store.journal import write_events
from shipyard.store.owner import Controller, Owner, certainly_gone
from shipyard.store.records import DeploymentStatus, JsonObject, RolloutStatus
from shipyard.store.tables import deployments, rollouts

SYSTEM_ACTOR = "shipyard"
# Deployments and rollouts from before controller leases: gone after this long without a beat.
LEGACY_LEASE_SECONDS = 60.0


@dataclass(frozen=True)
class Recovered:
    """What recovery finished: deployments failed as interrupted, rollouts finished as failed."""

    deployments: list[str]
    rollouts: list[str]


class Recovery(Finishing):
    """Leases and recovery; each public method is one transaction (recovery one per row)."""

    def register_controller(self, controller: Controller, *, lease_seconds: float) -> int:
        """Record a controller holding a lease of `lease_seconds` from now (database clock);
        returns its fencing epoch (larger than any registration's before)."""
        with self._write() as conn:
            return leases.register(conn, controller, lease_seconds=lease_seconds)

    def store_id(self) -> str:
        """Which store this is: a random id made once, that hosts keep beside the epoch."""
        with self._read() as conn:
            return leases.store_id(conn)

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
            process = f"controller process {found.owner_pid} on {found.owner_host}"
            error = f"interrupted ({process} is gone: {why})"
            if why.startswith("replica "):
                error = f"interrupted: {why} ({process})"
            try:
                with self._write() as conn:
                    if found.controller_id is not None:
                        leases.end(conn, found.controller_id)  # in case it only seemed alive
                    self._finish(
                        conn, found.id, DeploymentStatus.FAILED, error=error,
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

    def interrupt_controller(self, controller_id: str, reason: str) -> Recovered:
        """Fail what `controller_id` still has active, with `reason`, and finish its rollouts:
        for a server whose rollouts did not end within their grace period. Its lease ends."""
        with self._read() as conn:
            active = conn.execute(
                select(deployments.c.id, deployments.c.heartbeat_at)
                .where(deployments.c.status.in_(ACTIVE))
                .where(deployments.c.controller_id == controller_id)
            ).all()
            running = conn.execute(
                select(rollouts.c.id)
                .where(rollouts.c.status == RolloutStatus.IN_PROGRESS.value)
                .where(rollouts.c.controller_id == controller_id)
            ).all()
        with self._write() as conn:
            leases.end(conn, controller_id)
        recovered = Recovered([], [])
        for found in active:
            try:
                with self._write() as conn:
                    self._finish(
                        conn, found.id, DeploymentStatus.FAILED, error=f"interrupted: {reason}",
                        actor=SYSTEM_ACTOR, action="interrupted", heartbeat_at=found.heartbeat_at,
                    )  # fmt: skip
            except NotActive:
                continue
            recovered.deployments.append(found.id)
        for rollout in running:
            if self._interrupt_rollout(rollout.id, reason):
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


def _verdict(owner: Owner | None, now: float, here: Controller) -> str | None:
    """Why a controller is gone, or None while it holds its lease and may be alive."""
    if owner is None:
        return "the store holds no lease of it"
    replica = owner.controller.replica
    if owner.lease_expires <= now:
        return f"replica {replica} lost its lease" if replica else "its lease ran out"
    if certainly_gone(owner.controller, here=here):
        return f"replica {replica} has exited" if replica else "its process has exited"
    return None
