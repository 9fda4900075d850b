"""Cancelling a rollout: no new batch, wave or deployment begins, what is in flight finishes,
what did not run is skipped with "cancelled: <reason>"."""

from __future__ import annotations

import asyncio
from typing import Any

from shipyard.deploy.manager import Deployer, RolloutReport
from shipyard.events import Event, EventBus, Phase
from shipyard.store import DeploymentStatus, Store

from .builders import Fleet, by_instance, service_dir, until
from .conftest import MakeProject, make_deployer

REASON = "operator said stop"


def cancel_while_held(
    project: MakeProject,
    store: Store,
    services: dict[str, dict[str, Any]],
    host: str,
    service: str,
    step: str = "health",
    begun: tuple[str, ...] = (),
) -> tuple[RolloutReport, Fleet, list[Event], int]:
    """Deploy `services`; while `step` of `service` is held on `host` (and on each host in
    `begun`, so their deployments are past their last cancellable step too), cancel; then let
    them go.
    Returns the report, the fleet, the events, and the journal's length at the cancel."""
    flat = project(services)
    fleet = Fleet.of(flat)
    gate = asyncio.Event()
    for held in (host, *begun):
        fleet[held].reply_part(service_dir(service), step=step, gate=gate)
    bus = EventBus(store.append_events)
    seen: list[Event] = []
    bus.subscribe(seen.append)
    deployer = make_deployer(flat, store, fleet, events=bus)

    async def scenario() -> tuple[RolloutReport, int]:
        rollout = asyncio.create_task(deployer.deploy(list(flat.instances.values()), request="r"))
        for held in (host, *begun):
            await until(lambda at=held: any(c.step == step for h, c in fleet.journal if h == at))
        deployer.cancel(REASON)
        at = len(fleet.journal)
        gate.set()
        return await rollout, at

    report, at = asyncio.run(scenario())
    return report, fleet, seen, at


def test_cancel_lets_the_batch_in_flight_finish_and_skips_the_later_batches(
    project: MakeProject, store: Store
) -> None:
    strategy = {"kind": "rolling", "batch": 1}
    report, fleet, seen, _ = cancel_while_held(
        project, store, {"api": {"hosts": ["h1", "h2", "h3"], "strategy": strategy}}, "h1", "api"
    )
    found = by_instance(report.outcomes)
    assert found["api@h1"].result == "success"  # in flight: it ran to its end
    assert "record" in [c.step for c in fleet["h1"].calls]
    for name in ("api@h2", "api@h3"):
        assert (found[name].result, found[name].reason) == ("skipped", f"cancelled: {REASON}")
        assert found[name].deployment_id is None
        assert fleet[name.partition("@")[2]].calls == []
    assert report.cancelled == REASON
    phases = [e.phase for e in seen if e.phase.of_rollout]
    assert phases == [Phase.ROLLOUT_STARTED, Phase.ROLLOUT_CANCELLING, Phase.ROLLOUT_FINISHED]
    assert seen[-1].result == "cancelled"
    for name in ("api@h2", "api@h3"):
        last = [e for e in seen if e.instance == name][-1]
        assert (last.phase, last.result, last.detail) == (
            Phase.FINISHED, "skipped", f"cancelled: {REASON}",
        )  # fmt: skip
    assert {d.instance for d in store.deployments(rollout_id=report.rollout_id)} == {"api@h1"}
    rollout = store.rollout(report.rollout_id)
    assert rollout is not None
    assert rollout.finished_at is not None
    assert rollout.summary.get("cancelled") == REASON


def test_cancel_begins_no_later_wave(project: MakeProject, store: Store) -> None:
    services = {
        "db": {"hosts": ["h1", "h2"]},
        "api": {"hosts": ["h3"], "depends_on": ["db"]},
    }
    report, fleet, _, at = cancel_while_held(project, store, services, "h1", "db", begun=("h2",))
    found = by_instance(report.outcomes)
    assert (found["db@h1"].result, found["db@h2"].result) == ("success", "success")
    assert (found["api@h3"].result, found["api@h3"].reason) == ("skipped", f"cancelled: {REASON}")
    assert fleet["h3"].calls == []
    # After the cancel, only the steps of deployments already begun ran.
    assert all(host in ("h1", "h2") for host, _ in fleet.journal[at:])


def test_a_cancelled_deployer_runs_its_next_rollout_afresh(
    project: MakeProject, store: Store
) -> None:
    flat = project({"api": {"hosts": ["h1"]}, "web": {"hosts": ["h1"], "depends_on": ["api"]}})
    fleet = Fleet.of(flat)
    bus = EventBus(store.append_events)
    deployer: Deployer = make_deployer(flat, store, fleet, events=bus)

    def cancel_at_start(event: Event) -> None:
        if event.phase is Phase.ROLLOUT_STARTED:
            deployer.cancel("stop the first one")

    async def twice() -> tuple[RolloutReport, RolloutReport, RolloutReport]:
        deployer.cancel("no rollout runs: this changes nothing")
        stop = bus.subscribe(cancel_at_start)
        first = await deployer.deploy(list(flat.instances.values()), request="r")
        stop()
        second = await deployer.deploy(list(flat.instances.values()), request="r")
        third = await deployer.deploy(list(flat.instances.values()), request="r")
        return first, second, third

    first, second, third = asyncio.run(twice())
    assert first.cancelled == "stop the first one"
    assert {o.result for o in first.outcomes} == {"skipped"}
    assert {o.reason for o in first.outcomes} == {"cancelled: stop the first one"}
    assert [o.result for o in second.outcomes] == ["success", "success"]
    assert second.cancelled is None
    assert [o.result for o in third.outcomes] == ["unchanged", "unchanged"]


def test_a_blue_green_switch_cancelled_after_its_slot_link_starts_nothing(
    project: MakeProject, store: Store
) -> None:
    """The idle slot is linked but not started: nothing live changed, so the switch stops there
    (skipped), nginx and the live slot untouched."""
    flat = project({"web": {"hosts": ["h1"], "strategy": {"kind": "blue-green"}}})
    fleet = Fleet.of(flat)
    fake = fleet["h1"]
    gate = asyncio.Event()
    fake.reply("slot link", gate=gate)
    deployer = make_deployer(flat, store, fleet)

    async def scenario() -> RolloutReport:
        rollout = asyncio.create_task(deployer.deploy(list(flat.instances.values()), request="r"))
        await until(lambda: any(c.step == "slot link" for c in fake.calls))
        deployer.cancel(REASON)
        gate.set()
        return await rollout

    report = asyncio.run(scenario())
    outcome = by_instance(report.outcomes)["web@h1"]
    assert (outcome.result, outcome.reason) == ("skipped", f"cancelled: {REASON}")
    after = [c.step for c in fake.calls[[c.step for c in fake.calls].index("slot link") :]]
    for later in ("start blue", "health", "nginx switch", "record"):
        assert later not in after
    assert not [c for c in fake.calls if c.method == "put" and "web-blue" in c.path]
    row = store.deployment(outcome.deployment_id or "")
    assert row is not None
    assert row.status is DeploymentStatus.SKIPPED
    state = store.instance_state("web@h1")
    assert state is None or state.deployed is None
