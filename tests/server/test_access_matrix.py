"""The access matrix, generated from the route table (server/policy.py): every route, asked by
every role, by a deployment user scoped to another site, and with no, an expired, a revoked or a
disabled user's token, answers exactly as the table says.

A permitted request is sent so that it changes nothing (an unknown body field, an id that does
not exist, a query value out of bounds): what it must not answer is 401, 403 or a 5xx. A refused
one answers 401 (no valid credentials) or 403 (a permission the caller lacks) before its input is
even read. Targeted routes (acting on instances and hosts) are asked for real by a caller whose
sites leave the project's instances out: refused whole, naming the site.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from shipyard.app import accounts, tokens
from shipyard.app.access import ROLE_PERMISSIONS, Permission, Role
from shipyard.server.policy import ROUTES, TARGETED

from .conftest import Api, serve

pytestmark = pytest.mark.integration

# The unauthenticated surface: sign-in, the health probe and the API's own description.
PUBLIC_ALLOWLIST = {
    ("GET", "/api/docs"),
    ("GET", "/api/docs/oauth2-redirect"),
    ("GET", "/api/health"),
    ("GET", "/api/openapi.json"),
    ("GET", "/login"),
    ("POST", "/login"),
    ("GET", "/static/{name}"),  # the dashboard's style sheet and script (the login form's too)
    ("GET", "/favicon.ico"),  # nothing: asked for by browsers on every page
}
REFUSED_CREDENTIALS = ("none", "expired", "revoked", "disabled user")


@dataclass(frozen=True)
class Callers:
    by_role: dict[str, str]  # role -> token
    scoped_out: str  # a deployment user whose only site is not the project's
    bad: dict[str, str | None]  # refused credentials -> token (None: no header)


@pytest.fixture(scope="module")
def matrix_api(served_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    database = tmp_path_factory.mktemp("matrix") / "state.db"
    with contextlib.contextmanager(serve)(served_root, f"sqlite:///{database}") as api:
        yield api


@pytest.fixture(scope="module")
def callers(matrix_api: Api) -> Callers:
    session = matrix_api.state.session.acting_as("admin")
    store = session.store

    def token_of(name: str, roles: list[str], **made: object) -> str:
        accounts.add_user(session, name, roles=roles)
        return tokens.create_token(session, name, name="matrix", **made).token  # type: ignore[arg-type]

    by_role = {"admin": matrix_api.token}
    for role in ("design", "deployment", "viewer"):
        by_role[role] = token_of(f"a-{role}", [role])
    store.add_user(
        user_id=str(uuid.uuid4()), name="far-away", roles=["deployment"], sites=["other"],
        password_hash=None, actor="admin",
    )  # fmt: skip
    scoped_out = tokens.create_token(session, "far-away", name="matrix").token
    expired = tokens.new_token()
    owner = store.user("a-viewer")
    assert owner is not None
    store.add_token(
        token_id=str(uuid.uuid4()), name="old", prefix=expired[:8],
        token_hash=accounts.digest(expired), user_id=owner.id, actor="admin", read_only=False,
        expires_at=store.clock() - timedelta(seconds=1),
    )  # fmt: skip
    revoked = tokens.create_token(session, "a-viewer", name="gone")
    tokens.revoke(session, revoked.info.id)
    disabled = token_of("a-leaver", ["admin"])
    accounts.change_user(session, "a-leaver", disabled=True)
    bad: dict[str, str | None] = {
        "none": None, "expired": expired, "revoked": revoked.token, "disabled user": disabled,
    }  # fmt: skip
    return Callers(by_role, scoped_out, bad)


def concrete(path: str) -> str:
    """The path with every parameter an id that names nothing."""
    return re.sub(r"\{[^}]+\}", lambda m: "1" if m.group(0) in ("{old}", "{new}") else "nope", path)


def ask(api: Api, method: str, path: str, token: str | None) -> int:
    """Ask `method path` so that, permitted, it changes nothing; the status code."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url, params, body = concrete(path), {}, None
    if path in ("/api/events/stream", "/api/events"):
        params = {"rollout": "x" * 65}  # too long: 422 rather than a stream that never ends
    if method in ("POST", "PATCH") and path not in ("/logout", "/login"):
        body = {"no such field": 1}
    if path == "/api/versions/{old}/diff/{new}":
        url = "/api/versions/999998/diff/999999"
    response = api.anonymous.request(method, url, headers=headers, params=params, json=body)
    return int(response.status_code)


ENTRIES = sorted(ROUTES)


def test_the_unauthenticated_surface_is_exactly_the_allowlist() -> None:
    public = {entry for entry, permission in ROUTES.items() if permission is Permission.PUBLIC}
    assert public == PUBLIC_ALLOWLIST


@pytest.mark.parametrize(("method", "path"), ENTRIES, ids=[f"{m} {p}" for m, p in ENTRIES])
@pytest.mark.parametrize("credentials", REFUSED_CREDENTIALS)
def test_without_valid_credentials_only_the_public_routes_answer(
    matrix_api: Api, callers: Callers, method: str, path: str, credentials: str
) -> None:
    code = ask(matrix_api, method, path, callers.bad[credentials])
    if ROUTES[(method, path)] is Permission.PUBLIC:
        assert code not in (401, 403), code
        assert code < 500, code
    else:
        assert code == 401, code


@pytest.mark.parametrize(("method", "path"), ENTRIES, ids=[f"{m} {p}" for m, p in ENTRIES])
@pytest.mark.parametrize("role", [r.value for r in Role])
def test_each_role_gets_what_its_permissions_allow_and_403_for_the_rest(
    matrix_api: Api, callers: Callers, method: str, path: str, role: str
) -> None:
    needed = ROUTES[(method, path)]
    code = ask(matrix_api, method, path, callers.by_role[role])
    if needed in ROLE_PERMISSIONS[Role(role)] or needed in (Permission.PUBLIC, Permission.SELF):
        assert code not in (401, 403), code
        assert code < 500, code
    else:
        assert code == 403, code


@pytest.mark.parametrize(("method", "path"), ENTRIES, ids=[f"{m} {p}" for m, p in ENTRIES])
def test_a_deployment_user_scoped_to_another_site_reads_but_deploys_nothing_here(
    matrix_api: Api, callers: Callers, method: str, path: str
) -> None:
    code = ask(matrix_api, method, path, callers.scoped_out)
    needed = ROUTES[(method, path)]
    if needed in ROLE_PERMISSIONS[Role.DEPLOYMENT] | {Permission.SELF}:
        assert code not in (401, 403) or (method, path) in TARGETED, code
        assert code < 500, code
    else:
        assert code == 403, code


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/rollouts", {"instances": []}),
        ("/api/rollouts", {"instances": ["web@local"]}),
        ("/api/rollbacks", {"instance": "web@local"}),
        ("/api/bootstrap", {}),
        ("/api/lifecycle/disable", {"instances": ["web@local"]}),
        ("/api/lifecycle/delete", {"instances": ["web@local"]}),
        ("/api/hosts/health/check", {"site": "dev"}),
        ("/api/drift", {"site": "dev"}),
        ("/api/drift/accept", {"instances": ["web@local"]}),
        ("/api/artifacts/deploy", {"site": "dev"}),
        ("/api/artifacts/retry", {"site": "dev"}),
    ],
)
def test_a_targeted_request_reaching_a_site_outside_the_scope_is_refused_whole_naming_it(
    matrix_api: Api, callers: Callers, path: str, body: dict[str, object]
) -> None:
    before = matrix_api.client.get("/api/rollouts").json()
    response = matrix_api.anonymous.post(
        path, json=body, headers={"Authorization": f"Bearer {callers.scoped_out}"}
    )
    assert response.status_code == 403, response.text
    error = response.json()["error"]
    assert "dev" in error["message"]
    assert matrix_api.client.get("/api/rollouts").json() == before  # nothing started


# Privileges: what a caller could try in order to get more than its roles give.


def as_(callers: Callers, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {callers.by_role[role]}"}


def test_a_deployment_user_cannot_give_itself_roles_widen_its_sites_or_make_users(
    matrix_api: Api, callers: Callers
) -> None:
    web, me = matrix_api.anonymous, as_(callers, "deployment")
    for body in ({"roles": ["admin"]}, {"sites": None}, {"sites": ["dev", "other"]}):
        answer = web.patch("/api/users/a-deployment", json=body, headers=me)
        assert answer.status_code == 403, answer.text
    made = web.post("/api/users", json={"name": "sock-puppet", "roles": ["admin"]}, headers=me)
    assert made.status_code == 403
    user = matrix_api.state.session.store.user("a-deployment")
    assert user is not None
    assert user.roles == ("deployment",)
    assert matrix_api.state.session.store.user("sock-puppet") is None


def test_a_user_sees_and_revokes_only_their_own_tokens_and_makes_tokens_only_for_themself(
    matrix_api: Api, callers: Callers
) -> None:
    web, me = matrix_api.anonymous, as_(callers, "deployment")
    mine = web.get("/api/tokens", headers=me).json()["tokens"]
    assert {t["user"] for t in mine} == {"a-deployment"}
    assert "token" not in mine[0]
    assert web.get("/api/tokens", params={"user": "a-viewer"}, headers=me).status_code == 403
    assert web.get("/api/tokens", params={"user": "*"}, headers=me).status_code == 403
    made = web.post("/api/tokens", json={"name": "x", "user": "admin"}, headers=me)
    assert made.status_code == 403
    everyone = matrix_api.client.get("/api/tokens", params={"user": "*"}).json()["tokens"]
    theirs = next(t for t in everyone if t["user"] == "a-viewer" and not t["revoked_at"])
    assert web.delete(f"/api/tokens/{theirs['id']}", headers=me).status_code == 404
    still = matrix_api.client.get("/api/tokens", params={"user": "a-viewer"}).json()["tokens"]
    assert next(t for t in still if t["id"] == theirs["id"])["revoked_at"] is None
    denied = matrix_api.client.get("/api/audit", params={"limit": 500}).json()["entries"]
    assert any(e["action"] == "permission.denied" and e["actor"] == "a-deployment" for e in denied)


def test_a_read_only_token_reads_but_changes_nothing(matrix_api: Api, callers: Callers) -> None:
    session = matrix_api.state.session.acting_as("admin")
    read_only = tokens.create_token(session, "admin", name="dashboard", read_only=True).token
    headers = {"Authorization": f"Bearer {read_only}"}
    web = matrix_api.anonymous
    assert web.get("/api/status", headers=headers).status_code == 200
    assert web.post("/api/rollouts", json={"instances": []}, headers=headers).status_code == 403
    assert web.get("/api/users", headers=headers).status_code == 403


def test_revoking_a_token_refuses_its_very_next_request(matrix_api: Api) -> None:
    session = matrix_api.state.session.acting_as("admin")
    made = tokens.create_token(session, "a-viewer", name="soon gone")
    headers = {"Authorization": f"Bearer {made.token}"}
    assert matrix_api.anonymous.get("/api/status", headers=headers).status_code == 200
    assert matrix_api.client.delete(f"/api/tokens/{made.info.id}").status_code == 200
    assert matrix_api.anonymous.get("/api/status", headers=headers).status_code == 401


def test_no_password_token_or_hash_leaves_by_any_account_route_the_audit_or_the_log(
    matrix_api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    password = "a long password no page may show"
    web = matrix_api.client
    made = web.post("/api/users", json={"name": "gina", "roles": ["viewer"], "password": password})
    assert made.status_code == 201, made.text
    created = web.post("/api/tokens", json={"name": "job", "user": "gina"})
    assert created.status_code == 201
    token = created.json()["token"]  # the one answer that carries it: its creation
    user = matrix_api.state.session.store.user("gina")
    assert user is not None
    found = matrix_api.state.session.store.password_hash("gina")
    assert found is not None
    stored_hash = found[1]
    assert stored_hash
    secrets_ = [password, token, accounts.digest(token), stored_hash, token[8:]]
    failed = matrix_api.anonymous.post(
        "/login", data={"username": "gina", "password": password + "x", "csrf_token": "x"}
    )
    texts = [failed.text, str(failed.headers)]
    for path, params in [
        ("/api/users", {}), ("/api/users/gina", {}), ("/api/tokens", {"user": "*"}),
        ("/api/audit", {"limit": 500}), ("/api/events", {"after": 0, "limit": 1000}),
        ("/api/whoami", {}), ("/metrics", {}),
    ]:  # fmt: skip
        answer = web.get(path, params=params)
        assert answer.status_code == 200, (path, answer.text)
        texts.append(answer.text)
    with_token = matrix_api.anonymous.get(
        "/api/whoami", headers={"Authorization": f"Bearer {token}"}
    )
    texts += [with_token.text, caplog.text]
    for text in texts:
        for secret in secrets_:
            assert secret not in text
