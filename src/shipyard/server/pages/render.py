"""How a dashboard page is made: the caller as the page sees them, the one Jinja environment
of the pages, and the masking boundary every page passes on its way out.

Pages are rendered on the server from the application layer's values; the browser's script
(static/dashboard.js) only follows the SSE stream and calls the same API routes the CLI does,
with the session's CSRF token. A page offers only what its caller may do; the server refuses
the rest anyway (the route table and the site scope check every API call).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from shipyard.app.access import Permission
from shipyard.server.auth import Principal
from shipyard.server.state import ServerState

# The pages of the navigation bar: (path, label).
NAVIGATION = (
    ("/", "Overview"),
    ("/instances", "Instances"),
    ("/rollouts", "Rollouts"),
    ("/artifacts", "Artifacts"),
    ("/events", "Events"),
    ("/audit", "Audit"),
    ("/versions", "Versions"),
    ("/admin", "Admin"),
)
ADMIN_PAGES = frozenset({"/admin"})

# A status as text and as a sign beside it: colour is never the only signal.
STATUS_SIGNS = {
    "success": "✓",
    "failed": "✗",
    "in_progress": "⟳",
    "pending": "…",
    "skipped": "↷",
    "never deployed": "○",
    "orphaned": "?",
    "disabled": "‖",
    "deleted": "⌫",
    "online": "✓",
    "offline": "✗",
    "degraded": "!",
    "unknown": "?",
    "healthy": "✓",
    "failing": "✗",
    "cancelled": "↷",
    "interrupted": "✗",
    "unchanged": "=",
    "stale": "!",
    "not deployed": "○",
}


@dataclass(frozen=True)
class Viewer:
    """The signed-in caller, as a page needs them: who, and which buttons to offer."""

    name: str
    roles: tuple[str, ...]
    may_deploy: bool
    may_design: bool
    may_admin: bool
    sites: frozenset[str] | None  # the sites they may deploy to; None: every site

    @classmethod
    def of(cls, principal: Principal) -> Viewer:
        access = principal.access
        return cls(
            name=principal.name,
            roles=tuple(principal.roles),
            may_deploy=principal.may(Permission.DEPLOY),
            may_design=principal.may(Permission.DESIGN),
            may_admin=principal.may(Permission.ADMIN),
            sites=access.sites if access.scoped else None,
        )

    def deploys_to(self, site: str) -> bool:
        """Whether an action on an instance of `site` is offered to this caller."""
        return self.may_deploy and (self.sites is None or site in self.sites)


def sign(status: str | None) -> str:
    return STATUS_SIGNS.get(status or "", "·")


def css_class(status: str | None) -> str:
    """A status as a class name: `never deployed` -> `s-never-deployed`."""
    return "s-" + (status or "none").replace(" ", "-").replace("_", "-")


def link(path: str, **query: object) -> str:
    """A local URL with its query (None values left out), every part quoted."""
    kept = {k: str(v) for k, v in query.items() if v is not None and v != ""}
    return quote(path, safe="/@") + (f"?{urlencode(kept)}" if kept else "")


@cache
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("shipyard.server", "templates/pages"),
        autoescape=select_autoescape(default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(sign=sign, status_class=css_class, link=link, navigation=NAVIGATION)
    return env


def page(
    request: Request,
    principal: Principal,
    template: str,
    values: Mapping[str, Any],
    *,
    title: str,
    status: int = 200,
) -> HTMLResponse:
    """The page `template` with `values`, for `principal`, masked as it leaves."""
    state: ServerState = request.app.state.shipyard
    viewer = Viewer.of(principal)
    shown = [(p, label) for p, label in NAVIGATION if p not in ADMIN_PAGES or viewer.may_admin]
    html = (
        environment()
        .get_template(template)
        .render(
            **values,
            title=title,
            viewer=viewer,
            project=state.session.load().project.name,
            path=request.url.path,
            nav=shown,
        )
    )
    return HTMLResponse(state.session.masker().text(html), status_code=status)
