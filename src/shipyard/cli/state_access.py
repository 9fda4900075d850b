"""The CLI's view of the state store and of the hosts: open, recover, connect."""

from __future__ import annotations

import getpass
import os
import socket

from shipyard.cli.context import CliState
from shipyard.store import Store, database_url, open_store, process_alive, this_host

LEASE_SECONDS = 60.0


def open_project_store(cli: CliState) -> Store:
    """Open the project's store; deployments left in flight by a dead controller become failed."""
    store = open_store(database_url(cli.load().root, os.environ))
    store.recover_interrupted(
        this_host=this_host(), is_alive=process_alive, lease_seconds=LEASE_SECONDS
    )
    return store


def deployed_revisions(cli: CliState) -> dict[str, str]:
    """Deployed revision per instance, from the store."""
    with open_project_store(cli) as store:
        return {s.name: s.deployed.revision for s in store.instance_states() if s.deployed}


def actor() -> str:
    """Who is deploying: $SHIPYARD_ACTOR, else user@machine."""
    return os.environ.get("SHIPYARD_ACTOR") or f"{getpass.getuser()}@{socket.gethostname()}"
