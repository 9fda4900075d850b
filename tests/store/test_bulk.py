"""Deployments begun, started and finished in batches write what one-at-a-time calls write."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from shipyard.errors import ConcurrentDeployment, NotActive
from shipyard.store import (
    BeganDeployment,
    DeploymentRequest,
    DeploymentStatus,
    Finish,
    InstanceStatus,
    Store,
    make_engine,
    open_store,
)

from .builders import CONTROLLER, begin


def request(deployment_id: str, instance: str, revision: str = "r1") -> DeploymentRequest:
    service, _, host = instance.partition("@")
    return DeploymentRequest(deployment_id, instance, service, host, "eu", revision)


def begin_many(store: Store, *requests: DeploymentRequest, actor: str = "alice") -> list[object]:
    return list(
        store.begin_deployments(
            list(requests), actor=actor, owner_host=CONTROLLER, owner_pid=os.getpid()
        )
    )


def test_a_batch_begins_each_deployment_pending_with_its_audit_entry(store: Store) -> None:
    answers = begin_many(store, request("d1", "api@web-1"), request("d2", "api@web-2"))

    assert all(isinstance(a, BeganDeployment) and a.created for a in answers)
    assert {d.id: d.status for d in store.active_deployments()} == {
        "d1": DeploymentStatus.PENDING,
        "d2": DeploymentStatus.PENDING,
    }
    states = {s.name: s.status for s in store.instance_states()}
    assert states == {"api@web-1": InstanceStatus.PENDING, "api@web-2": InstanceStatus.PENDING}
    assert sorted((e.target, e.action, e.result) for e in store.audit()) == [
        ("api@web-1", "deploy.begin", "pending"),
        ("api@web-2", "deploy.begin", "pending"),
    ]


def test_an_instance_already_held_is_rejected_naming_the_holder_and_the_rest_go_on(
    store: Store,
) -> None:
    begin(store, "held", "api@web-1", actor="bob")

    answers = begin_many(store, request("d1", "api@web-1"), request("d2", "api@web-2"))

    rejected, began = answers
    assert isinstance(rejected, ConcurrentDeployment)
    assert (rejected.deployment_id, rejected.actor) == ("held", "bob")
    assert isinstance(began, BeganDeployment)
    assert began.created
    assert sorted(d.id for d in store.active_deployments()) == ["d2", "held"]


def test_a_repeated_deployment_id_in_a_batch_is_applied_once(store: Store) -> None:
    begin_many(store, request("d1", "api@web-1"))
    store.finish_deployments([Finish("d1", DeploymentStatus.FAILED, "boom")])

    (again,) = begin_many(store, request("d1", "api@web-1"))

    assert isinstance(again, BeganDeployment)
    assert not again.created
    assert again.deployment.status is DeploymentStatus.FAILED
    assert [e.action for e in store.audit()].count("deploy.begin") == 1


def test_a_batch_finishes_with_snapshots_for_successes_and_reasons_for_failures(
    store: Store,
) -> None:
    begin_many(store, request("d1", "api@web-1"), request("d2", "api@web-2"))
    store.mark_in_progress_many(["d1", "d2"])
    assert {d.status for d in store.active_deployments()} == {DeploymentStatus.IN_PROGRESS}

    store.finish_deployments(
        [
            Finish("d1", DeploymentStatus.SUCCESS, snapshot={"port": 8000}, secrets={"k": "fp"}),
            Finish("d2", DeploymentStatus.FAILED, "health check failed"),
        ]
    )

    assert store.active_deployments() == []
    won = store.instance_state("api@web-1")
    lost = store.instance_state("api@web-2")
    assert won is not None
    assert won.deployed is not None
    assert (won.status, won.deployed.revision, won.deployed.config) == (
        InstanceStatus.SUCCESS,
        "r1",
        {"port": 8000},
    )
    assert lost is not None
    assert lost.status is InstanceStatus.FAILED
    assert lost.deployed is None
    failed = store.deployment("d2")
    assert failed is not None
    assert failed.error == "health check failed"
    finishes = {(e.target, e.result) for e in store.audit() if e.action == "deploy.finish"}
    assert finishes == {("api@web-1", "success"), ("api@web-2", "failed")}


def test_a_batch_holding_a_finished_deployment_writes_nothing(store: Store) -> None:
    begin_many(store, request("d1", "api@web-1"), request("d2", "api@web-2"))
    store.finish_deployments([Finish("d1", DeploymentStatus.FAILED, "interrupted")])

    with pytest.raises(NotActive, match="d1"):
        store.finish_deployments(
            [
                Finish("d1", DeploymentStatus.SUCCESS, snapshot={}),
                Finish("d2", DeploymentStatus.SUCCESS, snapshot={}),
            ]
        )
    with pytest.raises(NotActive, match="d1"):
        store.mark_in_progress_many(["d1", "d2"])

    still = store.deployment("d2")
    assert still is not None
    assert still.status is DeploymentStatus.PENDING


def test_twenty_batches_racing_for_the_same_instances_accept_each_instance_once(
    store_url: str,
) -> None:
    open_store(store_url).close()
    workers = 20
    start = threading.Barrier(workers)
    names = [f"api@web-{n}" for n in range(5)]

    def worker(n: int) -> list[object]:
        with Store(make_engine(store_url)) as own:
            own.deployment("warm-up")
            start.wait()
            return begin_many(own, *(request(f"w{n}-{i}", name) for i, name in enumerate(names)))

    with ThreadPoolExecutor(workers) as pool:
        answers = [a for found in pool.map(worker, range(workers)) for a in found]

    accepted = [a for a in answers if isinstance(a, BeganDeployment)]
    assert sorted(a.deployment.instance for a in accepted) == names
    assert sum(isinstance(a, ConcurrentDeployment) for a in answers) == (workers - 1) * len(names)
    with open_store(store_url) as store:
        assert len(store.active_deployments()) == len(names)
