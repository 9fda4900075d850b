"""Short ways to make the store's inputs in tests."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from shipyard.store import BeganDeployment, Controller, DeploymentKind, InstanceState, Store

CONTROLLER = "controller-1"


def begin(
    store: Store,
    deployment_id: str,
    instance: str = "api@web-1",
    *,
    revision: str = "r1",
    actor: str = "alice",
    owner_host: str = CONTROLLER,
    owner_pid: int | None = None,
    kind: DeploymentKind = DeploymentKind.DEPLOY,
    rollout_id: str | None = None,
    controller: Controller | None = None,
) -> BeganDeployment:
    """Begin a deployment of `instance` (service@host) at site `eu`, owned by this process
    (or by `controller`, whose lease the test registered)."""
    service, _, host = instance.partition("@")
    if controller is not None:
        owner_host, owner_pid = controller.host, controller.pid
    return store.begin_deployment(
        deployment_id=deployment_id,
        instance=instance,
        service=service,
        host=host,
        site="eu",
        revision=revision,
        actor=actor,
        owner_host=owner_host,
        owner_pid=os.getpid() if owner_pid is None else owner_pid,
        kind=kind,
        rollout_id=rollout_id,
        controller_id=controller.id if controller is not None else None,
    )


def config(revision: str) -> dict[str, object]:
    """A flattened config, as the template engine would hand it over."""
    return {"service": "api", "port": 8080, "env": {"REVISION": revision}, "files": ["app.ini"]}


def state_of(store: Store, instance: str = "api@web-1") -> InstanceState:
    """The stored state of an instance the test has deployed."""
    state = store.instance_state(instance)
    assert state is not None, f"the store does not know {instance}"
    return state


class Clock:
    """A clock that stands still until a test moves it."""

    def __init__(self) -> None:
        self.now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now
