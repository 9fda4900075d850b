"""Instance lifecycle: disable, enable or delete instances, each a rollout of its own (202 with
its id and URL, like a rollout: follow it, wait for it or cancel it there)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from shipyard.app import history
from shipyard.app.lifecycle import Command, lifecycle_targets, start_lifecycle
from shipyard.app.session import Session
from shipyard.server.routes.deps import Caller, State
from shipyard.server.routes.rollouts import Started, started
from shipyard.server.scope import require_sites

router = APIRouter(tags=["lifecycle"])


class LifecycleRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    instances: list[str] = Field(
        min_length=1, max_length=10_000, description="Instances, service@host."
    )


@router.post("/api/lifecycle/{command}", status_code=202)
async def lifecycle(
    command: Literal["disable", "enable", "delete"],
    body: LifecycleRequest,
    state: State,
    caller: Caller,
    http: Request,
    response: Response,
) -> Started:
    """Disable (stopped, not started at boot, release kept), enable (started again and
    health-checked) or delete (removed from the host) the instances. The state matrix is
    checked for every one first; one outside the caller's sites refuses them all."""
    session = state.session.acting_as(caller.name, own_lease=True)
    wanted = Command(command)

    def scope(sites: set[str]) -> None:
        require_sites(state, http, caller, sites, f"the {command}")

    chosen = lifecycle_targets(session, body.instances, wanted, scope=scope)
    history.refuse_held(session, [i.name for i in chosen])
    request = " ".join([command, *(i.name for i in chosen)])

    async def launch(session: Session) -> Any:
        return await start_lifecycle(
            session, chosen, wanted, request=request, on_event=state.heard,
            config_version=state.version,
        )  # fmt: skip

    handle = await state.jobs.start(session, launch)
    return started(handle.id, response)
