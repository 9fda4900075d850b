"""A rollout on the real fleet as its event stream and step logs tell it, here and in another process.

`shipyard deploy` runs as a subprocess; afterwards the store holds, for its rollout, the events
from ROLLOUT_STARTED through each instance's QUEUED ... FINISHED to ROLLOUT_FINISHED, and the
host output of each step, masked: the install step prints a secret, the store shows `***`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from deploy_project import Project, bootstrapped, free_port, hello_template

from fleet import Fleet
from shipyard.events import Phase
from shipyard.store import default_url, open_store

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
