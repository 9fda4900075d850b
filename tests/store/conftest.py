"""The store's fixtures (tests/store_fixtures.py), plus a clock the tests move by hand."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shipyard.store import Store, open_store
from store_fixtures import (
    postgresql_database,
    postgresql_server,
    postgresql_url,
    store,
    store_url,
)

from .builders import Clock

__all__ = [
    "postgresql_database",
    "postgresql_server",
    "postgresql_url",
    "store",
    "store_url",
]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def timed_store(store_url: str, clock: Clock) -> Iterator[Store]:
    """A store whose clock the test sets."""
    with open_store(store_url, clock=clock) as opened:
        yield opened
