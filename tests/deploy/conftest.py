"""Fixtures for the deploy layer's tests: a SQLite store, a project written to a temporary
directory, its fleet of fake hosts, and the one place a Deployer is built."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from shipyard.commands.control import Supervisord
from shipyard.config.flatten import Flattened, Instance
from shipyard.deploy.lease import LeasePolicy
from shipyard.deploy.manager import Deployer, RolloutReport
from shipyard.errors import LeaseLost
from shipyard.events import EventBus
from shipyard.store import Controller, Store, open_store

from .builders import Fleet, flatten, write_project

ACTOR = "tester"


@pytest.fixture(autouse=True)
def no_settle(monkeypatch: pytest.MonkeyPatch) -> None:
    """supervisord calls a program running after its startsecs (1 s); the fake's are at once."""
    monkeypatch.setattr(Supervisord, "settle", 0.0)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(f"sqlite:///{tmp_path / 'state' / 'state.db'}") as opened:
        yield opened


MakeProject = Callable[..., Flattened]


@pytest.fixture
def project(tmp_path: Path) -> MakeProject:
    """`project(services, hosts=..., release=...)`: the project written and flattened."""

    def make(services: dict[str, dict[str, Any]], **options: Any) -> Flattened:
        return flatten(write_project(tmp_path / "project", services, **options))

    return make


def make_deployer(
    flat: Flattened,
    store: Store,
    fleet: Fleet,
    *,
    policy: LeasePolicy | None = None,
    controller: Controller | None = None,
    max_in_flight: int = 200,
    events: EventBus | None = None,
) -> Deployer:
    """The one place the tests build a Deployer (its signature is changing)."""
    return Deployer(
        flat,
        store,
        fleet.connect,
        ACTOR,
        max_in_flight=max_in_flight,
        events=events,
        controller=controller or Controller.of_process(),
        policy=policy or LeasePolicy(),
    )


async def roll_back(
    deployer: Deployer, store: Store, instance: Instance, revision: str
) -> RolloutReport:
    """Roll `instance` back to the snapshot of `revision` it had: a rollout of its own."""
    snapshot = store.snapshot_of(instance.name, revision)
    assert snapshot is not None, f"{instance.name} never had {revision[:12]}"
    old = instance.as_deployed(snapshot.revision, snapshot.config, snapshot.secrets)
    return await deployer.rollback(old, request=f"rollback {instance.name}")


def lease_lost(deployer: Deployer) -> bool:
    """Whether the deployer's fence would now stop its next host step."""
    try:
        deployer.runs.lease.check()
    except LeaseLost:
        return True
    return False
