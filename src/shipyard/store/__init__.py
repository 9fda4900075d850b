"""The state store: deployment status, deployed snapshots, rollouts, audit log and events.

The names below load their module on first use (PEP 562), so that importing one light module
of the package (`shipyard.store.secret_key`, which every command that flattens needs) does not
load SQLAlchemy, Alembic and the whole store: about half a second at the start of a command.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from shipyard.events import Event
from shipyard.masking import NO_SECRETS, Masker

if TYPE_CHECKING:
    from shipyard.store.bulk import DeploymentRequest, Finish
    from shipyard.store.chain import ChainBreak, ChainReport
    from shipyard.store.engine import make_engine
    from shipyard.store.eventlog import EventFilter
    from shipyard.store.journal import utc_now
    from shipyard.store.logins import BrowserSession, Limit
    from shipyard.store.owner import Controller, certainly_gone, this_host
    from shipyard.store.places import database_url, default_url
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
        StatusRow,
        StepLog,
    )
    from shipyard.store.repository import Recovered, Store
    from shipyard.store.tokens import ApiToken
    from shipyard.store.users import User

_RECORDS = (
    "AuditEntry", "BeganDeployment", "Deployment", "DeploymentKind", "DeploymentStatus",
    "InstanceState", "InstanceStatus", "JsonMapping", "JsonObject", "Rollout", "RolloutStatus",
    "Snapshot", "StatusRow", "StepLog",
)  # fmt: skip
# Where each public name lives (its module under shipyard.store).
_MODULES = {
    **dict.fromkeys(("DeploymentRequest", "Finish"), "bulk"),
    **dict.fromkeys(("ChainBreak", "ChainReport"), "chain"),
    "make_engine": "engine",
    "EventFilter": "eventlog",
    **dict.fromkeys(("database_url", "default_url"), "places"),
    "utc_now": "journal",
    "ApiToken": "tokens",
    "User": "users",
    **dict.fromkeys(("BrowserSession", "Limit"), "logins"),
    **dict.fromkeys(("Controller", "certainly_gone", "this_host"), "owner"),
    **dict.fromkeys(_RECORDS, "records"),
    **dict.fromkeys(("Recovered", "Store"), "repository"),
}

__all__ = [
    "ApiToken",
    "AuditEntry",
    "BeganDeployment",
    "BrowserSession",
    "ChainBreak",
    "ChainReport",
    "Controller",
    "Deployment",
    "DeploymentKind",
    "DeploymentRequest",
    "DeploymentStatus",
    "Event",
    "EventFilter",
    "Finish",
    "InstanceState",
    "InstanceStatus",
    "JsonMapping",
    "JsonObject",
    "Limit",
    "Recovered",
    "Rollout",
    "RolloutStatus",
    "Snapshot",
    "StatusRow",
    "StepLog",
    "Store",
    "User",
    "certainly_gone",
    "database_url",
    "default_url",
    "make_engine",
    "open_store",
    "this_host",
    "utc_now",
]


def __getattr__(name: str) -> object:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # once loaded, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


def open_store(
    url: str, *, masker: Masker = NO_SECRETS, clock: Callable[[], datetime] | None = None
) -> Store:
    """Open the store at `url`, migrating it to head when it is behind (a read when it is not).

    A SQLite file is created 600 in a 700 directory. Every free text the store writes
    (errors, audit detail, events, rollout requests and summaries) passes through `masker`.
    `clock` (default: the time now, in UTC) stamps what the store writes.
    """
    from shipyard.store.engine import make_engine
    from shipyard.store.journal import utc_now
    from shipyard.store.migrations import upgrade
    from shipyard.store.repository import Store

    engine = make_engine(url)
    try:
        upgrade(engine)
    except BaseException:
        engine.dispose()
        raise
    return Store(engine, clock=clock or utc_now, masker=masker)
