"""The reading routes: project, validate, plan, show, diff, status (filters, pages), one
deployment and its log, audit (filters, pages, verify), events, bootstrap; and their errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from shipyard.app.session import Session

from .conftest import Api, serve
from .test_server_core import wait_finished

pytestmark = pytest.mark.integration


def deployed(api: Api) -> dict[str, Any]:
    """web@local deployed once through the API: the finished rollout."""
    started = api.client.post("/api/rollouts", json={"instances": ["web@local"], "force": True})
    assert started.status_code == 202, started.text
    done = wait_finished(api, started.json()["id"])
    assert done["status"] == "success", done
    return done


def write_fleet(root: Path, *, sites: int, hosts: int, services: int) -> Path:
    """A project of sites x hosts x services instances, never deployed (no host is touched)."""
    root.mkdir(parents=True)
    project = {
        "name": "fleet",
        "templates": {"app": {"commands": {"start": ["sleep", "1000"]}}},
        "sites": {
            f"s{s}": {"hosts": {f"h{s}-{h}": {"connection": "local"} for h in range(hosts)}}
            for s in range(sites)
        },
        "services": {
            f"svc{n}": {"template": "app", "sites": [f"s{s}" for s in range(sites)]}
            for n in range(services)
        },
    }
    (root / "shipyard.yaml").write_text(yaml.safe_dump(project))
    return root / "shipyard.yaml"


@pytest.fixture
def fleet_api(tmp_path: Path) -> Iterator[Api]:
    """The server over a 2 x 5 x 3 = 30-instance project on SQLite."""
    write_fleet(tmp_path / "fleet", sites=2, hosts=5, services=3)
    yield from serve(tmp_path / "fleet", f"sqlite:///{tmp_path}/fleet.db")


def walk(api: Api, limit: int, **filters: object) -> list[str]:
    """Every page of /api/status, following next_after; the instances in the order seen."""
    seen: list[str] = []
    after: str | None = None
    while True:
        params: dict[str, object] = {"limit": limit, **filters}
        if after is not None:
            params["after"] = after
        page = api.client.get("/api/status", params=params)
        assert page.status_code == 200, page.text
        body = page.json()
        seen.extend(row["instance"] for row in body["rows"])
        after = body["next_after"]
        if after is None:
            return seen


def test_the_project_outline_names_sites_hosts_services_and_instances(api: Api) -> None:
    found = api.client.get("/api/project")
    assert found.status_code == 200, found.text
    assert found.json() == {
        "name": "concurrency",
        "sites": [{"name": "dev", "hosts": ["local"]}],
        "services": ["web"],
        "instances": 1,
        "version": api.state.version,
    }


def test_validate_counts_the_project(api: Api) -> None:
    found = api.client.get("/api/validate").json()
    assert found == {
        "sites": 1, "hosts": 1, "templates": 1, "services": 1, "instances": 1, "valid": True,
    }  # fmt: skip


def test_plan_by_get_and_by_post_agree_and_force_plans_an_update(api: Api) -> None:
    by_get = api.client.get("/api/plan", params={"instances": ["web"]}).json()
    by_post = api.client.post("/api/plan", json={"instances": ["web"]}).json()
    assert by_get == by_post
    [[step]] = by_get["waves"]
    assert (step["instance"], step["action"], by_get["changes"]) == ("web@local", "create", 1)
    deployed(api)
    current = api.client.post("/api/plan", json={}).json()
    assert current["waves"][0][0]["action"] == "none"
    forced = api.client.post("/api/plan", json={"force": True}).json()
    assert (forced["waves"][0][0]["action"], forced["changes"]) == ("update", 1)


def test_plan_refuses_unknown_fields_and_unknown_sites(api: Api) -> None:
    extra = api.client.post("/api/plan", json={"bogus": 1})
    assert extra.status_code == 422
    assert extra.json()["error"]["details"]["fields"][0]["field"] == "body.bogus"
    site = api.client.get("/api/plan", params={"site": "mars"})
    assert site.status_code == 400
    assert 'unknown site "mars"' in site.json()["error"]["message"]


def test_show_gives_the_flattened_config_and_an_unknown_instance_is_400_naming_it(
    api: Api,
) -> None:
    found = api.client.get("/api/instances/web@local").json()
    assert found["instance"] == "web@local"
    assert found["config"]["env"] == {"MESSAGE": "first"}
    unknown = api.client.get("/api/instances/nope@local")
    assert unknown.status_code == 400
    assert 'no instance "nope@local"' in unknown.json()["error"]["message"]
    diff = api.client.get("/api/instances/nope@local/diff")
    assert diff.status_code == 400
    assert "nope@local" in diff.json()["error"]["message"]


def test_diff_shows_what_a_deploy_would_change_then_nothing(api: Api) -> None:
    before = api.client.get("/api/instances/web@local/diff").json()
    assert before["instance"] == "web@local"
    assert before["entries"]
    assert all(e["kind"] == "added" for e in before["entries"])
    assert all("old" not in e for e in before["entries"])
    deployed(api)
    after = api.client.get("/api/diff").json()
    assert after == {"diffs": [{"instance": "web@local", "entries": []}]}
    by_site = api.client.get("/api/diff", params={"site": "dev", "instances": ["web"]}).json()
    assert by_site == after


def test_a_config_error_is_422_invalid_config_with_file_line_and_field(
    api: Api, tmp_path: Path
) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "shipyard.yaml").write_text(
        "name: bad\nsites:\n  dev:\n    hosts:\n      local: {connection: local}\n"
        "services:\n  web:\n    sites: [dev]\n    template: missing\n"
    )
    api.state.session = Session.from_environment(bad / "shipyard.yaml", api.env)
    for path in ("/api/validate", "/api/status", "/api/plan", "/api/project"):
        refused = api.client.get(path)
        assert refused.status_code == 422, (path, refused.text)
        error = refused.json()["error"]
        assert error["code"] == "invalid_config"
        [problem] = error["details"]["problems"]
        assert problem["file"].endswith("shipyard.yaml")
        assert problem["line"] == 9
        assert problem["field"] == "services.web.template"


@pytest.mark.parametrize("engine", ["api", "pg_api"])
def test_status_shows_each_instance_and_filters_it(engine: str, request: Any) -> None:
    api: Api = request.getfixturevalue(engine)
    first = api.client.get("/api/status").json()
    assert first["total"] == 1
    assert first["next_after"] is None
    [row] = first["rows"]
    assert (row["instance"], row["status"], row["stale"]) == ("web@local", "never deployed", True)
    assert row["slots"] is None
    done = deployed(api)
    [row] = api.client.get("/api/status").json()["rows"]  # the kept view moved with the events
    assert (row["status"], row["stale"]) == ("success", False)
    assert row["last"]["id"] == done["deployments"][0]["id"]
    assert api.client.get("/api/status", params={"stale": True}).json()["rows"] == []
    assert api.client.get("/api/status", params={"status": "failed"}).json()["total"] == 0
    kept = api.client.get("/api/status", params={"site": "dev", "service": "web"}).json()
    assert kept["total"] == 1
    with_slots = api.client.get("/api/status", params={"slots": True}).json()
    assert with_slots["rows"][0]["instance"] == "web@local"


def test_status_refuses_bad_filters(api: Api) -> None:
    assert api.client.get("/api/status", params={"status": "sleeping"}).status_code == 422
    assert api.client.get("/api/status", params={"limit": 0}).status_code == 422
    assert api.client.get("/api/status", params={"limit": 10_001}).status_code == 422
    assert api.client.get("/api/status", params={"stale": "maybe"}).status_code == 422
    site = api.client.get("/api/status", params={"site": "mars"})
    assert site.status_code == 400
    assert 'unknown site "mars"' in site.json()["error"]["message"]
    service = api.client.get("/api/status", params={"service": "db"})
    assert service.status_code == 400
    assert '"db"' in service.json()["error"]["message"]
    after = api.client.get("/api/status", params={"after": "gone@nowhere"})
    assert after.status_code == 400
    assert "gone@nowhere" in after.json()["error"]["message"]


def test_status_pages_walk_every_row_exactly_once(fleet_api: Api) -> None:
    whole = fleet_api.client.get("/api/status", params={"limit": 10_000}).json()
    names = [row["instance"] for row in whole["rows"]]
    assert len(names) == len(set(names)) == whole["total"] == 30
    for limit in (1, 7, 30):
        assert walk(fleet_api, limit) == names
    site = [row["instance"] for row in whole["rows"] if row["site"] == "s1"]
    assert walk(fleet_api, 4, site="s1") == site
    service = [n for n in names if n.startswith("svc2@")]
    assert walk(fleet_api, 3, service="svc2", stale=True) == service


def test_status_pages_walk_every_row_exactly_once_on_postgresql(
    tmp_path: Path, postgresql_url: str
) -> None:
    write_fleet(tmp_path / "fleet", sites=3, hosts=4, services=2)
    for api in serve(tmp_path / "fleet", postgresql_url):
        whole = api.client.get("/api/status", params={"limit": 10_000}).json()
        names = [row["instance"] for row in whole["rows"]]
        assert len(set(names)) == whole["total"] == 24
        assert walk(api, 5) == names


def test_one_deployment_and_its_log_and_an_unknown_one_is_404(api: Api) -> None:
    done = deployed(api)
    [made] = done["deployments"]
    found = api.client.get(f"/api/deployments/{made['id']}").json()
    assert found == made
    log = api.client.get(f"/api/deployments/{made['id']}/log").json()
    assert (log["deployment"], log["instance"], log["status"]) == (
        made["id"], "web@local", "success",
    )  # fmt: skip
    assert log["steps"]
    assert all(isinstance(s["output"], str) for s in log["steps"])
    for path in ("/api/deployments/no-such", "/api/deployments/no-such/log"):
        missing = api.client.get(path)
        assert missing.status_code == 404
        assert missing.json()["error"]["details"] == {"kind": "deployment", "id": "no-such"}


@pytest.mark.parametrize("engine", ["api", "pg_api"])
def test_audit_filters_pages_and_verifies(engine: str, request: Any) -> None:
    api: Api = request.getfixturevalue(engine)
    deployed(api)
    deployed(api)
    every = api.client.get("/api/audit", params={"limit": 10_000}).json()
    ids = [e["id"] for e in every["entries"]]
    assert ids == sorted(ids, reverse=True)
    assert len(ids) >= 2
    assert every["next_before"] is None
    seen: list[int] = []
    before: int | None = None
    while True:
        params: dict[str, object] = {"limit": 1}
        if before is not None:
            params["before"] = before
        page = api.client.get("/api/audit", params=params).json()
        seen.extend(e["id"] for e in page["entries"])
        before = page["next_before"]
        if before is None:
            break
    assert seen == ids
    actor = every["entries"][0]["actor"]
    action = every["entries"][0]["action"]
    by_actor = api.client.get("/api/audit", params={"actor": actor, "action": action}).json()
    assert by_actor["entries"]
    assert all((e["actor"], e["action"]) == (actor, action) for e in by_actor["entries"])
    target = api.client.get("/api/audit", params={"target": "web@local"}).json()
    assert all(e["target"] == "web@local" for e in target["entries"])
    assert api.client.get("/api/audit", params={"actor": "nobody"}).json()["entries"] == []
    oldest = every["entries"][-1]["at"]
    until = api.client.get("/api/audit", params={"until": oldest}).json()
    assert until["entries"]
    assert all(e["at"] <= oldest for e in until["entries"])
    since = api.client.get("/api/audit", params={"since": "2999-01-01T00:00:00"}).json()
    assert since["entries"] == []
    verdict = api.client.get("/api/audit/verify").json()
    assert verdict["whole"] is True
    assert verdict["broken"] is None
    assert verdict["count"] >= len(ids)


def test_audit_refuses_bad_filters(api: Api) -> None:
    assert api.client.get("/api/audit", params={"since": "yesterday"}).status_code == 422
    assert api.client.get("/api/audit", params={"limit": 0}).status_code == 422
    assert api.client.get("/api/audit", params={"before": -3}).status_code == 422


def test_events_page_after_an_id_and_filter(api: Api) -> None:
    done = deployed(api)
    every = api.client.get("/api/events").json()
    ids = [e["id"] for e in every["events"]]
    assert ids == sorted(ids)
    assert every["last_id"] == ids[-1]
    first = api.client.get("/api/events", params={"limit": 2}).json()
    rest = api.client.get("/api/events", params={"after": first["last_id"]}).json()
    assert [e["id"] for e in first["events"] + rest["events"]] == ids
    rollout = api.client.get("/api/events", params={"rollout": done["id"]}).json()
    assert rollout["events"]
    assert all(e["rollout_id"] == done["id"] for e in rollout["events"])
    instance = api.client.get("/api/events", params={"instance": "web@local"}).json()
    assert instance["events"]
    assert all(e["instance"] == "web@local" for e in instance["events"])
    site = api.client.get("/api/events", params={"site": "dev"}).json()
    assert all(e["site"] == "dev" for e in site["events"])
    nothing = api.client.get("/api/events", params={"after": ids[-1]}).json()
    assert nothing == {"events": [], "last_id": ids[-1]}
    assert api.client.get("/api/events", params={"after": -1}).status_code == 422


def test_bootstrap_reports_each_host_and_refuses_an_unknown_site(api: Api) -> None:
    done = api.client.post("/api/bootstrap", json={"site": "dev"})
    assert done.status_code == 200, done.text
    body = done.json()
    assert body["ok"] is True
    assert [h["host"] for h in body["hosts"]] == ["local"]
    unknown = api.client.post("/api/bootstrap", json={"site": "mars"})
    assert unknown.status_code == 400
    assert "mars" in unknown.json()["error"]["message"]
    extra = api.client.post("/api/bootstrap", json={"sites": ["dev"]})
    assert extra.status_code == 422


def test_secrets_never_leave_in_show_diff_status_or_plan(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from shipyard.server.app import create_app
    from shipyard.server.settings import Settings

    root = tmp_path / "secret"
    root.mkdir()
    (root / "shipyard.yaml").write_text(
        "name: secret\nsecrets: {token: {env: TOKEN}}\n"
        "templates: {app: {commands: {start: [sleep, '1000']}}}\n"
        "sites: {dev: {hosts: {local: {connection: local}}}}\n"
        "services:\n  api:\n    template: app\n    sites: [dev]\n"
        "    overrides: {env: {TOKEN: 'Bearer {{ secrets.token }}'}}\n"
    )
    env = {
        "SHIPYARD_DATABASE_URL": f"sqlite:///{tmp_path}/secret.db",
        "SHIPYARD_ACTOR": "server",
        "TOKEN": "s3cr3t-value",
    }
    app = create_app(Settings(project=root / "shipyard.yaml", no_auth=True), environ=env)
    with TestClient(app, raise_server_exceptions=False) as client:
        shown = client.get("/api/instances/api@local")
        assert shown.status_code == 200, shown.text
        assert shown.json()["config"]["env"]["TOKEN"] == "Bearer ***"
        for path in ("/api/instances/api@local", "/api/diff", "/api/status", "/api/plan"):
            answer = client.get(path)
            assert answer.status_code == 200, (path, answer.text)
            assert "s3cr3t-value" not in answer.text
