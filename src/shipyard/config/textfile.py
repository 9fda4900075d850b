"""Reading the project's own text files (YAML, templates, secret files): bounded, UTF-8, located.

A config file is input a person wrote, so its limits are generous, but they are limits: a file
larger than MAX_FILE_BYTES, a file that is not a regular file (a FIFO, a device) or bytes that
are not UTF-8 are reported, never read without end or raised as a traceback.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

MAX_FILE_BYTES = 5 * 1024 * 1024


class UnreadableText(Exception):
    """A file that cannot be read as config text; `line` and `column` are 1-based, 0 if unknown."""

    def __init__(self, message: str, line: int = 0, column: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column


def read_text(path: Path) -> str:
    """The file's text; raises UnreadableText (too large, not a file, not UTF-8) or OSError."""
    # O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below.
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(descriptor, "rb") as handle:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise UnreadableText("not a regular file")
        data = handle.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise UnreadableText(f"file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        line = data.count(b"\n", 0, exc.start) + 1
        raise UnreadableText(
            f"invalid UTF-8 at byte offset {exc.start}", line, exc.start - line_start + 1
        ) from None
