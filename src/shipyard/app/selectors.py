"""Choosing what a command works on: instances by name, service, site or host; hosts by site,
name or label. Unknown names are refused with the closest known ones suggested."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol, TypeVar

from shipyard.config import topology
from shipyard.config.topology import HostRef
from shipyard.errors import UsageError

if TYPE_CHECKING:
    from shipyard.app.index import InstanceIndex, Placed
    from shipyard.config.flatten import Flattened, Instance
    from shipyard.config.models import Project


# ` (did you mean a, b?)`: the suggestion every refused name gets.
suggest = topology.suggestion


def select_instances(
    flat: Flattened,
    names: Sequence[str] | None = None,
    *,
    site: str | None = None,
    host: str | None = None,
) -> list[Instance]:
    """Instances matching every filter; a name is an instance (`svc@host`) or a service."""
    return _select(flat.loaded.project, flat.instances, names, site, host)


def select_placed(
    index: InstanceIndex,
    names: Sequence[str] | None = None,
    *,
    site: str | None = None,
    host: str | None = None,
) -> list[Placed]:
    """As select_instances, from the instance index (status and plan)."""
    return _select(index.loaded.project, index.instances, names, site, host)


class _Located(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def service(self) -> str: ...
    @property
    def site(self) -> str: ...
    @property
    def host(self) -> str: ...


L = TypeVar("L", bound=_Located)


def _select(
    project: Project,
    instances: Mapping[str, L],
    names: Sequence[str] | None,
    site: str | None,
    host: str | None,
) -> list[L]:
    check_site(project, site)
    chosen = list(instances.values())
    if names:
        wanted: list[L] = []
        for name in names:
            found = [i for i in chosen if name in (i.name, i.service)]
            if not found:
                known = list(instances) + list(project.services)
                raise UsageError(f'no instance or service "{name}"{suggest(name, known)}')
            wanted.extend(i for i in found if i not in wanted)
        chosen = wanted
    if site is not None:
        chosen = [i for i in chosen if i.site == site]
    if host is not None:
        chosen = [i for i in chosen if i.host == host]
    return chosen


def find_instance(flat: Flattened, name: str) -> Instance:
    instance = flat.instances.get(name)
    if instance is None:
        raise UsageError(f'no instance "{name}"{suggest(name, list(flat.instances))}')
    return instance


def check_site(project: Project, site: str | None) -> None:
    """Refuse an unknown site, suggesting known ones (None: no site asked for)."""
    if site is not None and site not in project.sites:
        raise UsageError(f'unknown site "{site}"{suggest(site, list(project.sites))}')


def select_hosts(
    project: Project,
    *,
    sites: Sequence[str] | None = None,
    hosts: Sequence[str] | None = None,
    labels: Sequence[str] | None = None,
    empty_ok: bool = False,
) -> dict[str, HostRef]:
    """The hosts matching every filter given (all hosts when none is); unknown names refused,
    and an empty choice too unless `empty_ok` (the one resolution: config.topology)."""
    return topology.select_hosts(
        project, sites=sites or (), hosts=hosts or (), labels=labels or (), empty_ok=empty_ok
    )
