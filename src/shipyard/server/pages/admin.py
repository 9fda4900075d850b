"""The admin page: users with their roles and sites (add, change roles and sites, disable,
enable), API tokens (create, shown once in the page that made it; list; revoke), webhooks (add,
remove) and one webhook's delivery log. Every change goes through the API routes (accounts.py,
webhooks.py)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from shipyard.app import accounts, tokens, webhooks
from shipyard.app.access import Role
from shipyard.app.accounts import User
from shipyard.app.session import Session
from shipyard.app.tokens import TokenInfo
from shipyard.app.webhooks import DeliveryPage, WebhookView
from shipyard.server.pages.render import page
from shipyard.server.routes.deps import Caller, CallerSession

router = APIRouter(include_in_schema=False)

DELIVERIES_SHOWN = 50
# The phases a webhook may be subscribed to, offered as boxes (none ticked: every event).
PHASES = ("finished", "rollout-started", "rollout-finished", "artifact", "health", "drift",
          "host-error")  # fmt: skip


@dataclass(frozen=True)
class AdminReads:
    users: list[User]
    tokens: list[TokenInfo]
    webhooks: tuple[WebhookView, ...]
    deliveries: DeliveryPage | None


@router.get("/admin", response_class=HTMLResponse)
async def admin(
    request: Request,
    caller: Caller,
    session: CallerSession,
    webhook: Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9_-]+$")] = None,
    before: Annotated[int | None, Query(ge=1, le=2**62)] = None,
) -> HTMLResponse:
    reads = await asyncio.to_thread(_reads, session, webhook, before)
    values: dict[str, Any] = {
        "users": reads.users,
        "tokens": reads.tokens,
        "webhooks": reads.webhooks,
        "deliveries": reads.deliveries,
        "chosen_webhook": webhook,
        "roles": [r.value for r in Role],
        "sites": list(session.load().project.sites),
        "phases": PHASES,
        "me": caller.name,
    }
    return page(request, caller, "admin.html.j2", values, title="Admin")


def _reads(session: Session, webhook: str | None, before: int | None) -> AdminReads:
    users = accounts.users(session)
    found = None
    if webhook is not None:  # RecordNotFound (404) for an unknown one
        found = webhooks.deliveries(session, webhook, limit=DELIVERIES_SHOWN, before=before)
    return AdminReads(users, tokens.tokens(session, None), webhooks.list_webhooks(session), found)
