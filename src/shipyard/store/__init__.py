"""The state store: deployment status, deployed snapshots, rollouts, audit log and events."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from shipyard.events import Event
from shipyard.masking import NO_SECRETS, Masker
from shipyard.store.bulk import DeploymentRequest, Finish
from shipyard.store.chain import ChainBreak, ChainReport
from shipyard.store.engine import database_url, default_url, make_engine
from shipyard.store.journal import utc_now
from shipyard.store.migrations import upgrade
from shipyard.store.owner import Controller, certainly_gone, this_host
from shipyard.store.records import (
    AuditEntry,
    BeganDeployment,
    Deployment,
    DeploymentKind,
    DeploymentStatus,
    InstanceState,
    InstanceStatus,
    JsonMapping,
    JsonObject,
    Rollout,
    RolloutStatus,
    Snapshot,
    StepLog,
)
from shipyard.store.repository import Recovered, Store

__all__ = [
    "AuditEntry",
    "BeganDeployment",
    "ChainBreak",
    "ChainReport",
    "Controller",
    "Deployment",
    "DeploymentKind",
    "DeploymentRequest",
    "DeploymentStatus",
    "Event",
    "Finish",
    "InstanceState",
    "InstanceStatus",
    "JsonMapping",
    "JsonObject",
    "Recovered",
    "Rollout",
    "RolloutStatus",
    "Snapshot",
    "StepLog",
    "Store",
    "certainly_gone",
    "database_url",
    "default_url",
    "make_engine",
    "open_store",
    "this_host",
    "utc_now",
]


def open_store(
    url: str, *, masker: Masker = NO_SECRETS, clock: Callable[[], datetime] = utc_now
) -> Store:
    """Open the store at `url`, migrating it to head when it is behind (a read when it is not).

    A SQLite file is created 600 in a 700 directory. Every free text the store writes
    (errors, audit detail, events, rollout requests and summaries) passes through `masker`.
    """
    engine = make_engine(url)
    try:
        upgrade(engine)
    except BaseException:
        engine.dispose()
        raise
    return Store(engine, clock=clock, masker=masker)
