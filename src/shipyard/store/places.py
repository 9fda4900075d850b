"""Where a project keeps its state: names only, so that a module needing them loads no database."""

from __future__ import annotations

# `<project>/.shipyard/`: the SQLite store (state.db) and the secret key (secret.key).
STATE_DIRECTORY = ".shipyard"
STATE_FILE = "state.db"
