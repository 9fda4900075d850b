"""Where a project keeps its state: names only, so that a module needing them loads no database."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote

# `<project>/.shipyard/`: the SQLite store (state.db) and the secret key (secret.key).
STATE_DIRECTORY = ".shipyard"
STATE_FILE = "state.db"
DATABASE_URL_VARIABLE = "SHIPYARD_DATABASE_URL"


def default_url(project_dir: Path) -> str:
    """The project's own SQLite file, `<project_dir>/.shipyard/state.db`."""
    path = Path(project_dir).absolute() / STATE_DIRECTORY / STATE_FILE
    return f"sqlite:///{quote(str(path), safe='/ ')}"


def database_url(project_dir: Path, env: Mapping[str, str]) -> str:
    """`SHIPYARD_DATABASE_URL` from `env` when set, else the project's SQLite file."""
    configured = env.get(DATABASE_URL_VARIABLE, "").strip()
    return configured or default_url(project_dir)
