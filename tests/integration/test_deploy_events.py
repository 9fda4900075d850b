"""A rollout on the real fleet as its event stream and step logs tell it, here and in another process.

`shipyard deploy` runs as a subprocess; afterwards the store holds, for its rollout, the events
from ROLLOUT_STARTED through each instance's QUEUED ... FINISHED to ROLLOUT_FINISHED, and the
host output of each step, masked: the install step prints a secret, the store shows `***`.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from deploy_project import (
    Project,
    bootstrapped,
    current_target,
    free_port,
    gated_install,
    hello_template,
)

from fleet import Fleet
from shipyard.config.flatten import flatten_project
from shipyard.config.loader import load_project
from shipyard.deploy.manager import Deployer, RolloutReport
from shipyard.events import Event, EventBus, Phase
from shipyard.executors.factory import ExecutorPool
from shipyard.masking import Masker
from shipyard.store import Controller, Store, default_url, open_store

pytestmark = pytest.mark.integration

TOKEN = "evt-s3ntinel-Hunter2"
ORDER = [
    Phase.QUEUED,
    Phase.UPLOADING,
    Phase.INSTALLING,
    Phase.SWITCHING,
    Phase.RESTARTING,
    Phase.HEALTH_CHECKING,
    Phase.FINISHED,
]
READER = """
import json, sys
from shipyard.store import open_store
seen, after = [], 0
with open_store(sys.argv[1]) as store:
    while page := store.events(after_id=after, limit=7, rollout_id=sys.argv[2]):
        seen += [[e.id, e.phase.value, e.instance] for e in page]
        after = page[-1].id
print(json.dumps(seen))
"""


@pytest.fixture(scope="module")
def hosts(fleet: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    found: Fleet = fleet(2)
    with bootstrapped(Project(tmp_path_factory.mktemp("bootstrap-events"), found)):
        yield found


def test_a_rollouts_events_and_step_logs_are_in_the_store_in_order(
    hosts: Fleet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVENTS_TOKEN", TOKEN)
    project = Project(tmp_path / "project", hosts)
    template = hello_template()
    template["env"]["TOKEN"] = "{{ secrets.token }}"
    template["commands"]["install"] = ["sh", "-c", 'echo "installing with $TOKEN"']
    port = free_port([h.address for h in project.hosts])
    project.write(
        {"evt": {"template": "hello", "sites": ["fleet"], "overrides": {"ports": {"http": port}}}},
        template=template,
    )
    document = (project.dir / "shipyard.yaml").read_text()
    (project.dir / "shipyard.yaml").write_text(
        document + "secrets:\n  token: {env: EVENTS_TOKEN}\n"
    )

    report = project.json("deploy")
    assert report["ok"] is True, report
    rollout = report["rollout"]
    url = default_url(project.dir)
    with open_store(url) as store:
        events = store.events(rollout_id=rollout, limit=1000)
        logs = {
            e.instance: store.step_logs(e.deployment_id)
            for e in events
            if e.phase is Phase.FINISHED and e.deployment_id
        }

    assert events[0].phase is Phase.ROLLOUT_STARTED
    assert events[-1].phase is Phase.ROLLOUT_FINISHED
    assert events[-1].result == "success"
    assert [e.id for e in events] == sorted(e.id for e in events)
    instances = {o["instance"] for o in report["outcomes"]}
    assert len(instances) == 2
    for name in instances:
        theirs = [e for e in events if e.instance == name]
        assert [e.phase for e in theirs] == ORDER, theirs
        assert theirs[-1].result == "success"
        assert all(e.site == "fleet" and e.host == name.split("@")[1] for e in theirs)
        assert theirs[0].deployment_id is None  # queued before it was begun
        assert len({e.deployment_id for e in theirs[1:]}) == 1
        assert all(e.rollout_id == rollout for e in theirs)
    assert all(TOKEN not in e.detail for e in events)

    assert set(logs) == instances
    for steps in logs.values():
        assert [s.seq for s in steps] == list(range(1, len(steps) + 1))
        install = [s for s in steps if s.step == "install"]
        assert len(install) == 1
        assert install[0].exit_status == 0
        assert "installing with ***" in install[0].output
        assert all(TOKEN not in s.output for s in steps)
        assert {"prepare", "switch", "restart", "health check", "record"} <= {s.step for s in steps}

    # Another process paging through the same rollout sees the same ids in the same order.
    read = subprocess.run(
        [sys.executable, "-c", READER, url, rollout],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(read.stdout) == [[e.id, e.phase.value, e.instance] for e in events]


def test_cancel_lets_the_step_in_flight_finish_and_skips_what_did_not_run(
    hosts: Fleet, tmp_path: Path
) -> None:
    gate = tmp_path / "hold-install"
    gate.touch()
    project = Project(tmp_path / "project", hosts)
    template = hello_template()
    template["commands"]["install"] = gated_install(gate)
    port_a, port_b = (free_port([h.address for h in project.hosts]) for _ in range(2))
    project.write(
        {
            "can-a": {"template": "hello", "sites": ["fleet"],
                      "overrides": {"ports": {"http": port_a}}},
            "can-b": {"template": "hello", "sites": ["fleet"], "depends_on": ["can-a"],
                      "overrides": {"ports": {"http": port_b}}},
        },
        template=template,
    )  # fmt: skip
    flat = flatten_project(load_project(project.dir / "shipyard.yaml"), secret_key=b"")
    loaded = flat.loaded

    async def run(store: Store) -> tuple[RolloutReport, list[Event]]:
        seen: list[Event] = []
        async with ExecutorPool(loaded.project.ssh, loaded.root) as pool:
            bus = EventBus(store.append_events)
            deployer = Deployer(
                flat, store, lambda ref: pool.executor(ref.name, ref.host), "tester",
                events=bus, controller=Controller.of_process(), masker=Masker([TOKEN]),
            )  # fmt: skip

            def watch(event: Event) -> None:
                seen.append(event)
                installing = [e for e in seen if e.phase is Phase.INSTALLING]
                if event.phase is Phase.INSTALLING and len(installing) == 2:
                    deployer.cancel(f"operator said stop {TOKEN}")
                    gate.unlink()

            bus.subscribe(watch)
            report = await deployer.deploy(list(flat.instances.values()), request="deploy")
        return report, seen

    with open_store(default_url(project.dir), masker=Masker([TOKEN])) as store:
        try:
            report, seen = asyncio.run(run(store))
        finally:
            gate.unlink(missing_ok=True)
        rows = store.deployments()
        stored = store.events(rollout_id=report.rollout_id, limit=1000)
        rollout = store.rollout(report.rollout_id)

    assert report.cancelled is not None
    assert TOKEN not in report.cancelled
    results = {o.instance: (o.result, o.reason) for o in report.outcomes}
    assert {r for r, _ in results.values()} == {"skipped"}, results
    assert all(why.startswith("cancelled: operator said stop") for _, why in results.values())
    # can-a was begun (its install ran to its end) and is recorded skipped; can-b never began
    assert sorted((d.instance.split("@")[0], d.status.value) for d in rows) == [
        ("can-a", "skipped"),
        ("can-a", "skipped"),
    ]
    assert [e.phase for e in seen][-1] is Phase.ROLLOUT_FINISHED
    assert seen[-1].result == "cancelled"
    assert Phase.ROLLOUT_CANCELLING in [e.phase for e in stored]
    assert Phase.SWITCHING not in [e.phase for e in stored]
    assert [e.id for e in stored] == [e.id for e in seen]
    assert all(TOKEN not in e.detail for e in stored)
    assert rollout is not None
    assert rollout.status.value == "failed"
    assert str(rollout.summary["cancelled"]).startswith("operator said stop")
    for host in project.hosts:
        assert current_target(host, "can-a") is None  # nothing live changed
