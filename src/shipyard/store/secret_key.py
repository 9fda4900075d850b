"""The store's secret key: it keys the secrets' fingerprints, and never lives in the database.

A fingerprint is an HMAC of a secret's value under this key, so someone holding only the
database (a backup, a read-only role) cannot test guessed values against it. The key comes from
`SHIPYARD_SECRET_KEY` when set (every controller sharing a PostgreSQL store must then use the
same one), else from `<project>/.shipyard/secret.key`, created on first use with 32 random
bytes, mode 600 in a directory created 700. Losing or changing the key changes every
fingerprint: each instance that uses a secret then shows as changed once.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path

from shipyard.errors import StoreError
from shipyard.store.places import STATE_DIRECTORY

SECRET_KEY_VARIABLE = "SHIPYARD_SECRET_KEY"
SECRET_KEY_FILE = "secret.key"
MIN_KEY_LENGTH = 16


def secret_key(project_dir: Path, env: Mapping[str, str]) -> bytes:
    """The key from `env`'s SHIPYARD_SECRET_KEY, else the project's key file (made if missing)."""
    configured = env.get(SECRET_KEY_VARIABLE, "").strip()
    if configured:
        if len(configured) < MIN_KEY_LENGTH:
            raise StoreError(
                f"{SECRET_KEY_VARIABLE} is too short: give at least {MIN_KEY_LENGTH} characters "
                "(for example from `python -c 'import secrets; print(secrets.token_hex(32))'`)"
            )
        return configured.encode()
    path = Path(project_dir).absolute() / STATE_DIRECTORY / SECRET_KEY_FILE
    if not path.exists():
        _create(path)
    return _read(path)


def _create(path: Path) -> None:
    """Write a new key atomically: a private temporary file linked into place, never replaced."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        descriptor = os.open(temporary, flags, 0o600)
        with os.fdopen(descriptor, "w", encoding="ascii") as handle:
            handle.write(secrets.token_hex(32) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):  # another process made it first: keep theirs
            os.link(temporary, path)
    except OSError as exc:
        raise StoreError(f"cannot create the secret key {path}: {exc.strerror}") from exc
    finally:
        temporary.unlink(missing_ok=True)


def _read(path: Path) -> bytes:
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        raise StoreError(f"cannot read the secret key {path}: {exc.strerror}") from exc
    with os.fdopen(descriptor, "rb") as handle:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            raise StoreError(f"the secret key {path} is not a regular file")
        if info.st_mode & 0o077:
            raise StoreError(
                f"the secret key {path} is readable by others "
                f"(mode {stat.S_IMODE(info.st_mode):o}); make it private: chmod 600 {path}"
            )
        key = handle.read(4096).strip()
    if len(key) < MIN_KEY_LENGTH:
        raise StoreError(
            f"the secret key {path} is too short or empty; remove it to make a new one"
        )
    return key
