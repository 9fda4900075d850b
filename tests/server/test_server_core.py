"""The server's core: the admin token, the route table, the error shape, rollouts as jobs."""

from __future__ import annotations

from typing import Any

import pytest

from shipyard.server.app import create_app, served_routes
from shipyard.server.policy import ROUTES, unused_entries
from shipyard.server.settings import Settings, load_settings

from .conftest import Api, wait_finished

pytestmark = pytest.mark.integration


def test_every_route_has_exactly_one_entry_in_the_route_table(tmp_path: Any) -> None:
    app = create_app(Settings(project=tmp_path / "shipyard.yaml"))
    declared = [(method, path) for method, path, _ in served_routes(app.routes)]
    assert ("POST", "/api/rollouts") in declared
    assert unused_entries(declared) == []
    assert [route for route in declared if route not in ROUTES] == []


def test_a_request_without_a_usable_token_is_refused_in_the_one_error_shape(api: Api) -> None:
    refused = api.anonymous.get("/api/rollouts")
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == "Bearer"
    assert set(refused.json()["error"]) == {"code", "message", "details"}
    wrong = api.anonymous.get("/api/rollouts", headers={"Authorization": "Bearer shy_nope"})
    assert wrong.status_code == 401
    assert api.anonymous.get("/api/health").status_code == 200
    who = api.client.get("/api/whoami").json()
    assert (who["name"], who["roles"], who["via"]) == ("admin", ["admin"], "token")


def test_the_admin_token_is_made_once_and_only_its_hash_is_stored(api: Api) -> None:
    store = api.state.session.store
    [made] = store.tokens()
    [admin] = store.users()
    assert (made.prefix, made.user_id, admin.roles) == (api.token[:8], admin.id, ("admin",))
    with store.engine.connect() as conn:
        dumped = "\n".join(str(row) for row in conn.exec_driver_sql("SELECT * FROM api_tokens"))
    assert api.token not in dumped


def test_unknown_fields_and_bad_values_are_refused_naming_the_field(api: Api) -> None:
    bad = api.client.post("/api/rollouts", json={"instances": [], "bogus": True})
    assert bad.status_code == 422
    assert bad.json()["error"]["details"]["fields"][0]["field"] == "body.bogus"
    unknown = api.client.post("/api/rollouts", json={"instances": ["nope"]})
    assert unknown.status_code == 400
    assert 'no instance or service "nope"' in unknown.json()["error"]["message"]
    missing = api.client.get("/api/rollouts/no-such-id")
    assert missing.status_code == 404
    assert missing.json()["error"]["details"] == {"kind": "rollout", "id": "no-such-id"}


def test_a_rollout_answers_202_with_its_id_then_runs_as_a_server_job(api: Api) -> None:
    started = api.client.post("/api/rollouts", json={"instances": ["web@local"], "force": True})
    assert started.status_code == 202, started.text
    body = started.json()
    assert started.headers["location"] == body["url"] == f"/api/rollouts/{body['id']}"
    done = wait_finished(api, body["id"])
    assert done["status"] == "success", done
    assert done["actor"] == "admin"
    [deployment] = done["deployments"]
    assert (deployment["instance"], deployment["status"]) == ("web@local", "success")
    listed = api.client.get("/api/rollouts").json()
    assert [r["id"] for r in listed["rollouts"]] == [body["id"]]


def test_cancelling_a_finished_rollout_is_a_conflict(api: Api) -> None:
    started = api.client.post("/api/rollouts", json={"instances": [], "force": True}).json()
    wait_finished(api, started["id"])
    refused = api.client.post(f"/api/rollouts/{started['id']}/cancel", json={})
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "not_active"


def test_settings_come_from_flags_over_the_environment_over_the_file(tmp_path: Any) -> None:
    file = tmp_path / "server.toml"
    file.write_text('listen = "127.0.0.1:9000"\nmax_rollouts = 2\nshutdown_grace = 3\n')
    env = {"SHIPYARD_MAX_ROLLOUTS": "3"}
    made = load_settings({"shutdown_grace": 7.5}, env, file)
    assert (made.port, made.max_rollouts, made.shutdown_grace) == (9000, 3, 7.5)
    from shipyard.errors import UsageError

    with pytest.raises(UsageError, match="the environment: max_rollouts"):
        load_settings({}, {"SHIPYARD_MAX_ROLLOUTS": "many"}, file)
    with pytest.raises(UsageError, match="expected ADDR:PORT"):
        load_settings({"listen": "nowhere"}, {}, None)
