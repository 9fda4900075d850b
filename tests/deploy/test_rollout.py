"""How a rollout treats its instances: a dry run touches nothing, `force` deploys what is up to
date, an instance in flight elsewhere is rejected, hosts are worked on within the in-flight
limit, services of one host and wave share each host step, systemd hosts, and secrets masked in
every reason the rollout reports or records."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import uuid

from shipyard.masking import MASK
from shipyard.store import DeploymentKind, DeploymentStatus, Store

from .builders import Fleet, by_instance, results, service_dir
from .conftest import MakeProject, make_deployer

API = {"api": {"hosts": ["h1", "h2", "h3"]}}


def test_a_dry_run_plans_without_touching_a_host_or_the_store(
    project: MakeProject, store: Store
) -> None:
    flat = project(API)
    fleet = Fleet.of(flat)
    deployer = make_deployer(flat, store, fleet)
    report = asyncio.run(deployer.deploy(list(flat.instances.values()), request="r", dry_run=True))
    assert results(report.outcomes) == dict.fromkeys(flat.instances, "planned")
    assert fleet.journal == []
    assert store.rollout(report.rollout_id) is None
    assert store.deployments() == []


def test_force_deploys_again_what_is_up_to_date(project: MakeProject, store: Store) -> None:
    flat = project(API)
    fleet = Fleet.of(flat)
    instances = list(flat.instances.values())
    first = asyncio.run(make_deployer(flat, store, fleet).deploy(instances, request="r"))
    dry = asyncio.run(
        make_deployer(flat, store, fleet).deploy(instances, request="r", dry_run=True, force=True)
    )
    assert results(dry.outcomes) == dict.fromkeys(flat.instances, "planned")
    again = asyncio.run(
        make_deployer(flat, store, fleet).deploy(instances, request="r", force=True)
    )
    assert results(again.outcomes) == dict.fromkeys(flat.instances, "success")
    assert {o.deployment_id for o in again.outcomes}.isdisjoint(
        {o.deployment_id for o in first.outcomes}
    )
    assert len(store.deployments()) == 6


def test_an_instance_deployed_by_someone_else_right_now_is_rejected(
    project: MakeProject, store: Store
) -> None:
    flat = project(API)
    fleet = Fleet.of(flat)
    theirs = str(uuid.uuid4())
    store.begin_deployment(
        deployment_id=theirs, instance="api@h2", service="api", host="h2", site="eu",
        revision="0" * 64, actor="bob", owner_host="elsewhere", owner_pid=os.getpid(),
        kind=DeploymentKind.DEPLOY, rollout_id=None, controller_id=None,
    )  # fmt: skip
    report = asyncio.run(
        make_deployer(flat, store, fleet).deploy(list(flat.instances.values()), request="r")
    )
    found = by_instance(report.outcomes)
    assert results(report.outcomes) == {
        "api@h1": "success", "api@h2": "rejected", "api@h3": "success",
    }  # fmt: skip
    assert found["api@h2"].reason.startswith(
        f"api@h2 is already being deployed by deployment {theirs} (actor bob, since "
    )
    assert not fleet["h2"].calls  # its host was never asked


def test_hosts_are_worked_on_within_the_in_flight_limit(project: MakeProject, store: Store) -> None:
    flat = project(API)
    fleet = Fleet.of(flat)
    for fake in fleet.hosts.values():
        fake.reply_part(service_dir("api"), step="switch", delay=0.02)
    report = asyncio.run(
        make_deployer(flat, store, fleet, max_in_flight=1).deploy(
            list(flat.instances.values()), request="r"
        )
    )
    assert report.ok
    spans = []
    for host in ("h1", "h2", "h3"):
        at = [i for i, (name, _) in enumerate(fleet.journal) if name == host]
        spans.append((at[0], at[-1]))
    spans.sort()
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert end < start, f"two hosts were worked on at once: {spans}"


def test_services_of_one_host_and_wave_share_each_host_step(
    project: MakeProject, store: Store
) -> None:
    flat = project({"db": {"hosts": ["h1"]}, "cache": {"hosts": ["h1"]}})
    fleet = Fleet.of(flat)
    report = asyncio.run(
        make_deployer(flat, store, fleet).deploy(list(flat.instances.values()), request="r")
    )
    assert report.ok
    steps = [call for call in fleet["h1"].calls if call.parts]
    prepare = [call for call in steps if call.step == "prepare"]
    assert len(prepare) == 1
    assert sorted(service_dir(s) in p for p in prepare[0].parts for s in ("db", "cache")) == [
        False, False, True, True,
    ]  # fmt: skip
    uploads = [c for c in fleet["h1"].commands if isinstance(c, tuple) and c[:2] == ("tar", "-x")]
    assert len(uploads) == 1  # both releases in one tar stream
    assert [call.step for call in steps] == ["prepare", "switch", "restart", "health", "record"]


def test_a_systemd_host_is_driven_through_systemctl(project: MakeProject, store: Store) -> None:
    flat = project(API, supervisor="systemd")
    fleet = Fleet.of(flat)
    report = asyncio.run(
        make_deployer(flat, store, fleet).deploy(list(flat.instances.values()), request="r")
    )
    assert report.ok, report.outcomes
    parts = fleet["h1"].parts
    restart = [p.text for p in parts if p.step == "restart"]
    assert len(restart) == 1
    assert "systemctl daemon-reload" in restart[0]
    assert "systemctl restart shipyard-api.service" in restart[0]
    assert any("systemctl is-active shipyard-api.service" in p.text for p in parts)
    assert not any("supervisord.conf" in p.text for p in parts)


def test_a_secret_in_a_hosts_answer_is_masked_in_the_report_and_the_store(
    project: MakeProject, store: Store
) -> None:
    secret = "tok-5ecr3t-value-9f"
    flat = project(API, secret=secret)
    fleet = Fleet.of(flat)
    fleet.fail_step("h2", "api", "restart", f"supervisord: cannot read TOKEN={secret}")
    report = asyncio.run(
        make_deployer(flat, store, fleet).deploy(list(flat.instances.values()), request="r")
    )
    failed = by_instance(report.outcomes)["api@h2"]
    assert failed.result == "failed"
    assert f"TOKEN={MASK}" in failed.reason
    assert secret not in failed.reason
    row = store.deployment(failed.deployment_id or "")
    assert row is not None
    assert row.status is DeploymentStatus.FAILED
    assert f"TOKEN={MASK}" in (row.error or "")
    rollout = store.rollout(report.rollout_id)
    assert rollout is not None
    recorded = [
        *(json.dumps(e.detail) for e in store.audit()),
        *(e.detail for e in store.events()),
        *(d.error or "" for d in store.deployments()),
        json.dumps(rollout.summary),
    ]
    assert not [text for text in recorded if secret in text]
    # The host got the real value, in its release's program file, never in an argv.
    assert not any(secret in " ".join(c) for c in fleet["h2"].commands if isinstance(c, tuple))
