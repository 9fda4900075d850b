"""A lease lost mid-rollout: no host step starts after it, what was running is reported lost,
and nothing is recorded a success."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from shipyard.deploy.lease import LeasePolicy
from shipyard.deploy.manager import RolloutReport
from shipyard.events import Event, EventBus, Phase
from shipyard.store import Controller, DeploymentStatus, RolloutStatus, Store

from .builders import Fleet, service_dir, until
from .conftest import MakeProject, lease_lost, make_deployer

# Renewed every 50 ms: a lease the store ended is noticed at the next renewal.
POLICY = LeasePolicy(seconds=5.0, heartbeat=0.05, patience=1.0)


def lose_the_lease_during(
    project: MakeProject,
    store: Store,
    step: str,
    strategy: dict[str, Any],
    *,
    events: EventBus | None = None,
    **others: dict[str, Any],
) -> tuple[RolloutReport, Fleet, Controller]:
    """Deploy api on h1..h3 (and `others`); while api's `step` is held on the hosts, the store
    ends the lease; the step ends once the controller has noticed."""
    services = {"api": {"hosts": ["h1", "h2", "h3"], "strategy": strategy}, **others}
    flat = project(services, hosts=["h1", "h2", "h3", "h4"])
    fleet = Fleet.of(flat)
    gate = asyncio.Event()
    for fake in fleet.hosts.values():
        fake.reply_part(service_dir("api"), step=step, gate=gate)
    controller = Controller.of_process()
    deployer = make_deployer(
        flat, store, fleet, policy=POLICY, controller=controller, events=events
    )

    async def scenario() -> RolloutReport:
        rollout = asyncio.create_task(deployer.deploy(list(flat.instances.values()), request="r"))
        await until(lambda: any(call.step == step for _, call in fleet.journal))
        # As recovery, or the store's clock running out, would: the lease is over.
        await asyncio.to_thread(store.release_controller, controller.id)
        await until(lambda: lease_lost(deployer))
        gate.set()
        return await rollout

    return asyncio.run(scenario()), fleet, controller


@pytest.mark.parametrize(
    ("step", "later_steps"),
    [
        ("switch", ("restart", "health", "record")),
        ("health", ("record",)),  # live on the host, not recorded: lost all the same
    ],
)
def test_a_lease_lost_during_a_step_makes_its_deployments_lost_and_starts_no_other_step(
    project: MakeProject, store: Store, step: str, later_steps: tuple[str, ...]
) -> None:
    report, fleet, controller = lose_the_lease_during(project, store, step, {})
    assert {o.instance: o.result for o in report.outcomes} == {
        "api@h1": "lost", "api@h2": "lost", "api@h3": "lost",
    }  # fmt: skip
    for outcome in report.outcomes:
        assert outcome.reason.startswith(f"lost: controller {controller.id} lost its lease")
    after = [call.step for _, call in fleet.journal[_first(fleet, step) :]]
    for later in later_steps:
        assert later not in after, f"{later} started after the lease was lost"
    rows = store.deployments(rollout_id=report.rollout_id)
    assert len(rows) == 3
    assert DeploymentStatus.SUCCESS not in {row.status for row in rows}
    assert {s.name: s.deployed_revision for s in store.instance_states()} == dict.fromkeys(
        ("api@h1", "api@h2", "api@h3")
    )
    rollout = store.rollout(report.rollout_id)
    assert rollout is not None
    assert rollout.status is RolloutStatus.FAILED
    assert not report.ok


def test_a_lease_lost_in_one_batch_begins_no_later_batch(
    project: MakeProject, store: Store
) -> None:
    report, fleet, controller = lose_the_lease_during(
        project, store, "switch", {"kind": "rolling", "batch": 1, "max_failures": 3}
    )
    found = {o.instance: o for o in report.outcomes}
    assert found["api@h1"].result == "lost"
    for name in ("api@h2", "api@h3"):  # nothing ran on their hosts: skipped, saying why
        assert (found[name].result, found[name].deployment_id) == ("skipped", None)
        assert found[name].reason.startswith(
            f"not begun: controller {controller.id} lost its lease"
        )
        assert not fleet[name.partition("@")[2]].calls
    rows = store.deployments(rollout_id=report.rollout_id)
    assert [(row.instance, row.status) for row in rows] == [("api@h1", DeploymentStatus.FAILED)]


def test_a_lease_lost_begins_no_later_wave_and_says_so(project: MakeProject, store: Store) -> None:
    bus = EventBus(store.append_events)
    seen: list[Event] = []
    bus.subscribe(seen.append)
    report, fleet, controller = lose_the_lease_during(
        project, store, "switch", {}, events=bus, web={"hosts": ["h4"], "depends_on": ["api"]}
    )
    web = {o.instance: o for o in report.outcomes}["web@h4"]
    assert (web.result, web.deployment_id) == ("skipped", None)
    assert web.reason.startswith(f"not begun: controller {controller.id} lost its lease")
    assert not fleet["h4"].calls
    last = [e for e in seen if e.instance == "web@h4"][-1]
    assert (last.phase, last.result, last.detail) == (Phase.FINISHED, "skipped", web.reason)
    assert seen[-1].phase is Phase.ROLLOUT_FINISHED
    assert seen[-1].result == "failed"


def _first(fleet: Fleet, step: str) -> int:
    return next(i for i, (_, call) in enumerate(fleet.journal) if call.step == step)
