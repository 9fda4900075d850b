"""Live streams over SSE, in-process: a rollout followed to its end, resuming, a slow client,
closing, and one deployment's step output."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shipyard.app.logs import events as stored_events
from shipyard.app.logs import last_event_id
from shipyard.client.http import ServerEvent, parse_sse
from shipyard.server.state import ServerState

from .conftest import Api, serve
from .test_server_core import wait_finished

pytestmark = pytest.mark.integration


def start_rollout(api: Api) -> str:
    started = api.client.post("/api/rollouts", json={"instances": ["web@local"], "force": True})
    assert started.status_code == 202, started.text
    rollout_id: str = started.json()["id"]
    return rollout_id


def read_stream(api: Api, path: str, headers: dict[str, str] | None = None) -> list[ServerEvent]:
    with api.client.stream("GET", path, headers=headers or {}) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        return list(parse_sse(response.iter_lines()))


def stored_ids(api: Api, rollout_id: str) -> list[int]:
    return [e.id for e in stored_events(api.state.session, rollout_id=rollout_id)]


def test_following_a_rollout_gives_every_event_once_in_order_then_ends(api: Api) -> None:
    rollout_id = start_rollout(api)
    got = read_stream(api, f"/api/events/stream?rollout={rollout_id}")
    assert [int(e.id or 0) for e in got] == stored_ids(api, rollout_id)
    assert got[-1].event == "rollout-finished"
    assert {e.data["rollout_id"] for e in got} == {rollout_id}
    assert [e.event for e in got] == [e.data["phase"] for e in got]


def test_resuming_from_last_event_id_misses_nothing(api: Api) -> None:
    rollout_id = start_rollout(api)
    wait_finished(api, rollout_id)
    ids = stored_ids(api, rollout_id)
    resumed = read_stream(
        api, f"/api/events/stream?rollout={rollout_id}", {"Last-Event-ID": str(ids[2])}
    )
    assert [int(e.id or 0) for e in resumed] == ids[3:]


def test_the_after_query_resumes_like_the_header(api: Api) -> None:
    rollout_id = start_rollout(api)
    wait_finished(api, rollout_id)
    ids = stored_ids(api, rollout_id)
    resumed = read_stream(api, f"/api/events/stream?rollout={rollout_id}&after={ids[0]}")
    assert [int(e.id or 0) for e in resumed] == ids[1:]


def test_a_bad_last_event_id_is_refused_naming_the_header(api: Api) -> None:
    refused = api.client.get("/api/events/stream", headers={"Last-Event-ID": "soon"})
    assert refused.status_code == 400
    assert "Last-Event-ID" in refused.json()["error"]["message"]


@pytest.fixture
def tiny_buffer(served_root: Path, tmp_path: Path) -> Iterator[Api]:
    yield from serve(served_root, f"sqlite:///{tmp_path}/state.db", sse_buffer=10)


def test_a_slow_client_is_told_to_resume_and_the_rollouts_finish(tiny_buffer: Api) -> None:
    api = tiny_buffer
    start = last_event_id(api.state.session)
    with api.client.stream("GET", f"/api/events/stream?after={start}") as response:
        finished = [wait_finished(api, start_rollout(api)) for _ in range(3)]
        got = list(parse_sse(response.iter_lines()))
    assert [f["status"] for f in finished] == ["success"] * 3
    assert got[-1].event == "resume"
    delivered = [int(e.id or 0) for e in got[:-1]]
    assert got[-1].data == {"after": delivered[-1]}
    everything = [e.id for e in stored_events(api.state.session, after_id=start)]
    assert delivered == everything[: len(delivered)]
    assert len(delivered) < len(everything)


async def close(state: ServerState) -> None:
    state.closing.set()
    state.wakeup.set()


def test_every_stream_ends_when_the_server_is_closing(api: Api) -> None:
    start = last_event_id(api.state.session)
    with api.client.stream("GET", f"/api/events/stream?after={start}") as response:
        assert api.client.portal is not None
        api.client.portal.call(close, api.state)
        got = list(parse_sse(response.iter_lines()))
    assert got == []


def test_a_deployment_log_streams_each_step_then_its_end(api: Api) -> None:
    rollout_id = start_rollout(api)
    [deployment] = wait_finished(api, rollout_id)["deployments"]
    got = read_stream(api, f"/api/deployments/{deployment['id']}/log/stream")
    steps = api.client.get(f"/api/deployments/{deployment['id']}/log")
    assert got[-1].event == "end"
    assert got[-1].data == {"status": "success", "error": None}
    assert [e.event for e in got[:-1]] == ["step"] * (len(got) - 1)
    if steps.status_code == 200:  # the log route is another helper's
        assert [e.data for e in got[:-1]] == steps.json()["steps"]


def test_following_a_rollout_over_postgresql(pg_api: Api) -> None:
    rollout_id = start_rollout(pg_api)
    got = read_stream(pg_api, f"/api/events/stream?rollout={rollout_id}")
    assert [int(e.id or 0) for e in got] == stored_ids(pg_api, rollout_id)
    assert got[-1].event == "rollout-finished"


def read_until(api: Api, path: str, last: str) -> list[ServerEvent]:
    """A stream that does not end by itself, read up to the first event of type `last`."""
    got: list[ServerEvent] = []
    with api.client.stream("GET", path) as response:
        for item in parse_sse(response.iter_lines()):
            got.append(item)
            if item.event == last:
                break
    return got


def test_the_instance_and_site_filters_keep_only_their_events(api: Api) -> None:
    start = last_event_id(api.state.session)
    rollout_id = start_rollout(api)
    wait_finished(api, rollout_id)
    [site] = {e.site for e in stored_events(api.state.session, rollout_id=rollout_id) if e.site}
    by_instance = read_until(
        api, f"/api/events/stream?after={start}&instance=web@local", "finished"
    )
    by_site = read_until(api, f"/api/events/stream?after={start}&site={site}", "finished")
    wanted = [
        e.id
        for e in stored_events(api.state.session, rollout_id=rollout_id)
        if e.instance == "web@local"
    ]
    assert [int(e.id or 0) for e in by_instance] == wanted
    assert [int(e.id or 0) for e in by_site] == wanted
    assert not [e for e in by_instance if e.event.startswith("rollout-")]


def test_the_api_description_says_the_streams_are_server_sent_events(api: Api) -> None:
    paths = api.anonymous.get("/api/openapi.json").json()["paths"]
    for path in ("/api/events/stream", "/api/deployments/{deployment_id}/log/stream"):
        assert list(paths[path]["get"]["responses"]["200"]["content"]) == ["text/event-stream"]


def test_the_client_resumes_by_itself_and_misses_nothing(tiny_buffer: Api) -> None:
    from shipyard.client import streams
    from shipyard.client.http import ApiClient

    api = tiny_buffer
    start = last_event_id(api.state.session)
    wait_finished(api, start_rollout(api))
    # The CLI's client over the in-process app (the test client's own transport).
    client = ApiClient("http://testserver", api.token, transport=api.client._transport)
    told: list[str] = []
    stream = client.stream

    def counted(*args: Any, **kwargs: Any) -> Iterator[ServerEvent]:
        for item in stream(*args, **kwargs):
            told.append(item.event)
            yield item

    client.stream = counted  # type: ignore[method-assign]
    followed = streams.events(client, after=start)
    got = [next(followed)]  # connected; it reads no more while two more rollouts run
    for _ in range(2):
        wait_finished(api, start_rollout(api))
    everything = [e.id for e in stored_events(api.state.session, after_id=start)]
    while got[-1].id != everything[-1]:
        got.append(next(followed))
    followed.close()
    client.close()
    assert [e.id for e in got] == everything
    assert "resume" in told, "the client fell behind and was told to resume"


def test_events_another_process_writes_mid_rollout_reach_a_follower_in_id_order_once(
    api: Api,
) -> None:
    """The hub hands out this server's events as they are stored; another writer's (a CLI's)
    events leave gaps in the ids, which the hub fills from the store: nothing lost, nothing
    twice, all in id order."""
    import threading
    from datetime import UTC, datetime

    from shipyard.events import Event, Phase

    start = last_event_id(api.state.session)
    store = api.state.session.store
    stop = threading.Event()

    def other_writer() -> None:
        while not stop.is_set():
            store.append_events([Event(Phase.QUEUED, datetime.now(UTC), rollout_id="cli-r")])
            stop.wait(0.01)

    writer = threading.Thread(target=other_writer)
    writer.start()
    try:
        rollout_id = start_rollout(api)
        with api.client.stream("GET", f"/api/events/stream?after={start}") as response:
            got: list[int] = []
            for event in parse_sse(response.iter_lines()):
                got.append(int(event.id or 0))
                if event.data.get("rollout_id") == rollout_id and event.event == "rollout-finished":
                    break
    finally:
        stop.set()
        writer.join()
    stored = [e.id for e in stored_events(api.state.session, after_id=start) if e.id <= got[-1]]
    assert got == stored
    assert {e.rollout_id for e in stored_events(api.state.session, after_id=start)} >= {
        rollout_id, "cli-r",
    }  # fmt: skip
