"""System-wide artifacts without a host: the config's errors name file:line:field, each site
gets its own rendering and version (secrets masked in all but the host's bytes), the plan says
which host changed, the matrix shows the worst state of a site's hosts, and the host scripts
carry contents on stdin only."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.unit.conftest import TEST_SECRET_KEY, WriteProject

from shipyard.commands.script import UnsafeValue
from shipyard.commands.shared_artifacts import (
    FileState,
    checksums_script,
    host_path,
    parse_checksums,
    push_script,
)
from shipyard.config.flatten import Flattened, flatten_project
from shipyard.config.loader import load_project
from shipyard.errors import ConfigError
from shipyard.plan.artifacts import CellState, Recorded, cell_state, matrix, plan_hosts

SECRET = "artifact-secret-value-42"
PROJECT = """
secrets:
  token: {env: TOKEN}
vars: {owner: ops}
sites:
  east: {hosts: {h1: {}, h2: {}}, vars: {region: east}}
  west: {hosts: {h3: {}}, vars: {region: west}}
artifacts:
ARTIFACTS
"""
GOOD = """
  notify:
    target: /shared/notify
    mode: "0640"
    template: true
    files:
      list.txt: {content: "{{ owner }}@{{ region }} {{ secrets.token }}\\n"}
      page.sh: {source: page.sh}
  plain:
    target: /shared/plain
    sites: [west]
    files:
      motd: {content: "{{ not rendered }}"}
"""


def flat(write_project: WriteProject, artifacts: str = GOOD) -> Flattened:
    text = PROJECT.replace("ARTIFACTS", artifacts.strip("\n"))
    path = write_project(text, **{"page.sh": "echo {{ site }}\n"})
    loaded = load_project(path)
    return flatten_project(
        loaded, secret_key=TEST_SECRET_KEY, environ={"TOKEN": SECRET}, empty_ok=True
    )


def problems(write_project: WriteProject, artifacts: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        flat(write_project, artifacts)
    return [str(p) for p in caught.value.problems]


@pytest.mark.parametrize(
    ("artifacts", "expected"),
    [
        ("  a: {target: rel, files: {x: {content: y}}}",
         "shipyard.yaml:8:15: artifacts.a.target: must be an absolute path"),
        ("  a: {target: /t, mode: '999', files: {x: {content: y}}}",
         "shipyard.yaml:8:25: artifacts.a.mode: must be an octal mode like '0644'"),
        ("  a: {target: /t, mode: 644, files: {x: {content: y}}}",
         "artifacts.a.mode: Input should be a valid string"),
        ("  a: {target: /t, sites: [east, north], files: {x: {content: y}}}",
         'shipyard.yaml:8:33: artifacts.a.sites[1]: unknown site "north"'),
        ("  a: {target: /t, sites: every, files: {x: {content: y}}}",
         "artifacts.a.sites: must be `all` or a list of site names, not 'every'"),
        ("  a: {target: /t, files: {x: {}}}",
         "artifacts.a.files.x: give exactly one of `source` or `content`"),
        ("  a: {target: /t, files: {../x: {content: y}}}",
         "artifacts.a.files: file name '../x' must be a relative path inside the target"),
        ("  a: {target: /t, files: {x: {source: missing.txt}}}",
         "shipyard.yaml:8:27: artifacts.a.files.x: cannot read missing.txt"),
        ("  a: {target: /t, template: true, files: {x: {content: '{{ nope }}'}}}",
         "artifacts.a.files.x: 'nope' is undefined (site east)"),
        ("  a: {target: /t, files: {}}",
         "artifacts.a.files: Dictionary should have at least 1 item"),
    ],
    ids=["relative-target", "bad-mode", "mode-not-quoted", "unknown-site", "sites-word",
         "no-source", "dotdot-name", "missing-source", "undefined-variable", "no-files"],
)  # fmt: skip
def test_a_bad_artifact_is_reported_at_its_file_line_and_field(
    write_project: WriteProject, artifacts: str, expected: str
) -> None:
    found = problems(write_project, artifacts)
    assert any(expected in p for p in found), found


def test_each_site_gets_its_own_rendering_and_version_with_the_secret_masked(
    write_project: WriteProject,
) -> None:
    found = flat(write_project).artifacts

    east, west = found["notify"]["east"], found["notify"]["west"]
    assert set(found["notify"]) == {"east", "west"}
    assert set(found["plain"]) == {"west"}  # its sites only
    assert east.version != west.version
    assert east.mode == "0640"
    shown = {f.path: f.data for f in east.files}
    assert shown["list.txt"] == b"ops@east ***\n"  # what may be shown and hashed
    assert shown["page.sh"] == b"echo east\n"
    assert SECRET not in repr(east)
    sent = dict(east.realise({"token": SECRET}.__getitem__))
    assert sent["list.txt"] == f"ops@east {SECRET}\n".encode()  # the host's bytes only
    assert dict(found["plain"]["west"].realise(str))["motd"] == b"{{ not rendered }}"


def test_a_version_changes_with_a_file_the_mode_or_the_secret_and_only_then(
    write_project: WriteProject,
) -> None:
    first = flat(write_project).artifacts["notify"]["east"].version
    assert flat(write_project).artifacts["notify"]["east"].version == first
    moded = flat(write_project, GOOD.replace('"0640"', '"0600"'))
    assert moded.artifacts["notify"]["east"].version != first
    text = PROJECT.replace("ARTIFACTS", GOOD.strip("\n"))
    path = write_project(text, **{"page.sh": "echo {{ site }}\n"})
    other = flatten_project(load_project(path), secret_key=TEST_SECRET_KEY,
                            environ={"TOKEN": SECRET + "-changed"}, empty_ok=True)  # fmt: skip
    assert other.artifacts["notify"]["east"].version != first


WANTED = {"certs": {"east": "v2", "west": "v2"}}
HOSTS = {"east": ["h1", "h2"], "west": ["h3"]}


@pytest.mark.parametrize(
    ("recorded", "state", "changed"),
    [
        (None, CellState.MISSING, True),
        (Recorded("success", "v2"), CellState.SUCCESS, False),
        (Recorded("unchanged", "v2"), CellState.UNCHANGED, False),
        (Recorded("success", "v1"), CellState.STALE, True),
        (Recorded("failed", "v1", "cannot connect"), CellState.FAILED, True),
        (Recorded("failed", "v2", "disk full"), CellState.FAILED, True),
    ],
)
def test_a_host_is_changed_unless_the_store_records_the_wanted_version_there(
    recorded: Recorded | None, state: CellState, changed: bool
) -> None:
    assert cell_state("v2", recorded) is state
    cells = {} if recorded is None else {("certs", "east", "h1"): recorded}
    [h1] = [t for t in plan_hosts(WANTED, HOSTS, cells) if t.host == "h1"]
    assert h1.changed is changed


def test_a_retry_plans_only_the_failed_hosts_and_the_matrix_shows_the_worst_state() -> None:
    cells = {
        ("certs", "east", "h1"): Recorded("success", "v2"),
        ("certs", "east", "h2"): Recorded("unchanged", "v2"),
        ("certs", "west", "h3"): Recorded("failed", None, "cannot connect to h3"),
    }
    retry = plan_hosts(WANTED, HOSTS, cells, only_failed=True)
    assert [(t.site, t.host) for t in retry] == [("west", "h3")]
    east, west = matrix(WANTED, HOSTS, cells)
    assert (east.state, east.counts()) == (CellState.SUCCESS, {"success": 1, "unchanged": 1})
    assert (west.state, west.reasons) == (CellState.FAILED, {"h3": "cannot connect to h3"})
    cells["certs", "east", "h1"] = Recorded("success", "v1")
    assert matrix(WANTED, HOSTS, cells)[0].state is CellState.STALE


def test_files_land_inside_the_host_root_and_names_cannot_leave_it() -> None:
    assert host_path("/srv/h1", "/shared/certs", "sub/ca.pem") == "/srv/h1/shared/certs/sub/ca.pem"
    for name in ("../x", "/etc/passwd", "a//b", "./a"):
        with pytest.raises(UnsafeValue):
            host_path("/srv/h1", "/shared", name)


def test_the_push_carries_contents_in_its_text_never_in_argv_and_renames_after_writing() -> None:
    built = push_script([("/r/a", SECRET.encode()), ("/r/b", b"")], "0640")
    assert not any(SECRET in arg for arg in built.stdin_argv)
    assert SECRET not in str(built)  # what errors and logs show of it
    text = built.text
    assert text.index('mv -f -- "$t0"') > text.index('chmod 0640 "$t1"')  # all aside first
    with pytest.raises(UnsafeValue):
        push_script([("/r/a", b"x")], "644")


def test_checksums_are_read_in_order_and_an_odd_answer_is_refused() -> None:
    digest = "a" * 64
    assert parse_checksums(f"640 {digest}\n- -\n", 2) == [FileState("0640", digest), None]
    assert checksums_script(["/r/a"]).args == ("/r/a",)
    for answer in ("640 nothex\n", ""):
        with pytest.raises(UnsafeValue):
            parse_checksums(answer, 1)


def test_an_artifact_source_outside_the_project_is_refused(
    write_project: WriteProject, tmp_path: Path
) -> None:
    outside = tmp_path.parent / "outside-secret.txt"
    outside.write_text("x")
    (tmp_path / "link.txt").symlink_to(outside)
    found = problems(write_project, "  a: {target: /t, files: {x: {source: link.txt}}}")
    assert any("outside the project directory" in p for p in found), found
