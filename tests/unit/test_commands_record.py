"""The host-side record reads back as written, and a damaged one is reported, not guessed at."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from shipyard.commands.record import (
    HostRecord,
    parse_record,
    read_record_argv,
    render_record,
    write_record_script,
)
from shipyard.commands.release import ReleaseLayout
from shipyard.commands.script import UnsafeValue

RECORDS = [
    HostRecord("api", "api@h1", "3f2a9c", "d-0001", datetime(2024, 5, 1, 12, 0, tzinfo=UTC)),
    HostRecord(
        "api",
        "api@h1",
        "3f2a9c",
        "d-0002",
        datetime(2024, 5, 1, 14, 30, 5, 123456, tzinfo=timezone(timedelta(hours=2))),
        slot="green",
    ),
    HostRecord("naïve", 'q"uote@h', "r", "id with spaces", datetime(2024, 1, 1, tzinfo=UTC)),
]


@pytest.mark.parametrize("record", RECORDS)
def test_a_record_reads_back_as_written(record: HostRecord) -> None:
    assert parse_record(render_record(record)) == record


def test_a_record_is_stable_sorted_json() -> None:
    assert render_record(RECORDS[0]) == (
        "{\n"
        '  "deployed_at": "2024-05-01T12:00:00+00:00",\n'
        '  "deployment_id": "d-0001",\n'
        '  "format": 1,\n'
        '  "instance": "api@h1",\n'
        '  "revision": "3f2a9c",\n'
        '  "service": "api",\n'
        '  "slot": null\n'
        "}\n"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "not JSON"),
        ("[]", "JSON object"),
        ('{"format": 2}', "format 2"),
        ('{"format": 1, "service": "a"}', "instance"),
        (
            '{"format": 1, "service": "a", "instance": "a@h", "revision": "r",'
            ' "deployment_id": "d", "deployed_at": "yesterday"}',
            "ISO 8601",
        ),
        (
            '{"format": 1, "service": "a", "instance": "a@h", "revision": "r",'
            ' "deployment_id": "d", "deployed_at": "2024-01-01T00:00:00"}',
            "time zone",
        ),
        (
            '{"format": 1, "service": "a", "instance": "a@h", "revision": "r",'
            ' "deployment_id": "d", "deployed_at": "2024-01-01T00:00:00+00:00", "slot": 3}',
            "slot",
        ),
    ],
    ids=[
        "not-json",
        "not-object",
        "future-format",
        "missing-field",
        "bad-time",
        "naive-time",
        "bad-slot",
    ],
)
def test_a_damaged_record_is_reported(text: str, message: str) -> None:
    with pytest.raises(UnsafeValue, match=message):
        parse_record(text)


def test_the_record_is_written_beside_the_releases_and_read_back(tmp_path: Path) -> None:
    layout = ReleaseLayout(str(tmp_path), "api")

    write = write_record_script(layout, RECORDS[2])
    subprocess.run(write.argv, check=True)
    read = subprocess.run(read_record_argv(layout), capture_output=True, text=True, check=True)

    assert Path(layout.record).exists()
    assert parse_record(read.stdout) == RECORDS[2]
