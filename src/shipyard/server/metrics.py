"""Prometheus metrics of one server, in a registry of its own (never the process-wide one).

What is counted as it happens (from the events this server's rollouts store, through
`state.listeners`): deployments by result, service and site; how long each deployment took
(from its first event to its `finished` one) and how long it spent in each phase (from one of
its events to the next); HTTP requests by method, route template and status. What is read at
each scrape: instances by site and status and the stale ones (through the app layer), rollouts
running on this server, SSE clients connected.

`shipyard_hosts_unreachable` counts the hosts whose latest deployment seen by this server
(since it started) failed on a connection error: the failure reason says it could not connect
or the connection was lost or ended. A later deployment on that host that succeeds, or fails
for another reason, takes it off. It says nothing of hosts this server has not deployed to.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import datetime
from typing import Any

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

from shipyard.app.fleet import FleetCounts, fleet_counts
from shipyard.app.health import HealthReport
from shipyard.app.health import health as health_report
from shipyard.events import Event, Phase
from shipyard.server.state import ServerState

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# What a failure reason says when the host could not be reached (executors' ConnectError).
CONNECT_FAILURES = ("cannot connect", "connection lost", "ended the connection", "unreachable")
DEPLOY_BUCKETS = (1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
STEP_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Asgi = Callable[[Scope, Receive, Send], Awaitable[None]]


class Metrics:
    """The metrics of one server and what keeps them."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.deployments = Counter(
            "shipyard_deployments", "Deployments finished, by result, service and site.",
            ["result", "service", "site"], registry=r,
        )  # fmt: skip
        self.deployment_seconds = Histogram(
            "shipyard_deployment_duration_seconds",
            "Seconds from a deployment's first event to its finished one, by result.",
            ["result"], buckets=DEPLOY_BUCKETS, registry=r,
        )  # fmt: skip
        self.step_seconds = Histogram(
            "shipyard_step_duration_seconds",
            "Seconds a deployment spent in each phase (uploading, installing, ...).",
            ["step"], buckets=STEP_BUCKETS, registry=r,
        )  # fmt: skip
        self.instances = Gauge(
            "shipyard_instances", "Configured instances by site and status.",
            ["site", "status"], registry=r,
        )  # fmt: skip
        self.stale = Gauge(
            "shipyard_instances_stale",
            "Instances whose deployed revision is not the one the config derives, by site.",
            ["site"], registry=r,
        )  # fmt: skip
        self.rollouts = Gauge(
            "shipyard_rollouts_in_flight", "Rollouts this server runs now.", registry=r
        )
        self.unreachable = Gauge(
            "shipyard_hosts_unreachable",
            "Hosts whose latest deployment seen by this server failed to connect.",
            registry=r,
        )
        self.hosts = Gauge(
            "shipyard_hosts", "Hosts by site and health (online, offline, unknown), as the"
            " health monitor last saw them.", ["site", "state"], registry=r,
        )  # fmt: skip
        self.drifted = Gauge(
            "shipyard_instances_drifted",
            "Instances whose host differs from the store, by site (the last health round).",
            ["site"], registry=r,
        )  # fmt: skip
        self.sse_clients = Gauge(
            "shipyard_sse_clients", "Event stream clients connected.", registry=r
        )
        self.requests = Counter(
            "shipyard_http_requests", "HTTP requests by method, route template and status.",
            ["method", "route", "status"], registry=r,
        )  # fmt: skip
        self._phases: dict[str, tuple[Phase, datetime, datetime]] = {}  # id -> phase, since, first
        self._down: set[str] = set()

    def heard(self, event: Event) -> None:
        """One event a rollout of this server stored."""
        if event.deployment_id is None or event.phase.of_rollout:
            return
        now = event.at
        before = self._phases.pop(event.deployment_id, None)
        first = now if before is None else before[2]
        if before is not None:
            self.step_seconds.labels(before[0].value).observe(_seconds(before[1], now))
        if event.phase is not Phase.FINISHED:
            self._phases[event.deployment_id] = (event.phase, now, first)
            return
        result = event.result or "unknown"
        service = (event.instance or "").partition("@")[0]
        self.deployments.labels(result, service, event.site or "").inc()
        if before is not None:
            self.deployment_seconds.labels(result).observe(_seconds(first, now))
        if event.host:
            if result == "failed" and _connect_failure(event.detail):
                self._down.add(event.host)
            elif result in ("success", "failed", "unchanged"):
                self._down.discard(event.host)
        self.unreachable.set(len(self._down))

    def refresh(
        self,
        state: ServerState,
        counts: FleetCounts,
        sse_clients: int,
        health: HealthReport | None = None,
    ) -> None:
        """The gauges read at a scrape."""
        if health is not None:
            self.hosts.clear()
            self.drifted.clear()
            for one in health.sites:
                c = one.counts
                for name, n in (
                    ("online", c.hosts_online),
                    ("offline", c.hosts_offline),
                    ("unknown", c.hosts_unknown),
                ):
                    self.hosts.labels(one.site, name).set(n)
                self.drifted.labels(one.site).set(c.drifted)
        self.instances.clear()
        for (site, status), n in counts.by_status.items():
            self.instances.labels(site, status).set(n)
        self.stale.clear()
        for site, n in counts.stale.items():
            self.stale.labels(site).set(n)
        self.rollouts.set(len(state.jobs.running))
        self.sse_clients.set(sse_clients)

    def exposition(self, state: ServerState) -> str:
        """The text Prometheus scrapes, masked like everything the server sends."""
        return state.masker().text(generate_latest(self.registry).decode())


def _seconds(start: datetime, end: datetime) -> float:
    return max(0.0, (end - start).total_seconds())


def _connect_failure(detail: str) -> bool:
    text = detail.lower()
    return any(words in text for words in CONNECT_FAILURES)


class RequestCounter:
    """ASGI middleware counting each request by its route's path template (never the raw
    path: `/api/rollouts/{rollout_id}`, not one series per id) and its status."""

    def __init__(self, app: Asgi, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = {"code": 500}

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(scope["method"], template, str(status["code"])).inc()


def install(app: FastAPI) -> None:
    """Metrics for this app: listening to events from the start, counting requests."""
    metrics = Metrics()
    app.state.metrics = metrics
    app.add_middleware(RequestCounter, metrics=metrics)

    async def start(state: ServerState) -> None:
        state.listeners.append(metrics.heard)

    async def stop(state: ServerState) -> None:
        if metrics.heard in state.listeners:
            state.listeners.remove(metrics.heard)

    app.state.starters.append(start)
    app.state.stoppers.append(stop)


def metrics_of(app: FastAPI) -> Metrics:
    metrics: Metrics = app.state.metrics
    return metrics


async def scrape(app: FastAPI, state: ServerState, sse_clients: int) -> str:
    """Refresh what is read at a scrape, then render every metric."""
    metrics = metrics_of(app)
    counts = await asyncio.to_thread(fleet_counts, state.session)
    health = await asyncio.to_thread(health_report, state.session)
    metrics.refresh(state, counts, sse_clients, health)
    return metrics.exposition(state)
