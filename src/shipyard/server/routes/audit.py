"""The audit log: filtered, newest first, a page at a time; and the check of its hash chain."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from shipyard.app import queries
from shipyard.server.routes.answers import READ_ERRORS
from shipyard.server.routes.deps import CallerSession

router = APIRouter(tags=["audit"], responses=READ_ERRORS)

Text = Annotated[str | None, Query(max_length=400)]


class AuditLine(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    result: str
    detail: dict[str, Any]


class AuditPage(BaseModel):
    entries: list[AuditLine]
    more: bool = False
    next_before: int | None = None


class Broken(BaseModel):
    row: int
    reason: str | None


class AuditVerdict(BaseModel):
    whole: bool
    count: int
    head: str
    broken: Broken | None


@router.get("/api/audit")
def audit(
    session: CallerSession,
    actor: Text = None,
    action: Text = None,
    target: Annotated[str | None, Query(max_length=400, description="An instance.")] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    before: Annotated[
        int | None, Query(ge=1, le=2**62, description="Only entries older than this id.")
    ] = None,
) -> AuditPage:
    """Audit entries newest first; `next_before` (None when none may follow) pages back."""
    page = queries.audit(
        session,
        instance=target,
        actor=actor,
        action=action,
        since=since,
        until=until,
        limit=limit,
        before=before,
    )
    return AuditPage.model_validate(
        {
            "entries": page.to_json(),
            "more": page.more,
            "next_before": page.oldest_id if page.more else None,
        }
    )


@router.get("/api/audit/verify")
def audit_verify(session: CallerSession) -> AuditVerdict:
    """Check the audit log's hash chain: whole, or the first row where it breaks."""
    return AuditVerdict.model_validate(queries.audit_verify(session).to_json())
