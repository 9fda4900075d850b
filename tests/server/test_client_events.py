"""`shipyard events --server` without --follow: every stored event, page by page, as locally.

The server's paging contract (GET /api/events: `after`, `limit`, answer `events` and `last_id`)
is served here by a transport over a list of events, so that paging over many pages is quick to
check; tests/server/test_client_rollouts.py follows a real server's stream."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import pytest

from shipyard.client import streams
from shipyard.client.http import ApiClient
from shipyard.events import Event, Phase

STORED = [
    Event(Phase.UPLOADING, datetime(2026, 12, 2, tzinfo=UTC), rollout_id="r1" if n % 3 else "r2",
          instance=f"web@h{n}", id=n)
    for n in range(1, 26)
]  # fmt: skip


def paging_server(asked: list[dict[str, str]]) -> httpx.MockTransport:
    def answer(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/events"
        params = dict(request.url.params)
        asked.append(params)
        after, limit = int(params.get("after", "0")), int(params.get("limit", "500"))
        chosen = [
            e for e in STORED
            if e.id > after and ("rollout" not in params or e.rollout_id == params["rollout"])
        ][:limit]  # fmt: skip
        body = {
            "events": [e.to_json() for e in chosen],
            "last_id": chosen[-1].id if chosen else after,
        }
        return httpx.Response(200, content=json.dumps(body))

    return httpx.MockTransport(answer)


@pytest.fixture
def small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streams, "PAGE", 4)


@pytest.mark.usefixtures("small_pages")
def test_every_event_is_read_across_pages_in_order() -> None:
    asked: list[dict[str, str]] = []
    api = ApiClient("http://127.0.0.1:1", None, transport=paging_server(asked))

    found = list(streams.stored_events(api))

    assert [e.id for e in found] == [e.id for e in STORED]
    assert len(asked) == 7  # six full pages of 4, then one of 1
    assert [a["after"] for a in asked[:3]] == ["0", "4", "8"]


@pytest.mark.usefixtures("small_pages")
def test_a_limit_and_a_rollout_and_after_are_kept() -> None:
    asked: list[dict[str, str]] = []
    api = ApiClient("http://127.0.0.1:1", None, transport=paging_server(asked))

    found = list(streams.stored_events(api, rollout="r1", after=5, limit=6))

    expected = [e.id for e in STORED if e.rollout_id == "r1" and e.id > 5][:6]
    assert [e.id for e in found] == expected
    assert sum(int(a["limit"]) for a in asked) == 6  # never more asked than the limit
    assert {a["rollout"] for a in asked} == {"r1"}


def test_no_events_is_one_request() -> None:
    asked: list[dict[str, str]] = []
    api = ApiClient("http://127.0.0.1:1", None, transport=paging_server(asked))

    assert list(streams.stored_events(api, after=1_000)) == []
    assert len(asked) == 1
