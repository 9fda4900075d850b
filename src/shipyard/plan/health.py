"""Health, as the monitor derives it: of a host (from when it last answered), of an instance
(from one round's answer) and of a site (from its hosts, its instances and its recent
deployment failures). Pure: the clock is passed in.

A host is `online` while its last successful report is at most `offline_after` seconds old,
`offline` after that, and `unknown` until the monitor has heard from it or watched it for
`offline_after` seconds. A round that fails does not make a host offline by itself: one lost
round out of two (30 s apart, 60 s to go offline) is a blip, two are an outage.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

# The defaults: a round every 30 s, offline after 60 s without a successful report.
INTERVAL = 30.0
OFFLINE_AFTER = 60.0
# How far back deployment failures count into a site's health, in seconds.
RECENT_FAILURES = 3600.0


class HostState(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"
    UNKNOWN = "unknown"


class InstanceHealth(StrEnum):
    HEALTHY = "healthy"
    FAILING = "failing"  # its program is not running, or its health check fails
    DISABLED = "disabled"
    NOT_DEPLOYED = "not deployed"
    UNKNOWN = "unknown"  # its host did not answer


class SiteState(StrEnum):
    OK = "ok"
    DEGRADED = "degraded"  # a host offline, an instance failing or drifted, a recent failure
    DOWN = "down"  # no host of the site online
    UNKNOWN = "unknown"  # nothing heard yet


def host_state(
    last_ok: datetime | None, now: datetime, watched_since: datetime, offline_after: float
) -> HostState:
    """A host's state at `now`, from its last successful report (None: none yet) and since when
    the monitor watches it."""
    if last_ok is not None and (now - last_ok).total_seconds() <= offline_after:
        return HostState.ONLINE
    if last_ok is None and (now - watched_since).total_seconds() <= offline_after:
        return HostState.UNKNOWN
    return HostState.OFFLINE


def instance_health(
    *,
    lifecycle: str,
    deployed: bool,
    answered: bool,
    state: str | None,
    probe_error: str | None,
) -> tuple[InstanceHealth, str]:
    """An instance's health from one round, and why when it is not healthy. `state` is its
    program's (None: not loaded), `probe_error` the first line of its failed health check."""
    if lifecycle == "disabled":
        return InstanceHealth.DISABLED, ""
    if not deployed or lifecycle == "deleted":
        return InstanceHealth.NOT_DEPLOYED, ""
    if not answered:
        return InstanceHealth.UNKNOWN, "its host did not answer"
    if state != "RUNNING":
        return InstanceHealth.FAILING, f"program is {state or 'not loaded'}"
    if probe_error is not None:
        return InstanceHealth.FAILING, f"health check failed: {probe_error}"
    return InstanceHealth.HEALTHY, ""


@dataclass(frozen=True)
class SiteCounts:
    """What a site's health is derived from."""

    hosts_online: int = 0
    hosts_offline: int = 0
    hosts_unknown: int = 0
    failing: int = 0
    drifted: int = 0
    recent_failures: int = 0  # deployments that failed within RECENT_FAILURES


def site_state(counts: SiteCounts) -> SiteState:
    if counts.hosts_online == 0 and counts.hosts_offline == 0:
        return SiteState.UNKNOWN
    if counts.hosts_online == 0:
        return SiteState.DOWN
    troubled = counts.hosts_offline + counts.failing + counts.drifted + counts.recent_failures
    return SiteState.DEGRADED if troubled else SiteState.OK
