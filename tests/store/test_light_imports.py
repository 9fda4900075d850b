"""The store package loads its database layers only when a command uses them."""

from __future__ import annotations

import subprocess
import sys

import pytest

import shipyard.store


def loaded_after(code: str) -> set[str]:
    """Top-level packages loaded by a fresh interpreter running `code`."""
    check = f"import sys\n{code}\nprint(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    found = subprocess.run(
        [sys.executable, "-c", check], check=True, capture_output=True, text=True
    ).stdout
    return set(found.split())


def test_the_secret_key_module_loads_no_database() -> None:
    assert not loaded_after("import shipyard.store.secret_key") & {"sqlalchemy", "alembic"}


def test_a_store_name_loads_its_module_on_first_use() -> None:
    assert "sqlalchemy" in loaded_after("from shipyard.store import Store")


@pytest.mark.parametrize("name", shipyard.store.__all__)
def test_every_public_name_resolves(name: str) -> None:
    assert getattr(shipyard.store, name) is not None


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        _ = shipyard.store.Nothing  # type: ignore[attr-defined]
