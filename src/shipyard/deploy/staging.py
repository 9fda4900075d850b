"""Build releases locally: the artifact (hard-linked, not copied), the rendered files and the
program definition, packed into one tar for a host."""

from __future__ import annotations

import fnmatch
import io
import os
import shutil
import tarfile
import time
import zipfile
from pathlib import Path
from typing import Any

from shipyard.commands.release import MARKER
from shipyard.deploy.instance import Release, render_program
from shipyard.errors import DeployError

SECRET_MODE = 0o600


def stage_release(
    project_dir: Path, config: dict[str, Any], sealed_files: set[str], target: Path
) -> Path:
    """Write the release of `config` (its real, unmasked form) into `target`, which must not exist.

    Files whose content holds a secret are written with mode 0600.
    """
    target.mkdir(parents=True)
    artifact = config.get("artifact")
    if artifact:
        source = project_dir / artifact["path"]
        _copy_artifact(source, target, tuple(artifact.get("exclude", ())))
    for dest, entry in sorted(config.get("files", {}).items()):
        path = target / dest
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() or path.is_symlink():
            path.unlink()
        path.write_text(entry["content"], encoding="utf-8")
        if dest in sealed_files:
            path.chmod(SECRET_MODE)
    return target


def _copy_artifact(source: Path, target: Path, exclude: tuple[str, ...]) -> None:
    if source.is_dir():
        for directory, dirs, files in os.walk(source):
            dirs.sort()
            relative_dir = Path(directory).relative_to(source)
            (target / relative_dir).mkdir(parents=True, exist_ok=True)
            for name in files:
                relative = (relative_dir / name).as_posix()
                if any(fnmatch.fnmatch(relative, pattern) for pattern in exclude):
                    continue
                _link_or_copy(Path(directory) / name, target / relative)
        return
    name = source.name
    if name.endswith((".tar", ".tar.gz", ".tgz", ".tar.xz", ".tar.bz2")):
        with tarfile.open(source) as archive:
            archive.extractall(target, filter="data")
    elif name.endswith(".zip"):
        with zipfile.ZipFile(source) as archive:
            archive.extractall(target)
    else:
        raise DeployError(f"artifact {source} is neither a directory nor a known archive")


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


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
        staged = stage_release(
            target.project_dir, target.config, sealed, staging / instance.name / "release"
        )
        for relative, (text, mode) in render_program(target).items():
            (staged / relative).parent.mkdir(parents=True, exist_ok=True)
            (staged / relative).write_text(text, encoding="utf-8")
            (staged / relative).chmod(mode)
        inside = target.layout.release(instance.revision)[len(root.rstrip("/")) + 1 :]
        packed.append((staged, inside, None if instance.name in unmarked else instance.revision))
    archive = staging / f"releases-{len(list(staging.glob('*.tar')))}.tar"
    return pack_releases(packed, archive, now=time.time())
