"""Blue/green on the fake: the idle slot started, checked and switched to, the old one drained
and stopped; a slot failing its check stopped with nginx left alone; a rollback to a kept
release without an upload."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from shipyard.config.flatten import Flattened
from shipyard.executors.base import Script
from shipyard.executors.fake import FakeExecutor
from shipyard.store import DeploymentKind, DeploymentStatus, Store

from .builders import Fleet, by_instance
from .conftest import MakeProject, make_deployer, roll_back

PORTS = {"blue": 8001, "green": 8002}  # ports.http 8000, plus one and two
BLUE_GREEN: dict[str, Any] = {"kind": "blue-green", "drain_timeout": 5}


def web(project: MakeProject, release: str = "v1") -> Flattened:
    return project({"web": {"hosts": ["h1"], "strategy": BLUE_GREEN}}, release=release)


def slots(live: str | None, *, served: str | None = None, **links: str) -> str:
    """What the host's slots script prints: the record, the links, nginx's upstream line."""
    lines = [f"live {live}"] if live else []
    lines += [f"{color} {revision}" for color, revision in links.items()]
    port = PORTS.get(served or live or "")
    if port:
        lines.append(f"site server 127.0.0.1:{port};")
    return "\n".join(lines) + "\n"


def scripts(fake: FakeExecutor) -> list[str]:
    return [c.name for c in fake.commands if isinstance(c, Script)]


def stopped(fake: FakeExecutor) -> list[str]:
    """The programs supervisorctl was told to stop."""
    return [c[-1] for c in fake.commands if isinstance(c, tuple) and "stop" in c]


@pytest.mark.parametrize(
    ("before", "started", "old"),
    [
        pytest.param("", "blue", None, id="fresh-host"),
        pytest.param(slots("blue", blue="r0"), "green", "blue", id="blue-live"),
        pytest.param(slots("green", green="r0"), "blue", "green", id="green-live"),
        # The record says blue, nginx serves green: a switch was cut short; green (healthy)
        # is made the live slot first, so blue is the idle one.
        pytest.param(slots("blue", served="green"), "blue", "green", id="switch-cut-short"),
    ],
)
def test_the_idle_slot_goes_live_and_the_old_one_is_drained_and_stopped(
    project: MakeProject, store: Store, before: str, started: str, old: str | None
) -> None:
    flat = web(project)
    fleet = Fleet.of(flat)
    fake = fleet["h1"]
    fake.reply("slots", stdout=before)
    report = asyncio.run(
        make_deployer(flat, store, fleet).deploy(list(flat.instances.values()), request="r")
    )
    assert [o.result for o in report.outcomes] == ["success"], report.outcomes
    ran = scripts(fake)
    other = "green" if started == "blue" else "blue"
    assert f"start {started}" in ran
    assert f"start {other}" not in ran
    assert any(f"web-{started}" in c.path for c in fake.calls if c.method == "put")
    # nginx switched to the started slot's port, after it was checked.
    switches = [c for c in fake.commands if isinstance(c, Script) and c.name == "nginx switch"]
    assert f"127.0.0.1:{PORTS[started]};" in switches[-1].text
    assert ran.index(f"start {started}") < ran.index("nginx switch", ran.index(f"start {started}"))
    assert stopped(fake) == ([f"web-{old}"] if old else [])
    assert ("drained" in ran) is (old is not None)
    # The release went up once, through the host group's steps.
    assert [p.step for p in fake.parts].count("prepare") == 1


def test_a_slot_failing_its_check_is_stopped_and_nginx_keeps_the_live_one(
    project: MakeProject, store: Store
) -> None:
    flat = web(project)
    fleet = Fleet.of(flat)
    fake = fleet["h1"]
    fake.reply("slots", stdout=slots("blue", blue="r0"))
    fleet.fail_health("h1", "web", "connection refused")
    report = asyncio.run(
        make_deployer(flat, store, fleet).deploy(list(flat.instances.values()), request="r")
    )
    outcome = by_instance(report.outcomes)["web@h1"]
    assert outcome.result == "failed"
    assert outcome.reason.startswith(
        "green slot failed its health check: check-web v1 exits 0: failed 2 time(s), "
        "last: connection refused"
    )
    assert "nginx switch" not in scripts(fake)
    assert stopped(fake) == ["web-green"]  # the new slot, never the live blue one
    row = store.deployment(outcome.deployment_id or "")
    assert row is not None
    assert row.status is DeploymentStatus.FAILED


def test_an_instance_rolls_back_to_its_kept_release_without_an_upload(
    project: MakeProject, store: Store
) -> None:
    v1 = web(project, "v1")
    fleet = Fleet.of(v1)
    fake = fleet["h1"]
    asyncio.run(make_deployer(v1, store, fleet).deploy(list(v1.instances.values()), request="v1"))
    r1 = v1.instances["web@h1"].revision
    v2 = web(project, "v2")
    r2 = v2.instances["web@h1"].revision
    fake.reply("slots", stdout=slots("blue", blue=r1))
    asyncio.run(make_deployer(v2, store, fleet).deploy(list(v2.instances.values()), request="v2"))
    state = store.instance_state("web@h1")
    assert state is not None
    assert state.deployed_revision == r2
    fake.reply("slots", stdout=slots("green", blue=r1, green=r2))
    uploads = len([c for c in fake.commands if isinstance(c, tuple) and c[:2] == ("tar", "-x")])
    prepared = [p.step for p in fake.parts].count("prepare")
    seen = len(fake.calls)

    rolled = asyncio.run(
        roll_back(make_deployer(v2, store, fleet), store, v2.instances["web@h1"], r1)
    )

    [outcome] = rolled.outcomes
    assert (outcome.result, outcome.revision) == ("success", r1)
    rollout = store.rollout(rolled.rollout_id)  # a rollout of its own
    assert rollout is not None
    assert (rollout.strategy, rollout.status.value) == ("rollback", "success")
    later = fake.calls[seen:]
    assert not any(c.parts for c in later if c.step == "prepare")
    assert [p.step for p in fake.parts].count("prepare") == prepared
    assert (
        len([c for c in fake.commands if isinstance(c, tuple) and c[:2] == ("tar", "-x")])
        == uploads
    )
    # Its kept release checked, the blue slot linked to it, started, and made live.
    intact = [c.command for c in later if isinstance(c.command, tuple) and c.command[0] == "grep"]
    assert intact
    assert r1 in intact[0][-1]
    link = next(c.command for c in later if c.step == "slot link")
    assert isinstance(link, Script)
    assert f"../releases/{r1}" in link.text
    assert "start blue" in [c.step for c in later]
    assert stopped(fake)[-1] == "web-green"
    row = store.deployment(outcome.deployment_id or "")
    assert row is not None
    assert (row.kind, row.status) == (DeploymentKind.ROLLBACK, DeploymentStatus.SUCCESS)
    state = store.instance_state("web@h1")
    assert state is not None
    assert state.deployed_revision == r1


def test_a_rolling_rollout_through_slots_stops_on_its_budget(
    project: MakeProject, store: Store
) -> None:
    strategy = {"kind": "rolling", "switch": "blue-green", "batch": 1, "max_failures": 0}
    flat = project({"web": {"hosts": ["h1", "h2", "h3"], "strategy": strategy}})
    fleet = Fleet.of(flat)
    fleet.fail_health("h2", "web")
    report = asyncio.run(
        make_deployer(flat, store, fleet).deploy(list(flat.instances.values()), request="r")
    )
    found = by_instance(report.outcomes)
    assert [(n, found[n].result) for n in ("web@h1", "web@h2", "web@h3")] == [
        ("web@h1", "success"), ("web@h2", "failed"), ("web@h3", "skipped"),
    ]  # fmt: skip
    assert found["web@h3"].reason == "failure budget exceeded: 1 failed > budget 0"
    assert "start blue" in scripts(fleet["h1"])
    assert "nginx switch" in scripts(fleet["h1"])
    assert "nginx switch" not in scripts(fleet["h2"])
    assert fleet["h3"].calls == []
