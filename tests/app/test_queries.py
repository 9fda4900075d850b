"""Use cases that read: validate, show, plan, status, diff, audit, and the selectors."""

from __future__ import annotations

import asyncio
import json

import pytest

from shipyard.app import project, queries
from shipyard.app.selectors import find_instance, select_hosts, select_instances
from shipyard.app.session import Session
from shipyard.errors import UsageError

INSTANCE = "web@local"


def test_validate_counts_what_the_project_holds(session: Session) -> None:
    summary = project.validate(session)
    assert (summary.sites, summary.hosts, summary.services, summary.instances) == (1, 1, 1, 1)
    assert summary.to_json()["valid"] is True


def test_show_gives_the_flattened_config_and_its_revision(session: Session) -> None:
    shown = project.show(session, INSTANCE)
    assert shown.revision == session.flatten().instances[INSTANCE].revision
    assert shown.config["env"]["MESSAGE"] == "first"
    json.dumps(shown.to_json())  # serialisable as it is


def test_a_plan_of_a_new_project_creates_everything_in_one_wave(session: Session) -> None:
    view = project.plan(session)
    [[step]] = view.plan.waves
    assert (step.name, step.action, step.deployed_revision) == (INSTANCE, "create", None)
    assert view.to_json()["changes"] == 1


def test_status_of_a_never_deployed_instance_needs_attention(session: Session) -> None:
    report = asyncio.run(queries.status(session))
    [row] = report.rows
    assert (row.status, row.stale, row.attention) == ("never deployed", True, True)
    assert report.counts == {"dev": {"never deployed": 1}}
    assert report.stale == {"dev": 1}
    [document] = report.to_json()
    assert document["instance"] == INSTANCE
    assert document["last"] is None
    assert set(document) >= {"slots", "site", "host", "deployed_revision", "revision", "stale"}


def test_diff_of_a_never_deployed_instance_adds_every_member(session: Session) -> None:
    [found] = queries.diff(session)
    assert found.instance == INSTANCE
    assert {e.kind for e in found.entries} == {"added"}


def test_an_empty_audit_log_is_whole_and_has_no_page(session: Session) -> None:
    page = queries.audit(session)
    assert (page.entries, page.more) == ((), False)
    verdict = queries.audit_verify(session)
    assert (verdict.whole, verdict.count) == (True, 0)


def test_selectors_refuse_unknown_names_and_suggest_close_ones(session: Session) -> None:
    flat = session.flatten()
    assert [i.name for i in select_instances(flat, ["web"])] == [INSTANCE]
    with pytest.raises(UsageError, match="did you mean web"):
        select_instances(flat, ["wep"])
    with pytest.raises(UsageError, match="did you mean dev"):
        select_instances(flat, site="deb")
    with pytest.raises(UsageError, match=f"did you mean {INSTANCE}"):
        find_instance(flat, "web@locale")
    project_model = flat.loaded.project
    assert list(select_hosts(project_model, sites=["dev"])) == ["local"]
    with pytest.raises(UsageError, match="no host matches"):
        select_hosts(project_model, labels=["gpu"])
