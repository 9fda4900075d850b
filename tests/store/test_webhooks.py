"""The store's webhooks (SQLite and PostgreSQL): subscriptions audited, one delivery per
(webhook, event), cursors that resume where they stopped, claims, attempts, redelivery."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shipyard.events import Event, Phase
from shipyard.store import Store

from .builders import Clock

AT = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)


def write(store: Store, *phases: Phase) -> list[Event]:
    batch = [Event(p, AT + timedelta(seconds=n), "r1", instance="web@local") for n, p in
             enumerate(phases)]  # fmt: skip
    ids = store.append_events(batch)
    return store.events(after_id=ids[0] - 1)


def subscribe(store: Store, hook_id: str, *phases: str) -> None:
    store.add_webhook(
        webhook_id=hook_id, url="https://u:p@example.test/h", shown_url="https://***@example.test/h",
        phases=list(phases), secret="s" * 20, actor="alice",
    )  # fmt: skip


def test_a_new_webhook_starts_after_the_newest_event_and_its_creation_is_audited(
    store: Store,
) -> None:
    write(store, Phase.ROLLOUT_STARTED)
    subscribe(store, "h1")
    [hook] = store.webhooks()
    assert hook.event_cursor == store.last_event_id()
    [line] = [a for a in store.audit() if a.action == "webhook.create"]
    assert (line.target, line.detail["url"]) == ("webhook:h1", "https://***@example.test/h")
    assert "u:p" not in str(line.detail)


def test_events_become_deliveries_once_per_webhook_that_wants_them(store: Store) -> None:
    subscribe(store, "all")
    subscribe(store, "ends", "rollout-finished")
    batch = write(store, Phase.ROLLOUT_STARTED, Phase.ROLLOUT_FINISHED)
    assert store.queue_deliveries(batch, advance_to=batch[-1].id) == 3
    assert store.queue_deliveries(batch, advance_to=batch[-1].id) == 0  # (webhook, event) key
    assert [d.event_id for d in store.deliveries("all")] == [batch[1].id, batch[0].id]
    assert [d.event_id for d in store.deliveries("ends")] == [batch[1].id]
    assert store.webhook_cursor() == batch[-1].id


def test_a_held_back_cursor_never_moves_back(store: Store) -> None:
    subscribe(store, "h1")
    batch = write(store, Phase.QUEUED, Phase.FINISHED)
    store.queue_deliveries(batch, advance_to=batch[-1].id)
    store.queue_deliveries(batch, advance_to=batch[0].id)
    assert store.webhook_cursor() == batch[-1].id


def test_a_claimed_delivery_is_not_claimed_again_until_its_lease_ends(
    timed_store: Store, clock: Clock
) -> None:
    store = timed_store
    subscribe(store, "h1")
    batch = write(store, Phase.QUEUED)
    store.queue_deliveries(batch, advance_to=batch[-1].id)
    [due] = store.claim_deliveries(limit=10, lease=timedelta(seconds=30))
    assert (due.webhook.id, due.event.id, due.webhook.secret) == ("h1", batch[0].id, "s" * 20)
    assert store.claim_deliveries(limit=10, lease=timedelta(seconds=30)) == []
    clock.advance(31)
    assert len(store.claim_deliveries(limit=10, lease=timedelta(seconds=30))) == 1


def test_attempts_are_counted_with_their_error_until_the_delivery_finishes(store: Store) -> None:
    subscribe(store, "h1")
    batch = write(store, Phase.QUEUED)
    store.queue_deliveries(batch, advance_to=batch[-1].id)
    [due] = store.claim_deliveries(limit=1, lease=timedelta(seconds=30))
    later = store.clock() + timedelta(seconds=5)
    retry = store.record_attempt(
        due.delivery.id, status_code=500, error="HTTP 500", outcome="pending",
        next_attempt_at=later,
    )  # fmt: skip
    assert (retry.status, retry.attempts, retry.last_error) == ("pending", 1, "HTTP 500")
    done = store.record_attempt(due.delivery.id, status_code=204, error=None, outcome="delivered")
    assert (done.status, done.attempts, done.last_status_code) == ("delivered", 2, 204)
    assert done.finished_at is not None
    again = store.record_attempt(due.delivery.id, status_code=500, error="x", outcome="failed")
    assert again.status == "delivered"  # a finished delivery is left alone


def test_redelivery_makes_a_finished_delivery_pending_again_and_is_audited(store: Store) -> None:
    subscribe(store, "h1")
    batch = write(store, Phase.QUEUED)
    store.queue_deliveries(batch, advance_to=batch[-1].id)
    [due] = store.claim_deliveries(limit=1, lease=timedelta(seconds=30))
    store.record_attempt(due.delivery.id, status_code=None, error="refused", outcome="failed")
    again = store.redeliver(due.delivery.id, actor="bob")
    assert (again.status, again.attempts, again.finished_at) == ("pending", 1, None)
    assert len(store.claim_deliveries(limit=1, lease=timedelta(seconds=30))) == 1
    [line] = [a for a in store.audit() if a.action == "webhook.redeliver"]
    assert (line.actor, line.detail["was"]) == ("bob", "failed")


def test_a_removed_webhook_gets_nothing_more_and_its_pending_deliveries_fail(
    store: Store,
) -> None:
    subscribe(store, "h1")
    batch = write(store, Phase.QUEUED)
    store.queue_deliveries(batch, advance_to=batch[-1].id)
    store.remove_webhook("h1", actor="alice")
    assert store.webhooks() == []
    assert store.webhook_cursor() is None
    [gone] = store.deliveries("h1")
    assert (gone.status, gone.last_error) == ("failed", "the webhook was removed")
    assert store.claim_deliveries(limit=1, lease=timedelta(seconds=30)) == []


def test_the_delivery_log_pages_back_by_id(store: Store) -> None:
    subscribe(store, "h1")
    batch = write(store, Phase.QUEUED, Phase.UPLOADING, Phase.FINISHED)
    store.queue_deliveries(batch, advance_to=batch[-1].id)
    first = store.deliveries("h1", limit=2)
    rest = store.deliveries("h1", limit=2, before=first[-1].id)
    assert [d.event_id for d in first + rest] == [e.id for e in reversed(batch)]


def test_a_claim_takes_few_of_one_webhook_so_that_others_get_their_turn(store: Store) -> None:
    subscribe(store, "slow")
    subscribe(store, "fast")
    batch = write(store, *[Phase.QUEUED] * 6)
    store.queue_deliveries(batch, advance_to=batch[-1].id)
    lease = timedelta(seconds=30)
    claimed = store.claim_deliveries(limit=10, lease=lease, per_webhook=2, busy={"slow": 1})
    hooks = sorted(d.webhook.id for d in claimed)
    assert hooks == ["fast", "fast", "slow"]
