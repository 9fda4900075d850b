"""Instance lifecycle on the real SSH fleet: disable stops the program and keeps its release,
enable brings it back healthy, delete removes it from its host (and is refused, marking nothing,
when the host cannot be reached), an orphaned instance is deleted, and every transition the
state matrix forbids is refused with a message that names the instance and what to do."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from deploy_project import (
    Project,
    bootstrapped,
    current_target,
    free_port,
    service_dir,
    version,
)

from fleet import Fleet, FleetHost

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def hosts(fleet: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    found: Fleet = fleet(3)
    with bootstrapped(Project(tmp_path_factory.mktemp("bootstrap"), found)):
        yield found


@pytest.fixture
def project(hosts: Fleet, tmp_path: Path) -> Project:
    return Project(tmp_path / "project", hosts)


def service(port: int, hosts: list[str]) -> dict[str, Any]:
    return {"template": "hello", "hosts": hosts, "overrides": {"ports": {"http": port}}}


def program_linked(host: FleetHost, service: str) -> bool:
    return (Path(host.root) / "supervisor" / "programs" / f"{service}.conf").is_symlink()


def answers(host: FleetHost, port: int) -> bool:
    try:
        version(host, port, timeout=2.0)
    except (AssertionError, OSError):
        return False
    return True


def refused(project: Project, *args: str) -> str:
    done = project.shipyard(*args)
    assert done.returncode == 2, (done.stdout, done.stderr)
    return done.stderr


def test_disable_stops_it_and_keeps_its_release_and_enable_brings_it_back(
    project: Project,
) -> None:
    host = project.hosts[0]
    port = free_port([host.address])
    project.write({"calm": service(port, [host.name])})
    revision = project.deploy()["calm@h001"]["revision"]
    assert version(host, port) == "v1"

    off = project.json("disable", "calm@h001")
    assert [o["result"] for o in off["outcomes"]] == ["success"]

    assert not answers(host, port)
    assert not program_linked(host, "calm")  # not started at boot either
    assert current_target(host, "calm") == f"releases/{revision}"  # release and config kept
    row = project.status()["calm@h001"]
    assert (row["status"], row["stale"], row["last"]["kind"]) == ("disabled", False, "disable")
    project.write({"calm": service(port, [host.name])}, vars={"release": "v2"})
    left = project.deploy()["calm@h001"]  # a changed config leaves a disabled instance alone
    assert (left["result"], left["reason"]) == ("unchanged", "disabled: enable it first")
    forced = project.json("deploy", "--force", "calm@h001", expect=1)["outcomes"]
    assert forced[0]["result"] == "rejected"
    assert "cannot deploy calm@h001: it is disabled: enable it first" in forced[0]["reason"]

    on = project.json("enable", "calm@h001")
    assert [o["result"] for o in on["outcomes"]] == ["success"]

    assert version(host, port) == "v1"  # the release it had, not the changed config
    assert program_linked(host, "calm")
    row = project.status()["calm@h001"]
    assert (row["status"], row["deployed_revision"], row["stale"]) == ("success", revision, True)
    actions = [entry["action"] for entry in project.json("audit")]
    assert {"disable.begin", "disable.finish", "enable.begin", "enable.finish"} <= set(actions)


def test_delete_is_refused_on_an_unreachable_host_and_removes_it_from_a_reachable_one(
    project: Project, hosts: Fleet
) -> None:
    near, far = project.hosts[0], project.hosts[2]
    port = free_port([near.address, far.address])
    placed = {"gone": service(port, [near.name, far.name])}
    project.write(placed)
    project.deploy()

    project.write(placed, addresses={far.name: hosts.silent_address()})
    cut_off = project.json("delete", "--yes", "gone@h003", expect=1)["outcomes"]

    assert cut_off[0]["result"] == "failed"
    assert "cannot connect" in cut_off[0]["reason"]
    assert service_dir(far, "gone").exists()  # nothing done there, and nothing marked
    assert project.status()["gone@h003"]["status"] == "success"

    done = project.json("delete", "--yes", "gone@h001")["outcomes"]

    assert done[0]["result"] == "success"
    assert not service_dir(near, "gone").exists()
    assert not program_linked(near, "gone")
    assert not answers(near, port)
    row = project.status()["gone@h001"]
    assert (row["status"], row["deployed_revision"]) == ("deleted", None)


def test_an_instance_removed_from_the_config_is_orphaned_until_it_is_deleted(
    project: Project,
) -> None:
    host = project.hosts[1]
    port = free_port([host.address])
    project.write({"left": service(port, [host.name]), "stays": service(port + 1, [host.name])})
    project.deploy()
    project.write({"stays": service(port + 1, [host.name])})

    assert project.status()["left@h002"]["status"] == "orphaned"
    assert "orphaned" in refused(project, "enable", "left@h002")

    project.json("delete", "--yes", "left@h002")

    assert "left@h002" not in project.status()
    assert not service_dir(host, "left").exists()
    assert version(host, port + 1) == "v1"  # its neighbour untouched


def test_every_transition_the_matrix_forbids_is_refused_naming_what_to_do(
    project: Project,
) -> None:
    host = project.hosts[1]
    port = free_port([host.address])
    project.write({"strict": service(port, [host.name])})

    assert "cannot disable strict@h002: it was never deployed" in refused(
        project, "disable", "strict@h002"
    )
    assert "cannot delete strict@h002: it was never deployed" in refused(
        project, "delete", "--yes", "strict@h002"
    )
    project.deploy()
    assert "cannot enable strict@h002: it is not disabled" in refused(
        project, "enable", "strict@h002"
    )
    project.json("disable", "strict@h002")
    assert "it is disabled already" in refused(project, "disable", "strict@h002")
    assert "cannot rollback strict@h002: it is disabled: enable it first" in refused(
        project, "rollback", "strict@h002"
    )
    project.json("delete", "--yes", "strict@h002")
    assert "it is deleted already" in refused(project, "delete", "--yes", "strict@h002")
    assert "cannot enable strict@h002: it is deleted: deploy it again" in refused(
        project, "enable", "strict@h002"
    )
    again = project.deploy()["strict@h002"]  # deleted, still in the config: deployed anew
    assert again["result"] == "success"
    assert version(host, port) == "v1"
    assert project.status()["strict@h002"]["status"] == "success"
