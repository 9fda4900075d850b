"""An archive is untrusted: a member that would leave the release, or is no file, is refused.

Members with `..`, absolute paths, links out of the release (directly or through other links),
hard links to anything but a file of the archive, devices and fifos, names Shipyard reserves:
a config error naming the archive and the member at `shipyard validate` (file:line:field of
`artifact.path`), and a DeployError from staging, which never extracts such a member.
"""

from __future__ import annotations

import asyncio
import io
import os
import stat
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shipyard.commands.release import MARKER
from shipyard.config.flatten import flatten_project
from shipyard.config.loader import load_project
from shipyard.config.topology import all_hosts
from shipyard.deploy.hostgroup import HostGroup, Member
from shipyard.deploy.instance import Release
from shipyard.deploy.staging import stage_release
from shipyard.errors import ConfigError, DeployError
from shipyard.executors.factory import executor_for

TEST_KEY = b"security-test-secret-key"  # the store's key for fingerprints, in tests

PROJECT = """\
name: archives
sites:
  lab:
    hosts:
      box: {{connection: local, root: "{root}"}}
templates:
  web:
    artifact:
      path: {archive}
    commands: {{start: [python3, server.py]}}
services:
  web: {{template: web, hosts: [box]}}
"""
LOCATION = "shipyard.yaml:9:13: templates.web.artifact.path"


@dataclass(frozen=True)
class Entry:
    """One archive member to write: a file, a directory, a link, a hard link or a special."""

    name: str
    kind: str = "file"  # file, dir, symlink, hardlink, chr, blk, fifo
    data: str = ""  # a file's content; a link's target
    mode: int = 0o644


def write_tar(path: Path, entries: list[Entry]) -> None:
    kinds = {
        "file": tarfile.REGTYPE,
        "dir": tarfile.DIRTYPE,
        "symlink": tarfile.SYMTYPE,
        "hardlink": tarfile.LNKTYPE,
        "chr": tarfile.CHRTYPE,
        "blk": tarfile.BLKTYPE,
        "fifo": tarfile.FIFOTYPE,
    }
    with tarfile.open(path, "w:gz" if path.name.endswith("gz") else "w") as tar:
        for entry in entries:
            info = tarfile.TarInfo(entry.name)
            info.type, info.mode = kinds[entry.kind], entry.mode
            if entry.kind in ("symlink", "hardlink"):
                info.linkname = entry.data
            if entry.kind == "file":
                data = entry.data.encode()
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)


def write_zip(path: Path, entries: list[Entry]) -> None:
    types = {
        "file": stat.S_IFREG,
        "dir": stat.S_IFDIR,
        "symlink": stat.S_IFLNK,
        "chr": stat.S_IFCHR,
        "fifo": stat.S_IFIFO,
    }
    with zipfile.ZipFile(path, "w") as archive:
        for entry in entries:
            info = zipfile.ZipInfo(entry.name)
            info.create_system = 3  # unix: the mode bits below count
            info.external_attr = (types[entry.kind] | entry.mode) << 16
            archive.writestr(info, entry.data)


@dataclass
class ArchiveProject:
    dir: Path
    root: Path
    archive: str = "app.tar"

    def write(self, entries: list[Entry], archive: str = "app.tar") -> Path:
        self.archive = archive
        path = self.dir / archive
        (write_zip if archive.endswith(".zip") else write_tar)(path, entries)
        text = PROJECT.format(root=self.root, archive=archive)
        (self.dir / "shipyard.yaml").write_text(text)
        return path

    def problems(self) -> list[str]:
        with pytest.raises(ConfigError) as refused:
            flatten_project(
                load_project(self.dir / "shipyard.yaml"), secret_key=TEST_KEY, environ={}
            )
        return [str(problem) for problem in refused.value.problems]

    def stage(self, target: Path) -> Path:
        config = {"artifact": {"path": self.archive}, "files": {}}
        return stage_release(self.dir, config, set(), target)

    def shipyard(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
        env |= {"SHIPYARD_ACTOR": "tester", "COLUMNS": "300"}
        return subprocess.run(
            [sys.executable, "-m", "shipyard", *args],
            cwd=self.dir,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ArchiveProject:
    directory = tmp_path / "project"
    directory.mkdir()
    monkeypatch.chdir(directory)  # problems name shipyard.yaml relative to here
    return ArchiveProject(directory, tmp_path / "host")


OK = Entry("app/server.py", data="print('hi')\n")
HOSTILE_TAR = [
    pytest.param(
        [Entry("../evil.txt", data="x")], "../evil.txt leaves the release (..)", id="dotdot"
    ),
    pytest.param(
        [Entry("app/../../evil.txt", data="x")],
        "app/../../evil.txt leaves the release (..)",
        id="dotdot-inside",
    ),
    pytest.param([Entry("{abs}", data="x")], "{abs} has an absolute path", id="absolute"),
    pytest.param(
        [Entry("passwd", "symlink", "/etc/passwd")],
        "passwd links to an absolute path (/etc/passwd)",
        id="symlink-absolute",
    ),
    pytest.param(
        [Entry("up", "symlink", "../../victim.txt")],
        "up links outside the release (to ../../victim.txt)",
        id="symlink-up",
    ),
    pytest.param(
        [Entry("here", "symlink", "."), Entry("out", "symlink", "here/../victim.txt")],
        "out links outside the release (to here/../victim.txt)",
        id="symlink-through-symlink",
    ),
    pytest.param(
        [Entry("loop", "symlink", "loop/x")],
        "loop is a loop of links (to loop/x)",
        id="symlink-loop",
    ),
    pytest.param(
        [Entry("hard", "hardlink", "../victim.txt")],
        "hard is a hard link to ../victim.txt, which is not a file of the archive",
        id="hardlink-out",
    ),
    pytest.param(
        [Entry("hard", "hardlink", "{abs}")],
        "hard is a hard link to {abs}, which is not a file of the archive",
        id="hardlink-absolute",
    ),
    pytest.param(
        [Entry("tty", "chr")], "tty is a character device, which an artifact may not hold", id="chr"
    ),
    pytest.param(
        [Entry("disk", "blk")], "disk is a block device, which an artifact may not hold", id="blk"
    ),
    pytest.param(
        [Entry("pipe", "fifo")], "pipe is a fifo, which an artifact may not hold", id="fifo"
    ),
    pytest.param(
        [Entry("conf", "symlink", "app"), Entry("conf/x.ini", data="x")],
        "conf/x.ini goes through conf, which is not a directory",
        id="through-symlink",
    ),
    pytest.param(
        [Entry("x", "symlink", "app/server.py"), Entry("x", data="overwrites the link's file")],
        "x appears twice",
        id="file-over-symlink",
    ),
    pytest.param(
        [Entry(".shipyard/supervisor.conf", data="[program:x]\n")],
        ".shipyard/supervisor.conf is a name Shipyard reserves inside a release",
        id="reserved-program-file",
    ),
    pytest.param(
        [Entry("./.shipyard-complete", data="x\n")],
        "./.shipyard-complete is a name Shipyard reserves inside a release",
        id="reserved-marker",
    ),
    pytest.param(
        [Entry(".shipyard", "symlink", "app")],
        ".shipyard is a name Shipyard reserves inside a release",
        id="reserved-as-link",
    ),
]


@pytest.mark.parametrize(("entries", "why"), HOSTILE_TAR)
@pytest.mark.parametrize("archive", ["app.tar", "app.tar.gz"])
def test_a_hostile_tar_member_is_a_config_error_naming_archive_and_member(
    project: ArchiveProject, tmp_path: Path, entries: list[Entry], why: str, archive: str
) -> None:
    absolute = str(tmp_path / "absolute-evil.txt")
    entries = [
        Entry(e.name.format(abs=absolute), e.kind, e.data.format(abs=absolute)) for e in entries
    ]
    project.write([OK, *entries], archive)

    problems = project.problems()

    assert problems == [f"{LOCATION}: archive {archive}: member {why.format(abs=absolute)}"]


@pytest.mark.parametrize(("entries", "why"), HOSTILE_TAR)
def test_staging_never_extracts_a_hostile_tar_member(
    project: ArchiveProject, tmp_path: Path, entries: list[Entry], why: str
) -> None:
    absolute = str(tmp_path / "absolute-evil.txt")
    entries = [
        Entry(e.name.format(abs=absolute), e.kind, e.data.format(abs=absolute)) for e in entries
    ]
    project.write([OK, *entries])
    target = tmp_path / "stage" / "release"

    with pytest.raises(DeployError, match="member"):
        project.stage(target)

    assert list(target.iterdir()) == []  # nothing at all is extracted from a refused archive
    assert not (tmp_path / "stage" / "evil.txt").exists()
    assert not (tmp_path / "evil.txt").exists()
    assert not Path(absolute).exists()


HOSTILE_ZIP = [
    pytest.param(
        [Entry("../evil.txt", data="x")], "../evil.txt leaves the release (..)", id="dotdot"
    ),
    pytest.param([Entry("{abs}", data="x")], "{abs} has an absolute path", id="absolute"),
    pytest.param(
        [Entry("up", "symlink", "../../victim.txt", 0o777)],
        "up links outside the release (to ../../victim.txt)",
        id="symlink-up",
    ),
    pytest.param(
        [Entry("passwd", "symlink", "/etc/passwd", 0o777)],
        "passwd links to an absolute path (/etc/passwd)",
        id="symlink-absolute",
    ),
    pytest.param(
        [Entry("pipe", "fifo")], "pipe is a fifo, which an artifact may not hold", id="fifo"
    ),
    pytest.param(
        [Entry("tty", "chr")], "tty is a character device, which an artifact may not hold", id="chr"
    ),
    pytest.param(
        [Entry(".shipyard/supervisor.conf", data="[program:x]\n")],
        ".shipyard/supervisor.conf is a name Shipyard reserves inside a release",
        id="reserved",
    ),
]


@pytest.mark.parametrize(("entries", "why"), HOSTILE_ZIP)
def test_a_hostile_zip_member_is_a_config_error_and_is_never_extracted(
    project: ArchiveProject, tmp_path: Path, entries: list[Entry], why: str
) -> None:
    absolute = str(tmp_path / "absolute-evil.txt")
    entries = [Entry(e.name.format(abs=absolute), e.kind, e.data, e.mode) for e in entries]
    project.write([OK, *entries], "app.zip")
    target = tmp_path / "stage" / "release"

    assert project.problems() == [f"{LOCATION}: archive app.zip: member {why.format(abs=absolute)}"]
    with pytest.raises(DeployError, match="member"):
        project.stage(target)
    assert list(target.iterdir()) == []
    assert not (tmp_path / "stage" / "evil.txt").exists()
    assert not Path(absolute).exists()


def test_a_damaged_archive_is_a_config_error_not_a_traceback(project: ArchiveProject) -> None:
    path = project.write([OK], "app.tar.gz")
    path.write_bytes(path.read_bytes()[:40])

    (problem,) = project.problems()

    assert problem.startswith(f"{LOCATION}: archive app.tar.gz: cannot be read: ")


def test_an_unknown_kind_of_file_as_artifact_is_a_config_error(project: ArchiveProject) -> None:
    project.write([OK])
    (project.dir / "app.rar").write_bytes(b"Rar!")
    text = (project.dir / "shipyard.yaml").read_text().replace("app.tar", "app.rar")
    (project.dir / "shipyard.yaml").write_text(text)

    (problem,) = project.problems()

    assert problem.startswith(f"{LOCATION}: artifact app.rar is neither a directory nor an archive")


def test_validate_and_deploy_report_the_member_and_leave_the_host_alone(
    project: ArchiveProject, tmp_path: Path
) -> None:
    absolute = tmp_path / "absolute-evil.txt"
    project.write([OK, Entry(str(absolute), data="x"), Entry("../evil.txt", data="x")])
    expected = [
        f"{LOCATION}: archive app.tar: member {absolute} has an absolute path",
        f"{LOCATION}: archive app.tar: member ../evil.txt leaves the release (..)",
    ]

    validated = project.shipyard("validate")
    deployed = project.shipyard("deploy")

    for done in (validated, deployed):
        assert done.returncode == 2, done.stdout + done.stderr
        assert all(line in done.stderr for line in expected), done.stderr
        assert "Traceback" not in done.stderr
    assert not absolute.exists()
    assert not project.root.exists()  # the deploy stopped before anything reached the host


def test_a_safe_archive_is_staged_whole_with_its_links_and_modes(
    project: ArchiveProject, tmp_path: Path
) -> None:
    entries = [
        Entry("./", "dir", mode=0o755),
        OK,
        Entry("app/run.sh", data="#!/bin/sh\n", mode=0o755),
        Entry("app/lib", "dir", mode=0o755),
        Entry("app/lib/util.py", data="X = 1\n"),
        Entry("app/current.py", "symlink", "lib/util.py"),
        Entry("app/up.py", "symlink", "../app/server.py"),
        Entry("app/copy.py", "hardlink", "app/server.py"),
    ]
    for archive in ("app.tar", "app.tar.gz", "app.zip"):
        chosen = [e for e in entries if not (archive.endswith("zip") and e.kind == "hardlink")]
        project.write(chosen, archive)
        flattened = flatten_project(
            load_project(project.dir / "shipyard.yaml"), secret_key=TEST_KEY, environ={}
        )
        assert flattened.instances["web@box"].config["artifact"]["digest"].startswith("sha256:")

        staged = project.stage(tmp_path / archive / "release")

        assert (staged / "app" / "server.py").read_text() == "print('hi')\n"
        assert os.access(staged / "app" / "run.sh", os.X_OK)
        assert not os.access(staged / "app" / "server.py", os.X_OK)
        assert os.readlink(staged / "app" / "current.py") == "lib/util.py"
        assert (staged / "app" / "current.py").read_text() == "X = 1\n"
        assert os.readlink(staged / "app" / "up.py") == "../app/server.py"
        if archive.endswith("tar") or archive.endswith("gz"):
            assert (staged / "app" / "copy.py").read_text() == "print('hi')\n"


@pytest.mark.parametrize(
    ("dest", "why"),
    [
        ("app", "app is a directory"),
        ("app/server.py/x.ini", "app/server.py/x.ini goes through app/server.py, which is a file"),
        ("conf/x.ini", "conf/x.ini goes through conf, which is a link"),
    ],
)
def test_a_files_destination_that_collides_with_an_archive_member_is_a_config_error(
    project: ArchiveProject, dest: str, why: str
) -> None:
    project.write([OK, Entry("conf", "symlink", "app")])
    (project.dir / "x.j2").write_text("x\n")
    text = (project.dir / "shipyard.yaml").read_text()
    text = text.replace("    commands:", f'    files: {{"{dest}": x.j2}}\n    commands:')
    (project.dir / "shipyard.yaml").write_text(text)

    (problem,) = project.problems()

    assert problem.startswith("shipyard.yaml:10:")
    assert problem.endswith(f"templates.web.files.{dest}: {why} in the artifact")


def test_excluded_members_are_left_out_of_an_archive_release(
    project: ArchiveProject, tmp_path: Path
) -> None:
    project.write([OK, Entry("app/__pycache__/x.pyc", data="cached")])
    text = (project.dir / "shipyard.yaml").read_text()
    text = text.replace("path: app.tar\n", 'path: app.tar\n      exclude: ["*.pyc"]\n')
    (project.dir / "shipyard.yaml").write_text(text)
    flatten_project(load_project(project.dir / "shipyard.yaml"), secret_key=TEST_KEY, environ={})

    config = {"artifact": {"path": "app.tar", "exclude": ["*.pyc"]}, "files": {}}
    staged = stage_release(project.dir, config, set(), tmp_path / "release")

    assert (staged / "app" / "server.py").exists()
    assert not (staged / "app" / "__pycache__" / "x.pyc").exists()


@pytest.mark.integration
def test_an_archive_made_hostile_after_validation_fails_its_deployment_naming_the_member(
    project: ArchiveProject, tmp_path: Path
) -> None:
    project.write([OK])
    flat = flatten_project(
        load_project(project.dir / "shipyard.yaml"), secret_key=TEST_KEY, environ={}
    )
    absolute = tmp_path / "absolute-evil.txt"
    write_tar(project.dir / "app.tar", [OK, Entry(str(absolute), data="x")])
    instance = flat.instances["web@box"]
    ref = all_hosts(flat.loaded.project)["box"]
    member = Member(Release(instance, flat.realise(instance), ref, project.dir), "d-1")
    executor = executor_for("box", ref.host, flat.loaded.project.ssh, project.dir)

    async def deploy() -> None:
        try:
            await HostGroup(executor, [member], lambda instance, what: None).deploy(
                at=datetime.now(UTC)
            )
        finally:
            await executor.close()

    asyncio.run(deploy())

    assert member.failure is not None
    assert f"archive app.tar: member {absolute} has an absolute path" in member.failure
    assert not absolute.exists()
    release = project.root / "web" / "releases" / instance.revision
    assert not (release / MARKER).exists()
    assert not (project.root / "web" / "current").exists()
