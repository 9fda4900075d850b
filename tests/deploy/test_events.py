"""The events a rollout publishes, in order: ROLLOUT_STARTED first, QUEUED ... FINISHED for each
instance, ROLLOUT_FINISHED last; the same events in the store, with ids that only grow."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable

import pytest

from shipyard.events import Event, EventBus, Phase
from shipyard.store import Store

from .builders import Fleet
from .conftest import MakeProject, make_deployer

SERVICES = {
    "db": {"hosts": ["h1"]},
    "api": {"hosts": ["h1", "h2"], "depends_on": ["db"]},
    "web": {"hosts": ["h3"], "depends_on": ["api"]},
}
DEPLOYMENT_PHASES = {
    Phase.QUEUED, Phase.UPLOADING, Phase.INSTALLING, Phase.SWITCHING, Phase.RESTARTING,
    Phase.HEALTH_CHECKING, Phase.SOAKING, Phase.DRAINING, Phase.ROLLING_BACK, Phase.FINISHED,
}  # fmt: skip
SITES = {"h1": "eu", "h2": "eu", "h3": "eu"}


def rollout_events(
    project: MakeProject, store: Store, break_it: Callable[[Fleet], None]
) -> tuple[list[Event], str, Fleet]:
    flat = project(SERVICES)
    fleet = Fleet.of(flat)
    break_it(fleet)
    bus = EventBus(store.append_events)
    seen: list[Event] = []
    bus.subscribe(seen.append)
    deployer = make_deployer(flat, store, fleet, events=bus)
    report = asyncio.run(deployer.deploy(list(flat.instances.values()), request="r"))
    return seen, report.rollout_id, fleet


def per_instance(events: list[Event]) -> dict[str, list[Event]]:
    out: dict[str, list[Event]] = {}
    for event in events:
        if event.instance is not None:
            out.setdefault(event.instance, []).append(event)
    return out


@pytest.mark.parametrize(
    ("break_it", "finished", "rollout_result"),
    [
        pytest.param(
            lambda fleet: None,
            {"db@h1": "success", "api@h1": "success", "api@h2": "success", "web@h3": "success"},
            "success",
            id="all-well",
        ),
        pytest.param(
            lambda fleet: fleet.fail_health("h2", "api"),
            {"db@h1": "success", "api@h1": "success", "api@h2": "failed", "web@h3": "skipped"},
            "failed",
            id="api-fails",
        ),
    ],
)
def test_a_rollout_publishes_its_events_in_order_and_stores_them(
    project: MakeProject,
    store: Store,
    break_it: Callable[[Fleet], None],
    finished: dict[str, str],
    rollout_result: str,
) -> None:
    seen, rollout_id, _ = rollout_events(project, store, break_it)
    assert seen[0].phase is Phase.ROLLOUT_STARTED
    assert seen[-1].phase is Phase.ROLLOUT_FINISHED
    assert seen[-1].result == rollout_result
    assert [e for e in seen if e.phase.of_rollout] == [seen[0], seen[-1]]
    assert {e.rollout_id for e in seen} == {rollout_id}
    by_instance = per_instance(seen)
    assert set(by_instance) == set(finished)
    for name, events in by_instance.items():
        assert events[0].phase is Phase.QUEUED, (name, events)
        assert events[-1].phase is Phase.FINISHED, (name, events)
        assert events[-1].result == finished[name]
        assert [e.phase for e in events].count(Phase.FINISHED) == 1
        assert {e.phase for e in events} <= DEPLOYMENT_PHASES
        host = name.partition("@")[2]
        assert {(e.host, e.site) for e in events} == {(host, SITES[host])}
        if finished[name] == "skipped":
            assert {e.deployment_id for e in events} == {None}
            assert events[-1].detail == "depends on api, which failed"
        else:
            ids = {e.deployment_id for e in events if e.phase is not Phase.QUEUED}
            assert len(ids) == 1
            assert None not in ids
            assert Phase.SWITCHING in {e.phase for e in events}
            assert Phase.HEALTH_CHECKING in {e.phase for e in events}
    # A dependency's deployment is over before its dependents' first host step.
    db_done = seen.index(by_instance["db@h1"][-1])
    for name in ("api@h1", "api@h2"):
        begun = [e for e in by_instance[name] if e.phase is not Phase.QUEUED]
        assert seen.index(begun[0]) > db_done
    # The store has the same events in the same order, under ids that only grow.
    stored = store.events(rollout_id=rollout_id)
    assert [e.id for e in seen] == [e.id for e in stored]
    assert all(a.id < b.id for a, b in itertools.pairwise(stored))
    assert [(e.phase, e.instance, e.result) for e in stored] == [
        (e.phase, e.instance, e.result) for e in seen
    ]


def test_another_reader_following_by_id_sees_the_same_events(
    project: MakeProject, store: Store
) -> None:
    seen, rollout_id, _ = rollout_events(project, store, lambda fleet: None)
    followed: list[Event] = []
    after = 0
    while True:
        page = store.events(after_id=after, limit=7)
        if not page:
            break
        followed += page
        after = page[-1].id
    assert [e for e in followed if e.rollout_id == rollout_id] == seen


def test_rollout_started_comes_once_its_row_is_written_and_before_any_host_step(
    project: MakeProject, store: Store
) -> None:
    flat = project(SERVICES)
    fleet = Fleet.of(flat)
    bus = EventBus(store.append_events)
    at_start: list[tuple[str | None, int]] = []

    def on_event(event: Event) -> None:
        if event.phase is Phase.ROLLOUT_STARTED:
            row = store.rollout(event.rollout_id or "")
            at_start.append((row.status.value if row else None, len(fleet.journal)))

    bus.subscribe(on_event)
    deployer = make_deployer(flat, store, fleet, events=bus)
    report = asyncio.run(
        deployer.deploy(list(flat.instances.values()), request="r", rollout_id="rollout-7")
    )
    assert report.rollout_id == "rollout-7"
    assert at_start == [("in_progress", 0)]


def test_a_canary_rolled_back_finishes_last_as_its_report_says(
    project: MakeProject, store: Store
) -> None:
    """Its deployment's FINISHED (success), its rollback's (success), then the rollout's word on
    the canary: failed, with the report's reason and deployment id."""
    strategy = {"kind": "canary", "canary": 1, "batch": 1, "soak": 0, "max_failures": 1}
    services = {"api": {"hosts": ["h1", "h2"], "strategy": strategy}}
    v1 = project(services, hosts=["h1", "h2"], release="v1")
    fleet = Fleet.of(v1)
    asyncio.run(make_deployer(v1, store, fleet).deploy(list(v1.instances.values()), request="v1"))
    for instance in v1.instances.values():
        fleet.previous(instance)
    fleet.fail_soak("h1", "api", release="v2")
    v2 = project(services, hosts=["h1", "h2"], release="v2")
    bus = EventBus(store.append_events)
    seen: list[Event] = []
    bus.subscribe(seen.append)
    report = asyncio.run(
        make_deployer(v2, store, fleet, events=bus).deploy(
            list(v2.instances.values()), request="v2"
        )
    )
    events = per_instance(seen)["api@h1"]
    outcome = {o.instance: o for o in report.outcomes}["api@h1"]
    assert outcome.result == "failed"
    phases = [e.phase for e in events]
    assert phases.index(Phase.SOAKING) < phases.index(Phase.ROLLING_BACK)
    rolling_back = events[phases.index(Phase.ROLLING_BACK)]
    assert rolling_back.detail.startswith("canary failed: api@h1: check-api v2 exits 0")
    finished = [e for e in events if e.phase is Phase.FINISHED]
    assert [e.result for e in finished] == ["success", "success", "failed"]
    canary, rollback, verdict = finished
    assert events[-1] is verdict
    assert (verdict.result, verdict.detail, verdict.deployment_id) == (
        outcome.result, outcome.reason, outcome.deployment_id,
    )  # fmt: skip
    assert rollback.deployment_id == outcome.deployment_id  # the rollback's deployment
    assert canary.deployment_id not in (None, outcome.deployment_id)
    assert rolling_back.deployment_id == canary.deployment_id
    # The store keeps the same story, and its last word on the canary is the report's.
    stored = [e for e in store.events(rollout_id=report.rollout_id) if e.instance == "api@h1"]
    last = [e for e in stored if e.phase is Phase.FINISHED][-1]
    assert (last.result, last.detail) == (outcome.result, outcome.reason)


def test_every_event_of_a_begun_deployment_carries_its_id(
    project: MakeProject, store: Store
) -> None:
    """Soaking and rolling back too: a follower groups a deployment's events by its id."""
    strategy = {"kind": "canary", "canary": 1, "batch": 1, "soak": 0, "max_failures": 1}
    services = {"api": {"hosts": ["h1", "h2"], "strategy": strategy}}
    flat = project(services, hosts=["h1", "h2"])
    fleet = Fleet.of(flat)
    bus = EventBus(store.append_events)
    seen: list[Event] = []
    bus.subscribe(seen.append)
    asyncio.run(
        make_deployer(flat, store, fleet, events=bus).deploy(
            list(flat.instances.values()), request="r"
        )
    )
    events = per_instance(seen)["api@h1"]
    assert Phase.SOAKING in [e.phase for e in events]
    assert [
        e.phase for e in events if e.phase is not Phase.QUEUED and e.deployment_id is None
    ] == []
