"""The app values the CLI renders in client mode come back whole from their JSON."""

from __future__ import annotations

import asyncio
import json
from dataclasses import fields
from datetime import UTC, datetime

from shipyard.app import project, queries
from shipyard.app.queries import (
    AuditLine,
    AuditPage,
    AuditVerdict,
    InstanceDiff,
    Slots,
    StatusReport,
    StatusRow,
)
from shipyard.app.session import Session
from shipyard.app.statusrows import LastDeployment
from shipyard.events import Event, Phase

INSTANCE = "web@local"


def over_the_wire(value: object) -> object:
    return json.loads(json.dumps(value, default=str))


def test_a_status_report_comes_back_with_its_counts(session: Session) -> None:
    report = asyncio.run(queries.status(session))
    back = StatusReport.from_json(over_the_wire(report.to_json()))  # type: ignore[arg-type]
    assert back == report


def test_a_status_row_with_its_last_deployment_and_slots_comes_back() -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    last = LastDeployment("d-1", "deploy", "ann", "failed", at, at, "boom")
    for slots in (Slots("blue", None, "r1", "r2"), Slots(error="unreachable"), None):
        row = StatusRow(INSTANCE, "dev", "local", "failed", "r0", "r1", last, slots, "web")
        assert StatusRow.from_json(over_the_wire(row.to_json())) == row  # type: ignore[arg-type]


def test_validate_show_and_plan_come_back(session: Session) -> None:
    summary = project.validate(session)
    assert project.Validation.from_json(over_the_wire(summary.to_json())) == summary  # type: ignore[arg-type]
    shown = project.show(session, INSTANCE)
    assert project.InstanceConfig.from_json(over_the_wire(shown.to_json())) == shown  # type: ignore[arg-type]
    view = project.plan(session)
    assert project.PlanView.from_json(over_the_wire(view.to_json())) == view  # type: ignore[arg-type]


def test_a_diff_an_audit_page_and_a_verdict_come_back(session: Session) -> None:
    [found] = queries.diff(session)
    back = InstanceDiff.from_json(found.instance, over_the_wire(found.to_json()))  # type: ignore[arg-type]
    assert back == found
    line = AuditLine(7, datetime(2026, 1, 2, tzinfo=UTC), "ann", "deploy", INSTANCE, "ok", {"a": 1})
    page = AuditPage((line,), more=True)
    assert AuditPage.from_json(over_the_wire(page.to_json()), more=True) == page  # type: ignore[arg-type]
    for verdict in (AuditVerdict(True, 3, "abc"), AuditVerdict(False, 2, "abc", 3, "changed")):
        assert AuditVerdict.from_json(over_the_wire(verdict.to_json())) == verdict  # type: ignore[arg-type]


def test_plan_with_force_still_creates_what_was_never_deployed(session: Session) -> None:
    forced = project.plan(session, force=True)
    assert [s.action for s in forced.plan.steps] == ["create"]


def test_an_event_comes_back_whole_and_its_json_names_every_field() -> None:
    event = Event(
        Phase.FINISHED, datetime(2026, 12, 3, 12, 0, tzinfo=UTC), "r-1", "d-1", INSTANCE,
        "dev", "local", "success", "all good", 42,
    )  # fmt: skip
    shown = event.to_json()
    assert set(shown) == {f.name for f in fields(Event)} | {"kind", "severity", "source"}
    assert (shown["severity"], shown["source"]) == ("info", f"instance {INSTANCE}")
    assert Event.from_json(over_the_wire(shown)) == event  # type: ignore[arg-type]
    artifact = Event(Phase.ARTIFACT, event.at, site="dev", host="h1", result="failed", subject="ca")
    shown = artifact.to_json()
    assert (shown["kind"], shown["severity"], shown["source"]) == (
        "artifact",
        "error",
        "artifact ca",
    )
    assert Event.from_json(over_the_wire(shown)) == artifact  # type: ignore[arg-type]


def test_artifact_reports_and_the_matrix_come_back_whole() -> None:
    from shipyard.app.artifacts import (
        ArtifactMatrix,
        ArtifactReport,
        HostResultView,
        MatrixCellView,
    )

    report = ArtifactReport(
        "run-1",
        (HostResultView("certs", "east", "h1", "success", "v1"),
         HostResultView("certs", "west", "h2", "failed", "v1", "cannot connect to h2")),
    )  # fmt: skip
    assert ArtifactReport.from_json(over_the_wire(report.to_json())) == report  # type: ignore[arg-type]
    assert not report.ok
    found = ArtifactMatrix(
        (MatrixCellView("certs", "west", "failed", "v1", {"h2": "failed", "h3": "success"},
                        {"h2": "cannot connect to h2"}),)
    )  # fmt: skip
    back = ArtifactMatrix.from_json(over_the_wire(found.to_json()))  # type: ignore[arg-type]
    assert back == found
    assert back.failed
    assert back.cells[0].counts() == {"failed": 1, "success": 1}


def test_a_health_report_comes_back_whole_with_its_drift() -> None:
    from shipyard.app.health_values import HealthReport, HostHealth, InstanceHealth, SiteHealth
    from shipyard.deploy.drift import Drift, DriftKind
    from shipyard.plan.health import SiteCounts

    at = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    drift = Drift(INSTANCE, DriftKind.FILES, "files of the live release differ: changed: a")
    report = HealthReport(
        (SiteHealth("dev", "degraded", SiteCounts(hosts_online=1, drifted=1)),),
        (HostHealth("local", "dev", "online", at, at, at), HostHealth("far", "dev", "offline",
                                                                      at, None, at, "gone")),
        (InstanceHealth(INSTANCE, "dev", "local", "healthy", at, "", at, (drift,)),),
        (Drift("stray@local", DriftKind.UNKNOWN, "holds a host record"),),
    )  # fmt: skip
    back = HealthReport.from_json(over_the_wire(report.to_json()))  # type: ignore[arg-type]
    assert back == report
    assert [d.kind for d in back.drift] == [DriftKind.FILES, DriftKind.UNKNOWN]
