"""Loads the store's fixtures (tests/store_fixtures.py) and adds a clock the tests move by hand."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shipyard.store import Store, open_store

from .builders import Clock


def pytest_configure(config: pytest.Config) -> None:
    # Once, whether or not tests/conftest.py registers it too (`pytest_plugins`).
    if not config.pluginmanager.has_plugin("store_fixtures"):
        config.pluginmanager.import_plugin("store_fixtures")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def timed_store(store_url: str, clock: Clock) -> Iterator[Store]:
    """A store whose clock the test sets."""
    with open_store(store_url, clock=clock) as opened:
        yield opened
