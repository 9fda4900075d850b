"""A deployment's life in the store, and what it leaves on its instance."""

from __future__ import annotations

from datetime import UTC

import pytest

from shipyard.errors import ConcurrentDeployment, NotActive, RecordNotFound, StoreConflict
from shipyard.store import DeploymentKind, DeploymentStatus, InstanceStatus, Store

from .builders import Clock, begin, config, state_of

SUCCESS, FAILED, SKIPPED = (
    DeploymentStatus.SUCCESS,
    DeploymentStatus.FAILED,
    DeploymentStatus.SKIPPED,
)


def deploy(store: Store, deployment_id: str, revision: str, instance: str = "api@web-1") -> None:
    """Run one deployment to success."""
    begin(store, deployment_id, instance, revision=revision)
    store.mark_in_progress(deployment_id)
    store.finish_deployment(
        deployment_id, status=SUCCESS, snapshot=config(revision), secrets={"db": "sha256:1"}
    )


def test_a_new_deployment_is_pending_and_holds_its_instance(store: Store) -> None:
    began = begin(store, "d1")
    assert began.created
    assert began.deployment.status is DeploymentStatus.PENDING
    state = state_of(store)
    assert (state.service, state.host, state.site) == ("api", "web-1", "eu")
    assert state.status is InstanceStatus.PENDING
    assert state.deployed is None
    assert state.last_deployment == began.deployment
    assert store.active_deployments() == [began.deployment]


def test_a_successful_deployment_stores_the_deployed_snapshot(store: Store) -> None:
    begin(store, "d1", revision="r1")
    assert store.mark_in_progress("d1").status is DeploymentStatus.IN_PROGRESS
    assert state_of(store).status is InstanceStatus.IN_PROGRESS
    finished = store.finish_deployment(
        "d1", status=SUCCESS, snapshot=config("r1"), secrets={"db": "sha256:1"}
    )
    assert finished.status is SUCCESS
    assert finished.finished_at is not None
    state = state_of(store)
    assert state.status is InstanceStatus.SUCCESS
    assert state.deployed is not None
    assert state.deployed_revision == "r1"
    assert state.deployed.config == config("r1")
    assert state.deployed.secrets == {"db": "sha256:1"}
    assert state.deployed.deployment_id == "d1"
    assert state.deployed.deployed_at == finished.finished_at
    assert store.active_deployments() == []


def test_a_failed_deployment_leaves_the_deployed_snapshot_unchanged(store: Store) -> None:
    deploy(store, "d1", "r1")
    before = state_of(store)
    begin(store, "d2", revision="r2")
    store.mark_in_progress("d2")
    store.finish_deployment("d2", status=FAILED, error="health check failed: HTTP 503")
    state = state_of(store)
    assert state.status is InstanceStatus.FAILED
    assert state.deployed == before.deployed
    assert state.last_deployment is not None
    assert state.last_deployment.id == "d2"
    assert state.last_deployment.error == "health check failed: HTTP 503"


def test_a_skipped_deployment_leaves_the_instance_as_it_was(store: Store) -> None:
    deploy(store, "d1", "r1")
    begin(store, "d2", revision="r2")
    store.finish_deployment("d2", status=SKIPPED, error="its dependency db failed")
    state = state_of(store)
    assert state.status is InstanceStatus.SUCCESS
    assert state.deployed_revision == "r1"
    begin(store, "d3", "web@web-1")
    store.finish_deployment("d3", status=SKIPPED)
    assert state_of(store, "web@web-1").status is InstanceStatus.NONE


def test_a_deployment_id_sent_twice_is_applied_once(store: Store) -> None:
    first = begin(store, "d1")
    again = begin(store, "d1")
    assert again.created is False
    assert again.deployment == first.deployment
    assert [entry.action for entry in store.audit()] == ["deploy.begin"]
    store.finish_deployment("d1", status=FAILED, error="boom")
    assert begin(store, "d1").deployment.status is FAILED


def test_a_deployment_id_cannot_be_reused_for_other_work(store: Store) -> None:
    begin(store, "d1", revision="r1")
    with pytest.raises(StoreConflict, match="already used for api@web-1 at revision r1"):
        begin(store, "d1", revision="r2")


def test_a_second_deployment_of_an_instance_is_rejected_naming_the_holder(store: Store) -> None:
    holder = begin(store, "d1", actor="alice").deployment
    with pytest.raises(ConcurrentDeployment) as rejected:
        begin(store, "d2", actor="bob")
    assert rejected.value.instance == "api@web-1"
    assert rejected.value.deployment_id == "d1"
    assert rejected.value.actor == "alice"
    assert rejected.value.since == holder.started_at.isoformat(timespec="seconds")
    assert "deployment d1 (actor alice, since " in str(rejected.value)
    assert store.deployment("d2") is None


def test_after_finishing_a_new_deployment_is_accepted(store: Store) -> None:
    deploy(store, "d1", "r1")
    assert begin(store, "d2", revision="r2").created
    store.finish_deployment("d2", status=FAILED, error="boom")
    assert begin(store, "d3", revision="r2").created


def test_other_instances_deploy_while_one_is_held(store: Store) -> None:
    begin(store, "d1", "api@web-1")
    assert begin(store, "d2", "api@web-2").created
    assert begin(store, "d3", "worker@web-1").created
    assert {d.id for d in store.active_deployments()} == {"d1", "d2", "d3"}


def test_a_finished_deployment_cannot_finish_or_start_again(store: Store) -> None:
    deploy(store, "d1", "r1")
    with pytest.raises(NotActive, match="already finished"):
        store.finish_deployment("d1", status=FAILED, error="late")
    with pytest.raises(NotActive):
        store.mark_in_progress("d1")
    assert state_of(store).status is InstanceStatus.SUCCESS


def test_unknown_deployments_are_named(store: Store) -> None:
    with pytest.raises(RecordNotFound, match="no deployment with id nope"):
        store.finish_deployment("nope", status=FAILED)
    with pytest.raises(RecordNotFound):
        store.mark_in_progress("nope")
    assert store.deployment("nope") is None


def test_marking_in_progress_twice_is_harmless(store: Store) -> None:
    begin(store, "d1")
    store.mark_in_progress("d1")
    assert store.mark_in_progress("d1").status is DeploymentStatus.IN_PROGRESS


def test_success_needs_the_snapshot_it_deployed(store: Store) -> None:
    begin(store, "d1")
    with pytest.raises(ValueError, match="snapshot"):
        store.finish_deployment("d1", status=SUCCESS)
    with pytest.raises(ValueError, match="not in_progress"):
        store.finish_deployment("d1", status=DeploymentStatus.IN_PROGRESS)


def test_a_rollback_can_restore_the_snapshot_of_an_earlier_revision(store: Store) -> None:
    deploy(store, "d1", "r1")
    deploy(store, "d2", "r2")
    earlier = store.snapshot_of("api@web-1", "r1")
    assert earlier is not None
    assert (earlier.revision, earlier.config, earlier.deployment_id) == ("r1", config("r1"), "d1")
    assert store.snapshot_of("api@web-1", "r9") is None
    begin(store, "d3", revision="r1", kind=DeploymentKind.ROLLBACK)
    store.finish_deployment("d3", status=SUCCESS, snapshot=earlier.config, secrets=earlier.secrets)
    state = state_of(store)
    assert state.deployed_revision == "r1"
    assert state.last_deployment is not None
    assert state.last_deployment.kind is DeploymentKind.ROLLBACK
    assert [e.action for e in store.audit()][-2:] == ["rollback.begin", "rollback.finish"]


def test_deployments_are_listed_newest_first(timed_store: Store, clock: Clock) -> None:
    for n in range(1, 4):
        deploy(timed_store, f"d{n}", f"r{n}")
        clock.advance(60)
    begin(timed_store, "w1", "worker@web-1")
    assert [d.id for d in timed_store.deployments()] == ["w1", "d3", "d2", "d1"]
    assert [d.id for d in timed_store.deployments(instance="api@web-1", limit=2)] == ["d3", "d2"]


def test_instance_states_are_listed_by_name_and_filtered_by_site(store: Store) -> None:
    begin(store, "d1", "web@web-2")
    begin(store, "d2", "api@web-1")
    store.begin_deployment(
        deployment_id="d3", instance="api@us-1", service="api", host="us-1", site="us",
        revision="r1", actor="carol", owner_host="controller-1", owner_pid=1,
    )  # fmt: skip
    assert [s.name for s in store.instance_states()] == ["api@us-1", "api@web-1", "web@web-2"]
    assert [s.name for s in store.instance_states(site="us")] == ["api@us-1"]
    assert store.instance_state("nope@nowhere") is None


def test_every_timestamp_is_utc(store: Store) -> None:
    deploy(store, "d1", "r1")
    state = state_of(store)
    assert state.deployed is not None
    assert state.last_deployment is not None
    last = state.last_deployment
    stamps = [state.deployed.deployed_at, last.started_at, last.finished_at, last.heartbeat_at]
    stamps += [entry.at for entry in store.audit()] + [event.at for event in store.events()]
    assert all(stamp is not None and stamp.tzinfo is UTC for stamp in stamps)
