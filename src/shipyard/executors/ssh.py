"""The SSH executor on asyncssh: one connection per host, opened on first use and reused."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh
import asyncssh.encryption
import asyncssh.kex

from shipyard.config.models import SshSettings
from shipyard.config.topology import DEFAULT_ROOT, project_file
from shipyard.errors import ConnectError, ExecutionError
from shipyard.executors.base import DEFAULT_OUTPUT_LIMIT
from shipyard.executors.command_line import remote_command
from shipyard.executors.hostkeys import HostKeys, VerifyingClient
from shipyard.executors.runner import Channel, Invocation, Runner, Sink, signal_status
from shipyard.executors.sshconfig import SshConfig

# Cheap handshakes first: curve25519 costs far less CPU than the post-quantum hybrids, and
# AES-GCM runs in hardware. asyncssh's other defaults follow, for servers without these.
PREFERRED_KEX = ("curve25519-sha256", "curve25519-sha256@libssh.org")
PREFERRED_CIPHERS = ("aes128-gcm@openssh.com", "chacha20-poly1305@openssh.com")
KEEPALIVE_COUNT_MAX = 3
# sshd's default MaxSessions: more channels at once on one connection would be refused.
MAX_SESSIONS = 10
GLOBAL_KNOWN_HOSTS = Path("/etc/ssh/ssh_known_hosts")


@dataclass(frozen=True)
class SshTarget:
    """Where one host is: what shipyard.yaml says; anything left None comes from ssh_config."""

    address: str
    port: int | None = None
    user: str | None = None
    identity_file: Path | None = None


class SshContext:
    """What all SSH connections of one run share: settings, ssh_config, host keys, client keys."""

    def __init__(
        self, settings: SshSettings, project_dir: Path, *, accept_new: bool | None = None
    ) -> None:
        self.settings = settings
        config = project_file(settings.config_file, project_dir)
        default_config = Path("~/.ssh/config").expanduser()
        if config is None and os.access(default_config, os.R_OK):
            config = default_config
        self.config = SshConfig(config)
        known = project_file(settings.known_hosts, project_dir)
        self.host_keys = HostKeys(
            [known or Path("~/.ssh/known_hosts").expanduser(), GLOBAL_KNOWN_HOSTS],
            project_dir / ".shipyard" / "known_hosts",
            accept_new=settings.accept_new if accept_new is None else accept_new,
        )
        self._keys: dict[Path, list[asyncssh.SSHKey]] = {}
        # Whole lists, made once: asyncssh expands a `^alg` pattern again for every connection.
        self.kex_algs = _first(PREFERRED_KEX, asyncssh.kex.get_default_kex_algs())
        self.encryption_algs = _first(
            PREFERRED_CIPHERS, asyncssh.encryption.get_default_encryption_algs()
        )

    def client_keys(self, path: Path, host_label: str) -> list[asyncssh.SSHKey]:
        """The private key in `path`, read once per run."""
        if path not in self._keys:
            try:
                self._keys[path] = [asyncssh.read_private_key(path)]
            except (OSError, asyncssh.KeyImportError) as exc:
                raise ConnectError(host_label, f"cannot read identity file {path}: {exc}") from exc
        return self._keys[path]

    def close(self) -> None:
        self.config.close()


def _first(preferred: tuple[str, ...], defaults: list[bytes]) -> list[str]:
    rest = [name for name in (alg.decode() for alg in defaults) if name not in preferred]
    return [*preferred, *rest]


class SshExecutor(Runner):
    """Runs commands over one lazily opened, reused asyncssh connection."""

    remote_timeout = True

    def __init__(
        self,
        name: str,
        target: SshTarget,
        context: SshContext,
        *,
        root: str = DEFAULT_ROOT,
        sudo: bool = False,
        sudo_password: str | None = None,
        output_limit: int = DEFAULT_OUTPUT_LIMIT,
    ) -> None:
        super().__init__(name, root, sudo=sudo, output_limit=output_limit)
        self.target = target
        self._context = context
        self._sudo_password = sudo_password
        self._conn: asyncssh.SSHClientConnection | None = None
        self._lock = asyncio.Lock()
        self._sessions = asyncio.Semaphore(MAX_SESSIONS)

    async def _ready(self) -> None:
        if self._conn is not None and not self._conn.is_closed():
            return
        async with self._lock:
            if self._conn is None or self._conn.is_closed():
                self._conn = await self._connect()

    async def _open(
        self, invocation: Invocation, stdout: Sink, stderr: Sink
    ) -> tuple[Channel, bytes]:
        remote = remote_command(invocation, sudo_password=self._sudo_password)
        assert self._conn is not None
        await self._sessions.acquire()
        slot = _Slot(self._sessions)  # given back when the session closes, or fails to open
        try:
            _, session = await self._conn.create_session(
                lambda: _SessionChannel(self.name, stdout, stderr, slot.release),
                remote.line,
                encoding=None,
            )
        except asyncssh.ChannelOpenError as exc:
            slot.release()
            raise ExecutionError(self.name, f"the host refused a session: {exc.reason}") from exc
        except (asyncssh.Error, OSError) as exc:
            slot.release()
            raise ConnectError(self.name, f"connection lost: {_reason(exc)}") from exc
        except BaseException:
            slot.release()
            raise
        assert isinstance(session, _SessionChannel)
        return session, remote.prelude

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
            with contextlib.suppress(Exception):
                await conn.wait_closed()

    async def _connect(self) -> asyncssh.SSHClientConnection:
        settings, target = self._context.settings, self.target
        client = VerifyingClient(self._context.host_keys)
        try:
            config = self._context.config.paths_for(target.address)
        except (OSError, ValueError) as exc:
            shown = self._context.config.path
            raise ConnectError(self.name, f"cannot read ssh_config {shown}: {exc}") from exc
        options: dict[str, Any] = {
            "config": config,
            "known_hosts": self._context.host_keys.known(self.name),
            "client_factory": lambda: client,
            "connect_timeout": settings.connect_timeout,
            "keepalive_interval": settings.keepalive_interval,
            "keepalive_count_max": KEEPALIVE_COUNT_MAX,
            "kex_algs": self._context.kex_algs,
            "encryption_algs": self._context.encryption_algs,
        }
        if target.port is not None:
            options["port"] = target.port
        if target.user is not None:
            options["username"] = target.user
        if target.identity_file is not None:
            options["client_keys"] = self._context.client_keys(target.identity_file, self.name)
        where = target.address if target.port is None else f"{target.address}:{target.port}"
        try:
            return await asyncssh.connect(target.address, **options)
        except asyncssh.HostKeyNotVerifiable as exc:
            reason = client.refusal.message if client.refusal else _reason(exc)
            raise ConnectError(self.name, reason) from exc
        except asyncssh.PermissionDenied as exc:
            # asyncssh's reason names the user it tried: "Permission denied for user U on host H".
            raise ConnectError(
                self.name,
                f"authentication failed: {_reason(exc)}; the host accepted none of our keys. "
                "Check `user` and `identity_file` in shipyard.yaml or in ssh_config, or add "
                "the key to ssh-agent",
            ) from exc
        except TimeoutError as exc:
            raise ConnectError(
                self.name,
                f"no SSH answer from {where} within {settings.connect_timeout:g} s "
                "(connect timeout): is the host up and the address right?",
            ) from exc
        except asyncssh.DisconnectError as exc:
            raise ConnectError(self.name, f"{where} ended the connection: {_reason(exc)}") from exc
        except OSError as exc:
            raise ConnectError(self.name, f"cannot connect to {where}: {_reason(exc)}") from exc
        except (asyncssh.Error, ValueError) as exc:  # e.g. a malformed ssh_config
            raise ConnectError(self.name, f"cannot connect to {where}: {_reason(exc)}") from exc


def _reason(exc: BaseException) -> str:
    if isinstance(exc, asyncssh.Error):
        return exc.reason or type(exc).__name__
    if isinstance(exc, OSError):
        # asyncio words a refused connection "Connect call failed (addr)": the errno says more.
        if exc.errno is not None and exc.errno > 0:
            return os.strerror(exc.errno)
        return exc.strerror or str(exc) or type(exc).__name__
    return str(exc) or type(exc).__name__


class _Slot:
    """One of a connection's sessions; releasing it twice gives it back once."""

    def __init__(self, sessions: asyncio.Semaphore) -> None:
        self._sessions: asyncio.Semaphore | None = sessions

    def release(self) -> None:
        if self._sessions is not None:
            self._sessions.release()
            self._sessions = None


class _SessionChannel(asyncssh.SSHClientSession[bytes]):
    """One SSH session as a Channel: output into sinks, stdin with flow control."""

    def __init__(self, host: str, stdout: Sink, stderr: Sink, on_close: Callable[[], None]) -> None:
        self._host = host
        self._on_close = on_close
        self._stdout = stdout
        self._stderr = stderr
        self._chan: asyncssh.SSHClientChannel[bytes] | None = None
        self._writable = asyncio.Event()
        self._writable.set()
        self._closed: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()
        self._status: int | None = None
        self._signal: str | None = None

    def connection_made(self, chan: asyncssh.SSHClientChannel[bytes]) -> None:
        self._chan = chan

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        (self._stderr if datatype == asyncssh.EXTENDED_DATA_STDERR else self._stdout).write(data)

    def exit_status_received(self, status: int) -> None:
        self._status = status

    def exit_signal_received(self, signal: str, core_dumped: bool, msg: str, lang: str) -> None:
        self._signal = signal

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._closed.done():
            self._closed.set_result(exc)
            self._on_close()
        self._writable.set()

    async def write(self, data: bytes) -> bool:
        if self._chan is None or self._closed.done():
            return False
        try:
            self._chan.write(data)
        except (BrokenPipeError, asyncssh.Error):
            return False  # the command closed its stdin or ended
        await self._writable.wait()
        return not self._closed.done()

    def write_eof(self) -> None:
        if self._chan is not None and not self._closed.done():
            with contextlib.suppress(BrokenPipeError, asyncssh.Error):
                self._chan.write_eof()

    async def wait(self) -> tuple[int, str | None]:
        lost = await asyncio.shield(self._closed)
        if self._signal is not None:
            return signal_status(self._signal), self._signal
        if self._status is not None:
            return self._status, None
        reason = _reason(lost) if lost else "the channel closed without an exit status"
        raise ConnectError(self._host, f"connection lost while the command ran: {reason}")

    def abort(self) -> None:
        if self._chan is not None and not self._closed.done():
            # A last resort (the command runs under `timeout` on the host): sshd refuses signals
            # for root sessions, so hanging up is what remains.
            with contextlib.suppress(Exception):
                self._chan.kill()
            self._chan.close()
