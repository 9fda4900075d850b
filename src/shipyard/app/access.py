"""Who may do what: permissions, the four roles, and what a caller may do, with its site scope.

A route (server/policy.py) needs one permission; a user holds the union of their roles'. The
deployment role may be limited to sites: then everything it acts on (instances, hosts,
artifacts) must lie within them, and a request that reaches outside is refused whole. The admin
role is never limited. A read-only token holds only what reading needs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class Permission(StrEnum):
    """What a route lets its caller do."""

    PUBLIC = "public"  # no credentials: sign-in, liveness, the API's own description
    SELF = "self"  # one's own tokens and session: every signed-in user
    READ = "read"  # status, plans, diffs, validation, logs, events, audit, metrics
    DESIGN = "design"  # publish config versions
    DEPLOY = "deploy"  # start, cancel and roll back rollouts; bootstrap hosts
    ADMIN = "admin"  # users, everyone's tokens, webhooks, settings


class Role(StrEnum):
    ADMIN = "admin"
    DESIGN = "design"
    DEPLOYMENT = "deployment"
    VIEWER = "viewer"


BASE = frozenset({Permission.PUBLIC, Permission.SELF, Permission.READ})
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.DESIGN: BASE | {Permission.DESIGN},
    Role.DEPLOYMENT: BASE | {Permission.DEPLOY},
    Role.VIEWER: BASE,
}
ROLE_SUMMARY: dict[Role, str] = {
    Role.ADMIN: "users, every token, webhooks, settings; everything the other roles may",
    Role.DESIGN: "publish config versions; validate, plan, diff",
    Role.DEPLOYMENT: "start, cancel and roll back rollouts, bootstrap hosts (optionally only"
    " on some sites)",
    Role.VIEWER: "read only: status, plans, diffs, logs, events, audit, metrics",
}
# What a read-only token keeps of its user's permissions.
READ_ONLY = frozenset({Permission.PUBLIC, Permission.READ})


def parse_roles(names: Iterable[str]) -> tuple[Role, ...]:
    """Roles by name; ValueError naming the unknown ones and the known."""
    given = [n.strip().lower() for n in names if n.strip()]
    unknown = sorted({n for n in given if n not in Role.__members__.values()})
    if unknown:
        known = ", ".join(r.value for r in Role)
        raise ValueError(f"unknown role {', '.join(unknown)} (roles: {known})")
    return tuple(sorted({Role(n) for n in given}))


@dataclass(frozen=True)
class Access:
    """What a caller may do: a user's name, roles and site scope, and whether read-only."""

    name: str
    roles: frozenset[Role]
    sites: frozenset[str] | None = None  # the deployment role's sites; None: every site
    read_only: bool = False

    @property
    def permissions(self) -> frozenset[Permission]:
        held: frozenset[Permission] = frozenset({Permission.PUBLIC})
        for role in self.roles:
            held |= ROLE_PERMISSIONS[role]
        return held & READ_ONLY if self.read_only else held

    def may(self, permission: Permission) -> bool:
        return permission in self.permissions

    @property
    def scoped(self) -> bool:
        """Whether what this caller deploys is limited to some sites."""
        return self.sites is not None and Role.ADMIN not in self.roles

    def outside(self, sites: Iterable[str]) -> list[str]:
        """Of `sites`, those this caller may not act on (sorted; empty when all are fine)."""
        if not self.scoped:
            return []
        assert self.sites is not None
        return sorted(set(sites) - self.sites)
