"""Secret fingerprints are keyed: without the store's key, a guessed value cannot be checked.

The key lives outside the database: SHIPYARD_SECRET_KEY, else `.shipyard/secret.key`, private.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
import threading
from pathlib import Path

import pytest

from shipyard.app.session import Session
from shipyard.config.render import fingerprint
from shipyard.errors import StoreError
from shipyard.store.secret_key import SECRET_KEY_VARIABLE, secret_key

PROJECT = """\
secrets:
  token: {env: FINGERPRINT_TEST_TOKEN}
sites:
  a:
    hosts:
      h1: {}
templates:
  t:
    commands: {start: [run]}
    env: {TOKEN: "{{ secrets.token }}"}
services:
  api: {template: t, sites: [a]}
"""


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_key_file_is_made_once_private_and_reused(tmp_path: Path) -> None:
    first = secret_key(tmp_path, {})
    path = tmp_path / ".shipyard" / "secret.key"
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    assert len(first) >= 32
    assert secret_key(tmp_path, {}) == first
    assert secret_key(tmp_path / "other", {}) != first  # each store its own random key


def test_concurrent_first_uses_agree_on_one_key(tmp_path: Path) -> None:
    keys: list[bytes] = []
    threads = [
        threading.Thread(target=lambda: keys.append(secret_key(tmp_path, {}))) for _ in range(16)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(keys) == 16
    assert len(set(keys)) == 1
    assert sorted(p.name for p in (tmp_path / ".shipyard").iterdir()) == ["secret.key"]


def test_the_environment_wins_and_a_short_key_is_refused(tmp_path: Path) -> None:
    assert secret_key(tmp_path, {SECRET_KEY_VARIABLE: "k" * 40}) == b"k" * 40
    assert not (tmp_path / ".shipyard").exists()
    with pytest.raises(StoreError, match="too short"):
        secret_key(tmp_path, {SECRET_KEY_VARIABLE: "short"})


def test_a_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    secret_key(tmp_path, {})
    path = tmp_path / ".shipyard" / "secret.key"
    path.chmod(0o644)
    with pytest.raises(StoreError, match="readable by others"):
        secret_key(tmp_path, {})


def test_a_fingerprint_is_an_hmac_under_the_key_not_a_plain_hash() -> None:
    name, value = "token", "hunter2"
    unkeyed = hashlib.sha256(f"shipyard-secret\0{name}\0{value}".encode()).hexdigest()
    one = fingerprint(name, value, b"a" * 32)
    assert one == hmac.new(b"a" * 32, b"token\0hunter2", hashlib.sha256).hexdigest()[:32]
    assert not unkeyed.startswith(one[:16])
    assert fingerprint(name, value, b"b" * 32) != one
    assert fingerprint(name, "hunter3", b"a" * 32) != one
    with pytest.raises(ValueError, match="non-empty key"):
        fingerprint(name, value, b"")


def test_the_cli_fingerprints_with_the_projects_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(SECRET_KEY_VARIABLE, raising=False)
    monkeypatch.setenv("FINGERPRINT_TEST_TOKEN", "hunter2")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "shipyard.yaml").write_text(PROJECT)
    flat = Session.from_environment(tmp_path / "shipyard.yaml").flatten()
    key = (tmp_path / ".shipyard" / "secret.key").read_bytes().strip()
    stored = flat.instances["api@h1"].secrets["token"]
    assert stored == fingerprint("token", "hunter2", key)
    # Someone with only what the store keeps cannot confirm a guess without the key.
    guesses = ["hunter1", "hunter2", "password"]
    unkeyed = {
        hashlib.sha256(f"shipyard-secret\0token\0{g}".encode()).hexdigest()[:16] for g in guesses
    }
    assert stored not in unkeyed
    assert hashlib.sha256(b"hunter2").hexdigest()[:32] != stored
    assert os.environ.get(SECRET_KEY_VARIABLE) is None


def test_a_project_without_secrets_needs_no_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(SECRET_KEY_VARIABLE, raising=False)
    monkeypatch.chdir(tmp_path)
    without = PROJECT.split("sites:", 1)[1].replace("{{ secrets.token }}", "plain")
    (tmp_path / "shipyard.yaml").write_text("sites:" + without)
    flat = Session.from_environment(tmp_path / "shipyard.yaml").flatten()
    assert flat.instances["api@h1"].secrets == {}
    assert not (tmp_path / ".shipyard").exists()
