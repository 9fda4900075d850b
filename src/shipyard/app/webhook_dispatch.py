"""What a webhook dispatcher does, step by step, over a session: match new events to the
subscriptions, claim the deliveries that are due, and record how each attempt went (with the
next one after an exponential back-off with full jitter, until the give-up time).

The store's events table is the source, so events written by CLI processes count too. Each
webhook's cursor lives in the store (see store/webhooks.py). On PostgreSQL an event id can
become visible after a larger one (ids are handed out before the transactions commit), so the
cursor is held just before a gap for up to `GAP_WAIT` seconds: the events after the gap get
their deliveries at once, and the late one is still found when it commits; the unique
(webhook, event) key keeps the re-read from sending anything twice.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from shipyard.app.session import Session
from shipyard.app.webhooks import DeliveryView, delivery_view, sign
from shipyard.store.webhooks import DELIVERED, FAILED, PENDING, DueDelivery

GAP_WAIT = 10.0  # seconds an id gap may hold the cursor back
PAGE = 500  # events matched per pass


@dataclass(frozen=True)
class Backoff:
    """Retry delays: full jitter over `base * 2**(attempt-1)`, capped at `cap` seconds."""

    base: float = 1.0
    cap: float = 300.0

    def delay(self, attempts: int, rng: Callable[[float, float], float] = random.uniform) -> float:
        ceiling = min(self.cap, self.base * 2 ** max(0, attempts - 1))
        return rng(0.0, ceiling)


@dataclass
class GapWatch:
    """When each id gap was first seen, to hold the cursor before it for a while only."""

    wait: float = GAP_WAIT
    clock: Callable[[], float] = time.monotonic
    _seen: dict[int, float] = field(default_factory=dict)

    def settled(self, cursor: int, ids: list[int]) -> int:
        """The highest id up to which every id after `cursor` was read or waited for."""
        expected = cursor + 1
        for found in sorted(ids):
            if found > expected:
                first = self._seen.setdefault(expected, self.clock())
                if self.clock() - first < self.wait:
                    return expected - 1
            expected = found + 1
        self._seen = {k: v for k, v in self._seen.items() if k >= expected}
        return expected - 1


@dataclass(frozen=True)
class Outgoing:
    """A claimed delivery ready to send: where, the body, and how to sign it."""

    delivery_id: int
    webhook_id: str
    url: str
    phase: str
    body: bytes
    attempts: int  # before this one
    started_at_unix: float  # when this round of attempts began
    _secret: str

    def headers(self, now: float | None = None) -> dict[str, str]:
        timestamp = int(time.time() if now is None else now)
        return {
            "Content-Type": "application/json",
            "Shipyard-Event": self.phase,
            "Shipyard-Delivery": str(self.delivery_id),
            "Shipyard-Signature": sign(self._secret, self.body, timestamp),
        }


def queue_new_events(session: Session, gaps: GapWatch) -> bool:
    """Create the deliveries of the events after the webhooks' cursors; True when there may be
    more to read at once (a full page was read and the cursor moved past all of it)."""
    store = session.store
    cursor = store.webhook_cursor()
    if cursor is None:
        return False
    batch = store.events(after_id=cursor, limit=PAGE)
    if not batch:
        return False
    advance_to = gaps.settled(cursor, [e.id for e in batch])
    store.queue_deliveries(batch, advance_to=advance_to)
    return len(batch) == PAGE and advance_to == batch[-1].id


def claim_due(
    session: Session,
    *,
    limit: int,
    lease: float,
    per_webhook: int,
    busy: Mapping[str, int],
) -> list[Outgoing]:
    """Up to `limit` due deliveries, held for `lease` seconds, as what to send; at most
    `per_webhook` in flight to one webhook, counting the `busy` ones."""
    if limit <= 0:
        return []
    claimed = session.store.claim_deliveries(
        limit=limit, lease=timedelta(seconds=lease), per_webhook=per_webhook, busy=busy
    )
    masker = session.masker()
    return [_outgoing(due, masker.json) for due in claimed]


def record_result(
    session: Session,
    sent: Outgoing,
    *,
    status_code: int | None,
    error: str | None,
    backoff: Backoff,
    give_up: float,
    now: float | None = None,
) -> DeliveryView:
    """Note how sending went: delivered on a 2xx answer; otherwise retried after a back-off,
    or failed with this error once the next try would fall past `give_up` seconds."""
    store = session.store
    if error is None and status_code is not None and 200 <= status_code < 300:
        return delivery_view(
            store.record_attempt(
                sent.delivery_id, status_code=status_code, error=None, outcome=DELIVERED
            )
        )
    reason = error or f"the receiver answered HTTP {status_code}"
    reason = session.masker().text(reason)
    moment = time.time() if now is None else now
    wait = backoff.delay(sent.attempts + 1)
    if moment + wait > sent.started_at_unix + give_up:
        outcome = store.record_attempt(
            sent.delivery_id, status_code=status_code, error=reason, outcome=FAILED
        )
    else:
        outcome = store.record_attempt(
            sent.delivery_id,
            status_code=status_code,
            error=reason,
            outcome=PENDING,
            next_attempt_at=store.clock() + timedelta(seconds=wait),
        )
    return delivery_view(outcome)


def _outgoing(due: DueDelivery, mask: Callable[[object], object]) -> Outgoing:
    body = {
        "webhook_id": due.webhook.id,
        "delivery_id": due.delivery.id,
        "event": due.event.to_json(),
    }
    encoded = json.dumps(mask(body), separators=(",", ":"), ensure_ascii=False).encode()
    return Outgoing(
        delivery_id=due.delivery.id,
        webhook_id=due.webhook.id,
        url=due.webhook.url,
        phase=due.event.phase.value,
        body=encoded,
        attempts=due.delivery.attempts,
        started_at_unix=due.delivery.started_at.timestamp(),
        _secret=due.webhook.secret,
    )
