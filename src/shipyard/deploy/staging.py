"""Build releases locally: the artifact (its files hard-linked, not copied), the rendered files
and the program definition, packed into one tar for a host.

A staged release shares its artifact's files with the project (hard links), so Shipyard never
writes into a file that is there already: every file it generates is a new file renamed over
its place (`write_generated`), reached through directories opened without following links. The
artifact is checked again here, by the rules validation applied (`config.artifact`), and no
member they refuse is ever extracted or linked.
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import shutil
import stat
import tarfile
import time
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

from shipyard.commands.release import MARKER
from shipyard.config.artifact import (
    UNREADABLE,
    ArtifactRefused,
    Member,
    archive_label,
    is_reserved,
    locate_artifact,
    read_artifact,
    tar_members,
    zip_members,
)
from shipyard.deploy.instance import Release, render_program
from shipyard.errors import DeployError

SECRET_MODE = 0o600
FILE_MODE = 0o644


def stage_release(
    project_dir: Path, config: dict[str, Any], sealed_files: set[str], target: Path
) -> Path:
    """Write the release of `config` (its real, unmasked form) into `target`, which must not exist.

    Files whose content holds a secret are written with mode 0600. A rendered file takes the
    place of an artifact's file at the same path (which is left as it is in the project).
    """
    target.mkdir(parents=True)
    artifact = config.get("artifact")
    if artifact:
        exclude = tuple(artifact.get("exclude", ()))
        try:
            _stage_artifact(project_dir, artifact["path"], exclude, target)
        except ArtifactRefused as refused:
            raise DeployError(f"artifact refused: {refused}") from refused
    for dest, entry in sorted(config.get("files", {}).items()):
        if is_reserved(dest):
            raise DeployError(f"files: {dest} is a name Shipyard reserves inside a release")
        mode = SECRET_MODE if dest in sealed_files else FILE_MODE
        write_generated(target, dest, entry["content"].encode(), mode)
    return target


def write_generated(root: Path, relative: str, data: bytes, mode: int) -> None:
    """Write a file Shipyard generates at `relative` under `root`, never through a link.

    Its directories are opened (made if missing) without following links, and the file is
    written new and renamed over whatever entry held its name: a hard link or a symlink there
    is replaced, and the file it led to is never opened. A directory or a link on the way, or a
    directory at the name itself, is a DeployError.
    """
    parts = PurePosixPath(relative).parts
    if not parts or PurePosixPath(relative).is_absolute() or ".." in parts:
        raise DeployError(f"cannot write {relative!r}: not a relative path inside the release")
    directory = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        for depth, part in enumerate(parts[:-1], start=1):
            directory = _open_subdirectory(directory, part, relative, "/".join(parts[:depth]))
        name = parts[-1]
        temporary = f".{name}.shipyard-new-{secrets.token_hex(6)}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        handle = os.open(temporary, flags, mode, dir_fd=directory)
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
                os.fchmod(out.fileno(), mode)
            os.replace(temporary, name, src_dir_fd=directory, dst_dir_fd=directory)
        except OSError as exc:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary, dir_fd=directory)
            raise DeployError(f"cannot write {relative} into the release: {exc.strerror}") from exc
    finally:
        os.close(directory)


def _open_subdirectory(parent: int, name: str, relative: str, prefix: str) -> int:
    """The directory `name` in `parent` (made if missing), opened without following a link.
    On success `parent` is closed; on failure it is left to the caller."""
    try:
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, 0o755, dir_fd=parent)
        child = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent)
    except OSError as exc:
        raise DeployError(
            f"cannot write {relative} into the release: {prefix} is not a directory there "
            "(a link or a file of the artifact)"
        ) from exc
    os.close(parent)
    return child


def _stage_artifact(project_dir: Path, path: str, exclude: tuple[str, ...], target: Path) -> None:
    source, form = locate_artifact(project_dir, path)
    if form == "dir":
        contents = read_artifact(project_dir, path, exclude)
        for member in contents.members:
            dest = target / member.path
            if member.kind == "dir":
                dest.mkdir(exist_ok=True)
            elif member.kind == "link":
                os.symlink(member.target, dest)
            else:
                _link_or_copy(source / member.path, dest)
        return
    label = archive_label(path)
    try:
        if form == "tar":
            with tarfile.open(source) as tar:
                checked = tar_members(tar, label, exclude)
                tar.extractall(target, members=[info for _, info in checked], filter="data")
        else:
            with zipfile.ZipFile(source) as archive:
                _extract_zip(archive, zip_members(archive, label, exclude), target)
    except UNREADABLE as exc:
        raise ArtifactRefused([f"{label}: cannot be extracted: {exc}"]) from exc


def _extract_zip(
    archive: zipfile.ZipFile, checked: list[tuple[Member, zipfile.ZipInfo]], target: Path
) -> None:
    """Extract checked members: none goes through a link, so every parent is a directory made
    here, and every file is created new (never opened if something is at its name)."""
    for member, info in checked:
        dest = target / member.path
        if member.kind == "dir":
            dest.mkdir(parents=True, exist_ok=True)
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        if member.kind == "link":
            os.symlink(member.target, dest)
            continue
        with archive.open(info) as data, dest.open("xb") as out:
            shutil.copyfileobj(data, out)
            os.fchmod(out.fileno(), 0o755 if member.executable else FILE_MODE)


def _link_or_copy(source: Path, target: Path) -> None:
    """Hard-link (or copy) an artifact's file as it is: a link put in its place since it was
    checked is not followed, and refused."""
    try:
        os.link(source, target, follow_symlinks=False)
    except OSError:
        shutil.copy2(source, target, follow_symlinks=False)
    if not stat.S_ISREG(target.lstat().st_mode):
        raise ArtifactRefused([f"{source} is no longer a regular file"])


def pack_releases(
    releases: list[tuple[Path, str, str | None]], archive: Path, *, now: float
) -> Path:
    """One tar of several staged releases, for one `tar -x` on the host.

    `releases` holds (staged directory, its path under the host's deploy root, the revision
    to write as its completion marker or None to leave it unmarked). The markers come last,
    after every release's files, with the time `now`: tar unpacks in order, so a marker on
    the host means its release arrived whole, and prune orders releases by the markers' age.
    """
    with tarfile.open(archive, "w") as tar:
        for staged, inside, _ in releases:
            tar.add(staged, arcname=inside, recursive=True)
        for _, inside, revision in releases:
            if revision is None:
                continue
            data = f"{revision}\n".encode()
            info = tarfile.TarInfo(f"{inside}/{MARKER}")
            info.size, info.mode, info.mtime = len(data), 0o644, int(now)
            tar.addfile(info, io.BytesIO(data))
    return archive


def stage_for_host(targets: list[Release], unmarked: set[str], staging: Path, root: str) -> Path:
    """Stage the releases of `targets` (all under the deploy root `root`) in `staging` and pack
    them into one tar; each is marked complete but those of the instances in `unmarked`
    (their install command runs first)."""
    packed = []
    for target in targets:
        instance = target.instance
        sealed = {path[1] for path in instance.sealed if path[0] == "files"}
        try:
            staged = stage_release(
                target.project_dir, target.config, sealed, staging / instance.name / "release"
            )
            for relative, (text, mode) in render_program(target).items():
                write_generated(staged, relative, text.encode(), mode)
        except (DeployError, OSError) as exc:
            raise DeployError(f"staging the release of {instance.name} failed: {exc}") from exc
        inside = target.layout.release(instance.revision)[len(root.rstrip("/")) + 1 :]
        packed.append((staged, inside, None if instance.name in unmarked else instance.revision))
    archive = staging / f"releases-{len(list(staging.glob('*.tar')))}.tar"
    return pack_releases(packed, archive, now=time.time())
