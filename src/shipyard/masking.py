"""The one masking boundary: every known secret value becomes `***` in text that leaves Shipyard.

A `Masker` is built from the project's secret values when a project is opened (`masker_for`).
Everything that prints, stores, logs or sends text passes it through `Masker.text` (or
`Masker.json` for structured values): host output, failure reasons, command descriptions,
events, audit detail. Text for a terminal also passes `safe_text` (`Masker.shown` does both):
host output is untrusted, and its escape sequences are shown, never obeyed.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shipyard.config.flatten import Flattened
    from shipyard.config.loader import LoadedProject

MASK = "***"
# Shorter values would mask ordinary words; such secrets are refused where they are defined.
MIN_SECRET_LENGTH = 4


class Masker:
    """Replaces every known secret value (and each line of a multi-line one) by `***`."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        for value in values:
            self.add(value)

    def add(self, value: str) -> None:
        """Know one more secret value; values shorter than MIN_SECRET_LENGTH are ignored.

        Also known: the value as it reads inside a shell-quoted command (`shlex.join`), a
        JSON string and a Python repr, so a described command or a quoted value is masked too.
        """
        pieces = [p.strip() for p in (value, *value.splitlines())]
        written = [form for piece in pieces for form in _written_forms(piece)]
        added = {p for p in written if len(p) >= MIN_SECRET_LENGTH}
        if added - self._values:
            self._values |= added
            # Longest first, so a value that contains another is masked whole.
            ordered = sorted(self._values, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(v) for v in ordered))

    @property
    def empty(self) -> bool:
        return self._pattern is None

    def text(self, text: str) -> str:
        """`text` with every known secret value replaced by `***`."""
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(MASK, text)

    __call__ = text

    def shown(self, text: str) -> str:
        """`text` masked and made safe for a terminal (see `safe_text`)."""
        return safe_text(self.text(text))

    def json(self, value: object) -> object:
        """A copy of a JSON-like value (dicts, lists, strings, numbers) with every string masked."""
        if self._pattern is None:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {self.text(str(k)): self.json(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.json(v) for v in value]
        return value


NO_SECRETS = Masker()


def _written_forms(value: str) -> set[str]:
    """`value`, and how it reads when quoted for a shell, in JSON and in a repr."""
    return {
        value,
        value.replace("'", "'\"'\"'"),
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        repr(value)[1:-1],
    }


# Characters a terminal acts on instead of showing: C0 controls but tab and newline (ESC starts
# every CSI/OSC sequence: colours, title, clear screen, alternate screen, OSC 8 links, concealed
# text), DEL, C1 controls (U+009B is a one-byte CSI), and the bidirectional overrides and
# isolates that make a line read differently from what it holds.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def safe_text(text: str) -> str:
    """`text` with every character a terminal would act on written out as `\\xNN` / `\\uNNNN`.

    Line ends stay line ends (CRLF becomes LF); nothing else is removed, so what a host printed
    is still readable, literally. Rich markup is not this function's business: print host text
    as `rich.text.Text`, never as a markup string.
    """
    if not text:
        return text
    text = text.replace("\r\n", "\n")
    return _UNSAFE.sub(_visible, text)


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


class MaskedRecords(logging.Filter):
    """Masks and escapes every log record's message, traceback and stack before it is written.

    `masker` is asked at each record: a command learns its project's secrets after logging
    is set up.
    """

    def __init__(self, masker: Callable[[], Masker]) -> None:
        super().__init__()
        self._masker = masker
        self._formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        masker = self._masker()
        record.msg, record.args = masker.shown(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = masker.shown(record.exc_text)
        if record.stack_info:
            record.stack_info = masker.shown(record.stack_info)
        return True


def log_handler(masker: Callable[[], Masker]) -> logging.Handler:
    """A handler writing to stderr, every record masked (see MaskedRecords)."""
    handler = logging.StreamHandler()
    handler.addFilter(MaskedRecords(masker))
    return handler


def masker_for(project: Flattened | LoadedProject) -> Masker:
    """A masker knowing every secret value of `project`: its `secrets:` and the sudo password."""
    from shipyard.config.flatten import Flattened
    from shipyard.config.render import Secrets

    if isinstance(project, Flattened):
        loaded, secrets = project.loaded, project.secrets
    else:
        loaded, secrets = project, Secrets(project.project.secrets, project.root)
    masker = Masker(secrets.known_values())
    sudo = loaded.project.ssh.sudo_password
    if sudo is not None:
        for value in Secrets({"sudo_password": sudo}, loaded.root).known_values():
            masker.add(value)
    return masker
