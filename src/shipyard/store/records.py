"""The values the state store hands out: frozen dataclasses, one per kind of row."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

# A JSON object as stored (snapshots, details, summaries): keys are strings, values plain JSON.
JsonObject = dict[str, object]
# What the store accepts where it stores a JSON object.
JsonMapping = Mapping[str, object]


class DeploymentStatus(StrEnum):
    """Where one deployment is: `pending → in_progress → success | failed`, or `skipped`."""

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    SUCCESS = "success"
    FAILED = "failed"
    SKIPPED = "skipped"  # created but never run, e.g. a dependency failed first

    @property
    def active(self) -> bool:
        """True while the deployment holds its instance."""
        return self in ACTIVE_STATUSES


ACTIVE_STATUSES = frozenset({DeploymentStatus.PENDING, DeploymentStatus.IN_PROGRESS})
FINAL_STATUSES = frozenset(
    {DeploymentStatus.SUCCESS, DeploymentStatus.FAILED, DeploymentStatus.SKIPPED}
)


class InstanceStatus(StrEnum):
    """The current deployment status of an instance; `none` until its first deployment."""

    NONE = "none"
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    SUCCESS = "success"
    FAILED = "failed"


class DeploymentKind(StrEnum):
    """Why a deployment exists: a new revision, a switch back to a kept release, or a lifecycle
    command (its program stopped for good, started again, or removed from the host)."""

    DEPLOY = "deploy"
    ROLLBACK = "rollback"
    DISABLE = "disable"
    ENABLE = "enable"
    DELETE = "delete"

    @property
    def lifecycle(self) -> bool:
        return self in (DeploymentKind.DISABLE, DeploymentKind.ENABLE, DeploymentKind.DELETE)


class Lifecycle(StrEnum):
    """Whether an instance runs: `active` (deployments run it), `disabled` (stopped, its release
    kept), `deleted` (removed from its host)."""

    ACTIVE = "active"
    DISABLED = "disabled"
    DELETED = "deleted"


class RolloutStatus(StrEnum):
    """Where one rollout is; `failed` when any of its deployments failed."""

    IN_PROGRESS = "in_progress"
    SUCCESS = "success"
    FAILED = "failed"


@dataclass(frozen=True)
class Deployment:
    """One attempt to bring one instance to a revision."""

    id: str
    instance: str
    kind: DeploymentKind
    revision: str
    status: DeploymentStatus
    actor: str
    rollout_id: str | None
    started_at: datetime
    finished_at: datetime | None
    error: str | None
    owner_host: str  # the controller running it
    owner_pid: int
    heartbeat_at: datetime
    detail: JsonObject


@dataclass(frozen=True)
class BeganDeployment:
    """The answer to `begin_deployment`: the row, and whether this call created it."""

    deployment: Deployment
    created: bool  # False when the id was already known: the request is a repeat


@dataclass(frozen=True)
class Snapshot:
    """What a successful deployment left running: revision, flat config, secret fingerprints."""

    revision: str
    config: JsonObject
    secrets: dict[str, str]
    deployed_at: datetime
    deployment_id: str


@dataclass(frozen=True)
class InstanceState:
    """Everything the store knows about one instance: status, deployed snapshot, last attempt."""

    name: str  # service@host
    service: str
    host: str
    site: str
    status: InstanceStatus
    deployed: Snapshot | None  # None until a deployment succeeded
    last_deployment: Deployment | None
    lifecycle: Lifecycle = Lifecycle.ACTIVE

    @property
    def deployed_revision(self) -> str | None:
        return self.deployed.revision if self.deployed else None


@dataclass(frozen=True)
class Rollout:
    """One request that fanned out into deployments."""

    id: str
    actor: str
    request: str
    strategy: str
    status: RolloutStatus
    started_at: datetime
    finished_at: datetime | None
    summary: JsonObject
    config_version: int | None = None  # the config version it deployed from


@dataclass(frozen=True)
class AuditEntry:
    """One line of the append-only audit log: who did what to what, when, with what result."""

    id: int
    at: datetime
    actor: str
    action: str
    target: str
    result: str
    detail: JsonObject


@dataclass(frozen=True)
class StepLog:
    """What one host step of a deployment printed (bounded and masked), in the order it ran."""

    deployment_id: str
    seq: int  # 1, 2, ... within the deployment
    step: str
    host: str
    at: datetime
    exit_status: int | None
    output: str


@dataclass(frozen=True, slots=True)
class StatusRow:
    """One instance as `status` shows it: where it runs, its status, what is deployed, and its
    last deployment (None until there was one). Text columns are masked as the store wrote them."""

    name: str  # service@host
    service: str
    host: str
    site: str
    status: InstanceStatus
    deployed_revision: str | None  # None until a deployment succeeded
    deployed_at: datetime | None
    last_deployment_id: str | None
    last_status: DeploymentStatus | None
    last_kind: str | None  # deploy or rollback
    last_actor: str | None
    last_started_at: datetime | None
    last_finished_at: datetime | None
    last_error: str | None  # the whole error text; its first line summarises it
    lifecycle: str = "active"  # active, disabled or deleted


def as_utc(value: datetime) -> datetime:
    """A stored timestamp in UTC: a naive one (SQLite keeps no zone) is UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value if value.tzinfo is UTC else value.astimezone(UTC)
