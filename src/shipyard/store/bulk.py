"""Many deployments in one transaction: the statements behind the store's batch methods.

A rollout of a thousand instances would otherwise cost four transactions and sixteen statements
per instance. These run one statement per kind of row for the whole batch (executemany), with
the same rows and audit entries the one-at-a-time methods write (events are the deployer's to
publish); the partial unique index still has the last word on the concurrency rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, bindparam, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from shipyard.errors import AlreadyDeployed, StoreConflict
from shipyard.store import chain, lifecycle, rows
from shipyard.store.records import (
    ACTIVE_STATUSES,
    Deployment,
    DeploymentKind,
    DeploymentStatus,
    InstanceStatus,
    JsonMapping,
    JsonObject,
    Lifecycle,
)
from shipyard.store.tables import deployments, instances

ACTIVE = sorted(s.value for s in ACTIVE_STATUSES)


@dataclass(frozen=True)
class DeploymentRequest:
    """One deployment to begin: which instance, where it runs, which revision."""

    deployment_id: str
    instance: str
    service: str
    host: str
    site: str
    revision: str
    rollout_id: str | None = None
    kind: DeploymentKind = DeploymentKind.DEPLOY
    force: bool = False  # begin even when the instance is already at `revision`


@dataclass(frozen=True)
class Finish:
    """The outcome of one deployment: success with its snapshot, or failed with the reason."""

    deployment_id: str
    status: DeploymentStatus
    error: str | None = None
    snapshot: JsonMapping | None = None
    secrets: dict[str, str] = field(default_factory=dict)


def deployments_by_id(conn: Connection, ids: Sequence[str]) -> dict[str, Deployment]:
    found = conn.execute(select(deployments).where(deployments.c.id.in_(list(ids)))).mappings()
    return {row["id"]: rows.deployment(row) for row in found}


def active_holders(conn: Connection, names: Sequence[str]) -> dict[str, Deployment]:
    """instance -> its pending or in-progress deployment, for those of `names` that have one."""
    query = select(deployments).where(
        deployments.c.instance.in_(list(names)), deployments.c.status.in_(ACTIVE)
    )
    return {row["instance"]: rows.deployment(row) for row in conn.execute(query).mappings()}


def already_deployed(
    conn: Connection, requests: Sequence[DeploymentRequest]
) -> dict[str, AlreadyDeployed]:
    """instance -> who put it at its revision, for the requests (not forced) whose instance is
    already at the revision they ask for. Read in the transaction that would begin them."""
    wanted = {r.instance: r.revision for r in requests if not r.force}
    if not wanted:
        return {}
    last = deployments.alias("deployed")
    query = (
        select(
            instances.c.name,
            instances.c.deployed_revision,
            instances.c.deployed_deployment_id,
            instances.c.deployed_at,
            last.c.actor,
        )
        .select_from(instances.outerjoin(last, last.c.id == instances.c.deployed_deployment_id))
        .where(instances.c.name.in_(list(wanted)), instances.c.deployed_revision.is_not(None))
    )
    found = {}
    for row in conn.execute(query):
        if row.deployed_revision == wanted[row.name]:
            at = row.deployed_at.isoformat(timespec="seconds") if row.deployed_at else "?"
            found[row.name] = AlreadyDeployed(
                row.name, row.deployed_revision, str(row.deployed_deployment_id),
                str(row.actor or "?"), at,
            )  # fmt: skip
    return found


def insert_pending(
    conn: Connection,
    requests: Sequence[DeploymentRequest],
    *,
    actor: str,
    owner_host: str,
    owner_pid: int,
    now: datetime,
    controller_id: str | None = None,
) -> None:
    """The rows `begin_deployment` writes, for every request at once.

    Raises StoreConflict (nothing is kept: the caller's transaction rolls back) when an instance
    turns out to be at its requested revision already. On SQLite the caller's check before the
    insert is exact (it holds the write lock); on PostgreSQL a deployment that finished while
    we read is only visible now, after our insert got past the one-in-flight index.
    """
    if not requests:
        return
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    new = [
        {"name": r.instance, "service": r.service, "host": r.host, "site": r.site} for r in requests
    ]
    conn.execute(dialect.insert(instances).on_conflict_do_nothing(), new)
    conn.execute(
        insert(deployments),
        [
            {
                "id": r.deployment_id,
                "instance": r.instance,
                "kind": r.kind.value,
                "revision": r.revision,
                "status": DeploymentStatus.PENDING.value,
                "actor": actor,
                "rollout_id": r.rollout_id,
                "started_at": now,
                "owner_host": owner_host,
                "owner_pid": owner_pid,
                "heartbeat_at": now,
                "detail": {},
                "controller_id": controller_id,
            }
            for r in requests
        ],
    )
    late = already_deployed(conn, requests)  # after the insert: see the docstring
    if late:
        raise StoreConflict("; ".join(str(reason) for reason in late.values()))
    conn.execute(
        update(instances)
        .where(instances.c.name == bindparam("b_name"))
        .values(
            status=InstanceStatus.PENDING.value,
            last_deployment_id=bindparam("b_id"),
            service=bindparam("b_service"),
            host=bindparam("b_host"),
            site=bindparam("b_site"),
        ),
        [
            {
                "b_name": r.instance,
                "b_id": r.deployment_id,
                "b_service": r.service,
                "b_host": r.host,
                "b_site": r.site,
            }
            for r in requests
        ],
    )
    changes = [
        (r, {"deployment": r.deployment_id, "revision": r.revision, "kind": r.kind.value})
        for r in requests
    ]
    write_audit(
        conn,
        [(actor, f"{r.kind.value}.begin", r.instance, "pending", c) for r, c in changes],
        now=now,
    )


def move_to_in_progress(conn: Connection, pending: Sequence[Deployment], *, now: datetime) -> int:
    """pending -> in_progress for `pending` (read in this transaction); returns rows moved."""
    if not pending:
        return 0
    ids = [d.id for d in pending]
    moved = conn.execute(
        update(deployments)
        .where(deployments.c.id.in_(ids), deployments.c.status == DeploymentStatus.PENDING.value)
        .values(status=DeploymentStatus.IN_PROGRESS.value, heartbeat_at=now)
    ).rowcount
    conn.execute(
        update(instances)
        .where(instances.c.name.in_([d.instance for d in pending]))
        .values(status=InstanceStatus.IN_PROGRESS.value)
    )
    return int(moved)


def write_outcomes(
    conn: Connection, found: dict[str, Deployment], finishes: Sequence[Finish], *, now: datetime
) -> int:
    """The rows `finish_deployment` writes, for every finish at once; returns rows finished.

    Only success and failed: a skipped deployment looks up its instance's previous status.
    Lifecycle commands' outcomes change their instances as store.lifecycle says.
    """
    kinds = [f for f in finishes if found[f.deployment_id].kind.lifecycle]
    finished = lifecycle.write_outcomes(conn, found, kinds, now=now)
    finishes = [f for f in finishes if not found[f.deployment_id].kind.lifecycle]
    done = [f for f in finishes if f.status is DeploymentStatus.SUCCESS]
    failed = [f for f in finishes if f.status is DeploymentStatus.FAILED]
    # Spelt out: an IN list can't be expanded inside an executemany.
    still_active = or_(*(deployments.c.status == status for status in ACTIVE))
    if done:
        finished += conn.execute(
            update(deployments)
            .where(deployments.c.id == bindparam("b_id"), still_active)
            .values(
                status=DeploymentStatus.SUCCESS.value,
                finished_at=now,
                error=None,
                config=bindparam("b_config"),
                secrets=bindparam("b_secrets"),
            ),
            [
                {"b_id": f.deployment_id, "b_config": f.snapshot, "b_secrets": f.secrets}
                for f in done
            ],
        ).rowcount
        conn.execute(
            update(instances)
            .where(instances.c.name == bindparam("b_name"))
            .values(
                status=InstanceStatus.SUCCESS.value,
                lifecycle=Lifecycle.ACTIVE.value,  # a deleted one deployed anew is back
                deployed_revision=bindparam("b_revision"),
                deployed_config=bindparam("b_config"),
                deployed_secrets=bindparam("b_secrets"),
                deployed_at=now,
                deployed_deployment_id=bindparam("b_id"),
            ),
            [
                {
                    "b_name": found[f.deployment_id].instance,
                    "b_id": f.deployment_id,
                    "b_revision": found[f.deployment_id].revision,
                    "b_config": f.snapshot,
                    "b_secrets": f.secrets,
                }
                for f in done
            ],
        )
    if failed:
        finished += conn.execute(
            update(deployments)
            .where(deployments.c.id == bindparam("b_id"), still_active)
            .values(
                status=DeploymentStatus.FAILED.value, finished_at=now, error=bindparam("b_error")
            ),
            [{"b_id": f.deployment_id, "b_error": f.error} for f in failed],
        ).rowcount
        conn.execute(
            update(instances)
            .where(instances.c.name.in_([found[f.deployment_id].instance for f in failed]))
            .values(status=InstanceStatus.FAILED.value)
        )
    entries = []
    for f in [*kinds, *done, *failed]:
        known = found[f.deployment_id]
        detail: JsonObject = {"deployment": known.id, "revision": known.revision}
        if f.error:
            detail["error"] = f.error
        entries.append((known, f.status.value, detail))
    write_audit(
        conn,
        [(d.actor, f"{d.kind.value}.finish", d.instance, s, detail) for d, s, detail in entries],
        now=now,
    )
    return int(finished)


def write_audit(
    conn: Connection,
    entries: Sequence[tuple[str, str, str, str, JsonMapping]],
    *,
    now: datetime,
) -> None:
    """Append audit rows, chained: (actor, action, target, result, detail) each."""
    chain.append(conn, entries, now=now)
