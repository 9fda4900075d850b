"""One deployment, and the output of each of its steps on its host."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from shipyard.app import history, logs
from shipyard.server.routes.answers import READ_ERRORS
from shipyard.server.routes.deps import CallerSession
from shipyard.server.routes.rollouts import Deployment

router = APIRouter(tags=["deployments"], responses=READ_ERRORS)


class StepOutput(BaseModel):
    seq: int
    step: str
    host: str
    at: str
    exit_status: int | None
    output: str


class DeploymentLog(BaseModel):
    deployment: str
    instance: str
    revision: str
    status: str
    error: str | None
    steps: list[StepOutput]


@router.get("/api/deployments/{deployment_id}")
def deployment(deployment_id: str, session: CallerSession) -> Deployment:
    """One deployment: its instance, revision, status, who started it, when, and its error."""
    return Deployment.model_validate(history.deployment(session, deployment_id).to_json())


@router.get("/api/deployments/{deployment_id}/log")
def deployment_log(deployment_id: str, session: CallerSession) -> DeploymentLog:
    """The deployment's steps' output so far, in the order they ran (masked, bounded)."""
    history.deployment(session, deployment_id)  # 404 when there is none
    return DeploymentLog.model_validate(logs.deployment_log(session, deployment_id).to_json())
