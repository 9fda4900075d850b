"""PostgreSQL with two roles: an owner that runs migrations, a runtime role that cannot rewrite
the audit log (only INSERT and SELECT on it: no UPDATE, DELETE, TRUNCATE, and, not owning the
table, no dropping or disabling its triggers).

The owner runs `runtime_grants(role)` after every migration (new tables need their grants).
"""

from __future__ import annotations

import re

ROLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def runtime_grants(role: str, *, schema: str = "public") -> list[str]:
    """The statements (run by the owner role) that give `role` what Shipyard needs at run time."""
    for name in (role, schema):
        if not ROLE_NAME.fullmatch(name):
            raise ValueError(f"not a plain PostgreSQL name: {name!r}")
    return [
        f"GRANT USAGE ON SCHEMA {schema} TO {role}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role}",
        f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA {schema} TO {role}",
        # The audit log: appended to and read, never changed.
        f"REVOKE UPDATE, DELETE, TRUNCATE ON {schema}.audit FROM {role}",
        # Migrations are the owner's: the runtime only reads which one the database is at.
        f"REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON {schema}.alembic_version FROM {role}",
    ]
