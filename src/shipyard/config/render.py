"""Jinja2 rendering with StrictUndefined: config strings and files, secrets kept as sealed tokens.

A secret renders as a token (`SEAL + name + SEAL`). What is shown, stored and hashed has every
token replaced by `***`; only `reveal` puts real values back, at deploy time.
"""

from __future__ import annotations

import hashlib
import os
import re
import traceback
from collections.abc import Callable
from pathlib import Path

import jinja2

from shipyard.config.models import SecretSource
from shipyard.errors import Problem
from shipyard.masking import MIN_SECRET_LENGTH

SEAL = "\x1e"
MASK = "***"
_TOKEN = re.compile(SEAL + r"secret:([A-Za-z0-9_.-]+)" + SEAL)


def secret_token(name: str) -> str:
    return f"{SEAL}secret:{name}{SEAL}"


def is_template(text: str) -> bool:
    return "{{" in text or "{%" in text or "{#" in text


def mask(text: str) -> str:
    return _TOKEN.sub(MASK, text)


def sealed_names(text: str) -> list[str]:
    return _TOKEN.findall(text)


def reveal(text: str, lookup: Callable[[str], str]) -> str:
    return _TOKEN.sub(lambda m: lookup(m.group(1)), text)


def fingerprint(name: str, value: str) -> str:
    """Changes whenever the value changes; shown to no one, used for revisions and diffs."""
    return hashlib.sha256(f"shipyard-secret\0{name}\0{value}".encode()).hexdigest()[:16]


class Secrets:
    """Secret values, read from the environment or files on first use and never printed."""

    def __init__(
        self, sources: dict[str, SecretSource], root: Path, environ: dict[str, str] | None = None
    ) -> None:
        self._sources = sources
        self._root = root
        self._environ = dict(os.environ) if environ is None else environ
        self._values: dict[str, str | None] = {}
        self.problems: dict[str, str] = {}

    @property
    def tokens(self) -> dict[str, str]:
        return {name: secret_token(name) for name in self._sources}

    def value(self, name: str) -> str | None:
        if name not in self._values:
            found = self._read(name)
            if found is not None and len(found.strip()) < MIN_SECRET_LENGTH:
                # Every output masks secret values, but shorter ones would mask ordinary words.
                self.problems[name] = (
                    f"the value is shorter than {MIN_SECRET_LENGTH} characters, "
                    "too short to be masked in outputs"
                )
                found = None
            self._values[name] = found
        return self._values[name]

    def _read(self, name: str) -> str | None:
        source = self._sources[name]
        if source.env is not None:
            found = self._environ.get(source.env)
            if found is None:
                self.problems[name] = f"environment variable {source.env} is not set"
            return found
        assert source.file is not None
        path = self._root / source.file
        try:
            return path.read_text(encoding="utf-8").rstrip("\n")
        except OSError as exc:
            self.problems[name] = f"cannot read {source.file}: {exc.strerror}"
            return None

    def known_values(self) -> list[str]:
        """Every secret value that can be read, used or not: what a masker must hide."""
        found = []
        for name in self._sources:
            if name in self._values:
                value = self._values[name]
            else:
                try:
                    value = self._read(name)
                finally:
                    self.problems.pop(name, None)  # only flattening reports an unreadable secret
            if value:
                found.append(value)
        return found

    def require(self, name: str) -> str:
        """The value, for deploy time; a missing one was reported when flattening."""
        found = self.value(name)
        if found is None:
            raise KeyError(name)
        return found


class Renderer:
    """Compiles each distinct template once and renders it with a context."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(root)),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            autoescape=False,
        )
        self._strings: dict[str, jinja2.Template] = {}

    def string(self, text: str) -> jinja2.Template:
        compiled = self._strings.get(text)
        if compiled is None:
            compiled = self.env.from_string(text)
            self._strings[text] = compiled
        return compiled

    def file(self, relative: str) -> jinja2.Template:
        return self.env.get_template(relative)


class RenderFailed(Exception):
    """A template could not be compiled or rendered; carries the template line when known."""

    def __init__(self, message: str, line: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


def render(template: jinja2.Template, context: dict[str, object]) -> str:
    try:
        return template.render(context)
    except jinja2.UndefinedError as exc:
        raise RenderFailed(exc.message or "undefined value", _template_line(exc, template)) from exc
    except jinja2.TemplateError as exc:
        raise RenderFailed(str(exc), _template_line(exc, template)) from exc
    except Exception as exc:  # a filter or test failing on a value, e.g. int("x")
        raise RenderFailed(f"{type(exc).__name__}: {exc}", _template_line(exc, template)) from exc


def _template_line(exc: BaseException, template: jinja2.Template) -> int:
    name = template.filename or "<template>"
    line = 0
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == name and frame.lineno:
            line = frame.lineno
    return line


def syntax_problem(exc: jinja2.TemplateSyntaxError, file: str, path: str) -> Problem:
    return Problem(f"template syntax error: {exc.message}", path, file, exc.lineno or 0, 0)
