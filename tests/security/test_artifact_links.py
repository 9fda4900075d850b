"""A deploy never writes through a link onto the controller, and an artifact stays inside itself.

Artifact files are hard-linked into the staged release and Shipyard's own files (the program
definition with the environment, secrets included; rendered `files:`) are written into the same
tree. A file the artifact links to, or shares an inode with, must never be written to: the
names Shipyard reserves in a release are refused in an artifact, a link out of the artifact is
refused, an artifact outside the project is refused, and every generated file is written new.
"""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard.config.flatten import Flattened, flatten_project
from shipyard.config.loader import load_project
from shipyard.config.topology import all_hosts
from shipyard.deploy.instance import Release
from shipyard.deploy.staging import stage_for_host, stage_release, write_generated
from shipyard.errors import ConfigError, DeployError

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / d) for d in ("", "integration")]
from deploy_project import HELLO_APP, free_port, stop_supervisors, version  # noqa: E402

TEST_KEY = b"security-test-secret-key"  # the store's key for fingerprints, in tests

SECRET = "sentinel-9f1c-secret"
VICTIM_TEXT = "the user's own file, never to be written by a deploy\n"

# Line 12 is `artifact:`'s `path`, at column 13: validation errors point there.
PROJECT = """\
name: links
secrets:
  token: {{env: LINKS_TOKEN}}
sites:
  lab:
    hosts:
      box: {{connection: local, root: "{root}"}}
vars: {{release: v1}}
templates:
  web:
    artifact:
      path: {artifact}
      exclude: ["__pycache__/*", "*.pyc"]
    commands: {{start: [python3, server.py]}}
    env: {{TOKEN: "{{{{ secrets.token }}}}", BIND: 127.0.0.1, PORT: "{{{{ ports.http }}}}",
          RELEASE: "{{{{ release }}}}"}}
    ports: {{http: {port}}}
    health: {{http: "http://127.0.0.1:{{{{ ports.http }}}}/healthz", retries: 40, interval: 0.1}}
    files: {files}
services:
  web: {{template: web, hosts: [box]}}
"""
ARTIFACT_LOCATION = "shipyard.yaml:12:13: templates.web.artifact.path"


class LocalProject:
    """A project on this machine whose one host is local, with its root under the test's."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.dir = base / "project"
        self.root = base / "host"
        self.app = self.dir / "app"
        self.app.mkdir(parents=True)
        (self.app / "index.html").write_text("<p>hello</p>\n")
        self.victim = base / "victim.txt"
        self.victim.write_text(VICTIM_TEXT)
        self.port = 0

    def write(self, *, artifact: str = "app", files: dict[str, str] | None = None) -> None:
        listed = "{" + ", ".join(f'"{k}": "{v}"' for k, v in (files or {}).items()) + "}"
        text = PROJECT.format(
            root=self.root, artifact=artifact, files=listed, port=self.port or 18999
        )
        (self.dir / "shipyard.yaml").write_text(text)

    def template(self, name: str, text: str) -> None:
        (self.dir / name).parent.mkdir(parents=True, exist_ok=True)
        (self.dir / name).write_text(text)

    def shipyard(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
        env |= {"LINKS_TOKEN": SECRET, "SHIPYARD_ACTOR": "tester", "COLUMNS": "300"}
        return subprocess.run(
            [sys.executable, "-m", "shipyard", *args],
            cwd=self.dir,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def flatten(self) -> Flattened:
        cwd = Path.cwd()
        os.chdir(self.dir)  # problems name the file relative to the working directory
        try:
            return flatten_project(
                load_project(self.dir / "shipyard.yaml"),
                secret_key=TEST_KEY,
                environ={"LINKS_TOKEN": SECRET},
            )
        finally:
            os.chdir(cwd)

    def problems(self) -> list[str]:
        with pytest.raises(ConfigError) as refused:
            self.flatten()
        return [str(problem) for problem in refused.value.problems]

    def victim_is_untouched(self) -> bool:
        return self.victim.read_text() == VICTIM_TEXT


@pytest.fixture
def project(tmp_path: Path) -> LocalProject:
    return LocalProject(tmp_path)


def stage(flat: Flattened, into: Path) -> Path:
    """Stage the project's one release as a deploy does; the staged release directory."""
    instance = flat.instances["web@box"]
    ref = all_hosts(flat.loaded.project)[instance.host]
    target = Release(instance, flat.realise(instance), ref, flat.loaded.root)
    stage_for_host([target], set(), into, target.root)
    return into / instance.name / "release"


# Shipyard's own names in an artifact.


@pytest.mark.parametrize(
    "name", [".shipyard/supervisor.conf", ".shipyard/launch.sh", ".shipyard-complete"]
)
@pytest.mark.parametrize("how", ["symlink", "hard link", "file"])
def test_an_artifact_holding_a_name_shipyard_reserves_is_a_config_error(
    project: LocalProject, name: str, how: str
) -> None:
    entry = project.app / name
    entry.parent.mkdir(parents=True, exist_ok=True)
    if how == "symlink":
        entry.symlink_to(project.victim)
    elif how == "hard link":
        os.link(project.victim, entry)
    else:
        entry.write_text("[program:mine]\n")
    project.write()

    problems = project.problems()

    assert problems == [
        f"{ARTIFACT_LOCATION}: artifact app: {name} is a name Shipyard reserves inside a release"
    ]


def test_validate_and_deploy_refuse_a_program_file_linked_to_a_file_elsewhere(
    project: LocalProject,
) -> None:
    (project.app / ".shipyard").mkdir()
    (project.app / ".shipyard" / "supervisor.conf").symlink_to(project.victim)
    project.write()
    expected = (
        f"{ARTIFACT_LOCATION}: artifact app: .shipyard/supervisor.conf is a name Shipyard "
        "reserves inside a release"
    )

    validated = project.shipyard("validate")
    deployed = project.shipyard("deploy")

    assert validated.returncode == 2, validated.stdout + validated.stderr
    assert expected in validated.stderr
    assert deployed.returncode == 2, deployed.stdout + deployed.stderr
    assert expected in deployed.stderr
    assert project.victim_is_untouched()
    assert not (project.root / "web" / "releases").exists()


def test_a_reserved_name_put_in_the_artifact_after_validation_is_refused_by_staging(
    project: LocalProject, tmp_path: Path
) -> None:
    project.write()
    flat = project.flatten()
    (project.app / ".shipyard").mkdir()
    (project.app / ".shipyard" / "supervisor.conf").symlink_to(project.victim)

    with pytest.raises(DeployError, match=r"\.shipyard/supervisor\.conf is a name Shipyard"):
        stage(flat, tmp_path / "staging")

    assert project.victim_is_untouched()
    assert SECRET not in project.victim.read_text()


# Generated files are written new, never through what is at their name.


def test_a_generated_file_replaces_a_hard_link_or_symlink_and_leaves_its_file_alone(
    tmp_path: Path,
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text(VICTIM_TEXT)
    victim_mode = victim.stat().st_mode
    release = tmp_path / "release"
    (release / "conf").mkdir(parents=True)
    os.link(victim, release / "conf" / "hard.ini")
    (release / "conf" / "soft.ini").symlink_to(victim)

    write_generated(release, "conf/hard.ini", b"hard=1\n", 0o600)
    write_generated(release, "conf/soft.ini", b"soft=1\n", 0o640)

    assert victim.read_text() == VICTIM_TEXT
    assert victim.stat().st_mode == victim_mode
    assert victim.stat().st_nlink == 1  # the staged hard link was replaced, not written
    for name, text, mode in [("hard.ini", "hard=1\n", 0o600), ("soft.ini", "soft=1\n", 0o640)]:
        written = release / "conf" / name
        info = written.lstat()
        assert stat.S_ISREG(info.st_mode)
        assert stat.S_IMODE(info.st_mode) == mode
        assert info.st_ino != victim.stat().st_ino
        assert written.read_text() == text
    assert sorted(p.name for p in (release / "conf").iterdir()) == ["hard.ini", "soft.ini"]


def test_a_generated_file_is_never_written_through_a_linked_directory(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    release = tmp_path / "release"
    release.mkdir()
    (release / ".shipyard").symlink_to(elsewhere)
    (release / "plain").write_text("a file of the artifact\n")
    (release / "data").mkdir()

    with pytest.raises(DeployError, match=r"\.shipyard is not a directory there"):
        write_generated(release, ".shipyard/supervisor.conf", b"[program:x]\n", 0o600)
    with pytest.raises(DeployError, match="plain is not a directory there"):
        write_generated(release, "plain/x.ini", b"x\n", 0o644)
    with pytest.raises(DeployError, match="cannot write data into the release"):
        write_generated(release, "data", b"x\n", 0o644)

    assert list(elsewhere.iterdir()) == []
    assert sorted(p.name for p in release.iterdir()) == [".shipyard", "data", "plain"]


def test_a_rendered_file_takes_the_place_of_an_artifact_file_which_stays_as_it_was(
    project: LocalProject, tmp_path: Path
) -> None:
    (project.app / "config.ini").write_text("token=placeholder\n")
    project.template("files/config.ini.j2", "token={{ secrets.token }}\n")
    project.write(files={"config.ini": "files/config.ini.j2"})
    before = (project.app / "config.ini").stat()

    staged = stage(project.flatten(), tmp_path / "staging")

    assert (project.app / "config.ini").read_text() == "token=placeholder\n"
    assert (project.app / "config.ini").stat().st_mode == before.st_mode
    rendered = staged / "config.ini"
    assert rendered.read_text() == f"token={SECRET}\n"
    assert stat.S_IMODE(rendered.stat().st_mode) == 0o600
    assert rendered.stat().st_ino != before.st_ino
    assert (staged / "index.html").stat().st_ino == (project.app / "index.html").stat().st_ino
    program = staged / ".shipyard" / "supervisor.conf"
    assert SECRET in program.read_text()
    assert stat.S_IMODE(program.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("dest", "why"),
    [
        (".shipyard/supervisor.conf", "is a name Shipyard reserves inside a release"),
        (".shipyard-complete", "is a name Shipyard reserves inside a release"),
        ("static", "is a directory in the artifact"),
        ("linked/app.ini", "goes through linked, which is a link in the artifact"),
        ("index.html/app.ini", "goes through index.html, which is a file in the artifact"),
    ],
)
def test_a_files_destination_that_cannot_be_written_safely_is_a_config_error(
    project: LocalProject, dest: str, why: str
) -> None:
    (project.app / "static").mkdir()
    (project.app / "linked").symlink_to("static")
    project.template("files/x.j2", "x\n")
    project.write(files={dest: "files/x.j2"})

    problems = project.problems()

    assert len(problems) == 1
    assert problems[0].startswith("shipyard.yaml:19:")
    assert problems[0].endswith(f"templates.web.files.{dest}: {dest} {why}")


# Links in a directory artifact.


@pytest.mark.parametrize(
    ("link", "target", "why"),
    [
        ("passwd", "{victim}", "links to an absolute path ({victim})"),
        ("up.txt", "../../victim.txt", "links outside the artifact (to ../../victim.txt)"),
        ("sub/up", "../..", "links outside the artifact (to ../..)"),
        ("parent", "..", "links outside the artifact (to ..)"),
    ],
)
def test_a_link_out_of_a_directory_artifact_is_a_config_error(
    project: LocalProject, link: str, target: str, why: str
) -> None:
    (project.app / link).parent.mkdir(parents=True, exist_ok=True)
    (project.app / link).symlink_to(target.format(victim=project.victim))
    project.write()

    assert project.problems() == [
        f"{ARTIFACT_LOCATION}: artifact app: {link} {why.format(victim=project.victim)}"
    ]


def test_a_link_out_through_another_link_is_a_config_error(project: LocalProject) -> None:
    (project.app / "here").symlink_to(".")  # inside on its own
    (project.app / "escape").symlink_to("here/../victim.txt")  # `here/..` is above the artifact
    project.write()

    assert project.problems() == [
        f"{ARTIFACT_LOCATION}: artifact app: escape links outside the artifact "
        "(to here/../victim.txt)"
    ]


def test_links_inside_a_directory_artifact_are_kept_as_links_directories_too(
    project: LocalProject, tmp_path: Path
) -> None:
    (project.app / "static").mkdir()
    (project.app / "static" / "style.css").write_text("p {}\n")
    (project.app / "assets").symlink_to("static")  # a linked directory: not dropped
    (project.app / "home.html").symlink_to("index.html")
    project.write()
    first = project.flatten()

    staged = stage(first, tmp_path / "staging")

    assert os.readlink(staged / "assets") == "static"
    assert os.readlink(staged / "home.html") == "index.html"
    assert (staged / "assets" / "style.css").read_text() == "p {}\n"
    (project.app / "assets").unlink()
    (project.app / "assets").symlink_to(".")
    assert project.flatten().instances["web@box"].revision != first.instances["web@box"].revision


def test_a_fifo_in_a_directory_artifact_is_a_config_error_not_a_hang(
    project: LocalProject,
) -> None:
    os.mkfifo(project.app / "pipe")
    project.write()

    assert project.problems() == [f"{ARTIFACT_LOCATION}: artifact app: pipe is a fifo, not a file"]


# Where the artifact is.


@pytest.mark.parametrize("where", ["../outside", "{outside}", "inward"])
def test_an_artifact_outside_the_project_is_a_config_error(
    project: LocalProject, where: str
) -> None:
    outside = project.base / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("not the project's\n")
    (project.dir / "inward").symlink_to(outside)  # a link in the project that leads out
    path = where.format(outside=outside)
    project.write(artifact=path)

    assert project.problems() == [
        f"{ARTIFACT_LOCATION}: artifact path must be inside the project directory: {path}"
    ]


def test_staging_refuses_an_artifact_outside_the_project_even_when_called_directly(
    project: LocalProject, tmp_path: Path
) -> None:
    config = {"artifact": {"path": "../"}, "files": {}}

    with pytest.raises(DeployError, match="must be inside the project directory"):
        stage_release(project.dir, config, set(), tmp_path / "staged")

    assert list((tmp_path / "staged").iterdir()) == []


# A real deploy on this machine.


@pytest.fixture
def deployable(project: LocalProject) -> Iterator[LocalProject]:
    """The project with the hello server as its artifact and a supervisord of its own."""
    for path in HELLO_APP.iterdir():
        if path.is_file():
            (project.app / path.name).write_bytes(path.read_bytes())
    project.port = free_port(["127.0.0.1"])
    project.write()
    try:
        booted = project.shipyard("bootstrap", "--json")
        assert booted.returncode == 0, booted.stdout + booted.stderr
        yield project
    finally:
        stop_supervisors([_Host(str(project.root))])


class _Host:
    """What `stop_supervisors` needs of a host: its root."""

    def __init__(self, root: str) -> None:
        self.root = root


@pytest.mark.integration
def test_a_deploy_on_a_local_host_keeps_links_and_never_writes_the_users_files(
    deployable: LocalProject,
) -> None:
    project = deployable
    (project.app / "config.json").write_text('{"release": "from-the-artifact"}\n')
    os.link(project.victim, project.app / "notes.txt")  # shares its inode with the victim
    (project.app / "static").mkdir()
    (project.app / "static" / "style.css").write_text("p {}\n")
    (project.app / "assets").symlink_to("static")
    project.template("files/config.json.j2", '{"token": "{{ secrets.token }}"}\n')
    project.template("files/notes.txt.j2", "rendered over the artifact's notes\n")
    project.write(files={"config.json": "files/config.json.j2", "notes.txt": "files/notes.txt.j2"})

    deployed = project.shipyard("deploy", "--json")

    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    assert version(_Address(), project.port) == "v1"
    live = project.root / "web" / "current"
    assert os.readlink(live / "assets") == "static"
    assert (live / "assets" / "style.css").read_text() == "p {}\n"
    assert (live / "notes.txt").read_text() == "rendered over the artifact's notes\n"
    assert SECRET in (live / ".shipyard" / "supervisor.conf").read_text()
    assert project.victim_is_untouched()
    assert (project.app / "notes.txt").read_text() == VICTIM_TEXT
    assert (project.app / "config.json").read_text() == '{"release": "from-the-artifact"}\n'
    assert not any(SECRET in p.read_text() for p in project.app.rglob("*") if p.is_file())


class _Address:
    address = "127.0.0.1"


def test_the_digest_of_an_artifact_without_links_is_unchanged_so_nothing_turns_stale(
    project: LocalProject,
) -> None:
    (project.app / "lib" / "deep").mkdir(parents=True)
    (project.app / "lib" / "b.py").write_text("B = 1\n")
    (project.app / "lib" / "deep" / "c.py").write_text("C = 1\n")
    (project.app / "run.sh").write_text("#!/bin/sh\n")
    (project.app / "run.sh").chmod(0o755)
    (project.app / "x.pyc").write_text("excluded\n")
    project.write()

    digest = project.flatten().instances["web@box"].config["artifact"]["digest"]

    expected = hashlib.sha256()  # the digest as Shipyard computed it before links counted
    for directory, dirs, files in os.walk(project.app):
        dirs.sort()
        for name in sorted(files):
            full = Path(directory) / name
            relative = full.relative_to(project.app).as_posix()
            if relative.endswith(".pyc"):
                continue
            expected.update(f"{relative}\0{int(os.access(full, os.X_OK))}\0".encode())
            expected.update(hashlib.sha256(full.read_bytes()).hexdigest().encode())
    assert digest == "sha256:" + expected.hexdigest()
