"""Build a release locally: the artifact (hard-linked, not copied) plus the rendered files."""

from __future__ import annotations

import fnmatch
import os
import shutil
import tarfile
import zipfile
from pathlib import Path
from typing import Any

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
