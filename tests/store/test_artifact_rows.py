"""The store's artifact matrix, on SQLite and PostgreSQL: a result per artifact x site x host,
a failure keeping the version the host holds, runs with their results, claims that refuse a
second run on the same artifact and site while the first one's controller holds its lease, and
taken over once it is gone; every run audited."""

from __future__ import annotations

import pytest

from shipyard.errors import ArtifactBusy
from shipyard.store import Controller, Store
from shipyard.store.artifacts import ArtifactResult


def controller(store: Store, seconds: float = 60.0) -> Controller:
    found = Controller.of_process()
    store.register_controller(found, lease_seconds=seconds)
    return found


def run(store: Store, run_id: str, owner: Controller, *claims: tuple[str, str]) -> None:
    store.begin_artifact_run(
        run_id=run_id, actor="alice", request="artifacts deploy", controller_id=owner.id,
        claims=list(claims),
    )  # fmt: skip


def test_results_make_the_matrix_and_a_failure_keeps_what_the_host_holds(store: Store) -> None:
    owner = controller(store)
    run(store, "r1", owner, ("certs", "eu"), ("certs", "us"))
    store.record_artifact_results("r1", [
        ArtifactResult("certs", "eu", "h1", "success", "v1"),
        ArtifactResult("certs", "us", "h2", "failed", "v1", "cannot connect to h2"),
    ])  # fmt: skip
    store.finish_artifact_run("r1", actor="alice", status="failed", summary={"failed": 1})
    run(store, "r2", owner, ("certs", "eu"))
    store.record_artifact_results("r2", [ArtifactResult("certs", "eu", "h1", "failed", "v2", "x")])
    store.finish_artifact_run("r2", actor="alice", status="failed", summary={})

    cells = {(c.site, c.host): c for c in store.artifact_cells()}

    assert (cells["eu", "h1"].status, cells["eu", "h1"].version) == ("failed", "v2")
    assert cells["eu", "h1"].deployed_version == "v1"  # what the host still holds
    assert (cells["us", "h2"].deployed_version, cells["us", "h2"].reason) == (
        None, "cannot connect to h2",
    )  # fmt: skip
    assert [c.host for c in store.artifact_cells(sites=["us"])] == ["h2"]
    first = store.artifact_run("r1")
    assert first is not None
    assert (first.status, [r.host for r in first.results]) == ("failed", ["h1", "h2"])
    actions = [e.action for e in store.audit()]
    assert actions.count("artifacts.begin") == 2
    assert actions.count("artifacts.finish") == 2


def test_a_second_run_on_the_same_artifact_and_site_is_refused_until_the_first_finishes(
    store: Store,
) -> None:
    owner = controller(store)
    run(store, "r1", owner, ("certs", "eu"))

    with pytest.raises(ArtifactBusy, match="certs is already being pushed to site eu by run r1"):
        run(store, "r2", owner, ("certs", "us"), ("certs", "eu"))
    run(store, "r3", owner, ("certs", "us"))  # another site is free
    store.finish_artifact_run("r1", actor="alice", status="success", summary={})
    run(store, "r4", owner, ("certs", "eu"))

    assert store.artifact_run("r2") is None  # refused whole: not recorded


def test_a_claim_whose_controller_is_gone_is_taken_over(store: Store) -> None:
    gone = controller(store)
    run(store, "r1", gone, ("certs", "eu"))
    store.release_controller(gone.id)  # its lease runs out now

    run(store, "r2", controller(store), ("certs", "eu"))

    found = store.artifact_run("r2")
    assert found is not None
    assert found.status == "running"


def test_an_unknown_result_is_refused(store: Store) -> None:
    run(store, "r1", controller(store), ("certs", "eu"))
    with pytest.raises(ValueError, match="unknown artifact result"):
        store.record_artifact_results("r1", [ArtifactResult("certs", "eu", "h1", "odd", "v1")])
