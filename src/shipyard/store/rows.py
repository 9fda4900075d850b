"""Turning result rows into the store's records; no SQL here, only names and types."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import RowMapping

from shipyard.events import Event, Phase
from shipyard.store.records import (
    FINAL_STATUSES,
    AuditEntry,
    Deployment,
    DeploymentKind,
    DeploymentStatus,
    InstanceState,
    InstanceStatus,
    JsonObject,
    Lifecycle,
    Rollout,
    RolloutStatus,
    Snapshot,
    StepLog,
)


def deployment(row: RowMapping, prefix: str = "") -> Deployment:
    """A deployment from its columns, read under `prefix` (e.g. `last_` in a join)."""

    def col(name: str) -> object:
        return row[prefix + name]

    return Deployment(
        id=_str(col("id")),
        instance=_str(col("instance")),
        kind=DeploymentKind(_str(col("kind"))),
        revision=_str(col("revision")),
        status=DeploymentStatus(_str(col("status"))),
        actor=_str(col("actor")),
        rollout_id=_opt_str(col("rollout_id")),
        started_at=_when(col("started_at")),
        finished_at=_opt_when(col("finished_at")),
        error=_opt_str(col("error")),
        owner_host=_str(col("owner_host")),
        owner_pid=_int(col("owner_pid")),
        heartbeat_at=_when(col("heartbeat_at")),
        detail=_json(col("detail")),
    )


def deployment_snapshot(row: RowMapping) -> Snapshot:
    """The snapshot a successful deployment stored on its own row."""
    return Snapshot(
        revision=_str(row["revision"]),
        config=_json(row["config"]),
        secrets=_secrets(row["secrets"]),
        deployed_at=_when(row["finished_at"]),
        deployment_id=_str(row["id"]),
    )


def instance_state(row: RowMapping) -> InstanceState:
    """An instance joined with its last deployment (columns `instances_*` and `last_*`)."""
    deployed = None
    if row["instances_deployed_revision"] is not None:
        deployed = Snapshot(
            revision=_str(row["instances_deployed_revision"]),
            config=_json(row["instances_deployed_config"]),
            secrets=_secrets(row["instances_deployed_secrets"]),
            deployed_at=_when(row["instances_deployed_at"]),
            deployment_id=_str(row["instances_deployed_deployment_id"]),
        )
    last = deployment(row, prefix="last_") if row["last_id"] is not None else None
    return InstanceState(
        name=_str(row["instances_name"]),
        service=_str(row["instances_service"]),
        host=_str(row["instances_host"]),
        site=_str(row["instances_site"]),
        status=InstanceStatus(_str(row["instances_status"])),
        deployed=deployed,
        last_deployment=last,
        lifecycle=Lifecycle(_str(row["instances_lifecycle"])),
    )


def rollout(row: RowMapping) -> Rollout:
    return Rollout(
        id=_str(row["id"]),
        actor=_str(row["actor"]),
        request=_str(row["request"]),
        strategy=_str(row["strategy"]),
        status=RolloutStatus(_str(row["status"])),
        started_at=_when(row["started_at"]),
        finished_at=_opt_when(row["finished_at"]),
        summary=_json(row["summary"]),
        config_version=_opt_int(row["config_version"]),
    )


def _opt_int(value: object) -> int | None:
    return None if value is None else _int(value)


def audit_entry(row: RowMapping) -> AuditEntry:
    return AuditEntry(
        id=_int(row["id"]),
        at=_when(row["at"]),
        actor=_str(row["actor"]),
        action=_str(row["action"]),
        target=_str(row["target"]),
        result=_str(row["result"]),
        detail=_json(row["detail"]),
    )


def event(row: RowMapping) -> Event:
    """A typed event; a row from before migration 0004 (no phase) is read from its payload:
    a deployment's status change, as QUEUED while it is active and FINISHED once it ended."""
    phase = _opt_str(row["phase"])
    if phase is not None:
        return Event(
            phase=Phase(phase),
            at=_when(row["at"]),
            rollout_id=_opt_str(row["rollout_id"]),
            deployment_id=_opt_str(row["deployment_id"]),
            instance=_opt_str(row["instance"]),
            site=_opt_str(row["site"]),
            host=_opt_str(row["host"]),
            result=_opt_str(row["result"]),
            detail=_opt_str(row["detail"]) or "",
            id=_int(row["id"]),
            subject=_opt_str(row.get("subject")),
        )
    payload = _json(row["payload"])
    status = str(payload.get("status", ""))
    final = status in {s.value for s in FINAL_STATUSES}
    deployment_id = payload.get("deployment")
    what = ", ".join(f"{k}={v}" for k, v in sorted(payload.items()) if k != "status")
    return Event(
        phase=Phase.FINISHED if final else Phase.QUEUED,
        at=_when(row["at"]),
        deployment_id=deployment_id if isinstance(deployment_id, str) else None,
        instance=_opt_str(row["instance"]),
        result=status if final else None,
        detail=f"{_str(row['kind'])} {status}: {what}".strip(": "),
        id=_int(row["id"]),
    )


def event_values(event: Event) -> dict[str, object]:
    """The columns of a new events row (`payload` is empty: the fields are columns now)."""
    return {
        "at": event.at,
        "kind": event.kind,
        "payload": {},
        "phase": event.phase.value,
        "rollout_id": event.rollout_id,
        "deployment_id": event.deployment_id,
        "instance": event.instance,
        "site": event.site,
        "host": event.host,
        "result": event.result,
        "detail": event.detail,
        "subject": event.subject,
        "severity": event.severity.value,
        "source": event.source[:SOURCE_LIMIT],
        "message": event.message,
    }


SOURCE_LIMIT = 400


def step_log(row: RowMapping) -> StepLog:
    status = row["exit_status"]
    return StepLog(
        deployment_id=_str(row["deployment_id"]),
        seq=_int(row["seq"]),
        step=_str(row["step"]),
        host=_str(row["host"]),
        at=_when(row["at"]),
        exit_status=None if status is None else _int(status),
        output=_str(row["output"]),
    )


# The column types already produce these Python types; the checks keep mypy and us honest.


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected text from the store, got {value!r}")
    return value


def _opt_str(value: object) -> str | None:
    return None if value is None else _str(value)


def _int(value: object) -> int:
    if not isinstance(value, int):
        raise TypeError(f"expected a number from the store, got {value!r}")
    return value


def _when(value: object) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"expected a timestamp from the store, got {value!r}")
    return value


def _opt_when(value: object) -> datetime | None:
    return None if value is None else _when(value)


def _json(value: object) -> JsonObject:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TypeError(f"expected a JSON object from the store, got {value!r}")
    return value


def _secrets(value: object) -> dict[str, str]:
    return {str(k): str(v) for k, v in _json(value).items()}
