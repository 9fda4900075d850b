"""The served project: its outline, validation, plans, one instance's config, and diffs of the
deployed snapshots against the derived configs."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from shipyard.app import project, queries
from shipyard.server.routes.answers import READ_ERRORS
from shipyard.server.routes.deps import CallerSession, State

router = APIRouter(tags=["project"], responses=READ_ERRORS)

Names = Annotated[
    list[str] | None,
    Query(description="Instances (service@host) or services; none: every instance."),
]
SiteFilter = Annotated[str | None, Query(max_length=200, description="Only this site.")]


class Site(BaseModel):
    name: str
    hosts: list[str]


class ProjectOutline(BaseModel):
    name: str
    sites: list[Site]
    services: list[str]
    instances: int
    version: int | None = Field(description="The config version served (None: not stored).")


class Validation(BaseModel):
    sites: int
    hosts: int
    templates: int
    services: int
    instances: int
    valid: bool


class PlanRequest(BaseModel):
    """What a deploy would cover: instances or services, optionally within one site."""

    model_config = ConfigDict(extra="forbid")

    instances: list[str] = Field(default_factory=list, description="Empty: every instance.")
    site: str | None = None
    force: bool = Field(False, description="Plan up-to-date instances as updates too.")


class PlanStep(BaseModel):
    instance: str
    service: str
    site: str
    host: str
    revision: str
    deployed_revision: str | None
    action: Literal["create", "update", "none"]


class PlanAnswer(BaseModel):
    waves: list[list[PlanStep]]
    orphans: list[str]
    changes: int


class InstanceConfig(BaseModel):
    instance: str
    revision: str
    config: dict[str, Any] = Field(description="The flattened config, secrets masked.")


class DiffEntry(BaseModel):
    kind: str
    path: str
    old: Any = None  # absent for an added member
    new: Any = None  # absent for a removed member
    unified: str | None = None  # a rendered file's unified diff


class InstanceDiff(BaseModel):
    instance: str
    entries: list[DiffEntry]


class DiffAnswer(BaseModel):
    diffs: list[InstanceDiff]


@router.get("/api/project")
def outline(session: CallerSession, state: State) -> ProjectOutline:
    """The project served: its sites and hosts, services, instance count and config version."""
    found = project.describe(session, version=state.version)
    return ProjectOutline.model_validate(found.to_json())


@router.get("/api/validate")
def validate(session: CallerSession) -> Validation:
    """Check the project (a config error is 422 `invalid_config` with each file:line:field)."""
    return Validation.model_validate(project.validate(session).to_json())


@router.get("/api/plan")
def plan(
    session: CallerSession, instances: Names = None, site: SiteFilter = None, force: bool = False
) -> PlanAnswer:
    """What a deploy of the chosen instances would do, wave by wave."""
    view = project.plan(session, instances or None, site=site, force=force)
    return PlanAnswer.model_validate(view.to_json())


@router.post("/api/plan")
def plan_of(body: PlanRequest, session: CallerSession) -> PlanAnswer:
    """The plan of a deploy request, given as the body a rollout would get."""
    view = project.plan(session, body.instances or None, site=body.site, force=body.force)
    return PlanAnswer.model_validate(view.to_json())


@router.get("/api/instances/{instance}")
def show(instance: str, session: CallerSession) -> InstanceConfig:
    """One instance's flattened config and revision (an unknown instance is 400, naming it)."""
    return InstanceConfig.model_validate(project.show(session, instance).to_json())


@router.get("/api/instances/{instance}/diff", response_model_exclude_unset=True)
def instance_diff(instance: str, session: CallerSession) -> InstanceDiff:
    """The deployed snapshot of one instance against its derived config."""
    project.show(session, instance)  # refuses a service name or an unknown instance
    [found] = queries.diff(session, [instance])
    return InstanceDiff.model_validate({"instance": found.instance, "entries": found.to_json()})


@router.get("/api/diff", response_model_exclude_unset=True)
def diff(session: CallerSession, instances: Names = None, site: SiteFilter = None) -> DiffAnswer:
    """Every chosen instance's deployed snapshot against its derived config."""
    found = queries.diff(session, instances or None, site=site)
    return DiffAnswer.model_validate(
        {"diffs": [{"instance": d.instance, "entries": d.to_json()} for d in found]}
    )
