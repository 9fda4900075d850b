"""Health and drift rules, table-driven: a host's state from when it last answered (at the
defaults: a round every 30 s, offline after 60 s), an instance's health from one round, a
site's from its counts, and each kind of drift from what a host said."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shipyard.commands.inspect import FileChanges, parse_files
from shipyard.commands.inventory import ReleaseLinks
from shipyard.commands.record import HostRecord
from shipyard.deploy.drift import DriftKind, Expected, Observed, drift_of, unknown_services
from shipyard.plan.health import (
    INTERVAL,
    OFFLINE_AFTER,
    HostState,
    InstanceHealth,
    SiteCounts,
    SiteState,
    host_state,
    instance_health,
    site_state,
)

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("last_ok", "now", "expected"),
    [
        (None, 0, HostState.UNKNOWN),  # nothing heard yet
        (None, OFFLINE_AFTER, HostState.UNKNOWN),
        (None, OFFLINE_AFTER + 1, HostState.OFFLINE),  # never answered in a minute
        (0, INTERVAL, HostState.ONLINE),  # one lost round is a blip
        (0, OFFLINE_AFTER, HostState.ONLINE),
        (0, OFFLINE_AFTER + INTERVAL, HostState.OFFLINE),  # two are an outage: 60-90 s
        (100, 120, HostState.ONLINE),  # back
    ],
)
def test_a_host_is_offline_only_after_a_minute_without_a_report(
    last_ok: float | None, now: float, expected: HostState
) -> None:
    found = host_state(None if last_ok is None else at(last_ok), at(now), T0, OFFLINE_AFTER)
    assert found is expected


def test_with_rounds_every_30_s_a_host_that_stops_is_offline_within_60_to_90_s() -> None:
    last_answer = 0.0
    went = next(
        t
        for t in range(30, 300, 30)
        if host_state(at(last_answer), at(t), T0, 60.0) is HostState.OFFLINE
    )
    assert 60 <= went - last_answer <= 90


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"lifecycle": "disabled"}, (InstanceHealth.DISABLED, "")),
        ({"deployed": False}, (InstanceHealth.NOT_DEPLOYED, "")),
        ({"answered": False}, (InstanceHealth.UNKNOWN, "its host did not answer")),
        ({"state": "FATAL"}, (InstanceHealth.FAILING, "program is FATAL")),
        ({"state": None}, (InstanceHealth.FAILING, "program is not loaded")),
        ({"probe_error": "503"}, (InstanceHealth.FAILING, "health check failed: 503")),
        ({}, (InstanceHealth.HEALTHY, "")),
    ],
)
def test_an_instances_health_from_one_round(
    kwargs: dict[str, object], expected: tuple[InstanceHealth, str]
) -> None:
    given: dict[str, object] = {
        "lifecycle": "active", "deployed": True, "answered": True, "state": "RUNNING",
        "probe_error": None,
    }  # fmt: skip
    assert instance_health(**(given | kwargs)) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        (SiteCounts(), SiteState.UNKNOWN),
        (SiteCounts(hosts_offline=2), SiteState.DOWN),
        (SiteCounts(hosts_online=2), SiteState.OK),
        (SiteCounts(hosts_online=1, hosts_offline=1), SiteState.DEGRADED),
        (SiteCounts(hosts_online=2, failing=1), SiteState.DEGRADED),
        (SiteCounts(hosts_online=2, drifted=1), SiteState.DEGRADED),
        (SiteCounts(hosts_online=2, recent_failures=1), SiteState.DEGRADED),  # failures count
    ],
)
def test_a_sites_health_from_its_hosts_instances_and_recent_failures(
    counts: SiteCounts, expected: SiteState
) -> None:
    assert site_state(counts) is expected


EXPECTED = Expected("api@h1", "api", "r2", "active", "api")
RECORD = HostRecord("api", "api@h1", "r2", "d-1", T0)
GOOD = Observed(
    record=RECORD, record_error=None, links=ReleaseLinks(current="r2"), files=FileChanges(),
    states={"api": "RUNNING"},
    program_links={"api": "/srv/api/current/.shipyard/supervisor.conf"},
)  # fmt: skip


def kinds(observed: Observed, expected: Expected = EXPECTED) -> list[tuple[DriftKind, str]]:
    return [(d.kind, d.detail) for d in drift_of(expected, observed, "/srv/api")]


def test_a_host_running_what_the_store_says_has_no_drift() -> None:
    assert kinds(GOOD) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"record": None}, (DriftKind.RECORD, "the host record is missing")),
        (
            {"record": HostRecord("api", "api@h1", "r1", "d-0", T0)},
            (DriftKind.RECORD, "the host record names revision r1, the store r2"),
        ),
        (
            {"links": ReleaseLinks(current="r1")},
            (DriftKind.RELEASE, "current points at r1, the store deployed r2"),
        ),
        (
            {"links": ReleaseLinks()},
            (DriftKind.RELEASE, "current is missing, the store deployed r2"),
        ),
        (
            {"files": FileChanges(changed=("a.py",), added=("x",), more=3)},
            (
                DriftKind.FILES,
                "files of the live release differ: changed: a.py; added: x; and 3 more",
            ),
        ),
        (
            {"files": FileChanges(no_release=True)},
            (DriftKind.FILES, "release r2 is not on the host"),
        ),
        ({"states": {"api": "STOPPED"}}, (DriftKind.PROGRAM, "program api is STOPPED")),
        ({"states": {}}, (DriftKind.PROGRAM, "program api is not loaded")),
        (
            {"program_links": {"api": "/srv/other/current/.shipyard/supervisor.conf"}},
            (
                DriftKind.PROGRAM,
                "program api's file points at /srv/other/current/.shipyard/supervisor.conf",
            ),
        ),
        ({"program_links": {}}, (DriftKind.PROGRAM, "program api is not in supervisord's include")),
    ],
)
def test_each_kind_of_drift_says_what_differs(
    change: dict[str, object], expected: tuple[DriftKind, str]
) -> None:
    observed = Observed(**(vars(GOOD) | change))  # type: ignore[arg-type]
    assert kinds(observed) == [expected]


def test_a_disabled_instance_drifts_only_when_its_program_runs() -> None:
    disabled = Expected("api@h1", "api", "r2", "disabled", "api")
    stopped = Observed(**(vars(GOOD) | {"states": {"api": "STOPPED"}}))  # type: ignore[arg-type]
    assert kinds(stopped, disabled) == []
    assert kinds(GOOD, disabled) == [
        (DriftKind.PROGRAM, "it is disabled, but program api is RUNNING")
    ]


def test_a_never_deployed_or_deleted_instance_has_no_drift() -> None:
    nothing = Observed(None, None, ReleaseLinks(), None, {}, {})
    assert kinds(nothing, Expected("api@h1", "api", None, "active", "api")) == []
    assert kinds(nothing, Expected("api@h1", "api", "r2", "deleted", "api")) == []


def test_a_blue_green_instance_is_compared_on_its_live_slot() -> None:
    expected = Expected("api@h1", "api", "r2", "active", "api", bluegreen=True)
    record = HostRecord("api", "api@h1", "r2", "d-1", T0, slot="green")
    observed = Observed(
        record, None, ReleaseLinks(current=None, blue="r1", green="r2"), FileChanges(),
        {"api-green": "RUNNING"}, {"api-green": "/srv/api/slots/green/.shipyard/supervisor.conf"},
    )  # fmt: skip
    assert kinds(observed, expected) == []
    switched = Observed(**(vars(observed) | {"links": ReleaseLinks(blue="r1", green="r1")}))  # type: ignore[arg-type]
    assert kinds(switched, expected) == [
        (DriftKind.RELEASE, "slot green points at r1, the store deployed r2")
    ]


def test_a_service_the_store_does_not_know_on_the_host_is_unknown() -> None:
    found = unknown_services("h1", ("api", "stray"), {"api"}, "/srv")
    assert [(d.instance, d.kind) for d in found] == [("stray@h1", DriftKind.UNKNOWN)]
    assert "/srv/stray holds a host record" in found[0].detail


def test_what_the_files_check_prints_is_read_back_each_path_once() -> None:
    printed = "changed ./a\nchanged ./b\nmissing ./b\nadded ./c\nchanged ./c\nmore 7\n"
    assert parse_files(printed) == FileChanges(("a",), ("b",), ("c",), 7)
    assert parse_files("no-release\n").no_release
    assert parse_files("no-sums\n") == FileChanges(no_sums=True)
    assert not parse_files("no-sums\n").any
