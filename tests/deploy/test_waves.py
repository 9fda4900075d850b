"""Rollouts in dependency waves: order, dependents of a failure skipped, the others going on,
one host failing in each way a host step can fail, and what the store holds afterwards."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from shipyard.deploy.manager import RolloutReport
from shipyard.store import DeploymentStatus, RolloutStatus, Store

from .builders import Fleet, by_instance, results
from .conftest import ACTOR, MakeProject, make_deployer

# db and cache first (cache depends on nothing), then api (on db), then web (on api).
SERVICES: dict[str, dict[str, Any]] = {
    "db": {"hosts": ["h1"]},
    "cache": {"hosts": ["h2"]},
    "api": {"hosts": ["h1", "h2"], "depends_on": ["db"]},
    "web": {"hosts": ["h3"], "depends_on": ["api"]},
}


def deploy_all(
    project: MakeProject, store: Store, fleet_setup: Callable[[Fleet], None]
) -> tuple[RolloutReport, Fleet]:
    flat = project(SERVICES)
    fleet = Fleet.of(flat)
    fleet_setup(fleet)
    deployer = make_deployer(flat, store, fleet)
    report = asyncio.run(deployer.deploy(list(flat.instances.values()), request="deploy all"))
    return report, fleet


def test_a_service_begins_only_after_the_wave_of_its_dependencies(
    project: MakeProject, store: Store
) -> None:
    report, fleet = deploy_all(project, store, lambda fleet: None)
    assert report.ok
    assert set(results(report.outcomes).values()) == {"success"}
    _db_first, db_last = fleet.first_and_last("db")
    cache_first, cache_last = fleet.first_and_last("cache")
    api_first, api_last = fleet.first_and_last("api")
    web_first, _ = fleet.first_and_last("web")
    assert api_first > max(db_last, cache_last)  # the whole first wave, cache included
    assert web_first > api_last
    assert cache_first < db_last  # one wave runs its services at once
    # Every host step of a deployment ran, in order, on the instance's host.
    assert [step for host, step in fleet.steps_for("web")] == [
        "prepare", "switch", "restart", "health", "record",
    ]  # fmt: skip
    assert {host for host, _ in fleet.steps_for("api")} == {"h1", "h2"}


@pytest.mark.parametrize(
    ("break_it", "expected"),
    [
        pytest.param(
            lambda fleet: fleet.fail_health("h1", "db"),
            {
                "db@h1": ("failed", "health check failed: check-db v1 exits 0: failed 2 time(s)"),
                "cache@h2": ("success", ""),
                "api@h1": ("skipped", "depends on db, which failed"),
                "api@h2": ("skipped", "depends on db, which failed"),
                "web@h3": ("skipped", "depends on db, which failed"),  # through api
            },
            id="first-wave",
        ),
        pytest.param(
            lambda fleet: fleet.crash("h2", "api"),
            {
                "db@h1": ("success", ""),
                "cache@h2": ("success", ""),
                "api@h1": ("success", ""),
                "api@h2": ("failed", "health check failed: check-api v1 exits 0: failed 1 time(s), "
                           "last: program is FATAL"),
                "web@h3": ("skipped", "depends on api, which failed"),
            },
            id="second-wave",
        ),
        pytest.param(
            lambda fleet: fleet.fail_health("h2", "cache"),
            {
                "db@h1": ("success", ""),
                "cache@h2": ("failed", "health check failed: check-cache v1"),
                "api@h1": ("success", ""),  # api does not depend on cache
                "api@h2": ("success", ""),
                "web@h3": ("success", ""),
            },
            id="unrelated",
        ),
    ],
)  # fmt: skip
def test_dependents_of_a_failed_service_are_skipped_naming_it(
    project: MakeProject,
    store: Store,
    break_it: Callable[[Fleet], None],
    expected: dict[str, tuple[str, str]],
) -> None:
    report, fleet = deploy_all(project, store, break_it)
    found = by_instance(report.outcomes)
    assert set(found) == set(expected)
    for name, (result, reason) in expected.items():
        assert found[name].result == result, (name, found[name])
        assert reason in found[name].reason, (name, found[name].reason)
        if result == "skipped":
            service = name.partition("@")[0]
            assert fleet.steps_for(service) == [], f"{name} was skipped but its host was asked"
            assert found[name].deployment_id is None
    assert not report.ok


@pytest.mark.parametrize(
    ("break_it", "reason", "switched_back"),
    [
        pytest.param(
            lambda f: f.add("h2").__setattr__("unreachable", "no route to host"),
            "no route to host",
            False,
            id="unreachable",
        ),
        pytest.param(
            lambda f: f.fail_step("h2", "api", "prepare", "mkdir: No space left on device"),
            "h2: `sh -s <<prepare>>` exited with status 1; last lines of stderr:\n"
            "  | mkdir: No space left on device",
            False,
            id="prepare-fails",
        ),
        pytest.param(
            lambda f: f.fail_step("h2", "api", "switch", "shipyard: release x is not complete"),
            "`sh -s <<switch>>` exited with status 1",
            False,
            id="switch-fails",
        ),
        pytest.param(
            lambda f: f.fail_step("h2", "api", "restart", "supervisord: connection refused"),
            "restart failed: h2: `sh -s <<restart>>` exited with status 1; last lines of stderr:\n"
            "  | supervisord: connection refused",
            True,
            id="restart-fails",
        ),
        pytest.param(
            lambda f: f.fail_health("h2", "api", "connection refused"),
            "health check failed: check-api v1 exits 0: failed 2 time(s), last: connection refused",
            True,
            id="health-fails",
        ),
        pytest.param(
            lambda f: f["h2"].reply("health", exit_status=124),
            "the health round did not finish within 3 s and was stopped",
            True,
            id="health-step-stopped-on-host",
        ),
    ],
)
def test_one_host_failing_fails_its_instance_with_the_reason_and_the_others_succeed(
    project: MakeProject,
    store: Store,
    break_it: Callable[[Fleet], None],
    reason: str,
    switched_back: bool,
) -> None:
    flat = project({"api": {"hosts": ["h1", "h2", "h3"], "strategy": {"max_failures": 1}}})
    fleet = Fleet.of(flat)
    break_it(fleet)
    report = asyncio.run(
        make_deployer(flat, store, fleet).deploy(list(flat.instances.values()), request="r")
    )
    found = by_instance(report.outcomes)
    assert results(report.outcomes) == {
        "api@h1": "success",
        "api@h2": "failed",
        "api@h3": "success",
    }
    assert reason in found["api@h2"].reason
    # A failed instance that had been switched is put back: here it had no release before, so its
    # program is stopped.
    stops = [c for c in fleet["h2"].commands if isinstance(c, tuple) and "stop" in c]
    assert bool(stops) is switched_back, fleet["h2"].commands
    # The failure is the store's too.
    failed = store.deployment(found["api@h2"].deployment_id or "")
    assert failed is not None
    assert failed.status is DeploymentStatus.FAILED
    assert reason.splitlines()[0] in (failed.error or "")


def test_the_store_holds_the_rollout_its_deployments_and_the_audit_afterwards(
    project: MakeProject, store: Store
) -> None:
    report, _ = deploy_all(project, store, lambda fleet: fleet.fail_health("h2", "cache"))
    rollout = store.rollout(report.rollout_id)
    assert rollout is not None
    assert (rollout.status, rollout.actor, rollout.request) == (
        RolloutStatus.FAILED, ACTOR, "deploy all",
    )  # fmt: skip
    assert rollout.finished_at is not None
    assert rollout.summary == {"counts": {"success": 4, "failed": 1}, "failed": ["cache@h2"]}
    rows = {d.instance: d for d in store.deployments(rollout_id=report.rollout_id)}
    assert {name: d.status for name, d in rows.items()} == {
        "db@h1": DeploymentStatus.SUCCESS,
        "cache@h2": DeploymentStatus.FAILED,
        "api@h1": DeploymentStatus.SUCCESS,
        "api@h2": DeploymentStatus.SUCCESS,
        "web@h3": DeploymentStatus.SUCCESS,
    }
    for outcome in report.outcomes:
        assert rows[outcome.instance].id == outcome.deployment_id
        assert rows[outcome.instance].revision == outcome.revision
    deployed = {s.name: s.deployed_revision for s in store.instance_states()}
    assert deployed == {
        o.instance: (o.revision if o.result == "success" else None) for o in report.outcomes
    }
    audit = [(e.action, e.target, e.result) for e in store.audit()]
    target = f"rollout:{report.rollout_id}"
    assert audit[0] == ("rollout.begin", target, "in_progress")
    assert audit[-1] == ("rollout.finish", target, "failed")
    for name, row in rows.items():
        assert ("deploy.begin", name, "pending") in audit
        assert ("deploy.finish", name, row.status.value) in audit
    assert store.verify_audit().whole


def test_a_second_rollout_leaves_what_is_up_to_date_alone(
    project: MakeProject, store: Store
) -> None:
    first, fleet = deploy_all(project, store, lambda fleet: None)
    assert first.ok
    flat = project(SERVICES)
    calls = len(fleet.journal)
    again = asyncio.run(
        make_deployer(flat, store, fleet).deploy(list(flat.instances.values()), request="again")
    )
    assert {o.result for o in again.outcomes} == {"unchanged"}
    assert {o.reason for o in again.outcomes} == {"up to date"}
    assert len(fleet.journal) == calls  # no host was asked anything
    rollout = store.rollout(again.rollout_id)
    assert rollout is not None
    assert rollout.status is RolloutStatus.SUCCESS
