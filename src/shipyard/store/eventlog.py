"""The site event log's queries: a page of events newest first (keyset by id), filtered by site,
severity, time, source and keywords in the database's own text search; and the purge by age, in
bounded transactions.

Keywords are reduced to words of letters and digits before they reach the database, each quoted
as a plain term (FTS5 `"word"`, tsquery `'word'`): what someone types is never query syntax.
Every word must match; the last one matches as a prefix too (`deplo` finds `deployed`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Connection, column, delete, select, table, text

from shipyard.events import Event, Severity
from shipyard.store import rows
from shipyard.store.journal import Journal
from shipyard.store.tables import events

PAGE = 500
STATS_SECONDS = 600.0
COMMON_SHARE = 0.01  # words in at least 1% of events: a page of them is found walking back
PURGE_BATCH = 5_000
MAX_WORDS = 16
MAX_WORD = 64
# Migration 0008's tsvector column on PostgreSQL (the database computes it from message and
# source; the table here does not describe it: nothing but the search reads it).
PG_DOCUMENT = "events.events_search_doc"
_WORD = re.compile(r"[^\W_]+")
_SEARCH = table("events_search", column("rowid"))
_ORDER = list(Severity)


def search_words(words: str) -> tuple[str, ...]:
    """The words of a search as the text search indexes them: letters and digits, lower case
    (`a:b "c*"` is a, b and c); at most MAX_WORDS of at most MAX_WORD characters."""
    return tuple(w[:MAX_WORD] for w in _WORD.findall(words.lower()))[:MAX_WORDS]


def fts5_query(words: tuple[str, ...]) -> str:
    """An FTS5 MATCH query: every word a quoted string, the last one a prefix too."""
    quoted = [f'"{w}"' for w in words]
    quoted[-1] += "*"
    return " ".join(quoted)


def tsquery(words: tuple[str, ...]) -> str:
    """A to_tsquery text: every word a quoted lexeme joined by &, the last one a prefix."""
    quoted = [f"'{w}'" for w in words]
    quoted[-1] += ":*"
    return " & ".join(quoted)


def at_least(severity: Severity) -> list[str]:
    """The severities as grave as `severity` or graver."""
    return [s.value for s in _ORDER[_ORDER.index(severity) :]]


@dataclass(frozen=True)
class EventFilter:
    """What a page of the event log is limited to; `sites` None is every site (and events of
    no site), a set is only events of those sites."""

    site: str | None = None
    sites: Collection[str] | None = None
    severity: Severity | None = None
    since: datetime | None = None
    until: datetime | None = None
    source: str | None = None
    search: str | None = None


class EventLog(Journal):
    """The event log's reads and its purge, on the events table the stream writes."""

    def event_log(
        self, *, before_id: int | None = None, limit: int = PAGE, where: EventFilter | None = None
    ) -> list[Event]:
        """The newest events first, older than `before_id` when given (the last id of the page
        before): at most `limit`. A search with no word to look for finds nothing."""
        wanted = where or EventFilter()
        words = search_words(wanted.search) if wanted.search is not None else ()
        if wanted.search is not None and not words:
            return []
        with self._read() as conn:
            query = select(events)
            order: ColumnElement[int] = events.c.id
            if words and conn.dialect.name == "postgresql":
                _choose_pg_plan(conn, self._word_frequencies(conn), words)
                match = text(f"{PG_DOCUMENT} @@ to_tsquery('simple'::regconfig, :terms)")
                query = query.where(match.bindparams(terms=tsquery(words)))
            elif words:
                # From the FTS5 index, in its rowid order backwards: it walks its doclists
                # newest first and stops at the page's end, however common the words are.
                query = query.join(_SEARCH, _SEARCH.c.rowid == events.c.id).where(
                    text("events_search MATCH :terms").bindparams(terms=fts5_query(words))
                )
                order = _SEARCH.c.rowid
            if before_id is not None:
                query = query.where(order < before_id)
            query = query.where(*_conditions(wanted)).order_by(order.desc()).limit(limit)
            return [rows.event(row) for row in conn.execute(query).mappings()]

    def _word_frequencies(self, conn: Connection) -> dict[str, float]:
        """PostgreSQL's own statistics of the search index: its most common words and the
        share of events holding each (read again every STATS_SECONDS); empty before ANALYZE."""
        cached = getattr(self, "_word_stats", None)
        now = time.monotonic()
        if cached is not None and now - cached[0] < STATS_SECONDS:
            found: dict[str, float] = cached[1]
            return found
        row = conn.execute(
            text(
                "SELECT most_common_elems::text::text[], most_common_elem_freqs FROM pg_stats"
                " WHERE tablename = 'events' AND attname = 'events_search_doc'"
            )
        ).first()
        found = {}
        if row is not None and row[0] is not None:
            found = dict(zip(row[0], row[1], strict=False))  # freqs end with min, max, nulls
        self._word_stats = (now, found)
        return found

    def purge_events(self, *, older_than: datetime, batch: int = PURGE_BATCH) -> int:
        """Delete the events stamped before `older_than`, `batch` rows a transaction (so a
        writer waits for one batch at most); returns how many went."""
        if batch < 1:
            raise ValueError("a purge deletes at least one row a transaction")
        total = 0
        while True:
            with self._write() as conn:
                gone = _purge_batch(conn, older_than, batch)
            total += gone
            if gone < batch:
                return total


def _choose_pg_plan(conn: Connection, common: dict[str, float], words: tuple[str, ...]) -> None:
    """Tell PostgreSQL how to find a page of matches, from how common the words are (its own
    statistics): the planner cannot estimate a prefix (`word:*`), and a wrong guess costs
    seconds at a million events. Common words: walk the ids backwards, testing each event,
    and stop at the page's end. Rare ones: ask the GIN index for every match, then sort."""
    if not common:
        return  # no statistics yet (a small table): the planner's guess is cheap either way
    floor = min(common.values())
    shares = [common.get(w, floor / 2) for w in words[:-1]]
    last = words[-1]
    shares.append(sum(f for w, f in common.items() if w.startswith(last)) or floor / 2)
    if min(shares) >= COMMON_SHARE:
        conn.execute(text("SET LOCAL enable_bitmapscan = off"))
    else:
        conn.execute(text("SET LOCAL enable_indexscan = off"))


def _conditions(wanted: EventFilter) -> list[ColumnElement[bool]]:
    found: list[ColumnElement[bool]] = []
    if wanted.site is not None:
        found.append(events.c.site == wanted.site)
    if wanted.sites is not None:
        found.append(events.c.site.in_(sorted(wanted.sites)))
    if wanted.severity is not None:
        found.append(events.c.severity.in_(at_least(wanted.severity)))
    if wanted.since is not None:
        found.append(events.c.at >= wanted.since)
    if wanted.until is not None:
        found.append(events.c.at <= wanted.until)
    if wanted.source is not None:
        found.append(events.c.source == wanted.source)
    return found


def _purge_batch(conn: Connection, older_than: datetime, batch: int) -> int:
    oldest = select(events.c.id).where(events.c.at < older_than).order_by(events.c.id).limit(batch)
    return int(conn.execute(delete(events).where(events.c.id.in_(oldest))).rowcount)
