"""Which host keys we trust: known_hosts files, plus keys accepted on first use (--accept-new)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from shipyard.errors import ConnectError


@dataclass(frozen=True)
class Refusal:
    """Why a host key was refused, worded for the person who has to decide what to do."""

    changed: bool
    message: str


class HostKeys:
    """Host keys from known_hosts files, loaded once per run and shared by every connection.

    With `accept_new`, a key for a host that has none yet is trusted and appended to
    `own_file` (Shipyard's own known_hosts). A key that differs from a known one is refused,
    always.
    """

    def __init__(self, files: Sequence[Path], own_file: Path, *, accept_new: bool) -> None:
        self.files = [*files, own_file] if own_file not in files else list(files)
        self.own_file = own_file
        self.accept_new = accept_new
        self._known: asyncssh.SSHKnownHosts | None = None
        self._accepted: dict[tuple[str, int], asyncssh.SSHKey] = {}

    def known(self, host_label: str) -> asyncssh.SSHKnownHosts:
        if self._known is None:
            texts = []
            for path in self.files:
                try:
                    texts.append(path.read_text())
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    raise ConnectError(
                        host_label, f"cannot read known_hosts {path}: {exc}"
                    ) from exc
            try:
                self._known = asyncssh.import_known_hosts("\n".join(texts))
            except ValueError as exc:
                shown = ", ".join(str(p) for p in self.files)
                raise ConnectError(
                    host_label, f"cannot parse known_hosts ({shown}): {exc}"
                ) from exc
        return self._known

    def judge(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> Refusal | None:
        """Decide on a key that the known_hosts files do not list for this host."""
        seen = self._accepted.get((host, port))
        if seen is not None:
            return None if seen == key else self._changed(host, port, key, [seen])
        assert self._known is not None
        trusted = asyncssh.match_known_hosts(self._known, host, addr, None if port == 22 else port)
        if trusted[0] or trusted[1]:
            return self._changed(host, port, key, list(trusted[0]))
        if not self.accept_new:
            return self._unknown(host, port, key)
        self._record(host, port, key)
        return None

    def _record(self, host: str, port: int, key: asyncssh.SSHKey) -> None:
        self.own_file.parent.mkdir(parents=True, exist_ok=True)
        line = f"{_pattern(host, port)} {_openssh(key)}\n"
        # One write on an O_APPEND file: concurrent runs can't interleave within a line.
        fd = os.open(self.own_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)
        self._accepted[(host, port)] = key

    def _unknown(self, host: str, port: int, key: asyncssh.SSHKey) -> Refusal:
        port_flag = "" if port == 22 else f"-p {port} "
        return Refusal(
            changed=False,
            message=(
                f"host key of {_pattern(host, port)} is not known ({_fingerprint(key)}), so the "
                f"host was refused. Check the key, then add it to {self.files[0]} (for example "
                f"`ssh-keyscan {port_flag}{host} >> {self.files[0]}`), or run again with "
                f"--accept-new to trust it on first use (recorded in {self.own_file})"
            ),
        )

    def _changed(
        self, host: str, port: int, key: asyncssh.SSHKey, known: list[asyncssh.SSHKey]
    ) -> Refusal:
        was = ", ".join(_fingerprint(k) for k in known) or "a CA or revoked entry"
        return Refusal(
            changed=True,
            message=(
                f"HOST KEY OF {_pattern(host, port)} HAS CHANGED: known_hosts has {was}, the "
                f"host offered {_fingerprint(key)}. Someone may be intercepting the connection, "
                f"or the host was reinstalled. Shipyard never accepts a changed key: if the "
                f"change is expected, remove the old entry (`ssh-keygen -R "
                f"'{_pattern(host, port)}' -f FILE` for each of "
                f"{', '.join(str(p) for p in self.files)}) and connect again"
            ),
        )


class VerifyingClient(asyncssh.SSHClient):
    """One connection's client: asks HostKeys about untrusted keys and remembers the refusal."""

    def __init__(self, keys: HostKeys) -> None:
        self._keys = keys
        self.refusal: Refusal | None = None

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        self.refusal = self._keys.judge(host, addr, port, key)
        return self.refusal is None


def _pattern(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


def _openssh(key: asyncssh.SSHKey) -> str:
    return " ".join(key.export_public_key("openssh").decode().split()[:2])


def _fingerprint(key: asyncssh.SSHKey) -> str:
    return f"{key.get_algorithm()} {key.get_fingerprint('sha256')}"
