"""The state store: deployment status, deployed snapshots, rollouts, audit log and events."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from shipyard.store.bulk import DeploymentRequest, Finish
from shipyard.store.engine import database_url, default_url, make_engine, sqlite_path
from shipyard.store.journal import utc_now
from shipyard.store.migrations import upgrade
from shipyard.store.owner import Controller, certainly_gone, this_host
from shipyard.store.records import (
    AuditEntry,
    BeganDeployment,
    Deployment,
    DeploymentKind,
    DeploymentStatus,
    Event,
    InstanceState,
    InstanceStatus,
    JsonMapping,
    JsonObject,
    Rollout,
    RolloutStatus,
    Snapshot,
)
from shipyard.store.repository import Recovered, Store

__all__ = [
    "AuditEntry",
    "BeganDeployment",
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
    "Store",
    "certainly_gone",
    "database_url",
    "default_url",
    "make_engine",
    "open_store",
    "this_host",
    "utc_now",
]


def open_store(url: str, *, clock: Callable[[], datetime] = utc_now) -> Store:
    """Open the store at `url`, creating the SQLite file's directory and migrating to head."""
    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = make_engine(url)
    try:
        upgrade(engine)
    except BaseException:
        engine.dispose()
        raise
    return Store(engine, clock=clock)
