"""Webhooks through the API, to a real receiver on 127.0.0.1 that checks every signature with
`verify`: a rollout's events arrive signed, failures are retried and then given up with the
error, a delivery can be sent again, a hanging receiver does not hold a rollout up."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from shipyard.app.webhook_dispatch import Backoff
from shipyard.app.webhooks import sign, verify
from shipyard.events import Event, Phase
from shipyard.server.app import create_app
from shipyard.server.settings import Settings
from shipyard.server.webhooks import Dispatcher
from shipyard.store import open_store

from .conftest import Api, serve

pytestmark = pytest.mark.integration

FAST = Backoff(base=0.05, cap=0.2)


@dataclass
class Receiver:
    """A webhook receiver: answers `fail_first` requests with 500 (or all with `always_fail`),
    holds requests while `hang` is set, and keeps what arrived with its signature's verdict."""

    secret: str = ""
    fail_first: int = 0
    always_fail: bool = False
    hang: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    seen: list[dict[str, Any]] = field(default_factory=list)
    hanging: int = 0
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def bodies(self) -> list[dict[str, Any]]:
        with self.lock:
            return [s["body"] for s in self.seen if s["status"] == 200]


@contextlib.contextmanager
def receiving() -> Iterator[Receiver]:
    """A receiver on 127.0.0.1, stopped (its held requests released) on the way out."""
    got = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            if got.hang.is_set():
                with got.lock:
                    got.hanging += 1
                got.release.wait(60)
            with got.lock:
                failing = got.always_fail or got.fail_first > 0
                got.fail_first -= 1
                status = 500 if failing else 200
                got.seen.append({
                    "status": status,
                    "verified": verify(got.secret, self.headers["Shipyard-Signature"], raw),
                    "event_header": self.headers["Shipyard-Event"],
                    "delivery_header": self.headers["Shipyard-Delivery"],
                    "content_type": self.headers["Content-Type"],
                    "body": json.loads(raw),
                })  # fmt: skip
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    got.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        yield got
    finally:
        got.release.set()
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as got:
        yield got


def wait_for(what: Callable[[], bool], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if what():
            return
        time.sleep(0.05)
    raise AssertionError(f"still not so after {timeout:g} s")


def dispatcher(api: Api) -> Dispatcher:
    found = api.client.app.state.webhooks  # type: ignore[attr-defined]
    assert isinstance(found, Dispatcher)
    return found


def subscribe(api: Api, receiver: Receiver, events: list[str] | None = None) -> dict[str, Any]:
    made = api.client.post("/api/webhooks", json={"url": receiver.url, "events": events or []})
    assert made.status_code == 201, made.text
    body: dict[str, Any] = made.json()
    receiver.secret = body["secret"]
    return body


def roll_out(api: Api) -> str:
    started = api.client.post("/api/rollouts", json={"instances": ["web@local"], "force": True})
    assert started.status_code == 202, started.text
    rollout_id: str = started.json()["id"]
    return rollout_id


def finished(api: Api, rollout_id: str) -> bool:
    found = api.client.get(f"/api/rollouts/{rollout_id}").json()
    return bool(found["status"] != "in_progress" and not found["running_here"])


def rollout_finished_arrived(receiver: Receiver) -> bool:
    return any(b["event"]["phase"] == "rollout-finished" for b in receiver.bodies())


def check_signed_rollout(api: Api, receiver: Receiver) -> None:
    hook = subscribe(api, receiver)
    rollout_id = roll_out(api)
    wait_for(lambda: finished(api, rollout_id))
    wait_for(lambda: rollout_finished_arrived(receiver))
    assert all(s["verified"] for s in receiver.seen)
    phases = {b["event"]["phase"] for b in receiver.bodies()}
    assert {"rollout-started", "queued", "finished"} <= phases  # sent at once: in any order
    assert all(b["webhook_id"] == hook["id"] for b in receiver.bodies())
    for seen in receiver.seen:
        assert seen["event_header"] == seen["body"]["event"]["phase"]
        assert seen["delivery_header"] == str(seen["body"]["delivery_id"])
        assert seen["content_type"] == "application/json"


def test_a_rollouts_events_arrive_signed(api: Api, receiver: Receiver) -> None:
    check_signed_rollout(api, receiver)


def test_a_rollouts_events_arrive_signed_over_postgresql(pg_api: Api, receiver: Receiver) -> None:
    check_signed_rollout(pg_api, receiver)


def test_a_failing_receiver_gets_the_event_after_retries_and_the_log_counts_them(
    api: Api, receiver: Receiver
) -> None:
    dispatcher(api).backoff = FAST
    receiver.fail_first = 2
    hook = subscribe(api, receiver, ["rollout-finished"])
    rollout_id = roll_out(api)
    wait_for(lambda: finished(api, rollout_id))
    wait_for(lambda: rollout_finished_arrived(receiver))
    [delivered] = api.client.get(f"/api/webhooks/{hook['id']}/deliveries").json()["deliveries"]
    assert (delivered["status"], delivered["attempts"]) == ("delivered", 3)
    assert [s["status"] for s in receiver.seen] == [500, 500, 200]


@pytest.fixture
def impatient_api(served_root: Path, tmp_path: Path) -> Iterator[Api]:
    """A server that gives a failing delivery up after half a second."""
    yield from serve(served_root, f"sqlite:///{tmp_path}/state.db", webhook_give_up=0.5)


def test_a_delivery_given_up_shows_its_last_error_and_can_be_sent_again(
    impatient_api: Api, receiver: Receiver
) -> None:
    api = impatient_api
    dispatcher(api).backoff = FAST
    receiver.always_fail = True
    hook = subscribe(api, receiver, ["rollout-finished"])
    log = f"/api/webhooks/{hook['id']}/deliveries"
    rollout_id = roll_out(api)
    wait_for(lambda: finished(api, rollout_id))
    wait_for(lambda: [d["status"] for d in api.client.get(log).json()["deliveries"]] == ["failed"])
    [failed] = api.client.get(log).json()["deliveries"]
    assert failed["last_error"] == "the receiver answered HTTP 500"
    assert failed["last_status_code"] == 500

    receiver.always_fail = False
    again = api.client.post(f"/api/webhooks/deliveries/{failed['id']}/redeliver")
    assert (again.status_code, again.json()["status"]) == (202, "pending")
    wait_for(lambda: rollout_finished_arrived(receiver))
    [delivered] = api.client.get(log).json()["deliveries"]
    assert delivered["status"] == "delivered"
    assert delivered["attempts"] == failed["attempts"] + 1
    actions = [a.action for a in api.state.session.store.audit()]
    assert actions.count("webhook.redeliver") == 1


def test_a_hanging_receiver_holds_up_neither_the_rollout_nor_other_receivers(
    api: Api, receiver: Receiver
) -> None:
    receiver.hang.set()
    subscribe(api, receiver)
    with receiving() as other:
        subscribe(api, other)
        rollout_id = roll_out(api)
        wait_for(lambda: finished(api, rollout_id))
        wait_for(lambda: rollout_finished_arrived(other))
        with receiver.lock:
            assert receiver.seen == []  # every send to it so far is still held
        assert api.client.get(f"/api/rollouts/{rollout_id}").json()["status"] == "success"
        assert all(s["verified"] for s in other.seen)


def test_the_server_stops_at_once_while_a_receiver_still_holds_its_sends(
    served_root: Path, tmp_path: Path, receiver: Receiver
) -> None:
    receiver.hang.set()  # and never released before the stop
    running = serve(served_root, f"sqlite:///{tmp_path}/state.db", webhook_timeout=300.0)
    api = next(running)
    try:
        subscribe(api, receiver)
        rollout_id = roll_out(api)
        wait_for(lambda: finished(api, rollout_id))
        wait_for(lambda: receiver.hanging >= 4)  # every slot of the webhook is held
    finally:
        began = time.monotonic()
        running.close()  # the lifespan's shutdown: cancels the held sends
        took = time.monotonic() - began
    # A stop that waited for the held sends would take the receiver's 60 s (the sends' own
    # timeout is 300 s); the stop cancels them instead.
    assert took < 30.0, f"the stop took {took:.1f} s"


def test_only_http_urls_are_taken_and_their_credentials_are_never_shown(api: Api) -> None:
    refused = api.client.post("/api/webhooks", json={"url": "file:///etc/passwd"})
    assert refused.status_code == 400
    assert "only http and https" in refused.json()["error"]["message"]
    unknown = api.client.post("/api/webhooks", json={"url": "http://x.test/", "events": ["nope"]})
    assert (unknown.status_code, "nope" in unknown.text) == (400, True)
    made = api.client.post(
        "/api/webhooks", json={"url": "https://bob:pa55word@127.0.0.1:9/h", "secret": "x" * 20}
    )
    assert made.status_code == 201
    assert made.json()["url"] == "https://***@127.0.0.1:9/h"
    assert made.json()["secret"] is None  # the caller's own secret is not echoed
    listed = api.client.get("/api/webhooks").text
    assert "pa55word" not in listed
    assert "x" * 20 not in listed


def test_a_removed_webhook_is_gone_from_the_list(api: Api, receiver: Receiver) -> None:
    hook = subscribe(api, receiver)
    assert api.client.delete(f"/api/webhooks/{hook['id']}").status_code == 200
    assert api.client.get("/api/webhooks").json() == {"webhooks": []}
    assert api.client.delete(f"/api/webhooks/{hook['id']}").status_code == 404


def test_verify_rejects_a_replayed_old_signature_and_a_changed_body() -> None:
    body = b'{"event":{}}'
    header = sign("s" * 20, body, 1_000_000)
    assert verify("s" * 20, header, body, now=1_000_000 + 299)
    assert not verify("s" * 20, header, body, now=1_000_000 + 301)
    assert not verify("s" * 20, header, body + b" ", now=1_000_000)
    assert not verify("t" * 20, header, body, now=1_000_000)
    assert not verify("s" * 20, "v1=abc", body, now=1_000_000)


def cli_event(database_url: str, rollout_id: str) -> None:
    """What a CLI process on the same store writes: an event the server did not see happen."""
    at = datetime.now(UTC)
    with open_store(database_url) as store:
        store.append_events([Event(Phase.ROLLOUT_FINISHED, at, rollout_id, result="success")])


def arrived(receiver: Receiver) -> list[str]:
    return [b["event"]["rollout_id"] for b in receiver.bodies()]


def test_events_of_other_processes_and_of_the_downtime_are_sent_once_after_a_restart(
    served_root: Path, tmp_path: Path, receiver: Receiver
) -> None:
    database_url = f"sqlite:///{tmp_path}/state.db"
    first = serve(served_root, database_url)
    api = next(first)
    subscribe(api, receiver, ["rollout-finished"])
    cli_event(database_url, "while-up")
    wait_for(lambda: arrived(receiver) == ["while-up"])
    with contextlib.suppress(StopIteration):
        next(first)  # the server stops
    cli_event(database_url, "while-down")

    env = {"SHIPYARD_DATABASE_URL": database_url, "SHIPYARD_ACTOR": "server"}
    again = create_app(Settings(project=served_root / "shipyard.yaml"), environ=env)
    with TestClient(again, raise_server_exceptions=False) as client:
        client.headers["Authorization"] = f"Bearer {api.token}"
        wait_for(lambda: arrived(receiver) == ["while-up", "while-down"])
        [hook] = client.get("/api/webhooks").json()["webhooks"]
        log = client.get(f"/api/webhooks/{hook['id']}/deliveries").json()["deliveries"]
    assert [d["status"] for d in log] == ["delivered", "delivered"]
    assert arrived(receiver) == ["while-up", "while-down"]
