"""Use cases about the project itself: validate, show an instance, plan a deploy."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from shipyard.app.selectors import find_instance, select_instances
from shipyard.app.session import Session
from shipyard.app.statusrows import deployed_revisions
from shipyard.plan.rollout import Plan, Target, make_plan


@dataclass(frozen=True)
class Validation:
    """A valid project's size (an invalid one raises ConfigError with every problem)."""

    sites: int
    hosts: int
    templates: int
    services: int
    instances: int
    valid: bool = True

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def validate(session: Session) -> Validation:
    """Check the project: schema, references, cycles, locks and every template's rendering."""
    flat = session.flatten()
    project = flat.loaded.project
    return Validation(
        sites=len(project.sites),
        hosts=sum(len(s.hosts) for s in project.sites.values()),
        templates=len(project.templates),
        services=len(project.services),
        instances=len(flat.instances),
    )


@dataclass(frozen=True)
class InstanceConfig:
    """One instance's flattened config and its revision (secrets read ***)."""

    instance: str
    revision: str
    config: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"instance": self.instance, "revision": self.revision, "config": self.config}


def show(session: Session, instance: str) -> InstanceConfig:
    found = find_instance(session.flatten(), instance)
    masked = session.masker().json(found.config)
    assert isinstance(masked, dict)
    return InstanceConfig(found.name, found.revision, masked)


@dataclass(frozen=True)
class PlanView:
    """What a deploy of the chosen instances would do, wave by wave."""

    plan: Plan

    def to_json(self) -> dict[str, Any]:
        plan = self.plan
        return {
            "waves": [
                [
                    {
                        "instance": s.name,
                        "service": s.service,
                        "site": s.site,
                        "host": s.host,
                        "revision": s.revision,
                        "deployed_revision": s.deployed_revision,
                        "action": s.action,
                    }
                    for s in wave
                ]
                for wave in plan.waves
            ],
            "orphans": list(plan.orphans),
            "changes": len(plan.changes),
        }


def plan(
    session: Session, names: Sequence[str] | None = None, *, site: str | None = None
) -> PlanView:
    """Instances, their revisions, what is stale, and the dependency waves of a deploy."""
    flat = session.flatten()
    chosen = select_instances(flat, names, site=site)
    targets = [Target(i.name, i.service, i.host, i.site, i.revision) for i in chosen]
    with session.status_reads() as reads:
        deployed = deployed_revisions(reads)
    return PlanView(make_plan(targets, flat.service_edges(), deployed, flat.instances))
