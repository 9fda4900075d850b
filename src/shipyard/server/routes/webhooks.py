"""Webhooks: subscribe a URL to events (the secret shown once, when the server made it), list,
remove, read a subscription's delivery log, send a delivery again."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from shipyard.app import webhooks
from shipyard.errors import RecordNotFound
from shipyard.server.routes.deps import CallerSession

router = APIRouter(tags=["webhooks"])

WebhookId = Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


class WebhookRequest(BaseModel):
    """A subscription: where to POST, which phases (empty: every event), and optionally the
    secret to sign with (otherwise the server makes one and returns it once)."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=webhooks.MAX_URL, description="An http or https URL.")
    events: list[Annotated[str, Field(max_length=32)]] = Field(
        default_factory=list, max_length=50, description="Phases to send; empty: every event."
    )
    secret: str | None = Field(None, min_length=webhooks.MIN_SECRET, max_length=webhooks.MAX_SECRET)


class Webhook(BaseModel):
    id: str
    url: str
    events: list[str]
    created_by: str
    created_at: str


class CreatedWebhook(Webhook):
    secret: str | None = Field(description="The signing secret when the server made it: only now.")


class WebhookList(BaseModel):
    webhooks: list[Webhook]


class Delivery(BaseModel):
    id: int
    webhook_id: str
    event_id: int
    status: str
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: str | None
    created_at: str
    finished_at: str | None


class DeliveryPage(BaseModel):
    deliveries: list[Delivery]
    next_before: int | None


@router.get("/api/webhooks")
def list_webhooks(session: CallerSession) -> WebhookList:
    """Every active subscription, the oldest first (no secrets)."""
    return WebhookList(
        webhooks=[Webhook.model_validate(w.to_json()) for w in webhooks.list_webhooks(session)]
    )


@router.post("/api/webhooks", status_code=201)
def create_webhook(body: WebhookRequest, session: CallerSession) -> CreatedWebhook:
    """Subscribe a URL to the events from now on."""
    made = webhooks.create_webhook(session, url=body.url, events=body.events, secret=body.secret)
    return CreatedWebhook.model_validate(made.to_json())


@router.delete("/api/webhooks/{webhook_id}")
def remove_webhook(webhook_id: WebhookId, session: CallerSession) -> Webhook:
    """Unsubscribe: nothing more is sent, pending deliveries fail, the log stays readable."""
    return Webhook.model_validate(webhooks.remove_webhook(session, webhook_id).to_json())


@router.get("/api/webhooks/{webhook_id}/deliveries")
def list_deliveries(
    webhook_id: WebhookId,
    session: CallerSession,
    limit: int = Query(50, ge=1, le=500),
    before: int | None = Query(None, ge=1, le=2**62, description="A delivery id: older ones."),
) -> DeliveryPage:
    """A subscription's deliveries, the newest first: status, attempts, last error."""
    page = webhooks.deliveries(session, webhook_id, limit=limit, before=before)
    return DeliveryPage.model_validate(page.to_json())


@router.post("/api/webhooks/deliveries/{delivery_id}/redeliver", status_code=202)
def redeliver(delivery_id: int, session: CallerSession) -> Delivery:
    """Send a delivery again now, with a new round of retries."""
    if not 1 <= delivery_id <= 2**62:
        raise RecordNotFound("delivery", str(delivery_id))
    return Delivery.model_validate(webhooks.redeliver(session, delivery_id).to_json())
