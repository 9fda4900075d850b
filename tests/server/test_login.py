"""Signing in from a browser: the form, the session cookie, CSRF on what changes state, logout,
and a lockout that is kept in the store, so a restarted server still enforces it."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from shipyard.app import accounts

from .conftest import Api, serve

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery staple"


def add_user(api: Api, name: str) -> None:
    session = api.state.session.acting_as("admin")
    accounts.add_user(session, name, roles=["design"], password=PASSWORD)


def sign_in(web: TestClient, name: str, password: str = PASSWORD) -> int:
    return signed_in(web, name, password).status_code


def signed_in(web: TestClient, name: str, password: str = PASSWORD) -> httpx.Response:
    """Fill in and send the login form as a browser does; the answer's status code."""
    form = web.get("/login")
    assert form.status_code == 200
    match = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert match is not None
    answer = web.post(
        "/login",
        data={"username": name, "password": password, "csrf_token": match.group(1)},
        follow_redirects=False,
    )
    return answer


def browser(api: Api) -> TestClient:
    return TestClient(api.client.app, raise_server_exceptions=False)


def test_a_signed_in_browser_reads_and_changes_state_only_with_its_csrf_token(api: Api) -> None:
    add_user(api, "dora")
    web = browser(api)
    answer = signed_in(web, "dora")
    assert answer.status_code == 303
    [session_cookie] = [
        c for c in answer.headers.get_list("set-cookie") if c.startswith("shipyard_session=")
    ]
    assert "HttpOnly" in session_cookie
    assert "samesite=lax" in session_cookie.lower()
    assert web.get("/api/whoami").json()["name"] == "dora"
    csrf = web.cookies.get("shipyard_csrf")
    assert csrf
    same_site = {"Sec-Fetch-Site": "same-origin"}
    refused = web.post("/api/versions/reload", headers=same_site)
    assert refused.status_code == 403, refused.text
    # A form another site posts carries the cookie (Lax does not stop every case) but it is
    # cross-site, and it cannot know the CSRF token: refused either way.
    forged = web.post(
        "/api/versions/reload", headers={"Sec-Fetch-Site": "cross-site", "X-CSRF-Token": csrf}
    )
    assert forged.status_code == 403, forged.text
    allowed = web.post("/api/versions/reload", headers={**same_site, "X-CSRF-Token": csrf})
    assert allowed.status_code in (200, 201), allowed.text
    out = web.post("/logout", headers={**same_site, "X-CSRF-Token": csrf}, follow_redirects=False)
    assert out.status_code == 303
    assert web.get("/api/whoami").status_code == 401


def test_a_cookie_from_a_closed_session_is_refused(api: Api) -> None:
    add_user(api, "eve")
    web = browser(api)
    assert sign_in(web, "eve") == 303
    cookie = web.cookies.get("shipyard_session")
    csrf = web.cookies.get("shipyard_csrf")
    assert cookie
    web.post("/logout", headers={"X-CSRF-Token": csrf or ""}, follow_redirects=False)
    replayed = browser(api)
    replayed.cookies.set("shipyard_session", cookie)
    assert replayed.get("/api/whoami").status_code == 401


def test_a_lockout_survives_a_restart_of_the_server(served_root: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/state.db"
    with contextlib.contextmanager(serve)(served_root, url, login_failures=3) as first:
        add_user(first, "fred")
        web = browser(first)
        # The third failure is the one that locks the account: it answers 429 at once.
        assert [sign_in(web, "fred", "wrong password!") for _ in range(3)] == [401, 401, 429]
        assert sign_in(web, "fred") == 429
    again = contextlib.contextmanager(serve)(served_root, url, first.token, login_failures=3)
    with again as second:
        web = browser(second)
        assert sign_in(web, "fred") == 429  # the right password, still locked out
        entries = second.client.get("/api/audit", params={"limit": 500}).json()["entries"]
        seen = {(e["action"], e["result"]) for e in entries if "fred" in e["target"] + e["actor"]}
        assert {a for a, _ in seen} >= {"login", "login.lockout"}
        assert {r for a, r in seen if a == "login"} >= {"failed", "locked"}, seen
