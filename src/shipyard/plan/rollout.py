"""A rollout plan: which instances change, and in which dependency waves they go."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from shipyard.config.graph import waves

Action = Literal["create", "update", "none"]


@dataclass(frozen=True)
class Target:
    """What planning needs of one instance: its derived revision and where it runs."""

    name: str
    service: str
    host: str
    site: str
    revision: str


@dataclass(frozen=True)
class Step:
    """One instance in a plan: what would happen to it, and why."""

    name: str
    service: str
    host: str
    site: str
    revision: str
    deployed_revision: str | None
    action: Action

    @property
    def stale(self) -> bool:
        return self.action != "none"


@dataclass(frozen=True)
class Plan:
    """Waves of steps: every service after all it depends on; instances of a wave in parallel."""

    waves: tuple[tuple[Step, ...], ...]
    orphans: tuple[str, ...]  # deployed instances that the config no longer has

    @property
    def steps(self) -> list[Step]:
        return [step for wave in self.waves for step in wave]

    @property
    def changes(self) -> list[Step]:
        return [step for step in self.steps if step.stale]


def action_for(revision: str, deployed: str | None) -> Action:
    if deployed is None:
        return "create"
    return "none" if deployed == revision else "update"


def make_plan(
    targets: Iterable[Target],
    service_edges: Mapping[str, Sequence[str]],
    deployed: Mapping[str, str],
    known: Iterable[str] | None = None,
) -> Plan:
    """Order `targets` into waves by their services' depends_on.

    `deployed` maps instance names to their deployed revision; instances missing from it were
    never deployed. Dependencies on services outside the selection do not hold a wave back.
    Orphans are deployed instances not in `known` (all instances of the config; default: targets).
    """
    chosen = list(targets)
    services = {t.service for t in chosen}
    edges = {s: [d for d in service_edges.get(s, ()) if d in services] for s in services}
    by_service: dict[str, list[Step]] = {}
    for t in chosen:
        was = deployed.get(t.name)
        step = Step(t.name, t.service, t.host, t.site, t.revision, was, action_for(t.revision, was))
        by_service.setdefault(t.service, []).append(step)
    planned = tuple(
        tuple(step for service in layer for step in by_service[service]) for layer in waves(edges)
    )
    names = set(known) if known is not None else {t.name for t in chosen}
    return Plan(planned, tuple(sorted(set(deployed) - names)))
