"""The API's routes, a module per resource; each route's permission is in server/policy.py."""

from __future__ import annotations

from fastapi import APIRouter

from shipyard.server.routes import (
    accounts,
    artifacts,
    audit,
    deployments,
    events,
    health,
    hosts,
    lifecycle,
    login,
    meta,
    metrics,
    project,
    rollouts,
    status,
    streams,
    versions,
    webhooks,
)

ROUTERS: list[APIRouter] = [
    meta.router,
    rollouts.router,
    lifecycle.router,
    health.router,
    artifacts.router,
    project.router,
    status.router,
    deployments.router,
    audit.router,
    events.router,
    hosts.router,
    versions.router,
    streams.router,
    metrics.router,
    webhooks.router,
    accounts.router,
    login.router,
]
