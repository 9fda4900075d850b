"""Account changes through the application layer: the last enabled admin cannot be demoted or
disabled (no one could manage users afterwards), by the CLI or the API alike."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.app.accounts import add_user, change_user, find_user
from shipyard.errors import UsageError

from .conftest import make_session


def test_the_last_enabled_admin_keeps_the_admin_role(project_root: Path) -> None:
    with make_session(project_root) as session:
        add_user(session, "alice", roles=["admin"])
        add_user(session, "bob", roles=["viewer"])
        with pytest.raises(UsageError, match="last enabled admin"):
            change_user(session, "alice", roles=["viewer"])
        with pytest.raises(UsageError, match="last enabled admin"):
            change_user(session, "alice", disabled=True)
        assert find_user(session, "alice").roles == ("admin",)
        assert find_user(session, "alice").enabled

        change_user(session, "bob", roles=["admin"])  # another admin first: then it may go
        change_user(session, "alice", roles=["viewer"])
        assert find_user(session, "alice").roles == ("viewer",)
        change_user(session, "bob", roles=["admin", "deployment"])  # keeping admin is fine
        with pytest.raises(UsageError, match="last enabled admin"):
            change_user(session, "bob", roles=["deployment"])
