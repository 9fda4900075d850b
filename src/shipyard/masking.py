"""The one masking boundary: every known secret value becomes `***` in text that leaves Shipyard.

A `Masker` is built from the project's secret values when a project is opened. Everything that
prints, stores, logs or sends text passes it through `Masker.text` (or `Masker.json` for
structured values): host output, failure reasons, command descriptions, events, audit detail.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

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
        """Know one more secret value; values shorter than MIN_SECRET_LENGTH are ignored."""
        pieces = [value, *value.splitlines()]
        added = {p for p in (piece.strip() for piece in pieces) if len(p) >= MIN_SECRET_LENGTH}
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
