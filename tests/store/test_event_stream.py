"""The store's event stream (typed events in one transaction, read back in id order, masked)
and its step logs (host output per deployment step, bounded, masked)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert

from shipyard.deploy.steplogs import LIMIT, bounded
from shipyard.events import WRITE_BATCH, Event, EventBus, Phase
from shipyard.masking import Masker
from shipyard.store import StepLog, Store, open_store
from shipyard.store.tables import events

AT = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)
SECRET = "s3ntinel-Hunter2-value"


def deployment(n: int, phase: Phase, rollout: str = "r1", **fields: str) -> Event:
    return Event(
        phase,
        AT + timedelta(seconds=n),
        rollout,
        f"d{n}",
        f"api@web-{n}",
        "eu",
        f"web-{n}",
        **fields,
    )


def test_a_batch_is_stored_in_order_and_read_back_as_it_was(store: Store) -> None:
    batch = [
        Event(Phase.ROLLOUT_STARTED, AT, "r1", detail="deploy api"),
        deployment(1, Phase.QUEUED),
        deployment(1, Phase.UPLOADING),
        deployment(1, Phase.FINISHED, result="success"),
        Event(Phase.ROLLOUT_FINISHED, AT, "r1", result="success"),
    ]
    ids = store.append_events(batch)
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    found = store.events()
    assert [e.id for e in found] == ids
    assert [e.phase for e in found] == [e.phase for e in batch]
    assert found == [replace(e, id=i) for e, i in zip(batch, ids, strict=True)]
    assert found[0].kind == "rollout"
    assert found[1].kind == "deployment"
    assert store.last_event_id() == ids[-1]
    assert store.append_events([]) == []


def test_paging_with_after_id_and_limit_sees_every_event_once(store: Store) -> None:
    for n in range(7):
        store.append_events([deployment(n, Phase.QUEUED), deployment(n, Phase.SWITCHING)])
    seen: list[int] = []
    after = 0
    while page := store.events(after_id=after, limit=3):
        seen += [e.id for e in page]
        after = page[-1].id
    assert seen == [e.id for e in store.events(limit=100)]
    assert len(seen) == 14


def test_the_rollout_filter_keeps_one_rollouts_events(store: Store) -> None:
    store.append_events([deployment(1, Phase.QUEUED, "r1"), deployment(2, Phase.QUEUED, "r2")])
    store.append_events([deployment(1, Phase.FINISHED, "r1", result="failed")])
    ours = store.events(rollout_id="r1")
    assert [(e.instance, e.phase) for e in ours] == [
        ("api@web-1", Phase.QUEUED),
        ("api@web-1", Phase.FINISHED),
    ]
    assert store.events(rollout_id="r1", after_id=ours[0].id) == ours[1:]


def test_detail_is_masked_on_its_way_in(store_url: str) -> None:
    with open_store(store_url, masker=Masker([SECRET])) as store:
        store.append_events([deployment(1, Phase.FINISHED, result="failed", detail=SECRET)])
        (found,) = store.events()
    assert SECRET not in found.detail
    assert "***" in found.detail


def test_rows_from_before_the_typed_stream_are_read_as_events(store: Store) -> None:
    old = [
        {"deployment": "d1", "revision": "r1", "kind": "deploy", "status": "pending"},
        {"deployment": "d1", "status": "in_progress"},
        {"deployment": "d1", "revision": "r1", "status": "failed", "error": "exit 3"},
    ]
    with store.engine.begin() as conn:
        for payload in old:
            row = {"at": AT, "kind": "deployment", "instance": "api@web-1", "payload": payload}
            conn.execute(insert(events).values(row))
    found = store.events()
    assert [(e.phase, e.result) for e in found] == [
        (Phase.QUEUED, None),
        (Phase.QUEUED, None),
        (Phase.FINISHED, "failed"),
    ]
    assert {e.deployment_id for e in found} == {"d1"}
    assert "exit 3" in found[2].detail
    store.append_events([deployment(5, Phase.QUEUED)])
    assert [e.phase for e in store.events(after_id=found[-1].id)] == [Phase.QUEUED]


def test_a_bus_writing_to_the_store_delivers_stored_ids(store: Store) -> None:
    bus = EventBus(store.append_events)
    got: list[Event] = []
    bus.subscribe(got.append)

    async def publish() -> None:
        for n in range(20):
            bus.publish(deployment(n, Phase.QUEUED))
        await bus.flush()

    asyncio.run(publish())
    assert [e.id for e in got] == [e.id for e in store.events()]
    assert all(e.id > 0 for e in got)


def test_a_burst_is_stored_in_batches_and_delivered_as_each_is_stored(store: Store) -> None:
    """450 events published at once: three writes (200, 200, 50); the first batch reaches the
    subscriber while the rest is still being written, and every id comes in order, once."""
    written: list[int] = []
    seen_at_write: list[int] = []
    got: list[Event] = []

    def writer(batch: Sequence[Event]) -> list[int]:
        seen_at_write.append(len(got))
        written.append(len(batch))
        return store.append_events(batch)

    bus = EventBus(writer)
    bus.subscribe(got.append)

    async def publish() -> None:
        for n in range(450):
            bus.publish(deployment(n, Phase.QUEUED))
        await bus.flush()

    asyncio.run(publish())
    assert written == [WRITE_BATCH, WRITE_BATCH, 50]
    assert seen_at_write[0] == 0
    assert seen_at_write[-1] >= WRITE_BATCH  # the first batch delivered before the last write
    assert [e.id for e in got] == [e.id for e in store.events(limit=1000)]
    assert [e.deployment_id for e in got] == [f"d{n}" for n in range(450)]


def test_step_logs_are_read_back_per_deployment_in_step_order(store_url: str) -> None:
    with open_store(store_url, masker=Masker([SECRET])) as store:
        store.append_step_logs(
            [
                StepLog("d1", 2, "install", "web-1", AT, 0, f"pip said {SECRET}"),
                StepLog("d2", 1, "prepare", "web-2", AT, 0, "other"),
                StepLog("d1", 1, "prepare", "web-1", AT, None, ""),
            ]
        )
        store.append_step_logs([])
        found = store.step_logs("d1")
    assert [(s.seq, s.step, s.exit_status) for s in found] == [
        (1, "prepare", None),
        (2, "install", 0),
    ]
    assert found[1].output == "pip said ***"
    assert found[1].at == AT


def test_a_steps_output_is_kept_to_its_last_64_kib_with_a_marker() -> None:
    assert bounded("short") == "short"
    cut = bounded("a" * 100 + "b" * LIMIT)
    assert cut.startswith("[output cut: the first 100 bytes are not kept]\n")
    assert cut.endswith("b" * LIMIT)
    assert "a" not in cut.split("\n", 1)[1]
