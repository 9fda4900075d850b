"""A directory as a manifest (what it holds, one digest) and as a tar streamed in chunks."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import stat
import tarfile
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

MANIFEST_NAME = ".shipyard-manifest"
CHUNK = 256 * 1024
QUEUE_DEPTH = 8  # chunks in flight between the tar thread and the channel


@dataclass(frozen=True)
class Entry:
    """One member: a directory, a regular file (with its sha256) or a symlink (with its target)."""

    path: str  # relative, with forward slashes
    kind: str  # "dir", "file" or "link"
    mode: int  # 0o755 or 0o644: only the executable bit is carried over
    size: int = 0
    sha256: str = ""
    target: str = ""

    def line(self) -> str:
        detail = self.sha256 if self.kind == "file" else self.target
        return f"{self.kind} {self.mode:o} {self.size} {detail} {self.path}"


@dataclass(frozen=True)
class Manifest:
    """What a directory holds. Equal digests mean equal content, paths and executable bits."""

    root: Path
    entries: tuple[Entry, ...]

    @property
    def body(self) -> str:
        return "".join(entry.line() + "\n" for entry in self.entries)

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.body.encode()).hexdigest()

    def text(self) -> str:
        """The manifest file the tar carries: the digest on its first line, then the entries."""
        return f"{self.digest}\n{self.body}"


def build_manifest(root: Path) -> Manifest:
    """Walk `root` in a stable order, hashing every file. Sockets and devices are refused."""
    if not root.is_dir():
        raise NotADirectoryError(f"{root} is not a directory")
    entries: list[Entry] = []
    for current, dirs, files in os.walk(root):
        dirs.sort()
        base = Path(current)
        for name in sorted([*dirs, *files]):
            path = base / name
            relative = path.relative_to(root).as_posix()
            if relative == MANIFEST_NAME:
                continue  # ours, from an earlier download of the same tree
            info = path.lstat()
            entries.append(_entry(path, relative, info))
    return Manifest(root, tuple(sorted(entries, key=lambda e: e.path)))


def _entry(path: Path, relative: str, info: os.stat_result) -> Entry:
    if stat.S_ISLNK(info.st_mode):
        return Entry(relative, "link", 0o777, target=os.readlink(path))
    if stat.S_ISDIR(info.st_mode):
        return Entry(relative, "dir", 0o755)
    if not stat.S_ISREG(info.st_mode):
        raise ValueError(f"{path} is neither a file, a directory nor a symlink")
    mode = 0o755 if info.st_mode & 0o111 else 0o644
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
    return Entry(relative, "file", mode, info.st_size, digest.hexdigest())


async def tar_chunks(manifest: Manifest) -> AsyncIterator[bytes]:
    """Yield the tar of the manifest's entries (and the manifest itself), made in a thread."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue(QUEUE_DEPTH)
    stop = threading.Event()
    writer = _QueueWriter(loop, queue, stop)
    thread = loop.run_in_executor(None, _write_tar, manifest, writer)
    try:
        while (item := await queue.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while not queue.empty():  # unblock a producer waiting for room
            queue.get_nowait()
        await asyncio.gather(thread, return_exceptions=True)


class _Stopped(Exception):
    """The consumer went away; the tar thread stops."""


class _QueueWriter(io.RawIOBase):
    """A file the tar thread writes to; full chunks go to the event loop's queue."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        queue: asyncio.Queue[bytes | BaseException | None],
        stop: threading.Event,
    ) -> None:
        super().__init__()
        self._loop = loop
        self._queue = queue
        self._stop = stop
        self._pending = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        self._pending += data
        if len(self._pending) >= CHUNK:
            self.push(bytes(self._pending))
            self._pending.clear()
        return len(data)

    def push(self, item: bytes | BaseException | None) -> None:
        if self._stop.is_set():
            raise _Stopped
        asyncio.run_coroutine_threadsafe(self._queue.put(item), self._loop).result()

    def finish(self) -> None:
        if self._pending:
            self.push(bytes(self._pending))
        self.push(None)


def _write_tar(manifest: Manifest, writer: _QueueWriter) -> None:
    try:
        with tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for entry in manifest.entries:
                _add(tar, manifest.root, entry)
            text = manifest.text().encode()
            info = tarfile.TarInfo(MANIFEST_NAME)
            info.size, info.mode = len(text), 0o644
            tar.addfile(info, io.BytesIO(text))
        writer.finish()
    except _Stopped:
        return
    except Exception as exc:  # reported to the consumer, which raises it
        try:
            writer.push(exc)
        except _Stopped:
            return


def _add(tar: tarfile.TarFile, root: Path, entry: Entry) -> None:
    path = root / entry.path
    info = tarfile.TarInfo(entry.path)
    info.mode = entry.mode
    info.mtime = int(path.lstat().st_mtime)
    if entry.kind == "dir":
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
    elif entry.kind == "link":
        info.type, info.linkname = tarfile.SYMTYPE, entry.target
        tar.addfile(info)
    else:
        info.size = entry.size
        with path.open("rb") as source:
            tar.addfile(info, source)
