"""Helpers for unit tests: write a project into a temporary directory and load it."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from shipyard.config.flatten import Flattened, flatten_project
from shipyard.config.loader import load_project

WriteProject = Callable[..., Path]
# Unit tests flatten with a fixed key; the CLI reads the store's own (shipyard.store.secret_key).
TEST_SECRET_KEY = b"unit-test-secret-key-0123456789"


@pytest.fixture
def write_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> WriteProject:
    """Write `shipyard.yaml` (dedented) and any extra files; errors then name `shipyard.yaml`."""
    monkeypatch.chdir(tmp_path)

    def write(text: str, **files: str) -> Path:
        for name, content in files.items():
            path = tmp_path / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(content))
        project = tmp_path / "shipyard.yaml"
        project.write_text(textwrap.dedent(text).lstrip("\n"))
        return project

    return write


@pytest.fixture
def flatten(write_project: WriteProject) -> Callable[..., Flattened]:
    def run(text: str, environ: dict[str, str] | None = None, **files: str) -> Flattened:
        loaded = load_project(write_project(text, **files))
        return flatten_project(loaded, secret_key=TEST_SECRET_KEY, environ=environ or {})

    return run
