"""The monitor's rows on SQLite and PostgreSQL: a round's hosts and instances written and
replaced in one go, read back by site, drift kept with its details, rows the project no longer
has forgotten, and the deployment failures of the last hour counted per site."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shipyard.store import DeploymentStatus, Store
from shipyard.store.health import HostHealthRow, InstanceHealthRow

from .builders import begin, config

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def host(name: str, site: str, state: str, error: str | None = None) -> HostHealthRow:
    return HostHealthRow(name, site, state, T0, T0 if state == "online" else None, T0, error)


def test_a_rounds_rows_are_written_replaced_and_read_back_by_site(store: Store) -> None:
    drift = [{"instance": "api@h1", "kind": "files", "detail": "changed: app.py"}]
    store.save_health(
        [host("h1", "eu", "online"), host("h2", "us", "unknown")],
        [InstanceHealthRow("api@h1", "eu", "h1", "healthy", T0, "", T0, drift)],
    )
    later = T0 + timedelta(seconds=30)
    store.save_health(
        [HostHealthRow("h2", "us", "offline", later, None, later, "cannot connect")],
        [InstanceHealthRow("api@h1", "eu", "h1", "failing", later, "program is FATAL", later)],
    )
    assert [(h.host, h.state) for h in store.host_health()] == [("h1", "online"), ("h2", "offline")]
    [us] = store.host_health(site="us")
    assert (us.error, us.since, us.last_ok_at) == ("cannot connect", later, None)
    [api] = store.instance_health(site="eu")
    assert (api.health, api.detail, api.drift, api.checked_at) == (
        "failing", "program is FATAL", [], later,
    )  # fmt: skip
    assert store.instance_health(site="us") == []

    store.save_health([], [InstanceHealthRow("api@h1", "eu", "h1", "healthy", T0, "", T0, drift)])
    assert store.instance_health()[0].drift == drift

    store.forget_health(hosts=["h2"], found=["api@h1"])
    assert [h.host for h in store.host_health()] == ["h1"]
    assert store.instance_health() == []


def test_the_failures_of_the_last_hour_count_per_site(store: Store) -> None:
    for n, status in enumerate([DeploymentStatus.FAILED, DeploymentStatus.FAILED,
                                DeploymentStatus.SUCCESS]):  # fmt: skip
        begin(store, f"d-{n}", f"api@web-{n}")
        done = {"snapshot": config("r1")} if status is DeploymentStatus.SUCCESS else {}
        store.finish_deployment(f"d-{n}", status=status, error="boom" if n < 2 else None, **done)
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    assert store.failures_since(an_hour_ago) == {"eu": 2}
    assert store.failures_since(datetime.now(UTC) + timedelta(minutes=1)) == {}
