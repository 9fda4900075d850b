"""Webhook subscriptions and their deliveries: one row per (webhook, event), claimed when due,
retried, finished, redelivered.

Each webhook keeps its own cursor (`event_cursor`): the last event id it has been matched
against. A new webhook starts at the newest event (it receives what happens after it was made),
and `queue_deliveries` creates the deliveries of the events after the cursor and moves the
cursor in one transaction, so a restart resumes exactly there; the unique (webhook, event) key
makes a second pass over the same events (another replica, a held-back cursor) a no-op.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, RowMapping, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from shipyard.events import Event
from shipyard.store import rows
from shipyard.store.journal import Journal, must_exist
from shipyard.store.records import as_utc
from shipyard.store.tables import events, webhook_deliveries, webhooks


@dataclass(frozen=True)
class Webhook:
    """A subscription as stored, secret included (the app layer decides what is shown)."""

    id: str
    url: str
    events: tuple[str, ...]  # phases; empty: every event
    secret: str
    active: bool
    created_by: str
    created_at: datetime
    event_cursor: int

    def wants(self, phase: str) -> bool:
        return not self.events or phase in self.events


@dataclass(frozen=True)
class Delivery:
    """One event sent (or to be sent) to one webhook, with what its last attempt gave."""

    id: int
    webhook_id: str
    event_id: int
    status: str  # pending, delivered, failed
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    created_at: datetime
    started_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True)
class DueDelivery:
    """A claimed delivery with what sending it needs: its webhook and its event."""

    delivery: Delivery
    webhook: Webhook
    event: Event


PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


class Webhooks(Journal):
    """The store's webhooks and deliveries; each public method is one transaction."""

    def add_webhook(
        self,
        *,
        webhook_id: str,
        url: str,
        shown_url: str,
        phases: Sequence[str],
        secret: str,
        actor: str,
    ) -> Webhook:
        """Subscribe `url` to events from now on (the cursor starts at the newest event);
        the audit line names `shown_url` (the URL without its credentials)."""
        with self._write() as conn:
            newest = conn.execute(select(func.coalesce(func.max(events.c.id), 0))).scalar_one()
            conn.execute(
                insert(webhooks).values(
                    id=webhook_id, url=url, events={"phases": list(phases)}, secret=secret,
                    active=True, created_by=actor, created_at=self._clock(),
                    event_cursor=int(newest),
                )
            )  # fmt: skip
            detail = {"url": shown_url, "events": list(phases)}
            self._audit(conn, actor, "webhook.create", f"webhook:{webhook_id}", "success", detail)
            return must_exist(_webhook_in(conn, webhook_id), "webhook", webhook_id)

    def webhook(self, webhook_id: str) -> Webhook | None:
        """The webhook with that id, removed ones too."""
        with self._read() as conn:
            return _webhook_in(conn, webhook_id)

    def webhooks(self) -> list[Webhook]:
        """The active webhooks, the oldest first."""
        query = select(webhooks).where(webhooks.c.active.is_(True))
        return self._all(query.order_by(webhooks.c.created_at, webhooks.c.id), _webhook)

    def remove_webhook(self, webhook_id: str, *, actor: str) -> Webhook:
        """Unsubscribe: nothing more is sent; its pending deliveries fail, its log stays."""
        with self._write() as conn:
            found = _webhook_in(conn, webhook_id)
            if found is None or not found.active:
                must_exist(None, "webhook", webhook_id)
            conn.execute(update(webhooks).where(webhooks.c.id == webhook_id).values(active=False))
            conn.execute(
                update(webhook_deliveries)
                .where(webhook_deliveries.c.webhook_id == webhook_id)
                .where(webhook_deliveries.c.status == PENDING)
                .values(
                    status=FAILED,
                    last_error="the webhook was removed",
                    next_attempt_at=None,
                    finished_at=self._clock(),
                )
            )
            self._audit(conn, actor, "webhook.remove", f"webhook:{webhook_id}", "success", {})
            return must_exist(_webhook_in(conn, webhook_id), "webhook", webhook_id)

    def webhook_cursor(self) -> int | None:
        """Where matching must resume: the lowest cursor of the active webhooks (None: none)."""
        query = select(func.min(webhooks.c.event_cursor)).where(webhooks.c.active.is_(True))
        with self._read() as conn:
            found = conn.execute(query).scalar_one()
            return None if found is None else int(found)

    def queue_deliveries(self, batch: Sequence[Event], *, advance_to: int) -> int:
        """Create a pending delivery for each event of `batch` that an active webhook wants
        and has not been matched against, and move each webhook's cursor up to `advance_to`
        (never back); returns how many deliveries were created."""
        created = 0
        with self._write() as conn:
            now = self._clock()
            dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
            active = select(webhooks).where(webhooks.c.active.is_(True))
            for hook in [_webhook(r) for r in conn.execute(active).mappings()]:
                wanted = [e for e in batch if e.id > hook.event_cursor and hook.wants(e.phase)]
                if wanted:
                    rows = [
                        {
                            "webhook_id": hook.id, "event_id": e.id, "status": PENDING,
                            "attempts": 0, "next_attempt_at": now, "created_at": now,
                            "started_at": now,
                        }
                        for e in wanted
                    ]  # fmt: skip
                    statement = (
                        dialect.insert(webhook_deliveries)
                        .on_conflict_do_nothing()
                        .returning(webhook_deliveries.c.id)
                    )
                    created += len(conn.execute(statement, rows).all())
                if advance_to > hook.event_cursor:
                    conn.execute(
                        update(webhooks)
                        .where(webhooks.c.id == hook.id)
                        .where(webhooks.c.event_cursor < advance_to)
                        .values(event_cursor=advance_to)
                    )
        return created

    def claim_deliveries(
        self,
        *,
        limit: int,
        lease: timedelta,
        per_webhook: int = 4,
        busy: Mapping[str, int] | None = None,
    ) -> list[DueDelivery]:
        """Up to `limit` pending deliveries that are due, oldest first, at most `per_webhook`
        of one webhook counting the `busy` ones it already sends (so one slow receiver cannot
        take every slot), each held for `lease`: its next attempt moves that far ahead, so no
        other dispatcher takes it meanwhile, and one whose sender died is tried again later."""
        sending = dict(busy or {})
        now = self._clock()
        due_where = (webhook_deliveries.c.status == PENDING) & (
            webhook_deliveries.c.next_attempt_at <= now
        )
        with self._read() as conn:  # most passes find nothing: no write transaction for them
            query = select(webhook_deliveries.c.id).where(due_where).limit(1)
            if conn.execute(query).first() is None:
                return []
        with self._write() as conn:
            rank = (
                func.row_number()
                .over(
                    partition_by=webhook_deliveries.c.webhook_id,
                    order_by=(webhook_deliveries.c.next_attempt_at, webhook_deliveries.c.id),
                )
                .label("rank")
            )
            ranked = (
                select(webhook_deliveries.c.id, rank)
                .join(webhooks, webhooks.c.id == webhook_deliveries.c.webhook_id)
                .where(due_where)
                .where(webhooks.c.active.is_(True))
                .subquery()
            )
            firsts = select(ranked.c.id).where(ranked.c.rank <= per_webhook)
            due = (
                select(webhook_deliveries)
                .where(webhook_deliveries.c.id.in_(firsts))
                .where(due_where)
                .order_by(webhook_deliveries.c.next_attempt_at, webhook_deliveries.c.id)
                .with_for_update(skip_locked=True)
            )
            claimed: list[Delivery] = []
            for found_row in conn.execute(due).mappings():
                delivery = _delivery(found_row)
                if len(claimed) < limit and sending.get(delivery.webhook_id, 0) < per_webhook:
                    sending[delivery.webhook_id] = sending.get(delivery.webhook_id, 0) + 1
                    claimed.append(delivery)
            if not claimed:
                return []
            conn.execute(
                update(webhook_deliveries)
                .where(webhook_deliveries.c.id.in_([d.id for d in claimed]))
                .values(next_attempt_at=now + lease)
            )
            hook_ids = {d.webhook_id for d in claimed}
            found = conn.execute(select(webhooks).where(webhooks.c.id.in_(hook_ids)))
            hooks = {h.id: h for h in (_webhook(r) for r in found.mappings())}
            event_rows = conn.execute(
                select(events).where(events.c.id.in_({d.event_id for d in claimed}))
            )
            by_id = {e.id: e for e in (rows.event(r) for r in event_rows.mappings())}
            return [
                DueDelivery(d, hooks[d.webhook_id], by_id[d.event_id])
                for d in claimed
                if d.event_id in by_id
            ]

    def record_attempt(
        self,
        delivery_id: int,
        *,
        status_code: int | None,
        error: str | None,
        outcome: str,
        next_attempt_at: datetime | None = None,
    ) -> Delivery:
        """Note one attempt: `outcome` is pending (to retry at `next_attempt_at`), delivered or
        failed (given up, `error` the last one). A delivery no longer pending is left alone."""
        if outcome not in (PENDING, DELIVERED, FAILED):
            raise ValueError(f"unknown delivery outcome {outcome!r}")
        final = outcome != PENDING
        with self._write() as conn:
            conn.execute(
                update(webhook_deliveries)
                .where(webhook_deliveries.c.id == delivery_id)
                .where(webhook_deliveries.c.status == PENDING)
                .values(
                    status=outcome,
                    attempts=webhook_deliveries.c.attempts + 1,
                    last_status_code=status_code,
                    last_error=error,
                    next_attempt_at=None if final else next_attempt_at,
                    finished_at=self._clock() if final else None,
                )
            )
            return must_exist(_delivery_in(conn, delivery_id), "delivery", str(delivery_id))

    def delivery(self, delivery_id: int) -> Delivery | None:
        with self._read() as conn:
            return _delivery_in(conn, delivery_id)

    def deliveries(
        self, webhook_id: str, *, limit: int = 50, before: int | None = None
    ) -> list[Delivery]:
        """A webhook's deliveries, the newest first; `before` (a delivery id) pages back."""
        query = select(webhook_deliveries).where(webhook_deliveries.c.webhook_id == webhook_id)
        if before is not None:
            query = query.where(webhook_deliveries.c.id < before)
        query = query.order_by(webhook_deliveries.c.id.desc()).limit(limit)
        return self._all(query, _delivery)

    def redeliver(self, delivery_id: int, *, actor: str) -> Delivery:
        """Send a delivery again from now (a new round of retries; its attempts keep counting)."""
        with self._write() as conn:
            found = must_exist(_delivery_in(conn, delivery_id), "delivery", str(delivery_id))
            now = self._clock()
            conn.execute(
                update(webhook_deliveries)
                .where(webhook_deliveries.c.id == delivery_id)
                .values(status=PENDING, next_attempt_at=now, started_at=now, finished_at=None)
            )
            target = f"webhook:{found.webhook_id}"
            detail = {"delivery": delivery_id, "event": found.event_id, "was": found.status}
            self._audit(conn, actor, "webhook.redeliver", target, "pending", detail)
            return must_exist(_delivery_in(conn, delivery_id), "delivery", str(delivery_id))


def _webhook_in(conn: Connection, webhook_id: str) -> Webhook | None:
    found = conn.execute(select(webhooks).where(webhooks.c.id == webhook_id)).mappings().first()
    return _webhook(found) if found else None


def _delivery_in(conn: Connection, delivery_id: int) -> Delivery | None:
    query = select(webhook_deliveries).where(webhook_deliveries.c.id == delivery_id)
    found = conn.execute(query).mappings().first()
    return _delivery(found) if found else None


def _webhook(row: RowMapping) -> Webhook:
    phases = (row["events"] or {}).get("phases", [])
    return Webhook(
        id=row["id"],
        url=row["url"],
        events=tuple(str(p) for p in phases),
        secret=row["secret"],
        active=bool(row["active"]),
        created_by=row["created_by"],
        created_at=as_utc(row["created_at"]),
        event_cursor=int(row["event_cursor"]),
    )


def _delivery(row: RowMapping) -> Delivery:
    def when(value: datetime | None) -> datetime | None:
        return as_utc(value) if value is not None else None

    return Delivery(
        id=int(row["id"]),
        webhook_id=row["webhook_id"],
        event_id=int(row["event_id"]),
        status=row["status"],
        attempts=int(row["attempts"]),
        last_status_code=row["last_status_code"],
        last_error=row["last_error"],
        next_attempt_at=when(row["next_attempt_at"]),
        created_at=as_utc(row["created_at"]),
        started_at=as_utc(row["started_at"]),
        finished_at=when(row["finished_at"]),
    )
