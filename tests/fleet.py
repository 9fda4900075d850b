"""A test fleet of real OpenSSH servers on loopback addresses: start, describe, stop (stdlib only)."""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

SSHD = Path("/usr/sbin/sshd")
REPO = Path(__file__).resolve().parent.parent
# sshd listens on at most 16 addresses (MAX_LISTEN_SOCKS), so one daemon serves up to 16 hosts.
HOSTS_PER_DAEMON = 16
HOSTS_PER_SUBNET = 250
STATE_FILE = "fleet.json"
SLOT_ENV = "SHIPYARD_FLEET_SLOT"


@dataclass(frozen=True)
class FleetHost:
    """One simulated host: an ssh_config alias, its loopback address and its own root directory."""

    name: str
    address: str
    root: str


@dataclass(frozen=True)
class Daemon:
    """One sshd process and the config it was started with."""

    pid: int
    config: str


@dataclass(frozen=True)
class Fleet:
    """A running fleet, as written to and read from `<dir>/fleet.json`."""

    dir: str
    slot: int
    hosts: list[FleetHost]
    daemons: list[Daemon]
    # The daemons as our children, when this process started them: stopping also reaps them.
    children: list[subprocess.Popen[bytes]] = field(default_factory=list, repr=False)

    @property
    def path(self) -> Path:
        return Path(self.dir)

    @property
    def ssh_config(self) -> Path:
        return self.path / "ssh_config"

    @property
    def identity_file(self) -> Path:
        return self.path / "keys" / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.path / "known_hosts"

    @property
    def project_file(self) -> Path:
        return self.path / "shipyard.yaml"

    def ssh_values(self, **overrides: object) -> dict[str, object]:
        """The `ssh:` settings of a project that reaches this fleet (for SshSettings(**...))."""
        values: dict[str, object] = {
            "config_file": str(self.ssh_config),
            "identity_file": str(self.identity_file),
            "known_hosts": str(self.known_hosts),
            "connect_timeout": 5.0,
        }
        values.update(overrides)
        return values

    def host(self, name: str) -> FleetHost:
        return next(h for h in self.hosts if h.name == name)

    def silent_address(self) -> str:
        """An address of this fleet's range on which nothing listens (for unreachable-host tests)."""
        return f"127.{self.slot}.255.254"

    def host_key(self, name: str) -> str:
        """The public host key line (`type base64`) the host presents."""
        index = [h.name for h in self.hosts].index(name) // HOSTS_PER_DAEMON
        text = (self.path / "sshd" / f"host_{index:03d}_ed25519.pub").read_text()
        return " ".join(text.split()[:2])


def address_of(slot: int, index: int) -> str:
    """The address of the index-th host (0-based) in a slot: 127.<slot>.<1 + i/250>.<1 + i%250>."""
    return f"127.{slot}.{1 + index // HOSTS_PER_SUBNET}.{1 + index % HOSTS_PER_SUBNET}"


def start_fleet(
    count: int, directory: Path, *, slot: int | None = None, tie_to_parent: bool = False
) -> Fleet:
    """Start `count` hosts under `directory`; raise RuntimeError if sshd can't be started.

    With `tie_to_parent` (the pytest fixture), the daemons die with this process, even if it is
    killed before its finalizers run.
    """
    if count < 1:
        raise ValueError("a fleet needs at least one host")
    _ensure_sshd()
    directory = directory.resolve()
    if (directory / STATE_FILE).exists():
        raise RuntimeError(f"a fleet is already described in {directory}; run `fleet down` first")
    for sub in ("keys", "sshd", "hosts"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    # Fleets starting at the same moment (parallel test runs, a benchmark) take turns, so that
    # each one finds its addresses free and binds them before the next one looks.
    with _start_lock():
        fleet = _start(count, directory, slot, tie_to_parent=tie_to_parent)
    state = {
        "dir": fleet.dir,
        "slot": fleet.slot,
        "hosts": [vars(h) for h in fleet.hosts],
        "daemons": [vars(d) for d in fleet.daemons],
    }
    (directory / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")
    return fleet


def _start(count: int, directory: Path, slot: int | None, *, tie_to_parent: bool) -> Fleet:
    chosen = slot if slot is not None else _free_slot(count)
    hosts = [
        FleetHost(
            f"h{i + 1:03d}", address_of(chosen, i), str(directory / "hosts" / f"h{i + 1:03d}")
        )
        for i in range(count)
    ]
    for host in hosts:
        Path(host.root).mkdir(exist_ok=True)
    _keygen(directory / "keys" / "id_ed25519", "shipyard-fleet-user")
    pub = (directory / "keys" / "id_ed25519.pub").read_text()
    _write_private(directory / "keys" / "authorized_keys", pub)
    groups = [hosts[i : i + HOSTS_PER_DAEMON] for i in range(0, count, HOSTS_PER_DAEMON)]
    known: list[str] = []
    configs: list[Path] = []
    for index, group in enumerate(groups):
        key = directory / "sshd" / f"host_{index:03d}_ed25519"
        _keygen(key, f"shipyard-fleet-host-{index}")
        host_pub = " ".join(key.with_suffix(".pub").read_text().split()[:2])
        known.extend(f"{h.name},{h.address} {host_pub}" for h in group)
        configs.append(_write_sshd_config(directory, index, group, key))
    (directory / "known_hosts").write_text("\n".join(known) + "\n")
    (directory / "ssh_config").write_text(_ssh_config(directory, hosts))
    (directory / "shipyard.yaml").write_text(_project_yaml(directory, hosts))
    fleet = Fleet(str(directory), chosen, hosts, [])
    try:
        for config in configs:
            process = _start_daemon(config, tie_to_parent=tie_to_parent)
            fleet.children.append(process)
            fleet.daemons.append(Daemon(process.pid, str(config)))
        _wait_ready(directory, configs, timeout=10.0)
    except BaseException:
        stop_fleet(fleet)
        raise
    return fleet


def load_fleet(directory: Path) -> Fleet:
    data = json.loads((directory / STATE_FILE).read_text())
    return Fleet(
        dir=data["dir"],
        slot=data["slot"],
        hosts=[FleetHost(**h) for h in data["hosts"]],
        daemons=[Daemon(**d) for d in data["daemons"]],
    )


def stop_fleet(fleet: Fleet) -> None:
    """Stop the fleet's sshd daemons by PID (and their connection processes), then forget it."""
    for daemon in fleet.daemons:
        if _is_our_sshd(daemon):
            # The daemon leads its own process group; per-connection children share it.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(daemon.pid, signal.SIGTERM)
    deadline = time.monotonic() + 5.0
    for daemon in fleet.daemons:
        while _is_our_sshd(daemon) and time.monotonic() < deadline:
            _reap(daemon.pid)
            time.sleep(0.02)
        if _is_our_sshd(daemon):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(daemon.pid, signal.SIGKILL)
        _reap(daemon.pid)
    for child in fleet.children:
        child.wait(timeout=5)
    with contextlib.suppress(FileNotFoundError):
        (fleet.path / STATE_FILE).unlink()


def _ensure_sshd() -> None:
    if not SSHD.exists():
        subprocess.run([str(REPO / "scripts" / "system-deps")], check=True)
    # Debian's sshd refuses to start without its privilege separation directory.
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)


@contextlib.contextmanager
def _start_lock() -> Iterator[None]:
    with (Path(tempfile.gettempdir()) / "shipyard-fleet.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _free_slot(count: int) -> int:
    """A second octet whose addresses are all free: $SHIPYARD_FLEET_SLOT, else derived from our pid."""
    wanted = os.environ.get(SLOT_ENV)
    if wanted:
        return int(wanted)
    start = 2 + os.getpid() % 250
    for offset in range(250):
        slot = 2 + (start - 2 + offset) % 250
        if all(_port_free(address_of(slot, i)) for i in range(count)) and _port_free(
            f"127.{slot}.255.254"
        ):
            return slot
    raise RuntimeError("no free 127.x range for a fleet")


def _port_free(address: str) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((address, 22))
        except OSError:
            return False
    return True


def _keygen(path: Path, comment: str) -> None:
    for stale in (path, path.with_suffix(".pub")):
        stale.unlink(missing_ok=True)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
    )


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


def _write_sshd_config(directory: Path, index: int, hosts: list[FleetHost], key: Path) -> Path:
    sshd = directory / "sshd"
    lines = [f"ListenAddress {h.address}:22" for h in hosts]
    lines += [
        f"HostKey {key}",
        f"PidFile {sshd / f'{index:03d}.pid'}",
        f"AuthorizedKeysFile {directory / 'keys' / 'authorized_keys'}",
        "StrictModes no",  # the fleet lives under /tmp, which is world-writable
        "UsePAM no",
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        # Parallel runs open hundreds of connections at once; don't throttle them.
        "MaxStartups 1000:30:1000",
        "MaxSessions 1000",
        "LoginGraceTime 30",
        # bash skips ~/.bashrc (pyenv init: ~150 ms of CPU) when SHLVL says it is nested.
        "SetEnv SHLVL=1",
        "PrintMotd no",
        "PrintLastLog no",
        "UseDNS no",
        "X11Forwarding no",
        "Subsystem sftp internal-sftp",
        "LogLevel ERROR",
    ]
    path = sshd / f"{index:03d}.conf"
    path.write_text("\n".join(lines) + "\n")
    return path


def _ssh_config(directory: Path, hosts: list[FleetHost]) -> str:
    lines = [f"Host {h.name}\n  HostName {h.address}" for h in hosts]
    lines.append(
        "\n".join(
            [
                "Host *",
                "  User root",
                "  Port 22",
                f"  IdentityFile {directory / 'keys' / 'id_ed25519'}",
                "  IdentitiesOnly yes",
                f"  UserKnownHostsFile {directory / 'known_hosts'}",
                "  StrictHostKeyChecking yes",
                "  BatchMode yes",
                "  KexAlgorithms curve25519-sha256",
                "  Ciphers aes128-gcm@openssh.com,chacha20-poly1305@openssh.com",
                "  LogLevel ERROR",
            ]
        )
    )
    return "\n".join(lines) + "\n"


def _project_yaml(directory: Path, hosts: list[FleetHost]) -> str:
    lines = [
        "# Written by scripts/fleet: a site of real sshd hosts on loopback addresses.",
        "name: fleet",
        "ssh:",
        f"  config_file: {json.dumps(str(directory / 'ssh_config'))}",
        f"  identity_file: {json.dumps(str(directory / 'keys' / 'id_ed25519'))}",
        f"  known_hosts: {json.dumps(str(directory / 'known_hosts'))}",
        "  user: root",
        "sites:",
        "  fleet:",
        "    hosts:",
    ]
    for host in hosts:
        supervisor = Path(host.root) / "supervisor" / "supervisord.conf"
        lines += [
            f"      {host.name}:",
            f"        address: {host.name}",
            f"        root: {json.dumps(host.root)}",
            f"        supervisor_config: {json.dumps(str(supervisor))}",
        ]
    return "\n".join(lines) + "\n"


def _start_daemon(config: Path, *, tie_to_parent: bool) -> subprocess.Popen[bytes]:
    log = config.with_suffix(".log")
    config.with_suffix(".pid").unlink(missing_ok=True)
    process = subprocess.Popen(
        [str(SSHD), "-D", "-f", str(config), "-E", str(log)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=_die_with_parent if tie_to_parent else None,  # noqa: PLW1509
    )
    return process


def _die_with_parent() -> None:
    # prctl(PR_SET_PDEATHSIG, SIGTERM): the kernel signals the daemon when we exit.
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)


def _wait_ready(directory: Path, configs: list[Path], *, timeout: float) -> None:
    # sshd writes its PidFile only after it has bound every listening socket.
    deadline = time.monotonic() + timeout
    pending = [c.with_suffix(".pid") for c in configs]
    while pending:
        pending = [p for p in pending if not p.exists()]
        if not pending:
            return
        if time.monotonic() > deadline:
            logs = "\n".join(
                p.with_suffix(".log").read_text() for p in pending if p.with_suffix(".log").exists()
            )
            raise RuntimeError(f"sshd did not start in {directory}:\n{logs}")
        time.sleep(0.01)


def _is_our_sshd(daemon: Daemon) -> bool:
    # sshd rewrites its title ("sshd: /usr/sbin/sshd -D -f CONFIG ... [listener]"), so look for
    # the config path in it rather than compare arguments.
    try:
        cmdline = Path(f"/proc/{daemon.pid}/cmdline").read_bytes()
    except OSError:
        return False
    return f" -f {daemon.config} ".encode() in cmdline.replace(b"\0", b" ")


def _reap(pid: int) -> None:
    # When the daemon is our child (the pytest fixture), collect it so it does not linger as a zombie.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
