"""What an artifact holds, read without trusting it: its members, checked, and its digest.

An artifact is a directory or an archive (.tar, .tar.gz, .tgz, .tar.xz, .tar.bz2, .zip) inside
the project directory. The same rules hold for all of them, at validate time and again when a
release is staged:

- every member stays inside the release: no absolute path, no `..`, no link whose target
  leaves it (followed through the artifact's other links), no member reached through a link
  or a file, no name twice;
- a member is a directory, a regular file or a link: no device, fifo or socket;
- no top-level name starting with `.shipyard`: a release keeps Shipyard's own files there
  (the program definition under `.shipyard/`, the completion marker `.shipyard-complete`).

A `files:` destination may take the place of an artifact's file (the rendered file wins; the
artifact's file is never written to), but never a directory, nor go through a link or a file.
"""

from __future__ import annotations

import fnmatch
import hashlib
import lzma
import os
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import Literal, TypeVar

RESERVED_PREFIX = ".shipyard"  # a release's top-level names starting with it are Shipyard's
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.xz", ".tar.bz2")
ZIP_SUFFIXES = (".zip",)
MAX_LINK_HOPS = 40  # as the kernel's limit: a longer chain is a loop
MAX_LINK_TARGET = 4096
MAX_PROBLEMS = 10  # reported per artifact; the rest are counted
UNREADABLE = (  # what a damaged or unsupported archive raises while it is read
    OSError,
    EOFError,
    ValueError,
    RuntimeError,
    NotImplementedError,
    tarfile.TarError,
    zipfile.BadZipFile,
    zlib.error,
    lzma.LZMAError,
)

Kind = Literal["dir", "file", "link", "hardlink"]
Form = Literal["dir", "tar", "zip"]
Info = TypeVar("Info", tarfile.TarInfo, zipfile.ZipInfo)


@dataclass(frozen=True)
class Member:
    """One entry of an artifact, as it will be in the release."""

    path: str  # relative, normalized, with forward slashes
    kind: Kind
    target: str = ""  # a link's target; a hard link's member
    executable: bool = False


@dataclass(frozen=True)
class Contents:
    """An artifact's checked members, in the order they are hashed and staged."""

    source: Path  # the directory or archive
    form: Form
    members: tuple[Member, ...]

    @cached_property
    def kinds(self) -> dict[str, Kind]:
        """Every path of the release the artifact makes, with its kind: the members, and the
        directories an archive implies without listing them."""
        found: dict[str, Kind] = {}
        for member in self.members:
            parts = PurePosixPath(member.path).parts
            for end in range(1, len(parts)):
                found.setdefault("/".join(parts[:end]), "dir")
            found[member.path] = member.kind
        return found


class ArtifactRefused(Exception):
    """An artifact that cannot be used; each message names the artifact and the member."""

    def __init__(self, messages: list[str]) -> None:
        shown = messages[:MAX_PROBLEMS]
        if len(messages) > MAX_PROBLEMS:
            shown.append(f"... and {len(messages) - MAX_PROBLEMS} more problems in the artifact")
        super().__init__("; ".join(shown))
        self.messages = shown


def is_reserved(relative: str) -> bool:
    """Whether a path in a release is Shipyard's own (its first name starts with `.shipyard`)."""
    parts = PurePosixPath(relative).parts
    return bool(parts) and parts[0].startswith(RESERVED_PREFIX)


def form_of(name: str) -> Form | None:
    """An archive's form from its file name; None for a name no known archive has."""
    if name.endswith(TAR_SUFFIXES):
        return "tar"
    if name.endswith(ZIP_SUFFIXES):
        return "zip"
    return None


def locate_artifact(project_dir: Path, path: str) -> tuple[Path, Form]:
    """Where the artifact at `path` (relative to `project_dir`) is, and what it is.

    Raises ArtifactRefused when it is outside the project (through links too), missing, or
    neither a directory nor a known archive.
    """
    source = project_dir / path
    if not _inside(os.path.realpath(source), os.path.realpath(project_dir)):
        raise ArtifactRefused([f"artifact path must be inside the project directory: {path}"])
    if source.is_dir():
        return source, "dir"
    if not source.is_file():
        raise ArtifactRefused([f"artifact not found: {path}"])
    form = form_of(source.name)
    if form is None:
        known = ", ".join((*TAR_SUFFIXES, *ZIP_SUFFIXES))
        raise ArtifactRefused([f"artifact {path} is neither a directory nor an archive ({known})"])
    return source, form


def read_artifact(project_dir: Path, path: str, exclude: Iterable[str] = ()) -> Contents:
    """The checked contents of the artifact at `path` (relative to `project_dir`).

    Raises ArtifactRefused listing what is wrong: outside the project, missing, unreadable, or
    holding a member the rules above refuse.
    """
    patterns = tuple(exclude)
    source, form = locate_artifact(project_dir, path)
    if form == "dir":
        return Contents(source, form, tuple(_read_dir(source, path, patterns)))
    label = archive_label(path)
    try:
        if form == "tar":
            with tarfile.open(source) as tar:
                members = [member for member, _ in tar_members(tar, label, patterns)]
        else:
            with zipfile.ZipFile(source) as archive:
                members = [member for member, _ in zip_members(archive, label, patterns)]
    except UNREADABLE as exc:
        raise ArtifactRefused([f"{label}: cannot be read: {exc}"]) from exc
    return Contents(source, form, tuple(members))


def archive_label(path: str) -> str:
    """How messages name the archive at `path`."""
    return f"archive {path}"


def artifact_digest(contents: Contents) -> str:
    """sha256 over a directory's files and links (path, executable bit, content or target), or
    over an archive's bytes."""
    if contents.form != "dir":
        try:
            return "sha256:" + _file_digest(contents.source)
        except OSError as exc:
            raise ArtifactRefused([f"cannot read {contents.source.name}: {exc.strerror}"]) from exc
    digest = hashlib.sha256()
    for member in contents.members:
        if member.kind == "file":
            try:
                content = _file_digest(contents.source / member.path)
            except OSError as exc:
                where = f"{contents.source.name}/{_shown(member.path)}"
                raise ArtifactRefused([f"cannot read {where}: {exc.strerror}"]) from exc
            digest.update(f"{member.path}\0{int(member.executable)}\0".encode())
            digest.update(content.encode())
        elif member.kind == "link":
            digest.update(f"{member.path}\0link\0{member.target}\0".encode())
    return "sha256:" + digest.hexdigest()


def release_path_problem(dest: str, contents: Contents | None) -> str | None:
    """Why a rendered file cannot be written at `dest` of a release with this artifact, if so."""
    if is_reserved(dest):
        return f"{dest} is a name Shipyard reserves inside a release"
    if contents is None:
        return None
    parts = PurePosixPath(dest).parts
    for end in range(1, len(parts)):
        prefix = "/".join(parts[:end])
        kind = contents.kinds.get(prefix)
        if kind is not None and kind != "dir":
            what = "a link" if kind == "link" else "a file"
            return f"{dest} goes through {prefix}, which is {what} in the artifact"
    if contents.kinds.get("/".join(parts)) == "dir":
        return f"{dest} is a directory in the artifact"
    return None


# Directories.


def _read_dir(source: Path, path: str, exclude: tuple[str, ...]) -> list[Member]:
    real_root = os.path.realpath(source)
    label = f"artifact {path}"
    members: list[Member] = []
    problems: list[str] = []

    def unreadable(error: OSError) -> None:
        problems.append(f"{label}: cannot read {error.filename}: {error.strerror}")

    for directory, dirs, files in os.walk(source, onerror=unreadable):
        dirs.sort()
        base = Path(directory)
        relative_dir = base.relative_to(source)
        for name in sorted([*dirs, *files]):
            full = base / name
            relative = (relative_dir / name).as_posix()
            shown = _shown(relative)
            try:
                info = full.lstat()
            except OSError as exc:
                problems.append(f"{label}: cannot read {shown}: {exc.strerror}")
                continue
            if stat.S_ISDIR(info.st_mode):
                if not is_reserved(relative):
                    members.append(Member(relative, "dir"))
                continue
            if name in dirs:
                dirs.remove(name)  # a link to a directory: a link, never walked into
            if _excluded(relative, exclude):
                continue
            if is_reserved(relative):
                problems.append(f"{label}: {shown} is a name Shipyard reserves inside a release")
            elif stat.S_ISLNK(info.st_mode):
                target = os.readlink(full)
                if target.startswith("/"):
                    problems.append(
                        f"{label}: {shown} links to an absolute path ({_shown(target)})"
                    )
                elif not _inside(os.path.realpath(full), real_root):
                    problems.append(
                        f"{label}: {shown} links outside the artifact (to {_shown(target)})"
                    )
                else:
                    members.append(Member(relative, "link", target))
            elif stat.S_ISREG(info.st_mode):
                members.append(Member(relative, "file", executable=os.access(full, os.X_OK)))
            else:
                problems.append(f"{label}: {shown} is {_special(info.st_mode)}, not a file")
    if problems:
        raise ArtifactRefused(problems)
    return members


# Archives.


def tar_members(
    tar: tarfile.TarFile, label: str, exclude: Iterable[str] = ()
) -> list[tuple[Member, tarfile.TarInfo]]:
    """The members of an open tar that go into a release, checked; raises ArtifactRefused."""
    read: list[tuple[str, Member | None, tarfile.TarInfo]] = []
    for info in tar:
        kind: Kind
        if info.isreg():
            kind = "file"
        elif info.isdir():
            kind = "dir"
        elif info.issym():
            kind = "link"
        elif info.islnk():
            kind = "hardlink"
        else:
            read.append((info.name, None, info))
            continue
        executable = bool(info.mode & 0o111) and kind == "file"
        read.append((info.name, Member(info.name, kind, info.linkname, executable), info))
    return _checked(read, label, exclude, _tar_special)


def zip_members(
    archive: zipfile.ZipFile, label: str, exclude: Iterable[str] = ()
) -> list[tuple[Member, zipfile.ZipInfo]]:
    """The members of an open zip that go into a release, checked; raises ArtifactRefused."""
    read: list[tuple[str, Member | None, zipfile.ZipInfo]] = []
    for info in archive.infolist():
        mode = info.external_attr >> 16 if info.create_system == 3 else 0
        kind: Kind | None
        target = ""
        if stat.S_ISLNK(mode):
            kind = "link"
            if info.file_size > MAX_LINK_TARGET:
                target = "/" + "x" * MAX_LINK_TARGET  # refused below as absolute
            else:
                target = archive.read(info).decode("utf-8", errors="replace")
        elif stat.S_ISDIR(mode) or info.is_dir():
            kind = "dir"
        elif stat.S_IFMT(mode) in (0, stat.S_IFREG):
            kind = "file"
        else:
            kind = None
        member = None if kind is None else Member(info.filename, kind, target, bool(mode & 0o111))
        read.append((info.filename, member, info))
    return _checked(read, label, exclude, _zip_special)


def _checked(
    read: list[tuple[str, Member | None, Info]],
    label: str,
    exclude: Iterable[str],
    special: Callable[[Info], str],
) -> list[tuple[Member, Info]]:
    """Check archive members as a whole (links are followed through each other)."""
    patterns = tuple(exclude)
    problems: list[str] = []
    kept: list[tuple[Member, Info]] = []
    seen: dict[str, Kind] = {}
    for name, member, info in read:
        where = f"{label}: member {_shown(name)}"
        pure = PurePosixPath(name)
        if name.startswith("/") or pure.is_absolute():
            problems.append(f"{where} has an absolute path")
            continue
        if ".." in pure.parts:
            problems.append(f"{where} leaves the release (..)")
            continue
        relative = pure.as_posix() if pure.parts else ""
        if member is None:
            problems.append(f"{where} is {special(info)}, which an artifact may not hold")
            continue
        if not relative:
            if member.kind == "dir":
                continue  # the archive's own top directory, "./"
            problems.append(f"{where} has no name")
            continue
        if _excluded(relative, patterns):
            continue
        if is_reserved(relative):
            problems.append(f"{where} is a name Shipyard reserves inside a release")
            continue
        if relative in seen and not (member.kind == "dir" and seen[relative] == "dir"):
            problems.append(f"{where} appears twice")
            continue
        seen[relative] = member.kind
        kept.append((Member(relative, member.kind, member.target, member.executable), info))
    links = {m.path: m.target for m, _ in kept if m.kind == "link"}
    files = {m.path for m, _ in kept if m.kind == "file"}
    out: list[tuple[Member, Info]] = []
    for member, info in kept:
        where = f"{label}: member {_shown(member.path)}"
        parts = PurePosixPath(member.path).parts
        through = next(
            (
                prefix
                for prefix in ("/".join(parts[:end]) for end in range(1, len(parts)))
                if seen.get(prefix, "dir") != "dir"
            ),
            None,
        )
        if through is not None:
            problems.append(f"{where} goes through {_shown(through)}, which is not a directory")
            continue
        if member.kind == "link":
            if member.target.startswith("/"):
                problems.append(f"{where} links to an absolute path ({_shown(member.target)})")
                continue
            trouble = _link_trouble(links, member.path)
            if trouble is not None:
                problems.append(f"{where} {trouble} (to {_shown(member.target)})")
                continue
        if member.kind == "hardlink":
            target = PurePosixPath(member.target)
            linked = target.as_posix()
            if target.is_absolute() or ".." in target.parts or linked not in files:
                problems.append(
                    f"{where} is a hard link to {_shown(member.target)}, "
                    "which is not a file of the archive"
                )
                continue
            out.append((Member(member.path, "hardlink", linked), info))
            continue
        out.append((member, info))
    if problems:
        raise ArtifactRefused(problems)
    return out


def _link_trouble(links: dict[str, str], path: str) -> str | None:
    """Why following the link at `path` as the kernel would, through the release's other
    links, does not end inside the release; None when it does."""
    done: list[str] = []
    pending = list(PurePosixPath(path).parts)
    hops = 0
    while pending:
        part = pending.pop(0)
        if part == "..":
            if not done:
                return "links outside the release"
            done.pop()
            continue
        target = links.get("/".join([*done, part]))
        if target is None:
            done.append(part)
            continue
        hops += 1
        if hops > MAX_LINK_HOPS:
            return "is a loop of links"
        if target.startswith("/"):
            return "links outside the release"
        pending = [*PurePosixPath(target).parts, *pending]
    return None


# Small helpers.


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _excluded(relative: str, exclude: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatch(relative, pattern) for pattern in exclude)


def _file_digest(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _special(mode: int) -> str:
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISFIFO(mode):
        return "a fifo"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return f"of an unknown type ({stat.S_IFMT(mode):o})"


def _tar_special(info: tarfile.TarInfo) -> str:
    if info.ischr():
        return "a character device"
    if info.isblk():
        return "a block device"
    if info.isfifo():
        return "a fifo"
    return f"of an unknown tar type ({info.type!r})"


def _zip_special(info: zipfile.ZipInfo) -> str:
    return _special(info.external_attr >> 16)


def _shown(name: str) -> str:
    """A member name as text that is safe to print: control characters escaped."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in name)
