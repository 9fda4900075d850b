"""The API's routes, a module per resource; each route's permission is in server/policy.py."""

from __future__ import annotations

from fastapi import APIRouter

from shipyard.server.routes import meta, metrics, rollouts, streams, versions, webhooks

ROUTERS: list[APIRouter] = [
    meta.router,
    rollouts.router,
    versions.router,
    streams.router,
    metrics.router,
    webhooks.router,
]
