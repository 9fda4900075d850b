"""Planning system-wide artifacts: what each host of each site needs, and the matrix's cells.

Pure: the versions the config wants (artifact -> site -> content hash), the hosts of each site
and the store's cells in; host targets and matrix entries out. A host is `changed` when the
store records no success of the wanted version there (never pushed, another version, or its
last attempt failed), else `unchanged` (the deploy still asks the host for its checksums, so a
file removed or edited by hand is pushed again).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

# Versions wanted: artifact -> site -> version.
Wanted = Mapping[str, Mapping[str, str]]


class CellState(StrEnum):
    """What one host holds of one artifact, as status shows it."""

    SUCCESS = "success"  # the last run pushed the wanted version
    UNCHANGED = "unchanged"  # the last run found the wanted version there already
    FAILED = "failed"  # the last attempt failed (what the host held is left)
    STALE = "stale"  # the host holds another version than the config's
    MISSING = "not deployed"  # never pushed there


@dataclass(frozen=True)
class Recorded:
    """The store's cell of one artifact on one host: its last result and the version held."""

    status: str  # success, failed, unchanged
    deployed_version: str | None
    reason: str = ""


@dataclass(frozen=True)
class HostTarget:
    """One artifact for one host: the version it gets, and whether it looks changed."""

    artifact: str
    site: str
    host: str
    version: str
    changed: bool
    why: str

    def to_json(self) -> dict[str, object]:
        return {"artifact": self.artifact, "site": self.site, "host": self.host,
                "version": self.version, "changed": self.changed, "why": self.why}  # fmt: skip


@dataclass(frozen=True)
class MatrixEntry:
    """One artifact at one site: the worst state of its hosts and how many hosts are in each."""

    artifact: str
    site: str
    state: CellState
    version: str
    hosts: dict[str, CellState] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)  # failed host -> reason

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for state in self.hosts.values():
            out[state.value] = out.get(state.value, 0) + 1
        return dict(sorted(out.items()))


# The order in which a cell of a site shows the state of its hosts: the worst first.
_WORST = (CellState.FAILED, CellState.MISSING, CellState.STALE, CellState.SUCCESS,
          CellState.UNCHANGED)  # fmt: skip


def cell_state(version: str, recorded: Recorded | None) -> CellState:
    if recorded is None:
        return CellState.MISSING
    if recorded.status == "failed":
        return CellState.FAILED
    if recorded.deployed_version != version:
        return CellState.STALE
    return CellState.SUCCESS if recorded.status == "success" else CellState.UNCHANGED


def plan_hosts(
    wanted: Wanted,
    hosts: Mapping[str, Sequence[str]],
    cells: Mapping[tuple[str, str, str], Recorded],
    *,
    only_failed: bool = False,
) -> list[HostTarget]:
    """Every (artifact, site, host) wanted, in order; with `only_failed`, only the hosts whose
    last attempt failed (a retry)."""
    out = []
    for artifact, sites in wanted.items():
        for site, version in sites.items():
            for host in hosts.get(site, ()):
                recorded = cells.get((artifact, site, host))
                if only_failed and (recorded is None or recorded.status != "failed"):
                    continue
                state = cell_state(version, recorded)
                changed = state not in (CellState.SUCCESS, CellState.UNCHANGED)
                why = {
                    CellState.MISSING: "never pushed here",
                    CellState.FAILED: "its last attempt failed",
                    CellState.STALE: "another version is here",
                }.get(state, "this version is here")
                out.append(HostTarget(artifact, site, host, version, changed, why))
    return out


def matrix(
    wanted: Wanted,
    hosts: Mapping[str, Sequence[str]],
    cells: Mapping[tuple[str, str, str], Recorded],
) -> list[MatrixEntry]:
    """One entry per artifact and site it goes to, its hosts' states and failures' reasons."""
    out = []
    for artifact, sites in wanted.items():
        for site, version in sites.items():
            states: dict[str, CellState] = {}
            reasons: dict[str, str] = {}
            for host in hosts.get(site, ()):
                recorded = cells.get((artifact, site, host))
                states[host] = cell_state(version, recorded)
                if states[host] is CellState.FAILED and recorded is not None:
                    reasons[host] = recorded.reason
            worst = next((s for s in _WORST if s in states.values()), CellState.MISSING)
            out.append(MatrixEntry(artifact, site, worst, version, states, reasons))
    return out
