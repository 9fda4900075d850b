"""The restart strategy's host steps as a host answers them: an install command, old releases
pruned, a rollback to a release the host no longer keeps."""

from __future__ import annotations

import asyncio

import pytest

from shipyard.deploy import health_rounds
from shipyard.store import DeploymentKind, DeploymentStatus, Store

from .builders import Fleet, by_instance, health_command, service_dir, until
from .conftest import MakeProject, make_deployer, roll_back


def test_an_install_command_runs_in_the_release_before_it_is_marked_complete_and_switched(
    project: MakeProject, store: Store
) -> None:
    flat = project({"api": {"hosts": ["h1"], "install": ["pip", "install", "-r", "req.txt"]}})
    fleet = Fleet.of(flat)
    report = asyncio.run(
        make_deployer(flat, store, fleet).deploy(list(flat.instances.values()), request="r")
    )
    assert report.ok, report.outcomes
    steps = [call.step for call in fleet["h1"].calls if call.parts]
    assert steps == ["prepare", "install", "mark complete", "switch", "restart", "health", "record"]
    revision = flat.instances["api@h1"].revision
    install = next(p for p in fleet["h1"].parts if p.step == "install")
    assert f"cd -- {service_dir('api')}/releases/{revision}" in install.text
    assert "exec pip install -r req.txt" in install.text


def test_a_failed_install_fails_the_instance_before_anything_is_switched(
    project: MakeProject, store: Store
) -> None:
    flat = project({"api": {"hosts": ["h1"], "install": ["pip", "install", "-r", "req.txt"]}})
    fleet = Fleet.of(flat)
    fleet.fail_step("h1", "api", "install", "ERROR: No matching distribution found for flask")
    report = asyncio.run(
        make_deployer(flat, store, fleet).deploy(list(flat.instances.values()), request="r")
    )
    outcome = by_instance(report.outcomes)["api@h1"]
    assert outcome.result == "failed"
    assert "`sh -s <<install>>` exited with status 1" in outcome.reason
    assert "No matching distribution found for flask" in outcome.reason
    assert not fleet.switched("h1", "api")
    assert "mark complete" not in [call.step for call in fleet["h1"].calls]


@pytest.mark.parametrize(
    ("listing", "pruned"),
    [
        # keep_releases 2: the new one and the newest other complete one stay; previous stays.
        ("complete 100 r1\ncomplete 200 r2\ncomplete 300 r3\n", ["r1"]),
        ("complete 100 r1\npartial 250 broken\ncomplete 300 r3\n", ["r1", "broken"]),
        ("complete 300 r3\n", []),
    ],
)
def test_releases_beyond_keep_are_pruned_never_the_live_or_previous_one(
    project: MakeProject, store: Store, listing: str, pruned: list[str]
) -> None:
    flat = project({"api": {"hosts": ["h1"], "strategy": {"keep_releases": 2}}})
    revision = flat.instances["api@h1"].revision
    fleet = Fleet.of(flat)
    fake = fleet["h1"]
    fake.reply_part(
        f"cd -- {service_dir('api')}/releases",
        step="record",
        stdout=f"{listing}complete 400 {revision}\n",
    )
    fake.reply_part(
        "find current previous",
        step="record",
        stdout=f"current releases/{revision}\nprevious releases/r2\n",
    )
    report = asyncio.run(
        make_deployer(flat, store, fleet).deploy(list(flat.instances.values()), request="r")
    )
    assert report.ok, report.outcomes
    prunes = [p.text for p in fake.parts if p.step == "prune"]
    if not pruned:
        assert prunes == []
        return
    assert len(prunes) == 1
    assert f"for name in {' '.join(pruned)}; do" in prunes[0]


def test_a_rollback_to_a_release_the_host_no_longer_keeps_fails_and_uploads_nothing(
    project: MakeProject, store: Store
) -> None:
    v1 = project({"api": {"hosts": ["h1"]}}, release="v1")
    fleet = Fleet.of(v1)
    asyncio.run(make_deployer(v1, store, fleet).deploy(list(v1.instances.values()), request="v1"))
    v2 = project({"api": {"hosts": ["h1"]}}, release="v2")
    asyncio.run(make_deployer(v2, store, fleet).deploy(list(v2.instances.values()), request="v2"))
    old = v1.instances["api@h1"].revision
    fleet["h1"].reply_part(
        f"{service_dir('api')}/releases/{old}", step="check release", exit_status=1
    )
    seen = len(fleet["h1"].calls)
    rolled = asyncio.run(
        roll_back(make_deployer(v2, store, fleet), store, v2.instances["api@h1"], old)
    )
    [outcome] = rolled.outcomes
    assert outcome.result == "failed"
    assert outcome.reason == f"release {old[:12]} is not kept on h1"
    later = fleet["h1"].calls[seen:]
    assert [call.step for call in later if call.parts] == ["check release"]
    assert not any(isinstance(c.command, tuple) and c.command[0] == "tar" for c in later)
    row = store.deployment(outcome.deployment_id or "")
    assert row is not None
    assert (row.kind, row.status) == (DeploymentKind.ROLLBACK, DeploymentStatus.FAILED)
    state = store.instance_state("api@h1")
    assert state is not None
    assert state.deployed_revision == v2.instances["api@h1"].revision


def test_a_health_round_the_host_stops_at_its_time_limit_is_one_failed_attempt(
    project: MakeProject, store: Store
) -> None:
    """A host too busy to answer a round in time (50 deploys on two cores) fails that attempt;
    the next round, answered in time, passes while the check has retries left."""
    check = {"command": ["check-api", "{{ release }}"], "retries": 3, "interval": 0, "timeout": 0.1}
    flat = project({"api": {"hosts": ["h1"], "health": check}})
    fleet = Fleet.of(flat)
    fake = fleet["h1"]
    fake.reply_part(health_command("api"), step="health", delay=30.0)

    async def deploy() -> bool:
        rollout = asyncio.create_task(
            make_deployer(flat, store, fleet).deploy(list(flat.instances.values()), request="r")
        )
        await until(lambda: any(c.step == "health" for c in fake.calls))
        fake.reply_part(health_command("api"), step="health")  # answers at once from now on
        report = await rollout
        return report.ok

    assert asyncio.run(deploy())
    assert [c.step for c in fake.calls].count("health") == 2


def test_health_rounds_the_host_keeps_stopping_fail_the_instance_saying_so(
    project: MakeProject, store: Store
) -> None:
    check = {"command": ["check-api", "{{ release }}"], "retries": 1, "interval": 0, "timeout": 0.1}
    flat = project({"api": {"hosts": ["h1"], "health": check}})
    fleet = Fleet.of(flat)
    fleet["h1"].reply_part(health_command("api"), step="health", delay=30.0)
    report = asyncio.run(
        make_deployer(flat, store, fleet).deploy(list(flat.instances.values()), request="r")
    )
    reason = by_instance(report.outcomes)["api@h1"].reason
    assert "failed 2 time(s)" in reason  # the first attempt and its one retry
    assert "the health round did not finish within 2.1 s and was stopped" in reason


def test_a_health_round_the_host_is_too_busy_to_stop_is_one_failed_attempt_too(
    project: MakeProject, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The host's own stop did not come (a host at load 60); the executor's backstop stops the
    round, and that is one failed attempt, not the end of the instance."""
    monkeypatch.setattr(health_rounds, "BACKSTOP", 0.2)
    check = {"command": ["check-api", "{{ release }}"], "retries": 3, "interval": 0, "timeout": 0.1}
    flat = project({"api": {"hosts": ["h1"], "health": check}})
    fleet = Fleet.of(flat)
    fake = fleet["h1"]
    fake.reply_part(health_command("api"), step="health", gate=asyncio.Event())  # never opens

    async def deploy() -> bool:
        rollout = asyncio.create_task(
            make_deployer(flat, store, fleet).deploy(list(flat.instances.values()), request="r")
        )
        await until(lambda: any(c.step == "health" for c in fake.calls))
        fake.reply_part(health_command("api"), step="health")  # answers at once from now on
        report = await rollout
        return report.ok

    assert asyncio.run(deploy())
    assert [c.step for c in fake.calls].count("health") == 2
