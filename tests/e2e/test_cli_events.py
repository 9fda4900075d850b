"""`shipyard events` as the site event log: --site, --search, --since, --severity and --before
pages, newest first, with severity and source; bad values refused naming the option; the stream
options kept; and `shipyard events purge`."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cli_runner import shipyard

from shipyard.events import Event, Phase
from shipyard.store import default_url, open_store

REPO = Path(__file__).resolve().parents[2]
NOW = datetime.now(UTC)


@pytest.fixture
def logged(tmp_path: Path) -> Path:
    """examples/hello with a store of events: east and west, now and 40 days ago."""
    project = tmp_path / "hello"
    shutil.copytree(
        REPO / "examples" / "hello", project, ignore=shutil.ignore_patterns(".shipyard")
    )
    with open_store(default_url(project)) as store:
        store.append_events(
            [
                Event(Phase.FINISHED, NOW - timedelta(days=40), instance="greeter@east-1",
                      site="east", host="east-1", result="success", detail="an old one"),
                Event(Phase.FINISHED, NOW - timedelta(hours=3), instance="greeter@east-2",
                      site="east", host="east-2", result="failed", detail="health check failed"),
                Event(Phase.HOST_ERROR, NOW - timedelta(minutes=5), site="west", host="west-1",
                      detail="no answer: \x1b[31mred\x1b[0m"),
                Event(Phase.FINISHED, NOW - timedelta(minutes=1), instance="front@east-1",
                      site="east", host="east-1", result="success", detail="health check passed"),
            ]
        )  # fmt: skip
    return project


def events_json(project: Path, *args: str) -> list[dict[str, object]]:
    done = shipyard("events", *args, "--json", cwd=project)
    assert done.returncode == 0, done.stderr
    found: list[dict[str, object]] = json.loads(done.stdout)["events"]
    return found


def test_the_log_of_a_site_newest_first_searched_and_paged(logged: Path) -> None:
    east = events_json(logged, "--site", "east")
    assert [e["host"] for e in east] == ["east-1", "east-2", "east-1"]
    assert [e["severity"] for e in east] == ["info", "error", "info"]
    assert [e["host"] for e in events_json(logged, "--search", "health")] == ["east-1", "east-2"]
    hostile = events_json(logged, "--search", '"health" -pass*')  # words: health, pass
    assert [e["host"] for e in hostile] == ["east-1"]
    assert [e["host"] for e in events_json(logged, "--search", 'heal "*')] == ["east-1", "east-2"]
    assert [e["host"] for e in events_json(logged, "--since", "2h")] == ["east-1", "west-1"]
    assert [e["host"] for e in events_json(logged, "--severity", "error")] == ["west-1", "east-2"]
    first = shipyard("events", "--site", "east", "--limit", "2", "--json", cwd=logged)
    cursor = json.loads(first.stdout)["next_before"]
    older = events_json(logged, "--site", "east", "--before", str(cursor))
    assert [e["host"] for e in older] == ["east-1"]
    assert older[0]["detail"] == "an old one"


def test_the_log_printed_shows_severity_source_and_escaped_host_text(logged: Path) -> None:
    done = shipyard("events", "--since", "1d", cwd=logged)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "error" in lines[1]
    assert "host west-1" in lines[1]
    assert "host-error: no answer" in lines[1]
    assert "\x1b" not in done.stdout
    assert "instance greeter@east-2" in lines[2]


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--since", "yesterday"], "--since"),
        (["--since", "2x"], "--since"),
        (["--severity", "loud"], "--severity"),
        (["--before", "0"], "--before"),
        (["--search", "x", "--follow"], "--follow"),
        (["--site", "east", "--rollout", "r1"], "--rollout"),
    ],
)
def test_a_bad_value_is_exit_2_naming_the_option(logged: Path, args: list[str], named: str) -> None:
    done = shipyard("events", *args, cwd=logged)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert named in done.stderr
    assert "Traceback" not in done.stderr


def test_the_stream_is_as_it_was_and_purge_deletes_the_old_ones(logged: Path) -> None:
    stream = shipyard("events", "--json", cwd=logged)
    assert stream.returncode == 0, stream.stderr
    assert [e["host"] for e in json.loads(stream.stdout)] == [
        "east-1",
        "east-2",
        "west-1",
        "east-1",
    ]
    after = shipyard("events", "--after", "3", "--json", cwd=logged)
    assert [e["id"] for e in json.loads(after.stdout)] == [4]
    purged = shipyard("events", "purge", "--json", cwd=logged)
    assert purged.returncode == 0, purged.stderr
    assert json.loads(purged.stdout) == {"deleted": 1, "days": 30}
    again = shipyard("events", "purge", "--days", "1", cwd=logged)
    assert again.stdout.strip() == "purged 0 event(s) older than 1 day(s)"
    assert len(events_json(logged, "--since", "1w")) == 3
    audit = shipyard("audit", "--json", cwd=logged)
    assert [e["action"] for e in json.loads(audit.stdout)].count("events.purge") == 2
