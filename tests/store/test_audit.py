"""The audit log is append-only and answers who did what, when; rollouts and events beside it."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from shipyard.errors import NotActive, RecordNotFound, StoreConflict
from shipyard.store import DeploymentStatus, RolloutStatus, Store, open_store

from .builders import Clock, begin, config


def test_every_deployment_step_is_audited_with_who_what_and_result(store: Store) -> None:
    begin(store, "d1", actor="alice", revision="r1")
    store.finish_deployment("d1", status=DeploymentStatus.SUCCESS, snapshot=config("r1"))
    begin(store, "d2", actor="bob", revision="r2")
    store.finish_deployment("d2", status=DeploymentStatus.FAILED, error="exit 3")
    lines = [(e.actor, e.action, e.target, e.result) for e in store.audit()]
    assert lines == [
        ("alice", "deploy.begin", "api@web-1", "pending"),
        ("alice", "deploy.finish", "api@web-1", "success"),
        ("bob", "deploy.begin", "api@web-1", "pending"),
        ("bob", "deploy.finish", "api@web-1", "failed"),
    ]
    assert store.audit()[-1].detail == {"deployment": "d2", "revision": "r2", "error": "exit 3"}


@pytest.mark.parametrize(
    "statement",
    ["UPDATE audit SET result = 'success'", "DELETE FROM audit"],
    ids=["update", "delete"],
)
def test_audit_rows_cannot_be_changed_or_removed(store: Store, statement: str) -> None:
    store.append_audit(actor="alice", action="instance.disable", target="api@web-1", result="ok")
    with pytest.raises(DBAPIError, match="append-only"), store.engine.begin() as conn:
        conn.execute(text(statement))
    assert [e.result for e in store.audit()] == ["ok"]


@pytest.mark.integration
def test_audit_cannot_be_truncated_on_postgresql(postgresql_url: str) -> None:
    with open_store(postgresql_url) as store:
        store.append_audit(actor="alice", action="x", target="y", result="ok")
        with pytest.raises(DBAPIError, match="append-only"), store.engine.begin() as conn:
            conn.execute(text("TRUNCATE audit"))
        assert len(store.audit()) == 1


def test_the_audit_log_is_filtered_by_instance_and_time(timed_store: Store, clock: Clock) -> None:
    begin(timed_store, "d1", "api@web-1")
    clock.advance(3600)
    since = clock.advance(1)
    begin(timed_store, "d2", "api@web-2")
    timed_store.finish_deployment("d1", status=DeploymentStatus.FAILED, error="gone")
    clock.advance(60)
    timed_store.append_audit(
        actor="carol", action="instance.disable", target="api@web-1", result="ok"
    )
    api1 = timed_store.audit(instance="api@web-1")
    assert [e.action for e in api1] == ["deploy.begin", "deploy.finish", "instance.disable"]
    recent = timed_store.audit(since=since)
    assert [(e.target, e.action) for e in recent] == [
        ("api@web-2", "deploy.begin"),
        ("api@web-1", "deploy.finish"),
        ("api@web-1", "instance.disable"),
    ]
    both = timed_store.audit(instance="api@web-1", since=since)
    assert [e.action for e in both] == ["deploy.finish", "instance.disable"]
    assert [e.action for e in timed_store.audit(limit=2)] == ["deploy.finish", "instance.disable"]


def test_a_rollout_groups_deployments_and_records_its_outcome(store: Store) -> None:
    rollout = store.begin_rollout(
        rollout_id="r-1", actor="alice", request="deploy api --site eu", strategy="rolling"
    )
    assert rollout.status is RolloutStatus.IN_PROGRESS
    begin(store, "d1", "api@web-1", rollout_id="r-1")
    begin(store, "d2", "api@web-2", rollout_id="r-1")
    begin(store, "other", "db@web-3")
    assert {d.id for d in store.deployments(rollout_id="r-1")} == {"d1", "d2"}
    summary = {"succeeded": ["api@web-1"], "failed": ["api@web-2"], "skipped": []}
    finished = store.finish_rollout("r-1", status=RolloutStatus.FAILED, summary=summary)
    assert finished.status is RolloutStatus.FAILED
    assert finished.summary == summary
    assert store.rollout("r-1") == finished
    assert [e.action for e in store.audit(instance="rollout:r-1")] == [
        "rollout.begin",
        "rollout.finish",
    ]
    with pytest.raises(NotActive):
        store.finish_rollout("r-1", status=RolloutStatus.SUCCESS, summary={})
    with pytest.raises(RecordNotFound):
        store.finish_rollout("r-9", status=RolloutStatus.SUCCESS, summary={})


def test_a_deployment_of_an_unknown_rollout_is_refused(store: Store) -> None:
    with pytest.raises(StoreConflict):
        begin(store, "d1", rollout_id="no-such-rollout")
    assert store.active_deployments() == []


def test_deployment_status_changes_are_the_deployers_events_not_the_stores(store: Store) -> None:
    # One event per fact: the deployer publishes QUEUED ... FINISHED (tests/store/
    # test_event_stream.py); the store writes only what nobody else can (recovery's).
    begin(store, "d1")
    store.mark_in_progress("d1")
    store.finish_deployment("d1", status=DeploymentStatus.SUCCESS, snapshot=config("r1"))
    assert store.events() == []
    assert store.last_event_id() == 0
