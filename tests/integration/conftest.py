"""The `fleet` fixture: real OpenSSH servers on loopback addresses, started once per test session."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fleet import Fleet, start_fleet, stop_fleet


class FleetFactory:
    """`fleet(n)` gives a running fleet of n hosts; the same one for every test that asks for n."""

    def __init__(self, base: Path) -> None:
        self._base = base
        self._fleets: dict[int, Fleet] = {}

    def __call__(self, count: int = 4) -> Fleet:
        if count not in self._fleets:
            directory = self._base / f"fleet-{count}"
            self._fleets[count] = start_fleet(count, directory, tie_to_parent=True)
        return self._fleets[count]

    def stop_all(self) -> None:
        for fleet in self._fleets.values():
            stop_fleet(fleet)
        self._fleets.clear()


@pytest.fixture(scope="session")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FleetFactory]:
    """A factory of fleets: `fleet(4).hosts`, `.ssh_config`, `.known_hosts`, `.identity_file`.

    Every daemon is stopped by PID at the end of the session, whatever the tests did.
    """
    factory = FleetFactory(tmp_path_factory.mktemp("fleets"))
    try:
        yield factory
    finally:
        factory.stop_all()
