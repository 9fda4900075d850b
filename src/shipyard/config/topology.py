"""Where things run: hosts across sites, placement of services, and instance names."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from shipyard.config.models import Host, Project, Service

DEFAULT_ROOT = "/srv/shipyard"


@dataclass(frozen=True)
class HostRef:
    """A host with the name and site it was declared under."""

    name: str
    site: str
    host: Host

    @property
    def is_local(self) -> bool:
        if self.host.connection is not None:
            return self.host.connection == "local"
        return self.name == "local"

    @property
    def address(self) -> str:
        return self.host.address or ("localhost" if self.is_local else self.name)

    def root(self, project_dir: Path) -> str:
        """The deploy root on the host; a local host's default lives in the project directory."""
        if self.host.root:
            if self.is_local and not self.host.root.startswith("/"):
                return str(project_dir / self.host.root)
            return self.host.root
        if self.is_local:
            return str(project_dir / ".shipyard" / "hosts" / self.name)
        return DEFAULT_ROOT


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
