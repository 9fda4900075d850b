"""Rollouts: start one (202 with its id and URL, before any host is touched), list, read with
each instance's deployment, cancel; roll an instance back to a kept release."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from shipyard.app import history
from shipyard.app.rollouts import (
    deploy_request,
    rollback_target,
    start_deploy,
    start_rollback,
)
from shipyard.app.selectors import find_instance, select_instances
from shipyard.app.session import Session
from shipyard.app.versions import pinned, version_revision
from shipyard.server.errors import ApiError
from shipyard.server.routes.deps import Caller, CallerSession, State
from shipyard.server.scope import require_record, require_sites

router = APIRouter(tags=["rollouts"])


class RolloutRequest(BaseModel):
    """What to deploy: instances (`service@host`) or services, optionally within one site."""

    model_config = ConfigDict(extra="forbid")

    instances: list[str] = Field(default_factory=list, description="Empty: every instance.")
    site: str | None = None
    force: bool = Field(False, description="Deploy even what is up to date.")
    dry_run: bool = Field(False, description="Plan only: nothing is written or run.")
    version: int | None = Field(
        None, ge=1, le=2**31 - 1, description="A config version to deploy (default: the served)."
    )


class RollbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    instance: str = Field(description="An instance, service@host.")
    to: str | None = Field(None, description="A kept revision (a prefix will do).")
    version: int | None = Field(
        None, ge=1, le=2**31 - 1, description="Back to what this config version deployed."
    )


class CancelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field("cancelled through the API", max_length=500)


class Started(BaseModel):
    id: str
    url: str
    status: str


class Cancelling(BaseModel):
    id: str
    cancelling: bool


class Deployment(BaseModel):
    id: str
    instance: str
    kind: str
    revision: str
    status: str
    actor: str
    started_at: str
    finished_at: str | None
    error: str | None


class Outcome(BaseModel):
    instance: str
    result: str
    revision: str
    reason: str
    deployment_id: str | None
    seconds: float


class Rollout(BaseModel):
    id: str
    actor: str
    request: str
    strategy: str
    status: str
    started_at: str
    finished_at: str | None
    summary: dict[str, Any]
    config_version: int | None
    running_here: bool = False
    deployments: list[Deployment]
    outcomes: list[Outcome] = Field(
        default_factory=list, description="Each instance's result (of one rollout asked for)."
    )
    cancelled: str | None = None


class RolloutPage(BaseModel):
    rollouts: list[Rollout]
    next_before: str | None


@router.post("/api/rollouts", status_code=202)
async def start(
    body: RolloutRequest, state: State, caller: Caller, http: Request, response: Response
) -> Started:
    """Start deploying what is stale among the chosen instances (all with `force`), in
    dependency waves; answers as soon as the rollout's row is written. A selection that
    reaches a site outside the caller's is refused whole."""
    base, version = _version_session(state, body.version)
    chosen = select_instances(base.flatten(), body.instances or None, site=body.site)
    require_sites(state, http, caller, {i.site for i in chosen}, "the rollout")
    request = deploy_request(body.instances or None, body.site, body.force)
    if body.version is not None:
        request += f" --version {body.version}"
    if not body.dry_run:
        history.refuse_held(base, [i.name for i in chosen])

    async def launch(session: Session) -> Any:
        return await start_deploy(
            session,
            chosen,
            request=request,
            dry_run=body.dry_run,
            force=body.force,
            on_event=state.heard,
            config_version=version,
        )

    handle = await state.jobs.start(base.acting_as(caller.name, own_lease=True), launch)
    return started(handle.id, response)


@router.post("/api/rollbacks", status_code=202)
async def rollback(
    body: RollbackRequest, state: State, caller: Caller, http: Request, response: Response
) -> Started:
    """Switch an instance back to a kept release (the previous one unless `to`), as a rollout
    of its own; nothing is uploaded."""
    if body.to is not None and body.version is not None:
        raise ApiError(422, "bad_request", "give `to` (a revision) or `version`, not both")
    session = state.session.acting_as(caller.name, own_lease=True)
    # The scope first: what an instance outside it has deployed is not the caller's to learn.
    named = find_instance(session.flatten(), body.instance)
    require_sites(state, http, caller, [named.site], f"the rollback of {named.name}")
    to, version = body.to, state.version
    if body.version is not None:
        to, version = version_revision(session, body.version, body.instance), body.version
    old = rollback_target(session, body.instance, to=to)
    history.refuse_held(session, [old.name])
    request = " ".join(["rollback", old.name, *([f"--to {to}"] if to else [])])

    async def launch(session: Session) -> Any:
        return await start_rollback(
            session, old, request=request, on_event=state.heard, config_version=version
        )

    handle = await state.jobs.start(session, launch)
    return started(handle.id, response)


@router.get("/api/rollouts")
def list_rollouts(
    session: CallerSession,
    state: State,
    limit: int = Query(50, ge=1, le=500),
    before: str | None = Query(None, max_length=64, description="A rollout id: older ones."),
) -> RolloutPage:
    """The newest rollouts first, a page at a time."""
    page = history.rollouts(session, limit=limit, before=before)
    return RolloutPage.model_validate(
        {
            "rollouts": [_shown(r.to_json(), state) for r in page.rollouts],
            "next_before": page.next_before,
        }
    )


@router.get("/api/rollouts/{rollout_id}")
def get_rollout(rollout_id: str, session: CallerSession, state: State) -> Rollout:
    """One rollout with each instance's deployment and result."""
    return Rollout.model_validate(_shown(history.rollout(session, rollout_id).to_json(), state))


@router.post("/api/rollouts/{rollout_id}/cancel", status_code=202)
def cancel(
    rollout_id: str, state: State, caller: Caller, session: CallerSession, http: Request,
    body: CancelRequest | None = None,
) -> Cancelling:  # fmt: skip
    """Cancel a running rollout: no new batch or host step starts, steps in flight finish,
    what did not run is skipped with the reason. A rollout that reaches outside the caller's
    sites is, to them, no rollout at all (404)."""
    reason = f"{(body or CancelRequest()).reason} (by {caller.name})"
    found = history.rollout(session, rollout_id)  # 404 when there is none
    if caller.access.scoped:
        sites = history.rollout_sites(session, found)
        require_record(state, http, caller, sites, "rollout", rollout_id)
    if state.jobs.cancel(rollout_id, reason):
        return Cancelling(id=rollout_id, cancelling=True)
    if found.status != "in_progress":
        raise ApiError(409, "not_active", f"rollout {rollout_id} is already {found.status}")
    raise ApiError(
        409,
        "not_here",
        f"rollout {rollout_id} is run by another controller (a CLI or another server);"
        " cancel it there",
    )


def _version_session(state: State, version: int | None) -> tuple[Session, int | None]:
    """The session to deploy from and its config version: the served one, or a pinned one."""
    if version is None or version == state.version:
        return state.session, state.version
    return pinned(state.session, version), version


def started(rollout_id: str, response: Response) -> Started:
    url = f"/api/rollouts/{rollout_id}"
    response.headers["Location"] = url
    return Started(id=rollout_id, url=url, status="in_progress")


def _shown(view: dict[str, Any], state: State) -> dict[str, Any]:
    view["running_here"] = state.jobs.get(view["id"]) is not None
    return view
