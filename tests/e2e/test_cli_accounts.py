"""`shipyard users` and `shipyard tokens` against a project's own store: the first admin, a
scoped deployment user, a token shown once and stored as its hash only, bad input refused."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from cli_runner import cli_env

from conftest import free_port

PROJECT = "name: accounts\nsites: {dev: {hosts: {local: {connection: local}}}}\nservices: {}\n"
PASSWORD = "correct horse battery staple"


def run(root: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shipyard", *args], cwd=root, input=stdin, text=True,
        capture_output=True, env=cli_env(SHIPYARD_ACTOR="owner"), check=False, timeout=120,
    )  # fmt: skip


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "shipyard.yaml").write_text(PROJECT)
    return tmp_path


def stored(root: Path, query: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(root / ".shipyard" / "state.db") as db:
        return list(db.execute(query).fetchall())


def test_users_and_tokens_are_made_listed_disabled_and_revoked_and_only_hashes_are_stored(
    root: Path,
) -> None:
    admin = run(root, "users", "add", "root1", "--admin", "--password-stdin", stdin=PASSWORD)
    assert admin.returncode == 0, admin.stderr
    alice = run(root, "users", "add", "alice", "--role", "deployment", "--site", "dev")
    assert alice.returncode == 0, alice.stderr
    listed = json.loads(run(root, "users", "list", "--json").stdout)["users"]
    assert {u["name"]: (u["roles"], u["sites"]) for u in listed} == {
        "root1": (["admin"], None),
        "alice": (["deployment"], ["dev"]),
    }
    made = run(root, "tokens", "create", "--user", "alice", "--name", "ci", "--json")
    assert made.returncode == 0, made.stderr
    token = json.loads(made.stdout)["token"]
    assert token.startswith("shy_")
    assert len(token) >= 47
    # The store holds the token's sha256 and the password's argon2id hash, never either one.
    [(prefix, token_hash)] = stored(root, "SELECT prefix, hash FROM api_tokens")
    assert token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token.startswith(prefix)
    [(password_hash,)] = stored(root, "SELECT password_hash FROM users WHERE name = 'root1'")
    assert str(password_hash).startswith("$argon2id$")
    database = (root / ".shipyard" / "state.db").read_bytes()
    assert token.encode() not in database
    assert PASSWORD.encode() not in database
    shown = run(root, "tokens", "list", "--json")
    assert token not in shown.stdout
    assert token_hash not in shown.stdout
    [listed_token] = json.loads(shown.stdout)["tokens"]
    assert run(root, "tokens", "revoke", listed_token["id"]).returncode == 0
    [revoked] = json.loads(run(root, "tokens", "list", "--json").stdout)["tokens"]
    assert revoked["revoked_at"] is not None
    assert run(root, "users", "disable", "alice").returncode == 0
    [alice_now] = [
        u for u in json.loads(run(root, "users", "list", "--json").stdout)["users"]
        if u["name"] == "alice"
    ]  # fmt: skip
    assert alice_now["enabled"] is False
    actions = {row[0] for row in stored(root, "SELECT action FROM audit")}
    assert {"user.add", "token.create", "token.revoke", "user.disable"} <= actions


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["users", "add", "Bad!", "--role", "viewer"], "user name 'Bad!'"),
        (["users", "add", "bob", "--role", "wizard"], "unknown role wizard"),
        (["users", "add", "bob", "--role", "deployment", "--site", "mars"], "mars"),
        (["users", "disable", "nobody"], "no user 'nobody'"),
        (["tokens", "create", "--user", "nobody", "--name", "ci"], "no user 'nobody'"),
        (["tokens", "revoke", "no-such-id"], "no token 'no-such-id'"),
    ],
)
def test_bad_input_is_refused_with_exit_2_naming_what_is_wrong(
    root: Path, args: list[str], message: str
) -> None:
    done = run(root, *args)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr.replace("\n", " ")


def test_a_token_lasts_at_most_a_year(root: Path) -> None:
    assert run(root, "users", "add", "ci", "--role", "viewer").returncode == 0
    done = run(root, "tokens", "create", "--user", "ci", "--name", "x", "--days", "366")
    assert done.returncode == 2
    assert "a token lasts 1 to 365 days, not 366" in done.stderr


def test_serve_init_admin_makes_the_first_admin_once_and_no_token_is_printed(root: Path) -> None:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "shipyard", "serve", "--listen", f"127.0.0.1:{port}",
         "--init-admin", "boss"],
        cwd=root, stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=cli_env(SHIPYARD_ACTOR="owner"),
    )  # fmt: skip
    assert server.stdin is not None
    assert server.stderr is not None
    try:
        server.stdin.write(PASSWORD + "\n")
        server.stdin.close()
        said = [server.stderr.readline() for _ in range(2)]
    finally:
        server.terminate()
        server.wait(timeout=30)
        server.stderr.close()
    assert said[0].startswith("boss is the first admin"), said
    assert "serving" in said[1], said
    assert "shy_" not in "".join(said)  # the first admin signs in; no token made for them
    [boss] = json.loads(run(root, "users", "list", "--json").stdout)["users"]
    assert (boss["name"], boss["roles"], boss["has_password"]) == ("boss", ["admin"], True)
    again = run(root, "serve", "--init-admin", "other", stdin=PASSWORD + "\n")
    assert again.returncode == 2
    assert "the store has users already" in again.stderr
