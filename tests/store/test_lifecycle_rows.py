"""The store's side of disable, enable and delete, on SQLite and PostgreSQL: the state matrix
refuses a begin in the transaction that would insert it, an outcome changes the lifecycle and
never the deployed snapshot (but a delete's), a failure leaves the instance as it was, and the
deployments are audited like any."""

from __future__ import annotations

import os

import pytest

from shipyard.plan.lifecycle import LifecycleRefused
from shipyard.store import DeploymentKind, DeploymentRequest, DeploymentStatus, Finish, Store

from .builders import CONTROLLER, begin, config, state_of


def deployed(store: Store, instance: str = "api@web-1", revision: str = "r1") -> None:
    begin(store, f"d-{instance}-{revision}", instance, revision=revision)
    store.finish_deployment(
        f"d-{instance}-{revision}", status=DeploymentStatus.SUCCESS, snapshot=config(revision)
    )


def begin_kind(store: Store, deployment_id: str, kind: DeploymentKind) -> None:
    """A lifecycle command begins at the deployed revision (forced: it is there already)."""
    store.begin_deployment(
        deployment_id=deployment_id, instance="api@web-1", service="api", host="web-1",
        site="eu", revision="r1", actor="alice", owner_host=CONTROLLER, owner_pid=os.getpid(),
        kind=kind, force=True,
    )  # fmt: skip


def command(
    store: Store, deployment_id: str, kind: DeploymentKind, status: DeploymentStatus
) -> None:
    begin_kind(store, deployment_id, kind)
    store.mark_in_progress(deployment_id)
    store.finish_deployments([Finish(deployment_id, status, None if status.value == "success"
                                     else "cannot connect")])  # fmt: skip


def test_disable_then_enable_keeps_the_snapshot_and_changes_the_lifecycle(store: Store) -> None:
    deployed(store)
    command(store, "off", DeploymentKind.DISABLE, DeploymentStatus.SUCCESS)
    off = state_of(store)
    assert (off.lifecycle.value, off.status.value, off.deployed_revision) == (
        "disabled",
        "success",
        "r1",
    )
    assert store.lifecycles() == {"api@web-1": "disabled"}
    assert store.status_rows()[0].lifecycle == "disabled"

    command(store, "on", DeploymentKind.ENABLE, DeploymentStatus.SUCCESS)
    on = state_of(store)
    assert (on.lifecycle.value, on.status.value, on.deployed_revision) == (
        "active",
        "success",
        "r1",
    )
    assert store.lifecycles() == {}
    actions = [e.action for e in store.audit()]
    assert {"disable.begin", "disable.finish", "enable.begin", "enable.finish"} <= set(actions)


def test_a_failed_delete_marks_nothing_and_a_done_one_drops_the_snapshot(store: Store) -> None:
    deployed(store)
    command(store, "cut-off", DeploymentKind.DELETE, DeploymentStatus.FAILED)
    kept = state_of(store)
    assert (kept.lifecycle.value, kept.status.value, kept.deployed_revision) == (
        "active",
        "success",
        "r1",
    )
    assert store.deployment("cut-off").error == "cannot connect"  # type: ignore[union-attr]

    command(store, "gone", DeploymentKind.DELETE, DeploymentStatus.SUCCESS)
    gone = state_of(store)
    assert (gone.lifecycle.value, gone.status.value, gone.deployed) == ("deleted", "none", None)

    deployed(store, revision="r2")  # a deleted instance deployed anew is active again
    back = state_of(store)
    assert (back.lifecycle.value, back.deployed_revision) == ("active", "r2")


def test_the_matrix_refuses_a_begin_in_its_transaction(store: Store) -> None:
    deployed(store)
    with pytest.raises(LifecycleRefused, match="cannot enable api@web-1: it is not disabled"):
        begin_kind(store, "early", DeploymentKind.ENABLE)
    command(store, "off", DeploymentKind.DISABLE, DeploymentStatus.SUCCESS)
    with pytest.raises(LifecycleRefused, match="it is disabled: enable it first"):
        begin(store, "deploy", "api@web-1", revision="r2")
    answers = store.begin_deployments(
        [DeploymentRequest("again", "api@web-1", "api", "web-1", "eu", "r1",
                           kind=DeploymentKind.DISABLE, force=True)],
        actor="alice", owner_host=CONTROLLER, owner_pid=os.getpid(),
    )  # fmt: skip
    assert [str(a) for a in answers] == ["cannot disable api@web-1: it is disabled already"]
    assert store.deployment("again") is None  # nothing inserted
