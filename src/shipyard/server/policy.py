"""The one route table: every route of the server and the permission it needs.

`authorize` (auth.py) looks each request's route up here; a route the table does not name is
refused (and `check_routes` fails at start, so a new route cannot ship without its entry).
Roles map onto permissions in app/access.py. The routes of TARGETED act on instances, hosts or
artifacts: each checks that every target lies within the caller's sites (scope.py), and the
access matrix test checks it too. PUBLIC routes are the unauthenticated surface, an allowlist a
test pins down.
"""

from __future__ import annotations

from collections.abc import Iterable

from shipyard.app.access import Permission

# (method, path as FastAPI declares it) -> permission. Keep it sorted by path.
ROUTES: dict[tuple[str, str], Permission] = {
    # The dashboard's pages (server/pages): reading them is reading the API.
    ("GET", "/"): Permission.READ,
    ("GET", "/instances"): Permission.READ,
    ("GET", "/instances/{instance}"): Permission.READ,
    ("GET", "/rollouts"): Permission.READ,
    ("GET", "/rollouts/{rollout_id}"): Permission.READ,
    ("GET", "/static/{name}"): Permission.PUBLIC,
    ("GET", "/favicon.ico"): Permission.PUBLIC,
    # The dashboard's pages of artifacts, events, audit, versions and admin.
    ("GET", "/artifacts"): Permission.READ,
    ("GET", "/events"): Permission.READ,
    ("GET", "/audit"): Permission.READ,
    ("GET", "/versions"): Permission.READ,
    ("GET", "/versions/{old}/diff/{new}"): Permission.READ,
    ("GET", "/admin"): Permission.ADMIN,
    ("GET", "/api/artifacts"): Permission.READ,
    ("POST", "/api/artifacts/deploy"): Permission.DEPLOY,
    ("POST", "/api/artifacts/retry"): Permission.DEPLOY,
    ("GET", "/api/audit"): Permission.READ,
    ("GET", "/api/audit/verify"): Permission.READ,
    ("POST", "/api/bootstrap"): Permission.DEPLOY,
    ("GET", "/api/deployments/{deployment_id}"): Permission.READ,
    ("GET", "/api/deployments/{deployment_id}/log"): Permission.READ,
    ("GET", "/api/deployments/{deployment_id}/log/stream"): Permission.READ,
    ("GET", "/api/diff"): Permission.READ,
    ("POST", "/api/drift"): Permission.DEPLOY,
    ("POST", "/api/drift/accept"): Permission.DEPLOY,
    ("GET", "/api/docs"): Permission.PUBLIC,
    ("GET", "/api/docs/oauth2-redirect"): Permission.PUBLIC,
    ("GET", "/api/events"): Permission.READ,
    ("GET", "/api/events/log"): Permission.READ,
    ("POST", "/api/events/purge"): Permission.ADMIN,
    ("GET", "/api/events/stream"): Permission.READ,
    ("GET", "/api/health"): Permission.PUBLIC,
    ("GET", "/api/hosts/health"): Permission.READ,
    ("POST", "/api/hosts/health/check"): Permission.DEPLOY,
    ("GET", "/api/instances/{instance}"): Permission.READ,
    ("GET", "/api/instances/{instance}/diff"): Permission.READ,
    ("POST", "/api/lifecycle/{command}"): Permission.DEPLOY,
    ("GET", "/api/openapi.json"): Permission.PUBLIC,
    ("GET", "/api/plan"): Permission.READ,
    ("POST", "/api/plan"): Permission.READ,
    ("GET", "/api/project"): Permission.READ,
    ("POST", "/api/rollbacks"): Permission.DEPLOY,
    ("GET", "/api/rollouts"): Permission.READ,
    ("POST", "/api/rollouts"): Permission.DEPLOY,
    ("GET", "/api/rollouts/{rollout_id}"): Permission.READ,
    ("POST", "/api/rollouts/{rollout_id}/cancel"): Permission.DEPLOY,
    ("GET", "/api/status"): Permission.READ,
    ("GET", "/api/validate"): Permission.READ,
    ("GET", "/api/versions"): Permission.READ,
    ("POST", "/api/versions"): Permission.DESIGN,
    ("POST", "/api/versions/reload"): Permission.DESIGN,
    ("GET", "/api/versions/{version}"): Permission.READ,
    ("GET", "/api/versions/{old}/diff/{new}"): Permission.READ,
    ("GET", "/api/webhooks"): Permission.ADMIN,
    ("POST", "/api/webhooks"): Permission.ADMIN,
    ("DELETE", "/api/webhooks/{webhook_id}"): Permission.ADMIN,
    ("GET", "/api/webhooks/{webhook_id}/deliveries"): Permission.ADMIN,
    ("POST", "/api/webhooks/deliveries/{delivery_id}/redeliver"): Permission.ADMIN,
    ("GET", "/api/tokens"): Permission.SELF,
    ("POST", "/api/tokens"): Permission.SELF,
    ("DELETE", "/api/tokens/{token_id}"): Permission.SELF,
    ("GET", "/api/users"): Permission.ADMIN,
    ("POST", "/api/users"): Permission.ADMIN,
    ("GET", "/api/users/{name}"): Permission.ADMIN,
    ("PATCH", "/api/users/{name}"): Permission.ADMIN,
    ("GET", "/api/whoami"): Permission.READ,
    ("GET", "/login"): Permission.PUBLIC,
    ("POST", "/login"): Permission.PUBLIC,
    ("POST", "/logout"): Permission.SELF,
    ("GET", "/metrics"): Permission.READ,
}

# The routes that act on instances, hosts or artifacts, whose every target's site is checked.
TARGETED: frozenset[tuple[str, str]] = frozenset(
    {
        ("POST", "/api/artifacts/deploy"),
        ("POST", "/api/artifacts/retry"),
        ("POST", "/api/bootstrap"),
        ("POST", "/api/drift"),
        ("POST", "/api/drift/accept"),
        ("POST", "/api/hosts/health/check"),
        ("POST", "/api/lifecycle/{command}"),
        ("POST", "/api/rollbacks"),
        ("POST", "/api/rollouts"),
        ("POST", "/api/rollouts/{rollout_id}/cancel"),
    }
)


def permission_of(method: str, path: str) -> Permission | None:
    return ROUTES.get((method.upper(), path))


def check_routes(declared: Iterable[tuple[str, str]]) -> None:
    """Refuse to start a server with a route the table does not name."""
    served = {(m.upper(), p) for m, p in declared}
    missing = sorted(served - ROUTES.keys())
    if missing:
        shown = ", ".join(f"{m} {p}" for m, p in missing)
        raise RuntimeError(f"routes without a permission in server/policy.py: {shown}")


def unused_entries(declared: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Entries of the table that no route serves (a test keeps this empty)."""
    return sorted(ROUTES.keys() - {(m.upper(), p) for m, p in declared})
