"""A project directory as a set of files: read, checked, hashed, written atomically.

A config version is every regular file under the project root except the state directory
(`.shipyard/`) and `.git/`, named by its path relative to the root (`/`-separated). A symlink
is followed only while it stays under the root; one that leaves it is refused, naming it. A
version's hash is the sha256 over its sorted (path, content hash) pairs, so it depends on the
content alone, never on times or the order files were found in.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Collection, Mapping
from pathlib import Path, PurePosixPath

from shipyard.errors import UsageError

SKIPPED = frozenset({".shipyard", ".git"})
MAX_FILE_BYTES = 4 * 1024 * 1024  # a project's YAML, templates and small artifacts
MAX_TOTAL_BYTES = 64 * 1024 * 1024
MAX_FILES = 5000
MAX_PATH = 1024


def content_hash(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def version_hash(files: Mapping[str, bytes]) -> str:
    """The hash over the sorted (path, content hash) pairs."""
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(f"{path}\0{content_hash(files[path])}\n".encode())
    return digest.hexdigest()


def read_project(root: Path, skip: Collection[Path] = ()) -> dict[str, bytes]:
    """Every file of the project at `root`, path -> content (limits and symlinks checked);
    the files in `skip` (the state store's, when it lives in the project) are no part of it."""
    top = root.resolve()
    skipped = {p.resolve() for p in skip}
    found: dict[str, bytes] = {}
    total = 0
    seen_dirs: set[Path] = set()

    def walk(directory: Path, relative: PurePosixPath) -> None:
        nonlocal total
        real = directory.resolve()
        if real in seen_dirs:  # a link back to a directory already read
            return
        seen_dirs.add(real)
        for entry in sorted(os.scandir(directory), key=lambda e: e.name):
            name = relative / entry.name
            if (not relative.parts and entry.name in SKIPPED) or entry.name == ".git":
                continue
            path = Path(entry.path)
            if path.resolve() in skipped:
                continue
            if entry.is_symlink() and not path.resolve().is_relative_to(top):
                raise UsageError(f"{name}: a symlink that leaves the project directory")
            if entry.is_dir():
                walk(path, name)
            elif entry.is_file():
                size = path.stat().st_size
                check_size(str(name), size)
                total += size
                if total > MAX_TOTAL_BYTES or len(found) >= MAX_FILES:
                    raise UsageError(
                        f"{name}: the project is too large (at most {MAX_FILES} files,"
                        f" {MAX_TOTAL_BYTES // 1024 // 1024} MiB in all)"
                    )
                found[str(name)] = path.read_bytes()

    walk(root, PurePosixPath())
    return found


def check_size(name: str, size: int) -> None:
    if size > MAX_FILE_BYTES:
        raise UsageError(
            f"{name}: {size} bytes, more than a project file may have"
            f" ({MAX_FILE_BYTES // 1024 // 1024} MiB)"
        )


def check_upload(files: Mapping[str, bytes]) -> None:
    """Refuse uploaded paths that are absolute, climb out, or name the state directory, and
    files over the limits; every problem in one UsageError."""
    problems: list[str] = []
    if len(files) > MAX_FILES:
        problems.append(f"{len(files)} files, more than {MAX_FILES}")
    if sum(len(c) for c in files.values()) > MAX_TOTAL_BYTES:
        problems.append(f"more than {MAX_TOTAL_BYTES // 1024 // 1024} MiB in all")
    for name, content in sorted(files.items()):
        pure = PurePosixPath(name)
        if (
            not name
            or len(name) > MAX_PATH
            or "\\" in name
            or "\0" in name
            or pure.is_absolute()
            or any(part in ("", ".", "..") for part in name.split("/"))
        ):
            problems.append(f"{name!r}: not a relative path inside the project")
        elif pure.parts[0] in SKIPPED or ".git" in pure.parts:
            problems.append(f"{name}: the state directory and .git are not part of a version")
        elif len(content) > MAX_FILE_BYTES:
            problems.append(f"{name}: {len(content)} bytes, more than {MAX_FILE_BYTES}")
    if problems:
        raise UsageError("the upload is refused: " + "; ".join(problems))


def write_files(root: Path, files: Mapping[str, bytes]) -> None:
    """Write `files` under `root`: each written aside, flushed, then renamed into place, so a
    reader sees a file's old content or its new one, never a part."""
    for name, content in sorted(files.items()):
        target = root.joinpath(*PurePosixPath(name).parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_symlink():
            target.unlink()  # a version replaces the link, never writes through it
        aside = target.with_name(f".{target.name}.{secrets.token_hex(4)}.new")
        with open(aside, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(aside, target)


def replace_project(root: Path, files: Mapping[str, bytes], skip: Collection[Path] = ()) -> None:
    """Make the project at `root` hold exactly `files`: new and changed ones written
    atomically (each aside, then renamed), then the files no longer in it removed. The files
    in `skip` are neither read, written nor removed (an upload naming one is refused)."""
    skipped = {p.resolve() for p in skip}
    clashes = sorted(
        n for n in files if root.joinpath(*PurePosixPath(n).parts).resolve() in skipped
    )
    if clashes:
        raise UsageError(f"{clashes[0]}: the state store's own file, not a project file")
    current = read_project(root, skip)
    write_files(root, {n: c for n, c in files.items() if current.get(n) != c})
    for name in sorted(set(current) - set(files)):
        root.joinpath(*PurePosixPath(name).parts).unlink(missing_ok=True)


def materialize(directory: Path, files: Mapping[str, bytes]) -> Path:
    """The files in `directory`, made once: written in a directory beside it, then renamed
    (a directory that exists already holds them)."""
    if directory.is_dir():
        return directory
    directory.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    aside = directory.with_name(f".{directory.name}.{secrets.token_hex(4)}")
    write_files(aside, files)
    try:
        os.rename(aside, directory)
    except OSError:
        if not directory.is_dir():
            raise
        _remove_tree(aside)  # another request made it first: theirs holds the same files
    return directory


def _remove_tree(directory: Path) -> None:
    for path in sorted(directory.rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() and not path.is_symlink() else path.unlink()
    directory.rmdir()
