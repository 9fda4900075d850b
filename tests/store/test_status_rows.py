"""The fast reads behind `status` and `plan`: status_rows and deployed_revisions.

They must say what instance_states says about status, deployed revision and last deployment,
in one SELECT that reads no config or secret column.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields
from typing import Any

import pytest

from shipyard.masking import Masker
from shipyard.store import (
    DeploymentKind,
    DeploymentRequest,
    DeploymentStatus,
    Finish,
    InstanceStatus,
    StatusRow,
    Store,
    open_store,
    status,
)
from shipyard.store.quick import QuickReads

from .builders import CONTROLLER, begin, config

SECRET = "s3cret-Value-in-an-error"


def fleet(store: Store) -> None:
    """One instance in each state a status table shows."""
    begin(store, "d-ok", "api@web-1", revision="r1")
    store.mark_in_progress("d-ok")
    store.finish_deployment("d-ok", status=DeploymentStatus.SUCCESS, snapshot=config("r1"))
    # Deployed at r1, then r2 failed: the revision stays r1, the last deployment is the failure.
    begin(store, "d-r1", "api@web-2", revision="r1")
    store.finish_deployment("d-r1", status=DeploymentStatus.SUCCESS, snapshot=config("r1"))
    begin(store, "d-r2", "api@web-2", revision="r2")
    store.finish_deployment("d-r2", status=DeploymentStatus.FAILED, error="health\nsecond line")
    begin(store, "d-run", "api@web-3", revision="r1", actor="bob")
    store.mark_in_progress("d-run")
    begin(store, "d-new", "db@web-1", revision="r1", kind=DeploymentKind.ROLLBACK)
    # Another site, through the bulk API.
    store.begin_deployments(
        [DeploymentRequest("d-us", "api@us-1", "api", "us-1", "us", "r3")],
        actor="carol", owner_host=CONTROLLER, owner_pid=os.getpid(),
    )  # fmt: skip
    store.mark_in_progress_many(["d-us"])
    store.finish_deployments([Finish("d-us", DeploymentStatus.SUCCESS, snapshot=config("r3"))])


def test_an_empty_store_has_no_rows_and_no_revisions(store: Store) -> None:
    assert store.status_rows() == []
    assert store.deployed_revisions() == {}


def test_status_rows_say_what_instance_states_say(store: Store) -> None:
    fleet(store)

    found = store.status_rows()

    states = store.instance_states()
    assert [r.name for r in found] == [s.name for s in states] == sorted(s.name for s in states)
    for row, state in zip(found, states, strict=True):
        assert (row.service, row.host, row.site, row.status) == (
            state.service, state.host, state.site, state.status,
        )  # fmt: skip
        assert row.deployed_revision == state.deployed_revision
        assert row.deployed_at == (state.deployed.deployed_at if state.deployed else None)
        last = state.last_deployment
        assert last is not None
        assert (row.last_deployment_id, row.last_status, row.last_kind, row.last_actor) == (
            last.id, last.status, last.kind.value, last.actor,
        )  # fmt: skip
        assert (row.last_started_at, row.last_finished_at, row.last_error) == (
            last.started_at, last.finished_at, last.error,
        )  # fmt: skip


def test_each_row_holds_its_instance_status_and_last_attempt(store: Store) -> None:
    fleet(store)

    rows = {r.name: r for r in store.status_rows()}

    assert rows["api@web-1"].status is InstanceStatus.SUCCESS
    failed = rows["api@web-2"]
    assert (failed.status, failed.deployed_revision) == (InstanceStatus.FAILED, "r1")
    assert (failed.last_deployment_id, failed.last_status) == ("d-r2", DeploymentStatus.FAILED)
    assert failed.last_error == "health\nsecond line"
    running = rows["api@web-3"]
    assert (running.status, running.deployed_revision) == (InstanceStatus.IN_PROGRESS, None)
    assert (running.last_actor, running.last_finished_at) == ("bob", None)
    assert running.deployed_at is None
    assert rows["db@web-1"].status is InstanceStatus.PENDING
    assert rows["db@web-1"].last_kind == "rollback"
    assert rows["api@us-1"].deployed_at is not None
    assert rows["api@us-1"].deployed_at.tzinfo is not None  # UTC, on SQLite too


def test_one_site_only(store: Store) -> None:
    fleet(store)

    assert [r.name for r in store.status_rows(site="us")] == ["api@us-1"]
    assert [r.site for r in store.status_rows(site="eu")] == ["eu"] * 4
    assert store.status_rows(site="nowhere") == []


def test_deployed_revisions_name_only_instances_with_a_success(store: Store) -> None:
    fleet(store)

    assert store.deployed_revisions() == {"api@web-1": "r1", "api@web-2": "r1", "api@us-1": "r3"}


def test_a_row_holds_no_config_or_secrets(store: Store) -> None:
    names = {f.name for f in fields(StatusRow)}
    assert not names & {"config", "secrets", "deployed_config", "deployed_secrets", "deployed"}


class Recording:
    """A driver connection that notes each statement sent through it."""

    def __init__(self, conn: Any, seen: list[str]) -> None:
        self.conn, self.seen = conn, seen

    def execute(self, query: str, params: Any = ()) -> Any:
        self.seen.append(query)
        return self.conn.execute(query, params)

    def close(self) -> None:  # the store's connection is the store's to close
        pass


@contextmanager
def statements(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The SQL statements the store's fast reads send (through the driver) while the block runs."""
    seen: list[str] = []
    real = QuickReads

    def recording(conn: Any, mark: str = "?") -> QuickReads:
        return real(Recording(conn, seen), mark)

    with monkeypatch.context() as patch:
        patch.setattr(status, "QuickReads", recording)
        yield seen


def test_each_read_is_one_select_of_no_config_or_secret_column(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    fleet(store)

    with statements(monkeypatch) as status_sql:
        eu = store.status_rows(site="eu")
    with statements(monkeypatch) as revisions_sql:
        store.deployed_revisions()

    assert eu
    assert {r.site for r in eu} == {"eu"}
    for sent in (status_sql, revisions_sql):
        assert len(sent) == 1, sent
        assert sent[0].lstrip().upper().startswith("SELECT")
        assert "config" not in sent[0]
        assert "secrets" not in sent[0]


def test_errors_read_back_masked(store_url: str) -> None:
    with open_store(store_url, masker=Masker([SECRET])) as store:
        begin(store, "d1")
        store.finish_deployment("d1", status=DeploymentStatus.FAILED, error=f"got {SECRET}")

        (row,) = store.status_rows()

    assert row.last_error == "got ***"


def test_many_instances_in_sorted_order(store: Store) -> None:
    requests = [
        DeploymentRequest(f"d{n}", f"svc{n % 7}@h{n:04d}", f"svc{n % 7}", f"h{n:04d}", "eu", "r1")
        for n in range(500)
    ]
    store.begin_deployments(requests, actor="a", owner_host=CONTROLLER, owner_pid=os.getpid())
    store.mark_in_progress_many([r.deployment_id for r in requests[:250]])
    store.finish_deployments(
        [Finish(r.deployment_id, DeploymentStatus.SUCCESS, snapshot={}) for r in requests[:250]]
    )

    rows = store.status_rows()

    assert [r.name for r in rows] == sorted(r.instance for r in requests)
    assert len(store.deployed_revisions()) == 250
    assert sum(r.status is InstanceStatus.PENDING for r in rows) == 250
