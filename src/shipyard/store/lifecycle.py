"""The rows of the lifecycle commands (disable, enable, delete): their refusal by the state
matrix when they begin, and what their outcome does to the instance.

A lifecycle command is a deployment of its own kind, so it takes the instance as a deployment
does (one in flight per instance, the partial unique index) and lands in the audit log and the
history like one. Its outcome changes the instance's `lifecycle`, not its deployed snapshot:

    disable  success: lifecycle disabled, status as before
    enable   success: lifecycle active, status success (started and healthy)
    delete   success: lifecycle deleted, status none, no deployed snapshot
    any      failed:  the instance as it was (status as before, lifecycle unchanged)
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Connection, select, update

from shipyard.plan.lifecycle import Command, LifecycleRefused, State, check, state_of
from shipyard.store.records import (
    Deployment,
    DeploymentKind,
    DeploymentStatus,
    InstanceStatus,
    Lifecycle,
)
from shipyard.store.tables import deployments, instances

if TYPE_CHECKING:
    from shipyard.store.bulk import Finish


def refusals(
    conn: Connection, requests: Sequence[tuple[str, DeploymentKind]]
) -> dict[str, LifecycleRefused]:
    """instance -> why the state matrix refuses its request, for (instance, kind) pairs whose
    instance is in a state the kind may not start from. Read in the beginning transaction."""
    names = [name for name, _ in requests]
    if not names:
        return {}
    found = {
        row.name: (row.status, row.lifecycle)
        for row in conn.execute(
            select(instances.c.name, instances.c.status, instances.c.lifecycle).where(
                instances.c.name.in_(names)
            )
        )
    }
    refused = {}
    for name, kind in requests:
        status, lifecycle = found.get(name, (InstanceStatus.NONE.value, Lifecycle.ACTIVE.value))
        state = state_of(str(status), str(lifecycle))
        if state is State.IN_PROGRESS:
            continue  # no holder (the caller checked): recovery's to finish, not ours to judge
        if not kind.lifecycle and state not in (State.DISABLED, State.DELETED):
            continue  # what a deploy or rollback needs besides is the deployer's to say
        try:
            check(Command(kind.value), name, state)
        except LifecycleRefused as why:
            refused[name] = why
    return refused


def instance_changes(
    conn: Connection, found: Deployment, status: DeploymentStatus
) -> dict[str, object]:
    """What the outcome `status` of the lifecycle deployment `found` makes of its instance."""
    if status is not DeploymentStatus.SUCCESS:
        return {"status": _previous_status(conn, found)}
    if found.kind is DeploymentKind.DISABLE:
        return {"status": _previous_status(conn, found), "lifecycle": Lifecycle.DISABLED.value}
    if found.kind is DeploymentKind.ENABLE:
        return {"status": InstanceStatus.SUCCESS.value, "lifecycle": Lifecycle.ACTIVE.value}
    return {  # deleted from its host
        "status": InstanceStatus.NONE.value, "lifecycle": Lifecycle.DELETED.value,
        "deployed_revision": None, "deployed_config": None, "deployed_secrets": None,
        "deployed_at": None, "deployed_deployment_id": None,
    }  # fmt: skip


def write_outcomes(
    conn: Connection, found: dict[str, Deployment], finishes: Sequence[Finish], *, now: datetime
) -> int:
    """The lifecycle deployments of `finishes` finished, one by one (they are few), and their
    instances changed; returns how many were still active."""
    finished = 0
    for f in finishes:
        known = found[f.deployment_id]
        finished += conn.execute(
            update(deployments)
            .where(deployments.c.id == known.id)
            .where(deployments.c.status.in_(["pending", "in_progress"]))
            .values(status=f.status.value, finished_at=now, error=f.error)
        ).rowcount
        changes = instance_changes(conn, known, f.status)
        conn.execute(update(instances).where(instances.c.name == known.instance).values(changes))
    return finished


def _previous_status(conn: Connection, found: Deployment) -> str:
    """The instance's status from its last finished deployment of any kind but lifecycle's
    (none when it has none): what a lifecycle command leaves it at."""
    previous = conn.execute(
        select(deployments.c.status)
        .where(deployments.c.instance == found.instance)
        .where(deployments.c.id != found.id)
        .where(deployments.c.kind.in_([DeploymentKind.DEPLOY.value, DeploymentKind.ROLLBACK.value]))
        .where(deployments.c.status.in_(["success", "failed"]))
        .order_by(deployments.c.started_at.desc())
        .limit(1)
    ).scalar()
    return str(previous or InstanceStatus.NONE.value)
