"""Site scope: a deployment role limited to some sites acts on nothing outside them.

A request whose targets reach one site outside the caller's is refused whole (403, naming those
sites, which the caller chose); a record named by id (a rollout) that lies outside is answered
as if there were no such record, so its details stay hidden. Both refusals are audited.
"""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import Request

from shipyard.errors import RecordNotFound
from shipyard.server.auth import Principal, deny
from shipyard.server.errors import ApiError
from shipyard.server.state import ServerState


def require_sites(
    state: ServerState, request: Request, caller: Principal, sites: Iterable[str], what: str
) -> None:
    """Refuse `what` when one of `sites` is outside the caller's."""
    outside = caller.access.outside(sites)
    if not outside:
        return
    shown = ", ".join(outside)
    deny(state, request, caller, what, f"sites {shown}")
    allowed = ", ".join(sorted(caller.access.sites or ()))
    raise ApiError(
        403,
        "outside_scope",
        f"{caller.name} may deploy only to sites {allowed}; {what} reaches {shown}",
        details={"sites": outside},
    )


def require_record(
    state: ServerState,
    request: Request,
    caller: Principal,
    sites: Iterable[str],
    kind: str,
    record_id: str,
) -> None:
    """A record outside the caller's sites is `404`, as one that does not exist."""
    outside = caller.access.outside(sites)
    if not outside:
        return
    deny(state, request, caller, f"{kind}:{record_id}", "sites of the record")
    raise RecordNotFound(kind, record_id)  # the very answer to an id that does not exist
