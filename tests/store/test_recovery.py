"""A controller that dies leaves its deployments failed, never stuck holding their instances."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from shipyard.errors import NotActive
from shipyard.store import DeploymentStatus, InstanceStatus, Store, process_alive

from .builders import CONTROLLER, Clock, begin, config, state_of

LEASE = 60.0


def never_alive(pid: int) -> bool:
    return False


def always_alive(pid: int) -> bool:
    return True


def test_a_deployment_of_a_dead_process_on_this_host_is_marked_interrupted(store: Store) -> None:
    begin(store, "d0", revision="r0")
    store.finish_deployment("d0", status=DeploymentStatus.SUCCESS, snapshot=config("r0"))
    begin(store, "d1", revision="r1", owner_pid=4242)
    store.mark_in_progress("d1")

    recovered = store.recover_interrupted(
        this_host=CONTROLLER, is_alive=never_alive, lease_seconds=LEASE
    )

    assert recovered == ["d1"]
    interrupted = store.deployment("d1")
    assert interrupted is not None
    assert interrupted.status is DeploymentStatus.FAILED
    assert interrupted.error == f"interrupted (controller process 4242 on {CONTROLLER} is gone)"
    state = state_of(store)
    assert state.status is InstanceStatus.FAILED
    assert state.deployed_revision == "r0"  # the snapshot is that of the last success
    last = store.audit(instance="api@web-1")[-1]
    assert (last.actor, last.action, last.result) == ("shipyard", "deploy.interrupted", "failed")
    assert begin(store, "d2", revision="r1").created  # the instance is free again


def test_a_deployment_of_a_live_process_on_this_host_is_left_alone(store: Store) -> None:
    begin(store, "d1")
    assert (
        store.recover_interrupted(this_host=CONTROLLER, is_alive=always_alive, lease_seconds=0)
        == []
    )
    assert store.active_deployments()[0].id == "d1"


def test_another_hosts_deployment_is_failed_once_its_lease_runs_out(
    timed_store: Store, clock: Clock
) -> None:
    begin(timed_store, "d1", owner_host="controller-2", owner_pid=7)

    def recover() -> list[str]:
        # Pids of another host mean nothing here: only the lease counts.
        return timed_store.recover_interrupted(
            this_host=CONTROLLER, is_alive=never_alive, lease_seconds=LEASE
        )

    clock.advance(LEASE - 1)
    assert recover() == []
    assert timed_store.heartbeat(["d1"]) == 1
    clock.advance(LEASE - 1)
    assert recover() == []  # the heartbeat renewed the lease
    clock.advance(2)
    assert recover() == ["d1"]
    interrupted = timed_store.deployment("d1")
    assert interrupted is not None
    assert interrupted.error == "interrupted (controller process 7 on controller-2 is gone)"
    assert timed_store.heartbeat(["d1"]) == 0  # its controller, if alive after all, learns it lost


def test_a_controller_that_lost_its_deployment_cannot_finish_it(store: Store) -> None:
    begin(store, "d1", owner_pid=4242)
    store.recover_interrupted(this_host=CONTROLLER, is_alive=never_alive, lease_seconds=LEASE)
    with pytest.raises(NotActive, match="already finished"):
        store.finish_deployment("d1", status=DeploymentStatus.SUCCESS, snapshot=config("r1"))
    assert state_of(store).deployed is None


def test_a_real_killed_controller_is_recognised_as_gone(store: Store) -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        begin(store, "d1", owner_pid=child.pid)
        live = store.recover_interrupted(
            this_host=CONTROLLER, is_alive=process_alive, lease_seconds=0
        )
        assert live == []
        child.send_signal(signal.SIGKILL)
        child.wait()
        dead = store.recover_interrupted(
            this_host=CONTROLLER, is_alive=process_alive, lease_seconds=0
        )
        assert dead == ["d1"]
    finally:
        child.kill()
        child.wait()


def test_process_alive_knows_the_living_the_dead_and_the_zombies() -> None:
    assert process_alive(os.getpid())
    assert not process_alive(0)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        child.send_signal(signal.SIGKILL)
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # dead, but not yet reaped
        assert not process_alive(child.pid)
    finally:
        child.kill()
        child.wait()
    assert not process_alive(child.pid)
