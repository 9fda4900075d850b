"""The CLI's view of the state store and of the hosts: open, recover, connect."""

from __future__ import annotations

import getpass
import os
import socket
from collections.abc import Mapping

from shipyard.cli.context import CliState
from shipyard.deploy.lease import LeasePolicy
from shipyard.errors import UsageError
from shipyard.store import Controller, Store, database_url, open_store

# Tuning for tests and slow stores: seconds a lease holds, and store errors are retried.
LEASE_VARIABLE = "SHIPYARD_LEASE_SECONDS"
PATIENCE_VARIABLE = "SHIPYARD_STORE_PATIENCE"


def open_project_store(cli: CliState) -> Store:
    """Open the project's store; what a gone controller left in flight is finished as failed.

    Recovery reads first: when nothing is left over, it writes nothing (no write lock).
    """
    store = open_store(database_url(cli.load().root, os.environ), masker=cli.masker())
    try:
        store.recover_interrupted(here=Controller.of_process())
    except BaseException:
        store.close()
        raise
    return store


def lease_policy(env: Mapping[str, str]) -> LeasePolicy:
    """The lease a deploying command keeps: defaults, or $SHIPYARD_LEASE_SECONDS (heartbeats
    every sixth of it) and $SHIPYARD_STORE_PATIENCE."""
    default = LeasePolicy()
    seconds = _seconds(env, LEASE_VARIABLE, default.seconds)
    patience = _seconds(env, PATIENCE_VARIABLE, default.patience)
    if seconds <= 0:
        raise UsageError(f"${LEASE_VARIABLE} must be more than 0 seconds, not {seconds:g}")
    heartbeat = default.heartbeat if seconds == default.seconds else seconds / 6
    return LeasePolicy(seconds=seconds, heartbeat=heartbeat, patience=patience)


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"${name} must be a number of seconds, not {text!r}") from None
    if not value >= 0:  # negative, or nan
        raise UsageError(f"${name} must not be negative, not {text!r}")
    return value


def deployed_revisions(cli: CliState) -> dict[str, str]:
    """Deployed revision per instance, from the store."""
    with open_project_store(cli) as store:
        return {s.name: s.deployed.revision for s in store.instance_states() if s.deployed}


def actor() -> str:
    """Who is deploying: $SHIPYARD_ACTOR, else user@machine."""
    return os.environ.get("SHIPYARD_ACTOR") or f"{getpass.getuser()}@{socket.gethostname()}"
