"""The status of every instance, kept by the server between requests and rendered once.

Building the report of 10,000 instances costs more than a request may take, so the server
keeps the rows (without blue/green slots, which ask the hosts) and the JSON of each row,
masked. They are rebuilt when the store's newest event id moves (every deployment change
writes an event, whichever process made it) or another config version is served; a request
checks that id (one cheap read), filters the kept rows and joins the bytes of the rows it
answers with.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass

from shipyard.app import queries
from shipyard.app.project import describe
from shipyard.app.queries import StatusReport, StatusRow
from shipyard.app.session import Session
from shipyard.errors import UsageError
from shipyard.masking import Masker

NO_LIMIT = 10_000


@dataclass(frozen=True)
class StatusFilter:
    """What a status request asks for; None is no filter."""

    site: str | None = None
    service: str | None = None
    status: str | None = None
    stale: bool | None = None

    @property
    def empty(self) -> bool:
        return (
            self.site is None
            and self.service is None
            and self.status is None
            and (self.stale is None)
        )

    def keeps(self, row: StatusRow) -> bool:
        return (
            (self.site is None or row.site == self.site)
            and (self.service is None or row.service == self.service)
            and (self.status is None or row.status == self.status)
            and (self.stale is None or row.stale == self.stale)
        )


@dataclass(frozen=True)
class StatusPage:
    """The rows of one page as encoded JSON, and where the next page starts."""

    rows: Sequence[bytes]
    total: int  # rows matching the filter, on every page
    next_after: str | None

    def render(self) -> bytes:
        after = json.dumps(self.next_after).encode()
        return b"".join(
            (
                b'{"rows":[',
                b",".join(self.rows),
                b'],"total":',
                str(self.total).encode(),
                b',"next_after":',
                after,
                b"}",
            )
        )


@dataclass(frozen=True)
class Snapshot:
    """The rows as of one store event id and one session, each row's JSON encoded once."""

    key: tuple[int, int]
    rows: tuple[StatusRow, ...]
    encoded: tuple[bytes, ...]
    position: dict[str, int]  # instance -> index in rows
    sites: frozenset[str]
    services: frozenset[str]


def encode_rows(rows: Sequence[StatusRow], masker: Masker) -> tuple[bytes, ...]:
    """Each row's JSON, every string masked (the text too, as MaskedJSON does)."""
    return tuple(
        masker.text(json.dumps(masker.json(row.to_json()), ensure_ascii=False)).encode()
        for row in rows
    )


class StatusView:
    """The kept status of the served project (one per server)."""

    def __init__(self) -> None:
        self._snapshot: Snapshot | None = None
        self._lock = asyncio.Lock()

    async def current(self, session: Session) -> Snapshot:
        """The kept rows, rebuilt first when the store or the served config changed."""
        key = (id(session.flatten(empty_ok=True)), queries.last_change(session))
        found = self._snapshot
        if found is not None and found.key == key:
            return found
        async with self._lock:
            found = self._snapshot
            if found is not None and found.key == key:
                return found
            # A second or so at 10,000 instances: in a thread, so streams and probes go on.
            made = await asyncio.to_thread(build_snapshot, session, key)
            self._snapshot = made
            return made


def build_snapshot(session: Session, key: tuple[int, int]) -> Snapshot:
    """The rows of every instance, without slots (nothing here waits on a host)."""
    report = asyncio.run(queries.status(session, slots=False))
    outline = describe(session)
    return Snapshot(
        key=key,
        rows=report.rows,
        encoded=encode_rows(report.rows, session.masker()),
        position={row.instance: n for n, row in enumerate(report.rows)},
        sites=frozenset(s.name for s in outline.sites),
        services=frozenset(outline.services),
    )


def check_filter(snapshot: Snapshot, wanted: StatusFilter) -> None:
    """Refuse an unknown site or service, naming it."""
    if wanted.site is not None and wanted.site not in snapshot.sites:
        raise UsageError(f'unknown site "{wanted.site}"')
    if wanted.service is not None and wanted.service not in snapshot.services:
        raise UsageError(f'unknown service "{wanted.service}"')


def page_of(
    snapshot: Snapshot, wanted: StatusFilter, *, after: str | None, limit: int
) -> StatusPage:
    """The kept rows after instance `after` (in the report's order) that the filter keeps."""
    check_filter(snapshot, wanted)
    shown, total, next_after = choose(snapshot.rows, snapshot.position, wanted, after, limit)
    return StatusPage([snapshot.encoded[n] for n in shown], total, next_after)


def page_of_report(
    report: StatusReport, wanted: StatusFilter, masker: Masker, *, after: str | None, limit: int
) -> StatusPage:
    """A page of a report made for this one request (with slots): nothing is kept."""
    rows = report.rows
    position = {row.instance: n for n, row in enumerate(rows)}
    shown, total, next_after = choose(rows, position, wanted, after, limit)
    return StatusPage(encode_rows([rows[n] for n in shown], masker), total, next_after)


def choose(
    rows: Sequence[StatusRow],
    position: dict[str, int],
    wanted: StatusFilter,
    after: str | None,
    limit: int,
) -> tuple[list[int], int, str | None]:
    """Indexes of the page's rows, how many rows the filter keeps, and the next page's `after`.

    The key is the instance name, the order the report's (the config's): a page starts right
    after the row of `after`, so a walk sees every row once while the config stays the same."""
    start = 0
    if after is not None:
        found = position.get(after)
        if found is None:
            raise UsageError(f'after: no instance "{after}" (start again without `after`)')
        start = found + 1
    if wanted.empty:
        total = len(rows)
        shown = list(range(start, min(start + limit, total)))
        more = start + limit < total
    else:
        kept = [n for n, row in enumerate(rows) if wanted.keeps(row)]
        total = len(kept)
        later = [n for n in kept if n >= start]
        shown = later[:limit]
        more = len(later) > limit
    next_after = rows[shown[-1]].instance if more and shown else None
    return shown, total, next_after
