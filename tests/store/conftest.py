"""Loads the store's fixtures (tests/store_fixtures.py) and adds a clock the tests move by hand."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from shipyard.store import Store, open_store

from .builders import Clock


def pytest_configure(config: pytest.Config) -> None:
    # Once, whether or not tests/conftest.py registers it too (`pytest_plugins`).
    if config.pluginmanager.has_plugin("store_fixtures"):
        return
    imported = sys.modules.get("store_fixtures")  # by a test module collected before this one
    if imported is not None:
        config.pluginmanager.register(imported, "store_fixtures")
    else:
        config.pluginmanager.import_plugin("store_fixtures")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def timed_store(store_url: str, clock: Clock) -> Iterator[Store]:
    """A store whose clock the test sets."""
    with open_store(store_url, clock=clock) as opened:
        yield opened
