"""The store's schema as SQLAlchemy Core tables; migrations/ creates the same in the database."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.types import TypeDecorator

from shipyard.store.engine import masker_of
from shipyard.store.records import (
    DeploymentKind,
    DeploymentStatus,
    InstanceStatus,
    JsonMapping,
    JsonObject,
    Lifecycle,
    RolloutStatus,
    as_utc,
)


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend (SQLite keeps no zone, so we add it back)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the store keeps UTC timestamps only")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)


class JsonText(TypeDecorator[JsonObject]):
    """A JSON object kept as canonical text (sorted keys), the same on SQLite and PostgreSQL."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: JsonMapping | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return json.dumps(dict(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    def process_result_value(self, value: str | None, dialect: Dialect) -> JsonObject | None:
        if value is None:
            return None
        loaded = json.loads(value)
        if not isinstance(loaded, dict):
            raise ValueError(f"expected a JSON object in the store, found {type(loaded).__name__}")
        return loaded


class MaskedText(TypeDecorator[str]):
    """Free text (errors, requests): every known secret value is masked before it is written.

    This is the store's one masking boundary: the engine's masker (engine.use_masker) applies
    to every statement that binds a value to such a column, whichever code path writes it.
    """

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else masker_of(dialect).text(value)


class MaskedJson(JsonText):
    """A JSON object of free text (event payloads, summaries, details), masked like MaskedText."""

    cache_ok = True

    def process_bind_param(self, value: JsonMapping | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        masked = masker_of(dialect).json(dict(value))
        assert isinstance(masked, dict)
        return super().process_bind_param(masked, dialect)


def one_of(column: str, values: type[StrEnum]) -> CheckConstraint:
    """A CHECK constraint keeping `column` within an enum's values."""
    allowed = ", ".join(f"'{v.value}'" for v in values)
    return CheckConstraint(f"{column} IN ({allowed})", name=f"{column}_valid")


# SQLite only autoincrements an INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
AutoId = BigInteger().with_variant(Integer(), "sqlite")
NAME = 255
ID = 64
REVISION = 128
STATUS = 16
HASH = 64  # sha256, hex

# The one rule the store exists for: at most one pending or in-progress deployment per instance.
ACTIVE_WHERE = text("status IN ('pending', 'in_progress')")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

instances = Table(
    "instances",
    metadata,
    Column("name", String(NAME), primary_key=True),  # service@host
    Column("service", String(NAME), nullable=False),
    Column("host", String(NAME), nullable=False),
    Column("site", String(NAME), nullable=False),
    Column("status", String(STATUS), nullable=False, server_default=InstanceStatus.NONE.value),
    # The snapshot of the last successful deployment; a failed one never changes it.
    Column("deployed_revision", String(REVISION)),
    Column("deployed_config", JsonText()),
    Column("deployed_secrets", JsonText()),
    Column("deployed_at", UtcDateTime()),
    Column("deployed_deployment_id", String(ID)),
    # Not a foreign key: deployments already refer to instances, and a cycle buys nothing here.
    Column("last_deployment_id", String(ID)),
    Column("lifecycle", String(STATUS), nullable=False, server_default=Lifecycle.ACTIVE.value),
    one_of("status", InstanceStatus),
    one_of("lifecycle", Lifecycle),
)
Index("ix_instances_site", instances.c.site)

rollouts = Table(
    "rollouts",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("actor", String(NAME), nullable=False),
    Column("request", MaskedText(), nullable=False),
    Column("strategy", String(32), nullable=False),
    Column("status", String(STATUS), nullable=False),
    Column("started_at", UtcDateTime(), nullable=False),
    Column("finished_at", UtcDateTime()),
    Column("summary", MaskedJson(), nullable=False),
    Column("controller_id", String(ID)),  # the controller running it (None: before leases)
    Column("config_version", Integer),  # the config version it deployed from (None: no server)
    one_of("status", RolloutStatus),
)

deployments = Table(
    "deployments",
    metadata,
    Column("id", String(ID), primary_key=True),  # chosen by the caller, so a repeat is detectable
    Column("instance", String(NAME), ForeignKey("instances.name"), nullable=False),
    Column("kind", String(STATUS), nullable=False),
    Column("revision", String(REVISION), nullable=False),
    Column("status", String(STATUS), nullable=False),
    Column("actor", String(NAME), nullable=False),
    Column("rollout_id", String(ID), ForeignKey("rollouts.id")),
    Column("started_at", UtcDateTime(), nullable=False),
    Column("finished_at", UtcDateTime()),
    Column("error", MaskedText()),
    Column("owner_host", String(NAME), nullable=False),
    Column("owner_pid", Integer, nullable=False),
    Column("heartbeat_at", UtcDateTime(), nullable=False),
    # Kept on success, so a rollback can restore the snapshot of an earlier revision.
    Column("config", JsonText()),
    Column("secrets", JsonText()),
    Column("detail", MaskedJson(), nullable=False),
    Column("controller_id", String(ID)),  # the controller running it (None: before leases)
    one_of("status", DeploymentStatus),
    one_of("kind", DeploymentKind),
)
Index(
    "uq_deployments_active_instance",
    deployments.c.instance,
    unique=True,
    sqlite_where=ACTIVE_WHERE,
    postgresql_where=ACTIVE_WHERE,
)
Index("ix_deployments_instance_started_at", deployments.c.instance, deployments.c.started_at)
Index("ix_deployments_status", deployments.c.status)
Index("ix_deployments_rollout_id", deployments.c.rollout_id)

# Who runs deployments and rollouts, and until when the database's clock holds them theirs.
controllers = Table(
    "controllers",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("host", String(NAME), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("boot_id", String(ID), nullable=False),
    Column("pid_namespace", String(ID), nullable=False),
    Column("process_start", BigInteger, nullable=False),
    Column("lease_expires", Float(precision=53), nullable=False),  # epoch seconds, database clock
    Column("replica", String(NAME), nullable=False, server_default=""),  # a server's; "" for a CLI
    # Fencing: larger at each registration than any before (leases.register); hosts keep the
    # largest they have seen and refuse steps of a smaller one (commands/fence.py).
    Column("epoch", BigInteger, nullable=False, server_default="0"),
)
Index("ix_controllers_lease_expires", controllers.c.lease_expires)

# One row, made by migration 0012: which store this is (hosts keep it beside the epoch).
store_identity = Table(
    "store_identity",
    metadata,
    Column("id", String(ID), primary_key=True),
)

# Append-only: triggers created by the migrations abort any UPDATE or DELETE, and each row
# carries a hash over its content and the previous row's hash (chain.py), so that a row changed
# or slipped in past the triggers is found by `shipyard audit verify`.
audit = Table(
    "audit",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("at", UtcDateTime(), nullable=False),
    Column("actor", String(NAME), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(NAME), nullable=False),
    Column("result", String(32), nullable=False),
    # Masked by chain.append itself, before it hashes: the hash covers exactly what is stored.
    Column("detail", JsonText(), nullable=False),
    Column("prev_hash", String(HASH), nullable=False),
    Column("hash", String(HASH), nullable=False),
)
Index("ix_audit_target_id", audit.c.target, audit.c.id)
Index("ix_audit_at", audit.c.at)

# What live views follow, in id order: the typed event stream (shipyard.events.Event). Rows
# written before migration 0004 have only `kind`, `instance` and `payload` (phase NULL).
events = Table(
    "events",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("at", UtcDateTime(), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("instance", String(NAME)),
    Column("payload", MaskedJson(), nullable=False),
    Column("phase", String(32)),
    Column("rollout_id", String(ID)),
    Column("deployment_id", String(ID)),
    Column("site", String(NAME)),
    Column("host", String(NAME)),
    Column("result", String(32)),
    Column("detail", MaskedText()),
    # The site event log (migration 0008): what it is about, how grave, and one line to read.
    Column("subject", String(NAME)),
    Column("severity", String(STATUS), nullable=False, server_default="info"),
    Column("source", String(400)),
    Column("message", MaskedText()),
)
Index("ix_events_rollout_id_id", events.c.rollout_id, events.c.id)
Index("ix_events_site_id", events.c.site, events.c.id)
Index("ix_events_at", events.c.at)
# Kept by the migrations alone (no table here can describe them): the keyword index over
# message and source, an FTS5 table on SQLite; on PostgreSQL a generated tsvector column of
# events (events_search_doc) and its GIN index.
SEARCH_OBJECTS = frozenset({"events_search", "ix_events_search"})


def described_here(name: str | None) -> bool:
    """False for the database objects only the migrations know (the keyword search's, FTS5's
    shadow tables included): what a comparison with this metadata leaves out."""
    return name is None or not any(name.startswith(o) for o in SEARCH_OBJECTS)


# The host output of each step of a deployment, bounded and masked, in the order it ran.
step_logs = Table(
    "step_logs",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("deployment_id", String(ID), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("step", String(64), nullable=False),
    Column("host", String(NAME), nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    Column("exit_status", Integer),
    Column("output", MaskedText(), nullable=False),
)
Index("ix_step_logs_deployment_id_seq", step_logs.c.deployment_id, step_logs.c.seq)

# The server's accounts. A user has roles (admin, design, deployment, viewer) and, for the
# deployment role, optionally the sites it may act on; a password only as its argon2id hash.
users = Table(
    "users",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("name", String(NAME), nullable=False, unique=True),
    Column("password_hash", String(NAME)),  # argon2id; none: the user signs in by token only
    Column("access", JsonText(), nullable=False),  # {"roles": [...], "sites": [...] or null}
    Column("created_at", UtcDateTime(), nullable=False),
    Column("created_by", String(NAME), nullable=False),
    Column("changed_at", UtcDateTime(), nullable=False),
    Column("disabled_at", UtcDateTime()),
)

# API tokens: a token is shown once and only its sha256 kept; it acts as its user.
api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("user_id", String(ID), ForeignKey("users.id"), nullable=False),
    Column("name", String(NAME), nullable=False),
    Column("prefix", String(16), nullable=False),  # what a listing shows: shy_ab12...
    Column("hash", String(HASH), nullable=False, unique=True),  # sha256 of the whole token
    Column("read_only", Boolean, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("created_by", String(NAME), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    Column("last_used_at", UtcDateTime()),
    Column("revoked_at", UtcDateTime()),
)
Index("ix_api_tokens_user_id", api_tokens.c.user_id)

# Browser sessions: the cookie's sha256 only, with its idle and absolute expiry.
user_sessions = Table(
    "user_sessions",
    metadata,
    Column("hash", String(HASH), primary_key=True),
    Column("user_id", String(ID), ForeignKey("users.id"), nullable=False),
    Column("csrf_hash", String(HASH), nullable=False),  # sha256 of the session's CSRF token
    Column("address", String(NAME), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("seen_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),  # the absolute expiry
    Column("revoked_at", UtcDateTime()),
)
Index("ix_user_sessions_user_id", user_sessions.c.user_id)

# Failed sign-ins per account and per client address, kept so a lockout outlives a restart.
login_failures = Table(
    "login_failures",
    metadata,
    Column("key", String(NAME), primary_key=True),  # user:NAME or address:ADDR
    Column("failures", Integer, nullable=False),
    Column("first_at", UtcDateTime(), nullable=False),  # the window's start
    Column("locked_until", UtcDateTime()),
)

# Config versions: each published state of the served project, its files content-addressed.
config_blobs = Table(
    "config_blobs",
    metadata,
    Column("hash", String(HASH), primary_key=True),  # sha256 of the content
    Column("size", BigInteger, nullable=False),
    Column("content", LargeBinary, nullable=False),
)

config_versions = Table(
    "config_versions",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),  # version 1, 2, ...
    Column("hash", String(HASH), nullable=False, unique=True),  # over the sorted (path, blob)
    Column("files", JsonText(), nullable=False),  # {relative path: blob hash}
    Column("source", String(32), nullable=False),  # start, reload, upload
    Column("message", MaskedText(), nullable=False),
    Column("published_by", String(NAME), nullable=False),
    Column("published_at", UtcDateTime(), nullable=False),
)

# Which config version the server replicas serve: one row (id 1), set by whoever published or
# reloaded it, followed by the others (server/sweeper.py).
served_version = Table(
    "served_version",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("version_id", Integer, nullable=False),
    Column("served_by", String(NAME), nullable=False),
    Column("served_at", UtcDateTime(), nullable=False),
)

# Webhooks: subscriptions, and one delivery per (subscription, event) with its attempts.
webhooks = Table(
    "webhooks",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("url", Text, nullable=False),
    Column("events", JsonText(), nullable=False),  # the filter: phases (empty: every event)
    Column("secret", String(255), nullable=False),  # the HMAC key; never returned by the API
    Column("active", Boolean, nullable=False),
    Column("created_by", String(NAME), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    # The last event id this webhook has been matched against (its deliveries exist up to it).
    Column("event_cursor", BigInteger, nullable=False),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("webhook_id", String(ID), ForeignKey("webhooks.id"), nullable=False),
    Column("event_id", BigInteger, nullable=False),
    Column("status", String(STATUS), nullable=False),  # pending, delivered, failed
    Column("attempts", Integer, nullable=False),
    Column("last_error", MaskedText()),
    Column("last_status_code", Integer),
    Column("next_attempt_at", UtcDateTime()),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("started_at", UtcDateTime(), nullable=False),  # this round: creation or redelivery
    Column("finished_at", UtcDateTime()),
)
Index("ix_webhook_deliveries_status_next_attempt_at", webhook_deliveries.c.status,
      webhook_deliveries.c.next_attempt_at)  # fmt: skip
Index("ix_webhook_deliveries_webhook_id_event_id", webhook_deliveries.c.webhook_id,
      webhook_deliveries.c.event_id, unique=True)  # fmt: skip

# Health, as the monitor last saw it: one row per host and per instance it watches. `since` is
# when the state last changed (what "offline for 5 min" is read from).
host_health = Table(
    "host_health",
    metadata,
    Column("host", String(NAME), primary_key=True),
    Column("site", String(NAME), nullable=False),
    Column("state", String(STATUS), nullable=False),  # online, offline, unknown
    Column("since", UtcDateTime(), nullable=False),
    Column("last_ok_at", UtcDateTime()),
    Column("checked_at", UtcDateTime(), nullable=False),
    Column("error", MaskedText()),  # why the last round failed (None: it did not)
)
Index("ix_host_health_site", host_health.c.site)

instance_health = Table(
    "instance_health",
    metadata,
    Column("instance", String(NAME), primary_key=True),
    Column("site", String(NAME), nullable=False),
    Column("host", String(NAME), nullable=False),
    Column("health", String(STATUS), nullable=False),  # healthy, failing, disabled, ...
    Column("since", UtcDateTime(), nullable=False),
    Column("detail", MaskedText(), nullable=False),
    Column("drift", MaskedJson(), nullable=False),  # {"items": [{"instance", "kind", "detail"}]}
    Column("checked_at", UtcDateTime(), nullable=False),
)
Index("ix_instance_health_site", instance_health.c.site)
# System-wide artifacts: the matrix (artifact x site x host -> the last result there), each run
# of `artifacts deploy` / `retry` with its per-host results, and the claims that keep two runs
# from pushing the same artifact to the same site at once.
artifact_cells = Table(
    "artifact_cells",
    metadata,
    Column("artifact", String(NAME), primary_key=True),
    Column("site", String(NAME), primary_key=True),
    Column("host", String(NAME), primary_key=True),
    Column("status", String(STATUS), nullable=False),  # success, failed, unchanged
    Column("version", String(HASH), nullable=False),  # what the last attempt pushed or checked
    Column("deployed_version", String(HASH)),  # what the host holds: the last success's
    Column("reason", MaskedText(), nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    Column("run_id", String(ID), nullable=False),
    CheckConstraint("status IN ('success', 'failed', 'unchanged')", name="status_valid"),
)

artifact_runs = Table(
    "artifact_runs",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("actor", String(NAME), nullable=False),
    Column("request", MaskedText(), nullable=False),
    Column("status", String(STATUS), nullable=False),  # running, success, failed
    Column("started_at", UtcDateTime(), nullable=False),
    Column("finished_at", UtcDateTime()),
    Column("controller_id", String(ID)),
    Column("summary", MaskedJson(), nullable=False),
)

artifact_results = Table(
    "artifact_results",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("run_id", String(ID), ForeignKey("artifact_runs.id"), nullable=False),
    Column("artifact", String(NAME), nullable=False),
    Column("site", String(NAME), nullable=False),
    Column("host", String(NAME), nullable=False),
    Column("result", String(STATUS), nullable=False),
    Column("version", String(HASH), nullable=False),
    Column("reason", MaskedText(), nullable=False),
    Column("at", UtcDateTime(), nullable=False),
)
Index("ix_artifact_results_run_id", artifact_results.c.run_id)

artifact_claims = Table(
    "artifact_claims",
    metadata,
    Column("artifact", String(NAME), primary_key=True),
    Column("site", String(NAME), primary_key=True),
    Column("run_id", String(ID), nullable=False),
    Column("controller_id", String(ID), nullable=False),
    Column("claimed_at", UtcDateTime(), nullable=False),
)
