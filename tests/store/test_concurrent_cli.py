"""Many `shipyard` processes at once against one store, as a team and its CI would run them.

50 CLIs deploy one stale instance: exactly one deploys it, every other one finds it in flight
(rejected) or already at the revision (unchanged), never a second success. On SQLite 50 `status`
run beside them: reading never takes the write lock, so none fails with "database is locked".
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter

import pytest

from shipyard.store import default_url, open_store

from .local_project import INSTANCE, LocalProject, local_project

CLIS = 50
LOCKED = "database is locked"

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


def deploy_outcomes(done: list[subprocess.CompletedProcess[str]]) -> Counter[str]:
    """How each deploy ended: its one instance's result."""
    results: Counter[str] = Counter()
    for process in done:
        assert LOCKED not in process.stderr, process.stderr
        report = json.loads(process.stdout)
        (outcome,) = report["outcomes"]
        results[outcome["result"]] += 1
        assert outcome["result"] != "failed", outcome
        if outcome["result"] == "unchanged":
            assert "up to date" in outcome["reason"] or "already at revision" in outcome["reason"]
    return results


def race_deploys(project: LocalProject, also: list[list[str]]) -> tuple[Counter[str], list[str]]:
    first = project.cli("deploy")
    assert first.returncode == 0, first.stdout + first.stderr
    project.change("second")
    done = project.many([["deploy", "--json"]] * CLIS + also)
    results = deploy_outcomes(done[:CLIS])
    return results, [p.stderr for p in done[CLIS:] if p.returncode != 0]


def assert_one_success(results: Counter[str], url: str) -> None:
    assert results["success"] == 1, results
    assert results["success"] + results["unchanged"] + results["rejected"] == CLIS, results
    with open_store(url) as store:
        ok = [d for d in store.deployments(instance=INSTANCE) if d.status.value == "success"]
        assert len(ok) == 2  # the first revision, and the second exactly once
        assert store.verify_audit().whole


def test_fifty_clis_deploy_a_stale_instance_once_on_sqlite() -> None:
    with local_project() as project:
        statuses = [["status", "--json"]] * CLIS
        results, failed_statuses = race_deploys(project, statuses)
        assert failed_statuses == []
        assert_one_success(results, default_url(project.root))


def test_fifty_clis_deploy_a_stale_instance_once_on_postgresql(postgresql_url: str) -> None:
    with local_project(database_url=postgresql_url) as project:
        results, _ = race_deploys(project, [])
        assert_one_success(results, postgresql_url)
