"""Use cases of the site event log: a page of events newest first (filters, keywords, a cursor),
limited to the caller's sites, and the purge of events older than the retention (audited)."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from shipyard.app.session import Session
from shipyard.errors import UsageError
from shipyard.events import Event, Severity

PAGE = 500
MAX_PAGE = 10_000
RETENTION_DAYS = 30
_RELATIVE = re.compile(r"(\d{1,6})\s*(s|m|h|d|w)")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_when(value: str, *, now: datetime, what: str = "--since") -> datetime:
    """A time given as ISO 8601 (`2026-12-03T10:00`, UTC when it names no zone) or as a time
    ago (`30m`, `2h`, `3d`, `1w`); a UsageError naming `what` for anything else."""
    text = value.strip()
    relative = _RELATIVE.fullmatch(text)
    if relative:
        return now - timedelta(**{_UNITS[relative.group(2)]: int(relative.group(1))})
    try:
        found = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"{what}: {value!r} is no time: give an ISO time (2026-12-03T10:00) or a time ago"
            " (30m, 2h, 3d, 1w)"
        ) from None
    return found if found.tzinfo is not None else found.replace(tzinfo=UTC)


def parse_severity(value: str, *, what: str = "--severity") -> Severity:
    try:
        return Severity(value.strip().lower())
    except ValueError:
        known = ", ".join(s.value for s in Severity)
        raise UsageError(f"{what}: unknown severity {value!r} (severities: {known})") from None


@dataclass(frozen=True)
class EventLogPage:
    """Events newest first; `next_before` is the cursor of the next (older) page, None when
    this page is the last."""

    events: tuple[Event, ...]
    next_before: int | None

    def to_json(self) -> dict[str, Any]:
        shown = [{**e.to_json(), "message": e.message} for e in self.events]
        return {"events": shown, "next_before": self.next_before}

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> EventLogPage:
        cursor = value.get("next_before")
        return cls(
            events=tuple(Event.from_json(e) for e in value.get("events", [])),
            next_before=None if cursor is None else int(cursor),
        )


def event_log(
    session: Session,
    *,
    site: str | None = None,
    severity: Severity | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    source: str | None = None,
    search: str | None = None,
    before: int | None = None,
    limit: int = PAGE,
    scope: Collection[str] | None = None,
) -> EventLogPage:
    """A page of the site event log. `scope` (a caller limited to some sites) keeps only the
    events of those sites: an event of no site or of another one is not theirs to see."""
    from shipyard.store import EventFilter

    if not 1 <= limit <= MAX_PAGE:
        raise UsageError(f"a page holds 1 to {MAX_PAGE} events, not {limit}")
    wanted = EventFilter(
        site=site,
        sites=None if scope is None else frozenset(scope),
        severity=severity,
        since=since,
        until=until,
        source=source,
        search=search,
    )
    found = session.store.event_log(before_id=before, limit=limit, where=wanted)
    masker = session.masker_if_loaded()
    shown = tuple(_masked(e, masker.text) for e in found)
    return EventLogPage(shown, shown[-1].id if len(shown) == limit else None)


def purge_events(
    session: Session, *, days: int = RETENTION_DAYS, now: datetime | None = None
) -> int:
    """Delete the events older than `days` days (in bounded transactions); audited, with how
    many went. Returns that count."""
    if days < 1:
        raise UsageError(f"events are kept at least 1 day, not {days}")
    store = session.store
    cutoff = (now or store.clock()) - timedelta(days=days)
    gone = store.purge_events(older_than=cutoff)
    detail = {"older_than": cutoff.isoformat(), "days": days, "deleted": gone}
    store.append_audit(
        actor=session.actor, action="events.purge", target="events", result="ok", detail=detail
    )
    return gone


def _masked(event: Event, mask: Callable[[str], str]) -> Event:
    return replace(event, detail=mask(event.detail)) if event.detail else event
