"""Canary rollouts: a failed canary, or one that fails its soak, is put back to the release it
had and the rest of the service is skipped with the reason."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shipyard.config.flatten import Flattened
from shipyard.deploy.manager import RolloutReport
from shipyard.events import Event, EventBus, Phase
from shipyard.store import DeploymentKind, DeploymentStatus, RolloutStatus, Store

from .builders import SUPERVISORD_CONF, Fleet, by_instance, results, service_dir
from .conftest import MakeProject, make_deployer

HOSTS = ["h1", "h2", "h3", "h4"]


def canary(**changes: Any) -> dict[str, Any]:
    return {"kind": "canary", "canary": 1, "batch": 1, "soak": 0, "max_failures": 1} | changes


@dataclass
class Upgrade:
    """v1 deployed everywhere, then a rollout of v2 under `strategy`."""

    v1: Flattened
    v2: Flattened
    fleet: Fleet
    report: RolloutReport

    def revision(self, flat: Flattened, instance: str) -> str:
        return flat.instances[instance].revision


def upgrade(
    project: MakeProject,
    store: Store,
    strategy: dict[str, Any],
    break_it: Callable[[Fleet], None],
) -> Upgrade:
    services = {"api": {"hosts": HOSTS, "strategy": strategy}}
    v1 = project(services, hosts=HOSTS, release="v1")
    fleet = Fleet.of(v1)
    first = asyncio.run(
        make_deployer(v1, store, fleet).deploy(list(v1.instances.values()), request="v1")
    )
    assert first.ok, first.outcomes
    for instance in v1.instances.values():
        fleet.previous(instance)
    break_it(fleet)
    v2 = project(services, hosts=HOSTS, release="v2")
    report = asyncio.run(
        make_deployer(v2, store, fleet).deploy(list(v2.instances.values()), request="v2")
    )
    return Upgrade(v1, v2, fleet, report)


def deployed(store: Store) -> dict[str, str | None]:
    return {s.name: s.deployed_revision for s in store.instance_states()}


def test_a_healthy_canary_lets_the_rest_follow_batch_by_batch(
    project: MakeProject, store: Store
) -> None:
    done = upgrade(project, store, canary(batch=2), lambda fleet: None)
    assert done.report.ok
    assert deployed(store) == {name: done.revision(done.v2, name) for name in done.v2.instances}
    # The canary alone first, then the others two at a time: h1 alone was switched before any
    # other host was asked about v2.
    first_switch = [
        index
        for index, (host, call) in enumerate(done.fleet.journal)
        if call.step == "switch"
        and any("releases/" + done.revision(done.v2, f"api@{host}") in p for p in call.parts)
    ]
    hosts_in_order = [done.fleet.journal[index][0] for index in first_switch]
    assert hosts_in_order[0] == "h1"
    assert sorted(hosts_in_order[1:3]) == ["h2", "h3"]
    assert hosts_in_order[3] == "h4"


def test_a_canary_failing_its_health_check_is_switched_back_and_the_rest_skipped(
    project: MakeProject, store: Store
) -> None:
    done = upgrade(
        project, store, canary(), lambda fleet: fleet.fail_health("h1", "api", release="v2")
    )
    found = by_instance(done.report.outcomes)
    assert results(done.report.outcomes) == {
        "api@h1": "failed", "api@h2": "skipped", "api@h3": "skipped", "api@h4": "skipped",
    }  # fmt: skip
    assert found["api@h1"].reason.startswith("health check failed: check-api v2 exits 0")
    assert "failed too" not in found["api@h1"].reason  # the switch back went well
    for name in ("api@h2", "api@h3", "api@h4"):
        assert found[name].reason == "canary failed: a canary deployment failed"
    # The host put v1 back live (its own health check passing) and nothing else was touched.
    old = done.revision(done.v1, "api@h1")
    back = [p for p in done.fleet["h1"].parts if p.step == "switch back"]
    assert len(back) == 1
    assert f"releases/{old}" in back[0].text
    assert deployed(store) == {name: done.revision(done.v1, name) for name in done.v1.instances}
    new = done.revision(done.v2, "api@h2")
    assert not any(new in p.text for p in done.fleet["h2"].parts)
    rollout = store.rollout(done.report.rollout_id)
    assert rollout is not None
    assert rollout.status is RolloutStatus.FAILED


def test_a_canary_failing_its_soak_is_rolled_back_to_its_earlier_snapshot(
    project: MakeProject, store: Store
) -> None:
    done = upgrade(
        project, store, canary(), lambda fleet: fleet.fail_soak("h1", "api", release="v2")
    )
    found = by_instance(done.report.outcomes)
    old = done.revision(done.v1, "api@h1")
    why = "canary failed: api@h1: check-api v2 exits 0: failed 1 time(s), last: 503 Service Unavailable"
    assert results(done.report.outcomes) == {
        "api@h1": "failed", "api@h2": "skipped", "api@h3": "skipped", "api@h4": "skipped",
    }  # fmt: skip
    assert found["api@h1"].reason == f"rolled back to {old[:12]}: {why}"
    for name in ("api@h2", "api@h3", "api@h4"):
        assert found[name].reason == why
    # The rollback is a deployment of its own, of the earlier snapshot, and it succeeded.
    rollback = store.deployment(found["api@h1"].deployment_id or "")
    assert rollback is not None
    assert (rollback.kind, rollback.status, rollback.revision) == (
        DeploymentKind.ROLLBACK, DeploymentStatus.SUCCESS, old,
    )  # fmt: skip
    assert deployed(store)["api@h1"] == old
    # On the host: the kept release checked, not uploaded again, and switched to.
    steps = [p.step for p in done.fleet["h1"].parts if service_dir("api") in p.text]
    last_prepare = max(i for i, s in enumerate(steps) if s == "prepare")
    assert steps[last_prepare + 1 :].count("check release") == 1
    assert "prepare" not in steps[steps.index("check release", last_prepare) :]
    switches = [p for p in done.fleet["h1"].parts if p.step == "switch"]
    assert f"releases/{old}" in switches[-1].text


def test_a_failed_canary_beyond_the_budget_stops_on_the_budget(
    project: MakeProject, store: Store
) -> None:
    done = upgrade(
        project,
        store,
        canary(max_failures=0),
        lambda fleet: fleet.fail_health("h1", "api", release="v2"),
    )
    found = by_instance(done.report.outcomes)
    assert found["api@h1"].result == "failed"
    for name in ("api@h2", "api@h3", "api@h4"):
        assert (found[name].result, found[name].reason) == (
            "skipped", "failure budget exceeded: 1 failed > budget 0",
        )  # fmt: skip


def test_every_canary_is_rolled_back_when_one_fails_its_soak(
    project: MakeProject, store: Store
) -> None:
    done = upgrade(
        project, store, canary(canary=2), lambda fleet: fleet.fail_soak("h2", "api", release="v2")
    )
    found = by_instance(done.report.outcomes)
    assert results(done.report.outcomes) == {
        "api@h1": "failed", "api@h2": "failed", "api@h3": "skipped", "api@h4": "skipped",
    }  # fmt: skip
    for name in ("api@h1", "api@h2"):
        assert found[name].reason.startswith(
            f"rolled back to {done.revision(done.v1, name)[:12]}: "
        )
    assert deployed(store) == {name: done.revision(done.v1, name) for name in done.v1.instances}


def test_a_first_canary_failing_its_soak_is_stopped_and_reported_failed(
    project: MakeProject, store: Store
) -> None:
    """Nothing was deployed there before: no rollback deployment, its program stopped."""
    services = {"api": {"hosts": HOSTS, "strategy": canary()}}
    flat = project(services, hosts=HOSTS)
    fleet = Fleet.of(flat)
    fleet.fail_soak("h1", "api")
    bus = EventBus(store.append_events)
    seen: list[Event] = []
    bus.subscribe(seen.append)
    report = asyncio.run(
        make_deployer(flat, store, fleet, events=bus).deploy(
            list(flat.instances.values()), request="r"
        )
    )
    found = by_instance(report.outcomes)
    why = "canary failed: api@h1: check-api v1 exits 0: failed 1 time(s), last: 503 Service Unavailable"
    assert results(report.outcomes) == {
        "api@h1": "failed", "api@h2": "skipped", "api@h3": "skipped", "api@h4": "skipped",
    }  # fmt: skip
    assert found["api@h1"].reason == f"stopped (nothing was deployed there before): {why}"
    assert found["api@h2"].reason == why
    # Stopped through the host's supervisor, after the soak; no other host asked anything.
    stops = [c for c in fleet["h1"].commands if isinstance(c, tuple) and "stop" in c]
    assert stops == [("supervisorctl", "-c", SUPERVISORD_CONF, "stop", "api")]
    assert all(not fleet[h].calls for h in ("h2", "h3", "h4"))
    # Its one deployment, no rollback; its last event says what the report says.
    rows = store.deployments(rollout_id=report.rollout_id)
    assert [(r.id, r.kind) for r in rows] == [
        (found["api@h1"].deployment_id, DeploymentKind.DEPLOY)
    ]
    last = [e for e in seen if e.instance == "api@h1"][-1]
    assert (last.phase, last.result, last.detail, last.deployment_id) == (
        Phase.FINISHED, "failed", found["api@h1"].reason, found["api@h1"].deployment_id,
    )  # fmt: skip
    rollout = store.rollout(report.rollout_id)
    assert rollout is not None
    assert rollout.status is RolloutStatus.FAILED
    # Nothing is deployed there any more: failed, no snapshot, and the next deploy deploys it.
    state = store.instance_state("api@h1")
    assert state is not None
    assert (state.status.value, state.deployed) == ("failed", None)
    withdrawn = [e for e in store.audit(instance="api@h1") if e.action == "deploy.withdrawn"]
    assert [e.detail["error"] for e in withdrawn] == [found["api@h1"].reason]
    again = asyncio.run(
        make_deployer(flat, store, fleet).deploy([flat.instances["api@h1"]], request="again")
    )
    assert [o.result for o in again.outcomes] != ["unchanged"]


def test_a_first_canary_that_will_not_stop_says_so(project: MakeProject, store: Store) -> None:
    services = {"api": {"hosts": HOSTS, "strategy": canary()}}
    flat = project(services, hosts=HOSTS)
    fleet = Fleet.of(flat)
    fleet.fail_soak("h1", "api")
    fleet["h1"].reply(
        ("supervisorctl", "-c", SUPERVISORD_CONF, "stop"), exit_status=7, stdout="refused"
    )
    report = asyncio.run(
        make_deployer(flat, store, fleet).deploy(list(flat.instances.values()), request="r")
    )
    outcome = by_instance(report.outcomes)["api@h1"]
    assert outcome.result == "failed"
    assert outcome.reason.startswith("canary failed: api@h1: ")
    assert outcome.reason.endswith("\nstopping it failed: refused")


def test_a_soak_attempt_is_a_host_step_of_its_own_in_the_release_with_its_port(
    project: MakeProject, store: Store
) -> None:
    """Like the deployment's own check: a batch part (the clean environment of every host
    step), run in `current` with $PORT; the controller passes no environment of its own."""
    services = {"api": {"hosts": ["h1"], "strategy": canary()}}
    flat = project(services, hosts=["h1"])
    fleet = Fleet.of(flat)
    report = asyncio.run(
        make_deployer(flat, store, fleet).deploy(list(flat.instances.values()), request="r")
    )
    assert report.ok, report.outcomes
    soaks = [c for c in fleet["h1"].calls if c.step == "soak"]
    assert len(soaks) == 1
    assert soaks[0].env == {}
    [text] = soaks[0].parts
    assert f"cd -- {service_dir('api')}/current" in text
    assert "export PORT=8000" in text
    assert "check-api v1" in text
