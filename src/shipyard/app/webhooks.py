"""Webhooks: subscriptions (URL, event filter, secret), their delivery log, redelivery, and how
a delivery is signed and verified.

A delivery is a POST of JSON, `{"webhook_id", "delivery_id", "event": {...}}`, the event masked
through the project's masker, with these headers:

    Shipyard-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, f"{t}.{body}")>
    Shipyard-Event: <the event's phase>
    Shipyard-Delivery: <the delivery id>
    Content-Type: application/json

`verify` is what a receiver runs (it uses the standard library only, to be copied): the
signature must match and `t` be within five minutes of the receiver's clock, so a recorded
delivery cannot be replayed later. A subscription's secret is shown once, when the server made
it; it is never shown again, nor is a URL's user:password.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from shipyard.app.session import Session
from shipyard.errors import RecordNotFound, UsageError
from shipyard.events import Phase
from shipyard.store.webhooks import Delivery, Webhook

SIGNATURE_HEADER = "Shipyard-Signature"
TOLERANCE = 300  # seconds: a signature older (or newer) than this is refused
MIN_SECRET = 16
MAX_SECRET = 255
MAX_URL = 2000


@dataclass(frozen=True)
class WebhookView:
    """A subscription as the API shows it: no secret, no credentials in the URL."""

    id: str
    url: str
    events: tuple[str, ...]
    created_by: str
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "events": list(self.events),
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True)
class CreatedWebhook:
    """A new subscription; `secret` only when the server made it (shown this once)."""

    webhook: WebhookView
    secret: str | None

    def to_json(self) -> dict[str, Any]:
        return {**self.webhook.to_json(), "secret": self.secret}


@dataclass(frozen=True)
class DeliveryView:
    """One event sent to one webhook: its status, attempts so far and the last error."""

    id: int
    webhook_id: str
    event_id: int
    status: str
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    created_at: datetime
    finished_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        def when(value: datetime | None) -> str | None:
            return value.isoformat() if value is not None else None

        return {
            "id": self.id,
            "webhook_id": self.webhook_id,
            "event_id": self.event_id,
            "status": self.status,
            "attempts": self.attempts,
            "last_status_code": self.last_status_code,
            "last_error": self.last_error,
            "next_attempt_at": when(self.next_attempt_at),
            "created_at": self.created_at.isoformat(),
            "finished_at": when(self.finished_at),
        }


@dataclass(frozen=True)
class DeliveryPage:
    deliveries: tuple[DeliveryView, ...]
    next_before: int | None  # pass as `before` for the next (older) page

    def to_json(self) -> dict[str, Any]:
        return {
            "deliveries": [d.to_json() for d in self.deliveries],
            "next_before": self.next_before,
        }


# Signing.


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The Shipyard-Signature header of `body` sent at `timestamp` (unix seconds)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def verify(
    secret: str,
    header: str,
    body: bytes | str,
    now: float | None = None,
    tolerance: float = TOLERANCE,
) -> bool:
    """Whether `header` (Shipyard-Signature) signs `body` with `secret`, made within
    `tolerance` seconds of `now` (default: this machine's clock). Standard library only."""
    raw = body.encode() if isinstance(body, str) else body
    fields: dict[str, list[str]] = {}
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if sep:
            fields.setdefault(key, []).append(value)
    try:
        timestamp = int(fields["t"][0])
    except (KeyError, ValueError):
        return False
    moment = time.time() if now is None else now
    if abs(moment - timestamp) > tolerance:
        return False
    expected = sign(secret, raw, timestamp).split("v1=", 1)[1]
    return any(hmac.compare_digest(expected, given) for given in fields.get("v1", []))


# Subscriptions.


def shown_url(url: str) -> str:
    """`url` with any user:password replaced by ***."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"***@{host}" + (f":{parts.port}" if parts.port is not None else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def checked_url(url: str) -> str:
    """`url` if it is an http(s) URL with a host; UsageError naming what is wrong otherwise."""
    text = url.strip()
    if len(text) > MAX_URL:
        raise UsageError(f"webhook url: at most {MAX_URL} characters")
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in text):
        raise UsageError("webhook url: spaces and control characters must be percent-encoded")
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 (a bad port raises here)
    except ValueError as exc:
        raise UsageError(f"webhook url: not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        scheme = parts.scheme or "none"
        raise UsageError(f"webhook url: only http and https are supported, not {scheme}")
    if not parts.hostname:
        raise UsageError(f"webhook url: no host in {shown_url(text)!r}")
    return text


def checked_phases(phases: Sequence[str]) -> tuple[str, ...]:
    """The filter as phase names, each a known one (an empty filter: every event)."""
    known = {p.value for p in Phase}
    unknown = [p for p in phases if p not in known]
    if unknown:
        raise UsageError(
            f"webhook events: unknown phase {unknown[0]!r}; known: {', '.join(sorted(known))}"
        )
    return tuple(dict.fromkeys(phases))


def create_webhook(
    session: Session, *, url: str, events: Sequence[str] = (), secret: str | None = None
) -> CreatedWebhook:
    """Subscribe `url` to the events whose phase is in `events` (every event when empty),
    from now on. Without `secret` one is made and returned, this once."""
    target = checked_url(url)
    phases = checked_phases(events)
    if secret is not None and not (
        MIN_SECRET <= len(secret) <= MAX_SECRET and all("!" <= c <= "~" for c in secret)
    ):
        raise UsageError(
            f"webhook secret: {MIN_SECRET} to {MAX_SECRET} printable ASCII characters, no spaces"
        )
    made = secrets.token_urlsafe(32) if secret is None else None
    stored = session.store.add_webhook(
        webhook_id=str(uuid.uuid4()),
        url=target,
        shown_url=shown_url(target),
        phases=phases,
        secret=made or secret or "",
        actor=session.actor,
    )
    return CreatedWebhook(_view(stored), made)


def list_webhooks(session: Session) -> tuple[WebhookView, ...]:
    return tuple(_view(w) for w in session.store.webhooks())


def remove_webhook(session: Session, webhook_id: str) -> WebhookView:
    return _view(session.store.remove_webhook(webhook_id, actor=session.actor))


def deliveries(
    session: Session, webhook_id: str, *, limit: int = 50, before: int | None = None
) -> DeliveryPage:
    """A webhook's delivery log, the newest first, a page at a time."""
    store = session.store
    if store.webhook(webhook_id) is None:
        raise RecordNotFound("webhook", webhook_id)
    found = store.deliveries(webhook_id, limit=limit + 1, before=before)
    page = tuple(delivery_view(d) for d in found[:limit])
    return DeliveryPage(page, page[-1].id if len(found) > limit else None)


def redeliver(session: Session, delivery_id: int) -> DeliveryView:
    """Send a delivery again, now, with a new round of retries."""
    store = session.store
    known = store.delivery(delivery_id)
    if known is None:
        raise RecordNotFound("delivery", str(delivery_id))
    hook = store.webhook(known.webhook_id)
    if hook is None or not hook.active:
        raise UsageError(f"delivery {delivery_id}: its webhook {known.webhook_id} was removed")
    return delivery_view(store.redeliver(delivery_id, actor=session.actor))


def delivery_view(delivery: Delivery) -> DeliveryView:
    return DeliveryView(
        id=delivery.id,
        webhook_id=delivery.webhook_id,
        event_id=delivery.event_id,
        status=delivery.status,
        attempts=delivery.attempts,
        last_status_code=delivery.last_status_code,
        last_error=delivery.last_error,
        next_attempt_at=delivery.next_attempt_at,
        created_at=delivery.created_at,
        finished_at=delivery.finished_at,
    )


def _view(hook: Webhook) -> WebhookView:
    return WebhookView(hook.id, shown_url(hook.url), hook.events, hook.created_by, hook.created_at)
