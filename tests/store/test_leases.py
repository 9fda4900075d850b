"""A controller holds its deployments by a lease the database's clock expires, not by a pid.

A second controller on a machine of the same name (a container, another PID namespace), or one
whose pid number happens to be alive here, must leave a live deployment alone; a pid check may
only shorten the wait when it is certain (same boot, same PID namespace, same start time).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event

from shipyard.deploy.lease import Lease, LeasePolicy
from shipyard.errors import LeaseLost, StoreUnavailable
from shipyard.store import Controller, DeploymentStatus, Store, certainly_gone, open_store
from shipyard.store.engine import READ_ONLY

from .builders import CONTROLLER, begin

LEASE = 60.0
FREE_PID = 2**22 + 17  # above pid_max on Linux: no process can have it


def controller(**changes: object) -> Controller:
    """This process's identity under a new id and the test's host name, with `changes`."""
    me = Controller.of_process(host=CONTROLLER)
    return dataclasses.replace(me, **changes)  # type: ignore[arg-type]


def here() -> Controller:
    """The controller that looks, on the same host name."""
    return Controller.of_process(host=CONTROLLER)


@pytest.fixture
def child() -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        yield process
    finally:
        process.kill()
        process.wait()


def test_a_controller_knows_its_boot_namespace_and_start_time() -> None:
    me = Controller.of_process()
    assert me.pid == os.getpid()
    assert me.boot_id
    assert me.pid_namespace.startswith("pid:[")
    assert me.started > 0
    assert Controller.of_process().id != me.id  # unique per controller, not per pid


@pytest.mark.parametrize(
    "other",
    [
        pytest.param({"pid_namespace": "pid:[1]", "pid": FREE_PID}, id="other-namespace-dead-pid"),
        pytest.param({"pid_namespace": "pid:[1]"}, id="other-namespace-pid-alive-here"),
        pytest.param({"boot_id": str(uuid.uuid4()), "pid": FREE_PID}, id="other-boot"),
        pytest.param({"boot_id": "", "pid_namespace": "", "pid": FREE_PID}, id="unknown"),
    ],
)
def test_a_live_lease_on_a_same_named_host_is_left_alone_whatever_its_pid(
    store: Store, other: dict[str, object]
) -> None:
    owner = controller(**other)
    store.register_controller(owner, lease_seconds=LEASE)
    begin(store, "d1", controller=owner)
    store.mark_in_progress("d1")

    recovered = store.recover_interrupted(here=here())

    assert recovered.deployments == []
    found = store.deployment("d1")
    assert found is not None
    assert found.status is DeploymentStatus.IN_PROGRESS


def test_a_reused_pid_in_our_namespace_is_certainly_gone(store: Store) -> None:
    # Our own pid, but a process that started at another time: its process is not ours.
    owner = controller(started=Controller.of_process().started + 1)
    store.register_controller(owner, lease_seconds=LEASE)
    begin(store, "d1", controller=owner)

    recovered = store.recover_interrupted(here=here())

    assert recovered.deployments == ["d1"]
    found = store.deployment("d1")
    assert found is not None
    assert found.error is not None
    assert found.error.endswith("is gone: its process has exited)")


def test_a_killed_controller_is_recovered_before_its_lease_runs_out(
    store: Store, child: subprocess.Popen[bytes]
) -> None:
    owner = Controller.of_process(child.pid, host=CONTROLLER)
    store.register_controller(owner, lease_seconds=3600)
    begin(store, "d1", controller=owner)
    assert store.recover_interrupted(here=here()).deployments == []  # alive: its lease holds

    child.send_signal(signal.SIGKILL)
    child.wait()

    assert store.recover_interrupted(here=here()).deployments == ["d1"]
    assert not store.renew_lease(owner.id, lease_seconds=LEASE)  # recovery ended its lease


def test_an_expired_lease_is_recovered_even_when_its_process_looks_alive(store: Store) -> None:
    owner = controller()  # this very process: certainly alive
    store.register_controller(owner, lease_seconds=0)  # runs out at once, by the database
    begin(store, "d1", controller=owner)

    recovered = store.recover_interrupted(here=here())

    assert recovered.deployments == ["d1"]
    found = store.deployment("d1")
    assert found is not None
    assert found.error is not None
    assert found.error.endswith("is gone: its lease ran out)")


def test_a_lease_is_renewed_while_it_holds_and_never_once_it_ran_out(store: Store) -> None:
    live, late = controller(), controller()
    store.register_controller(live, lease_seconds=LEASE)
    store.register_controller(late, lease_seconds=0)
    begin(store, "d1", controller=live)

    assert store.renew_lease(live.id, lease_seconds=LEASE, deployment_ids=["d1"])
    assert not store.renew_lease(late.id, lease_seconds=LEASE)
    store.release_controller(live.id)
    assert not store.renew_lease(live.id, lease_seconds=LEASE)  # released: recoverable now
    assert store.recover_interrupted(here=here()).deployments == ["d1"]


@pytest.mark.parametrize("skew_hours", [-30, 30])
def test_the_controllers_clocks_do_not_matter(store_url: str, skew_hours: int) -> None:
    def skewed(hours: float) -> datetime:
        return datetime.now(UTC) + timedelta(hours=hours)

    owner = controller(pid_namespace="pid:[1]")
    with (
        open_store(store_url, clock=lambda: skewed(skew_hours)) as first,
        open_store(store_url, clock=lambda: skewed(-skew_hours)) as second,
    ):
        first.register_controller(owner, lease_seconds=LEASE)
        begin(first, "d1", controller=owner)
        first.mark_in_progress("d1")

        assert second.recover_interrupted(here=here()).deployments == []
        assert first.renew_lease(owner.id, lease_seconds=LEASE, deployment_ids=["d1"])
        assert second.recover_interrupted(here=here()).deployments == []
        found = second.deployment("d1")
        assert found is not None
        assert found.status is DeploymentStatus.IN_PROGRESS


def test_recovery_with_nothing_to_recover_writes_nothing(store: Store) -> None:
    owner = controller(pid_namespace="pid:[1]")
    store.register_controller(owner, lease_seconds=LEASE)
    begin(store, "d1", controller=owner)
    store.begin_rollout(
        rollout_id="r1", actor="alice", request="deploy", strategy="restart",
        controller_id=owner.id,
    )  # fmt: skip
    writes: list[bool] = []

    def record(conn: object) -> None:
        writes.append(not conn.get_execution_options().get(READ_ONLY, False))  # type: ignore[attr-defined]

    event.listen(store.engine, "begin", record)
    try:
        recovered = store.recover_interrupted(here=here())
    finally:
        event.remove(store.engine, "begin", record)

    assert (recovered.deployments, recovered.rollouts) == ([], [])
    assert writes
    assert not any(writes)


def test_certainty_needs_the_same_boot_and_namespace(child: subprocess.Popen[bytes]) -> None:
    gone = Controller.of_process(child.pid)
    child.send_signal(signal.SIGKILL)
    child.wait()
    me = Controller.of_process()
    assert certainly_gone(gone, here=me)
    assert not certainly_gone(dataclasses.replace(gone, pid_namespace="pid:[1]"), here=me)
    assert not certainly_gone(dataclasses.replace(gone, boot_id="another boot"), here=me)
    assert not certainly_gone(dataclasses.replace(gone, started=0), here=me)  # unknown
    assert not certainly_gone(me, here=me)


# The deploying side: heartbeats that survive store errors, and a fence before host steps.


class FlakyStore(Store):
    """A real store whose next `failures` lease renewals fail as if the database were away."""

    failures = 0
    renewals = 0

    def renew_lease(
        self, controller_id: str, *, lease_seconds: float, deployment_ids: Sequence[str] = ()
    ) -> bool:
        self.renewals += 1
        if self.failures:
            self.failures -= 1
            raise StoreUnavailable("the state store is unavailable: connection refused")
        return super().renew_lease(
            controller_id, lease_seconds=lease_seconds, deployment_ids=deployment_ids
        )


@pytest.fixture
def flaky(store_url: str) -> Iterator[FlakyStore]:
    with open_store(store_url) as opened:
        flaky = FlakyStore(opened.engine)
        yield flaky


async def until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def test_heartbeats_go_on_after_failed_renewals(flaky: FlakyStore) -> None:
    owner = controller()
    policy = LeasePolicy(seconds=30, heartbeat=0.05, patience=5)
    lease = Lease(flaky, owner, policy, lambda: ["d1"])

    async def hold() -> None:
        async with lease.held():
            begin(flaky, "d1", controller=owner)
            before = flaky.deployment("d1")
            flaky.failures = 3
            await until(lambda: flaky.renewals >= 5, "renewals after the failures")
            lease.check()  # still held
            after = flaky.deployment("d1")
            assert before is not None
            assert after is not None
            assert after.heartbeat_at > before.heartbeat_at  # a renewal after failures got in

    asyncio.run(hold())


def test_a_lease_the_store_let_run_out_is_lost_for_good(flaky: FlakyStore) -> None:
    owner = controller()
    lease = Lease(flaky, owner, LeasePolicy(seconds=30, heartbeat=0.05), lambda: [])

    async def hold() -> str:
        async with lease.held():
            flaky.release_controller(owner.id)  # as if its lease ran out by the database's clock
            await until(lambda: _lost(lease) != "", "the lease to be known lost")
            return _lost(lease)

    assert "lost its lease" in asyncio.run(hold())


def test_a_lease_that_cannot_be_renewed_stops_host_steps_before_it_runs_out(
    flaky: FlakyStore,
) -> None:
    lease = Lease(flaky, controller(), LeasePolicy(seconds=0.6, heartbeat=0.05), lambda: [])

    async def hold() -> str:
        async with lease.held():
            flaky.failures = 10**6  # the store stays away
            await until(lambda: _lost(lease) != "", "the fence to close")
            return _lost(lease)

    assert "could not renew its lease" in asyncio.run(hold())


def _lost(lease: Lease) -> str:
    try:
        lease.check()
    except LeaseLost as lost:
        return str(lost)
    return ""


def test_every_registration_gets_a_larger_fencing_epoch(store: Store) -> None:
    first, second = controller(), controller()
    epochs = [
        store.register_controller(first, lease_seconds=LEASE),
        store.register_controller(second, lease_seconds=LEASE),
        store.register_controller(first, lease_seconds=LEASE),  # a later rollout: a new one
    ]
    assert epochs == sorted(set(epochs))
    assert epochs[0] >= 1


def test_a_replica_that_lost_its_lease_is_named_in_what_recovery_fails(store: Store) -> None:
    owner = controller(replica="replica-b", pid=FREE_PID, boot_id="", pid_namespace="")
    store.register_controller(owner, lease_seconds=0)  # runs out at once, by the database
    begin(store, "d1", controller=owner)
    store.mark_in_progress("d1")

    assert store.recover_interrupted(here=here()).deployments == ["d1"]
    found = store.deployment("d1")
    assert found is not None
    assert found.error is not None
    assert found.error.startswith("interrupted: replica replica-b lost its lease (controller")
