"""A controller that dies leaves its deployments failed and its rollouts finished, never stuck."""

from __future__ import annotations

import pytest

from shipyard.errors import NotActive
from shipyard.store import (
    Controller,
    DeploymentStatus,
    InstanceStatus,
    RolloutStatus,
    Store,
)

from .builders import CONTROLLER, Clock, begin, config, state_of

LEGACY_LEASE = 60.0


def gone_controller(store: Store) -> Controller:
    """A controller whose lease has already run out by the database's clock."""
    owner = Controller.of_process(host=CONTROLLER)
    store.register_controller(owner, lease_seconds=0)
    return owner


def live_controller(store: Store) -> Controller:
    """A controller in another PID namespace (its pid means nothing here), holding its lease."""
    owner = Controller.of_process(host=CONTROLLER)
    owner = Controller(owner.id, owner.host, 4242, owner.boot_id, "pid:[1]", 12345)
    store.register_controller(owner, lease_seconds=3600)
    return owner


def here() -> Controller:
    return Controller.of_process(host=CONTROLLER)


def rollout(store: Store, rollout_id: str, owner: Controller | None) -> None:
    store.begin_rollout(
        rollout_id=rollout_id, actor="alice", request="deploy api", strategy="restart",
        controller_id=owner.id if owner else None,
    )  # fmt: skip


def test_a_deployment_of_a_gone_controller_is_marked_interrupted(store: Store) -> None:
    begin(store, "d0", revision="r0")
    store.finish_deployment("d0", status=DeploymentStatus.SUCCESS, snapshot=config("r0"))
    owner = gone_controller(store)
    begin(store, "d1", revision="r1", controller=owner)
    store.mark_in_progress("d1")

    recovered = store.recover_interrupted(here=here())

    assert recovered.deployments == ["d1"]
    interrupted = store.deployment("d1")
    assert interrupted is not None
    assert interrupted.status is DeploymentStatus.FAILED
    assert interrupted.error == (
        f"interrupted (controller process {owner.pid} on {CONTROLLER} is gone: its lease ran out)"
    )
    state = state_of(store)
    assert state.status is InstanceStatus.FAILED
    assert state.deployed_revision == "r0"  # the snapshot is that of the last success
    last = store.audit(instance="api@web-1")[-1]
    assert (last.actor, last.action, last.result) == ("shipyard", "deploy.interrupted", "failed")
    assert begin(store, "d2", revision="r1").created  # the instance is free again


def test_a_deployment_of_a_live_controller_is_left_alone(store: Store) -> None:
    begin(store, "d1", controller=live_controller(store))
    assert store.recover_interrupted(here=here()).deployments == []
    assert store.active_deployments()[0].id == "d1"


def test_a_deployment_from_before_leases_keeps_the_old_heartbeat_rule(
    timed_store: Store, clock: Clock
) -> None:
    begin(timed_store, "d1", owner_host="controller-2", owner_pid=7)  # no controller id

    def recover() -> list[str]:
        return timed_store.recover_interrupted(
            here=here(), legacy_lease_seconds=LEGACY_LEASE
        ).deployments

    clock.advance(LEGACY_LEASE - 1)
    assert recover() == []
    assert timed_store.heartbeat(["d1"]) == 1
    clock.advance(LEGACY_LEASE - 1)
    assert recover() == []  # the heartbeat renewed it
    clock.advance(2)
    assert recover() == ["d1"]
    assert timed_store.heartbeat(["d1"]) == 0  # its controller, if alive after all, learns it lost


def test_a_controller_that_lost_its_deployment_cannot_finish_it(store: Store) -> None:
    begin(store, "d1", controller=gone_controller(store))
    store.recover_interrupted(here=here())
    with pytest.raises(NotActive, match="already finished"):
        store.finish_deployment("d1", status=DeploymentStatus.SUCCESS, snapshot=config("r1"))
    assert state_of(store).deployed is None


def test_a_rollout_of_a_gone_controller_is_finished_as_interrupted(store: Store) -> None:
    owner = gone_controller(store)
    rollout(store, "ro1", owner)
    begin(store, "d1", "api@web-1", controller=owner, rollout_id="ro1")
    begin(store, "d2", "api@web-2", controller=owner, rollout_id="ro1")
    store.finish_deployment("d2", status=DeploymentStatus.SUCCESS, snapshot=config("r1"))

    recovered = store.recover_interrupted(here=here())

    assert (recovered.deployments, recovered.rollouts) == (["d1"], ["ro1"])
    found = store.rollout("ro1")
    assert found is not None
    assert found.status is RolloutStatus.FAILED
    assert found.finished_at is not None
    assert found.summary == {
        "interrupted": "its controller is gone: its lease ran out",
        "counts": {"failed": 1, "success": 1},
        "failed": ["api@web-1"],
    }
    last = store.audit(instance="rollout:ro1")[-1]
    assert (last.actor, last.action, last.result) == ("shipyard", "rollout.interrupted", "failed")
    assert last.detail == found.summary
    again = store.recover_interrupted(here=here())
    assert (again.deployments, again.rollouts) == ([], [])


def test_a_rollout_of_a_live_controller_is_left_alone_between_its_waves(store: Store) -> None:
    owner = live_controller(store)
    rollout(store, "ro1", owner)
    begin(store, "d1", controller=owner, rollout_id="ro1")
    store.finish_deployment("d1", status=DeploymentStatus.SUCCESS, snapshot=config("r1"))

    assert store.recover_interrupted(here=here()).rollouts == []
    found = store.rollout("ro1")
    assert found is not None
    assert found.status is RolloutStatus.IN_PROGRESS


def test_a_rollout_from_before_leases_is_finished_once_it_is_old_and_idle(
    timed_store: Store, clock: Clock
) -> None:
    rollout(timed_store, "ro1", None)
    assert timed_store.recover_interrupted(here=here()).rollouts == []
    clock.advance(LEGACY_LEASE + 1)
    assert timed_store.recover_interrupted(here=here()).rollouts == ["ro1"]
    found = timed_store.rollout("ro1")
    assert found is not None
    assert found.status is RolloutStatus.FAILED
