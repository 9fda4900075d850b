"""Use cases about the project itself: validate, show an instance, plan a deploy."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from shipyard.app.selectors import find_instance, select_placed
from shipyard.app.session import Session
from shipyard.app.statusrows import planned_revisions
from shipyard.plan.rollout import Plan, Step, Target, make_plan


@dataclass(frozen=True)
class SiteSummary:
    name: str
    hosts: tuple[str, ...]


@dataclass(frozen=True)
class ProjectSummary:
    """What the served project holds: its sites and hosts, services, instance count, and the
    config version it was loaded as (None when it is not a stored version)."""

    name: str
    sites: tuple[SiteSummary, ...]
    services: tuple[str, ...]
    instances: int
    version: int | None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "sites": [{"name": s.name, "hosts": list(s.hosts)} for s in self.sites],
            "services": list(self.services),
            "instances": self.instances,
            "version": self.version,
        }


def describe(session: Session, *, version: int | None = None) -> ProjectSummary:
    """The project's outline; a project with no instance yet is described too."""
    flat = session.flatten(empty_ok=True)
    project = flat.loaded.project
    return ProjectSummary(
        name=project.name,
        sites=tuple(SiteSummary(name, tuple(site.hosts)) for name, site in project.sites.items()),
        services=tuple(project.services),
        instances=len(flat.instances),
        version=version,
    )


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

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Validation:
        sites, hosts, templates, services, instances = (
            int(data[k]) for k in ("sites", "hosts", "templates", "services", "instances")
        )
        return cls(sites, hosts, templates, services, instances)


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

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> InstanceConfig:
        return cls(str(data["instance"]), str(data["revision"]), dict(data["config"]))


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

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PlanView:
        waves = tuple(
            tuple(
                Step(
                    name=s["instance"],
                    service=s["service"],
                    host=s["host"],
                    site=s["site"],
                    revision=s["revision"],
                    deployed_revision=s.get("deployed_revision"),
                    action=s["action"],
                )
                for s in wave
            )
            for wave in data["waves"]
        )
        return cls(Plan(waves, tuple(data["orphans"])))


def plan(
    session: Session,
    names: Sequence[str] | None = None,
    *,
    site: str | None = None,
    force: bool = False,
) -> PlanView:
    """Instances, their revisions, what is stale, and the dependency waves of a deploy. With
    `force` (as `deploy --force` does) an up-to-date instance is planned as an update too."""
    flat = session.index()
    chosen = select_placed(flat, names, site=site)
    targets = [Target(i.name, i.service, i.host, i.site, i.revision) for i in chosen]
    with session.status_reads() as reads:
        deployed = planned_revisions(reads, {i.name: i.revision for i in chosen})
    made = make_plan(targets, flat.service_edges(), deployed, flat.instances)
    if force:
        waves = tuple(
            tuple(replace(s, action="update") if s.action == "none" else s for s in wave)
            for wave in made.waves
        )
        made = Plan(waves, made.orphans)
    return PlanView(made)
