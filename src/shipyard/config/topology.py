"""Where things run: hosts across sites, how each is reached, placement, and instance names.

One resolution of a host serves every layer: `HostRef` (a host under its site), `is_local`,
`host_address`, `host_root` and `resolve_host` (everything an executor needs to reach it) are the
only places these facts are computed; topology, the executor factory and the front ends use them.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from shipyard.config.models import Host, Project, SecretSource, Service, SshSettings
from shipyard.errors import UsageError

LOCAL = "local"
DEFAULT_ROOT = "/srv/shipyard"


def is_local(name: str, host: Host) -> bool:
    """`connection: local`, or a host named `local` that does not say otherwise."""
    if host.connection is not None:
        return host.connection == LOCAL
    return name == LOCAL


def host_address(name: str, host: Host) -> str:
    """Its `address:` (or ssh_config alias), else its name; `localhost` for a local host."""
    return host.address or ("localhost" if is_local(name, host) else name)


def host_root(name: str, host: Host, project_dir: Path) -> str:
    """The deploy root on the host; a local host's (default or relative) lives in the project."""
    local = is_local(name, host)
    if host.root:
        if local and not host.root.startswith("/"):
            return str(project_dir / host.root)
        return host.root
    if local:
        return str(project_dir / ".shipyard" / "hosts" / name)
    return DEFAULT_ROOT


def project_path(value: str, project_dir: Path) -> Path:
    """A path from shipyard.yaml: `~` expanded, a relative one taken from the project directory."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else project_dir / path


def project_file(value: str | None, project_dir: Path) -> Path | None:
    """`project_path` of a file setting, or None when it is unset (the user's default then)."""
    return project_path(value, project_dir) if value else None


@dataclass(frozen=True)
class HostAccess:
    """How Shipyard reaches one host and where it works there, resolved from shipyard.yaml.

    For an SSH host, port, user and identity file left None come from ssh_config; `ssh_config`
    and `known_hosts` are the project's files (None: the user's defaults). `sudo_password` says
    where the password is read from, never the value.
    """

    name: str
    local: bool
    address: str
    root: str
    sudo: bool = False
    port: int | None = None
    user: str | None = None
    identity_file: Path | None = None
    ssh_config: Path | None = None
    known_hosts: Path | None = None
    sudo_password: SecretSource | None = None

    @property
    def shown_address(self) -> str:
        """What a table or JSON shows as its address: `local` for this machine."""
        return LOCAL if self.local else self.address


def resolve_host(name: str, host: Host, ssh: SshSettings, project_dir: Path) -> HostAccess:
    """Everything needed to reach host `name`: its own settings over the project's `ssh:`."""
    local = is_local(name, host)
    identity = host.identity_file or ssh.identity_file
    return HostAccess(
        name=name,
        local=local,
        address=host_address(name, host),
        root=host_root(name, host, project_dir),
        sudo=host.sudo,
        port=None if local else host.port or ssh.port,
        user=None if local else host.user or ssh.user,
        identity_file=None if local else project_file(identity, project_dir),
        ssh_config=project_file(ssh.config_file, project_dir),
        known_hosts=project_file(ssh.known_hosts, project_dir),
        sudo_password=ssh.sudo_password,
    )


@dataclass(frozen=True)
class HostRef:
    """A host with the name and site it was declared under."""

    name: str
    site: str
    host: Host

    @property
    def is_local(self) -> bool:
        return is_local(self.name, self.host)

    @property
    def address(self) -> str:
        return host_address(self.name, self.host)

    def root(self, project_dir: Path) -> str:
        """The deploy root on the host; a local host's default lives in the project directory."""
        return host_root(self.name, self.host, project_dir)

    def access(self, ssh: SshSettings, project_dir: Path) -> HostAccess:
        return resolve_host(self.name, self.host, ssh, project_dir)


def instance_name(service: str, host: str) -> str:
    return f"{service}@{host}"


def split_instance(name: str) -> tuple[str, str]:
    service, _, host = name.partition("@")
    return service, host


def all_hosts(project: Project) -> dict[str, HostRef]:
    """Every host by name (the first declaration wins; the checks report duplicates)."""
    out: dict[str, HostRef] = {}
    for site_name, site in project.sites.items():
        for host_name, host in site.hosts.items():
            out.setdefault(host_name, HostRef(host_name, site_name, host))
    return out


def place(service: Service, hosts: dict[str, HostRef]) -> list[HostRef]:
    """The hosts a service runs on: the union of its sites, hosts and labels, in host order."""
    sites = set(service.sites)
    names = set(service.hosts)
    labels = set(service.labels)
    return [
        ref
        for ref in hosts.values()
        if ref.site in sites or ref.name in names or labels.intersection(ref.host.labels)
    ]


def select_hosts(
    project: Project,
    *,
    sites: Sequence[str] = (),
    hosts: Sequence[str] = (),
    labels: Sequence[str] = (),
    empty_ok: bool = False,
) -> dict[str, HostRef]:
    """The hosts matching every filter given (all hosts when none is), in declaration order.

    An unknown site or host name is refused with the closest known names; so is a selection
    that matches no host (UsageError), unless `empty_ok`.
    """
    known = all_hosts(project)
    for name in sites:
        if name not in project.sites:
            raise UsageError(f'unknown site "{name}"{suggestion(name, project.sites)}')
    for name in hosts:
        if name not in known:
            raise UsageError(f'unknown host "{name}"{suggestion(name, known)}')
    chosen = {
        name: ref
        for name, ref in known.items()
        if (not sites or ref.site in sites)
        and (not hosts or name in hosts)
        and (not labels or set(labels) & set(ref.host.labels))
    }
    if not chosen and not empty_ok:
        raise UsageError("no host matches the selection")
    return chosen


def suggestion(name: str, known: Iterable[str]) -> str:
    """` (did you mean a, b?)` with up to three known names close to `name`, or ``."""
    close = difflib.get_close_matches(name, list(known), n=3)
    return f" (did you mean {', '.join(close)}?)" if close else ""
