"""Build a release locally: the artifact (hard-linked, not copied) plus the rendered files."""

from __future__ import annotations

import fnmatch
import io
import os
import shutil
import tarfile
import zipfile
from pathlib import Path
from typing import Any

from shipyard.commands.release import MARKER
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
