"""The site event log over the API: a page newest first with its cursor, the filters checked
(an unknown one refused), a caller limited to some sites seeing only theirs, the purge for
admins (audited), and the server's daily retention service."""

from __future__ import annotations

import contextlib
from datetime import timedelta
from pathlib import Path

import pytest

from shipyard.app import accounts, tokens
from shipyard.errors import UsageError
from shipyard.events import Event, Phase
from shipyard.server.retention import Retention
from shipyard.server.settings import load_settings

from .conftest import Api, serve

pytestmark = pytest.mark.integration


def store_events(api: Api, count: int, site: str = "dev", days_ago: float = 0.0) -> list[int]:
    store = api.state.session.store
    at = store.clock() - timedelta(days=days_ago)
    return store.append_events(
        [
            Event(
                Phase.FINISHED,
                at + timedelta(seconds=n),
                instance=f"web@{site}-{n}",
                site=site,
                host=f"{site}-{n}",
                result="failed" if n % 3 == 0 else "success",
                detail=f"health check number {n}",
            )
            for n in range(count)
        ]
    )


def test_the_log_pages_newest_first_by_cursor_with_its_filters(api: Api) -> None:
    stored = store_events(api, 7)
    store_events(api, 2, site="far")
    first = api.client.get("/api/events/log", params={"site": "dev", "limit": 4}).json()
    assert [e["id"] for e in first["events"]] == stored[::-1][:4]
    assert first["events"][0]["severity"] in ("info", "error")
    assert first["events"][0]["source"] == "instance web@dev-6"
    assert first["next_before"] == stored[3]
    rest = api.client.get(
        "/api/events/log", params={"site": "dev", "limit": 4, "before": first["next_before"]}
    ).json()
    assert [e["id"] for e in rest["events"]] == stored[::-1][4:]
    assert rest["next_before"] is None
    errors = api.client.get("/api/events/log", params={"severity": "error", "site": "dev"}).json()
    assert [e["host"] for e in errors["events"]] == ["dev-6", "dev-3", "dev-0"]
    found = api.client.get("/api/events/log", params={"search": 'number 5 "OR -x'}).json()
    assert found["events"] == []
    found = api.client.get("/api/events/log", params={"search": "health numb"}).json()
    assert len(found["events"]) == 9


@pytest.mark.parametrize(
    "params",
    [{"severity": "loud"}, {"before": 0}, {"limit": 0}, {"since": "yesterday"}, {"sight": "dev"}],
)
def test_a_bad_or_unknown_filter_is_refused_naming_it(api: Api, params: dict[str, object]) -> None:
    answer = api.client.get("/api/events/log", params=params)
    assert answer.status_code == 422, answer.text
    assert next(iter(params)) in answer.text


def test_a_caller_limited_to_some_sites_sees_only_their_events(api: Api) -> None:
    store_events(api, 3)
    store_events(api, 3, site="far")
    session = api.state.session.acting_as("admin")
    accounts.add_user(session, "dev-only", roles=["deployment"], sites=["dev"])
    token = tokens.create_token(session, "dev-only", name="t").token
    mine = {"Authorization": f"Bearer {token}"}
    seen = api.anonymous.get("/api/events/log", headers=mine).json()["events"]
    assert {e["site"] for e in seen} == {"dev"}
    searched = api.anonymous.get("/api/events/log", params={"search": "far"}, headers=mine)
    assert searched.json()["events"] == []
    refused = api.anonymous.get("/api/events/log", params={"site": "far"}, headers=mine)
    assert refused.status_code == 403
    assert "far" in refused.json()["error"]["message"]
    everyone = api.client.get("/api/events/log").json()["events"]
    assert {e["site"] for e in everyone} == {"dev", "far"}


def test_an_admin_purges_old_events_and_the_purge_is_audited(api: Api) -> None:
    store_events(api, 4, days_ago=40)
    kept = store_events(api, 2, days_ago=1)
    session = api.state.session.acting_as("admin")
    accounts.add_user(session, "watcher", roles=["viewer"])
    viewer = tokens.create_token(session, "watcher", name="t").token
    refused = api.anonymous.post(
        "/api/events/purge", json={}, headers={"Authorization": f"Bearer {viewer}"}
    )
    assert refused.status_code == 403
    assert api.client.post("/api/events/purge", json={"days": 0}).status_code == 422
    purged = api.client.post("/api/events/purge", json={})
    assert purged.json() == {"deleted": 4, "days": 30}
    left = api.client.get("/api/events/log").json()["events"]
    assert sorted(e["id"] for e in left) == kept
    audit = api.client.get("/api/audit", params={"action": "events.purge"}).json()["entries"]
    assert audit[0]["detail"]["deleted"] == 4


def test_the_server_purges_by_its_retention_setting(served_root: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/state.db"
    with contextlib.contextmanager(serve)(served_root, url, event_retention_days=5) as api:
        retention = api.client.app.state.retention  # type: ignore[attr-defined]
        assert isinstance(retention, Retention)
        store_events(api, 3, days_ago=40)
        store_events(api, 1, days_ago=10)
        kept = store_events(api, 2, days_ago=1)
        assert api.client.portal is not None
        assert api.client.portal.call(retention.purge_once) == 4
        assert retention.purges == 1
        left = api.client.get("/api/events/log").json()["events"]
        assert sorted(e["id"] for e in left) == kept


def test_the_retention_is_a_setting_like_the_others(tmp_path: Path) -> None:
    assert load_settings().event_retention_days == 30
    from_env = load_settings(environ={"SHIPYARD_EVENT_RETENTION_DAYS": "7"})
    assert from_env.event_retention_days == 7
    file = tmp_path / "settings.toml"
    file.write_text("event-retention-days = 90\n")
    assert load_settings(file=file).event_retention_days == 90
    assert load_settings({"event_retention_days": 3}, file=file).event_retention_days == 3
    with pytest.raises(UsageError, match="the environment: event_retention_days"):
        load_settings(environ={"SHIPYARD_EVENT_RETENTION_DAYS": "0"})
