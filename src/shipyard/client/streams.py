"""What the server streams, followed from here as the same values the CLI shows locally: the
events (`Event`), one deployment's step output (`StepOutput`, then its `DeploymentLog`), and a
rollout the server runs, with Ctrl-C turned into a cancel through the API."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime

from shipyard.app.eventlog import EventLogPage
from shipyard.app.logs import DeploymentLog, StepOutput
from shipyard.app.rollouts import RolloutResult
from shipyard.client.http import ApiClient, RemoteError
from shipyard.events import Event, Severity

EventSink = Callable[[Event], None]
PAGE = 1_000  # events per GET /api/events


def stored_events(
    api: ApiClient, *, rollout: str | None = None, after: int = 0, limit: int | None = None
) -> Iterator[Event]:
    """The events stored after `after` (of one rollout), oldest first, page by page until the
    server has no more or `limit` are told: what the local `events` prints, without --follow."""
    told = 0
    while limit is None or told < limit:
        size = PAGE if limit is None else min(PAGE, limit - told)
        body = api.get("/api/events", {"rollout": rollout, "after": after, "limit": size})
        page = [e for e in body.get("events", []) if isinstance(e, dict)]
        for item in page:
            yield Event.from_json(item)
        told += len(page)
        if len(page) < size:
            return
        after = int(body["last_id"])


def event_log(
    api: ApiClient,
    *,
    site: str | None = None,
    severity: Severity | None = None,
    since: datetime | None = None,
    source: str | None = None,
    search: str | None = None,
    before: int | None = None,
    limit: int = 500,
) -> EventLogPage:
    """A page of the server's site event log, newest first (what app.eventlog.event_log
    answers locally)."""
    params = {
        "site": site,
        "severity": None if severity is None else severity.value,
        "since": None if since is None else since.isoformat(),
        "source": source,
        "search": search,
        "before": before,
        "limit": limit,
    }
    return EventLogPage.from_json(api.get("/api/events/log", params))


def events(api: ApiClient, *, rollout: str | None = None, after: int = 0) -> Iterator[Event]:
    """Every event stored after `after`, oldest first, as it comes; of one rollout, until it
    finishes. A stream that fell behind (`resume`) is reopened after the last event told, so
    none is missed or told twice."""
    last = str(after)
    while True:
        resumed = False
        for item in api.stream("/api/events/stream", {"rollout": rollout}, last_event_id=last):
            if item.event == "resume":
                last, resumed = str(item.data["after"]), True
                break
            if not isinstance(item.data, dict):
                continue
            event = Event.from_json(item.data)
            last = item.id or last
            yield event
            if rollout is not None and event.final:
                return
        if not resumed:
            raise RemoteError(
                api.url, 0, "stream_ended",
                "the server ended the event stream (is it shutting down?); events after"
                f" {last} are still to read (--after {last})",
            )  # fmt: skip


def follow_rollout(
    api: ApiClient,
    rollout_id: str,
    heard: EventSink,
    *,
    cancel_reason: str,
    on_cancel: Callable[[], None] | None = None,
) -> RolloutResult:
    """Hand every event of the rollout to `heard`, from its first, until it finishes; on
    Ctrl-C ask the server to cancel it (once: a second Ctrl-C stops following) and follow it
    to its end. Then the result as the server recorded it."""
    last = 0
    cancelled = False
    while True:
        try:
            for event in events(api, rollout=rollout_id, after=last):
                last = event.id
                heard(event)
            break
        except KeyboardInterrupt:
            if cancelled:
                raise
            cancelled = True
            api.post(f"/api/rollouts/{rollout_id}/cancel", {"reason": cancel_reason})
            if on_cancel is not None:
                on_cancel()
    return RolloutResult.from_json(api.get(f"/api/rollouts/{rollout_id}"))


def deployment_log(api: ApiClient, deployment_id: str) -> DeploymentLog:
    return DeploymentLog.from_json(api.get(f"/api/deployments/{deployment_id}/log"))


def follow_log(api: ApiClient, deployment_id: str) -> Iterator[StepOutput | DeploymentLog]:
    """Each step's output as it is stored, then (with its status and error) the deployment's
    end, like app.logs.follow_log does locally."""
    path = f"/api/deployments/{deployment_id}/log/stream"
    for item in api.stream(path):
        if item.event == "step":
            yield StepOutput.from_json(item.data)
        elif item.event == "end":
            yield DeploymentLog(
                deployment_id, "", "", str(item.data["status"]), item.data.get("error"), ()
            )
            return
    raise RemoteError(
        api.url, 0, "stream_ended",
        f"the server ended the log stream of {deployment_id} before the deployment was over",
    )  # fmt: skip
