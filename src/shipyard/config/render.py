"""Jinja2 rendering, sandboxed and strict: config strings and files, secrets as sealed tokens.

A secret renders as a token (`SEAL + name + SEAL`). What is shown, stored and hashed has every
token replaced by `***`; only `reveal` puts real values back, at deploy time.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.loaders import split_template_path
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from shipyard.config.models import SecretSource
from shipyard.config.reads import Reads, VarPath
from shipyard.config.textfile import UnreadableText, read_text
from shipyard.config.topology import project_path
from shipyard.errors import Problem
from shipyard.masking import MIN_SECRET_LENGTH

SEAL = "\x1e"
MASK = "***"
_TOKEN = re.compile(SEAL + r"secret:([A-Za-z0-9_.-]+)" + SEAL)
MAX_EXPONENT = 1000
MAX_REPEAT = 1_000_000


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


def fingerprint(name: str, value: str, key: bytes) -> str:
    """Changes whenever the value changes; used for revisions and diffs, shown to no one.

    A keyed MAC (HMAC-SHA256 with the store's own key, kept outside the database), so a stored
    fingerprint cannot be checked against guessed values by someone who only has the database.
    """
    if not key:
        raise ValueError("a secret fingerprint needs a non-empty key")
    message = f"{name}\0{value}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:32]


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
        path = project_path(source.file, self._root)  # as the executors read ssh.sudo_password
        try:
            return read_text(path).rstrip("\n")
        except OSError as exc:
            self.problems[name] = f"cannot read {source.file}: {exc.strerror}"
            return None
        except UnreadableText as exc:
            self.problems[name] = f"cannot read {source.file}: {exc.message}"
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


# A config string that is only text and `{{ name.member... }}`: text, or the path it prints.
Parts = tuple[str | tuple[str, ...], ...]
# The values such a path may print without Jinja: they print as str() prints them.
PLAIN = (str, int, float)


@dataclass(frozen=True)
class Compiled:
    """A compiled template and what it reads (None: it cannot be known, e.g. a computed include).

    `parts` is set for the commonest config string, text and plain `{{ a.b }}` lookups: it
    renders without a Jinja context (several times cheaper: most strings of a config are such).
    """

    template: jinja2.Template
    reads: frozenset[VarPath] | None
    parts: Parts | None = None


def simple_parts(tree: nodes.Template) -> Parts | None:
    """The parts of a template that is text and name lookups only, else None (Jinja renders)."""
    parts: list[str | tuple[str, ...]] = []
    for statement in tree.body:
        if not isinstance(statement, nodes.Output):
            return None
        for printed in statement.nodes:
            if isinstance(printed, nodes.TemplateData):
                parts.append(printed.data)
                continue
            path: list[str] = []
            node = printed
            while isinstance(node, nodes.Getattr):
                path.append(node.attr)
                node = node.node
            if not isinstance(node, nodes.Name) or node.ctx != "load":
                return None
            if any(hasattr(dict, key) for key in path):
                return None  # `a.items` is dict's method to Jinja, not the member `items`
            parts.append((node.name, *reversed(path)))
    return tuple(parts)


def _render_parts(parts: Parts, context: dict[str, object]) -> str | None:
    """`parts` rendered from `context`, or None when a lookup is not plainly a dict's item
    (missing, a value that is not text or a number): Jinja decides. No key of `parts` names
    an attribute of dict (`simple_parts` leaves those to Jinja)."""
    out = []
    for part in parts:
        if isinstance(part, str):
            out.append(part)
            continue
        value: object = context
        for key in part:
            if not isinstance(value, dict) or key not in value:
                return None
            value = value[key]
        if type(value) not in PLAIN:
            return None
        out.append(str(value))
    return "".join(out)


class _Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, and `*` / `**` bounded so a template cannot build a huge value."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int) and abs(right) > MAX_EXPONENT:
            raise SecurityError(f"exponent {right} is larger than {MAX_EXPONENT}")
        if operator == "*":
            for sequence, count in ((left, right), (right, left)):
                repeated = isinstance(sequence, str | list | tuple) and isinstance(count, int)
                if repeated and len(sequence) * count > MAX_REPEAT:
                    raise SecurityError(f"repetition is longer than {MAX_REPEAT} items")
        return super().call_binop(context, operator, left, right)


class _ProjectLoader(jinja2.BaseLoader):
    """Template files from inside the project directory only, read with the config bounds."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str, Callable[[], bool]]:
        path = self.root.joinpath(*split_template_path(template))
        try:
            inside = path.resolve().is_relative_to(self.root.resolve())
            text = read_text(path) if inside else None
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise jinja2.TemplateNotFound(template) from None
        except OSError as exc:
            raise UnreadableText(f"cannot read template file: {exc.strerror}") from None
        except RuntimeError:  # a loop of symbolic links
            raise UnreadableText("cannot read template file: a loop of links") from None
        if text is None:
            raise UnreadableText("template file is outside the project directory (a link?)")
        return text, str(path), lambda: True


class Renderer:
    """The one Jinja environment of Shipyard: every config string and file renders through it.

    It is jinja2's immutable sandbox (no attribute starting with `_`, no call that changes a
    list or dict, no unsafe callables), strict about undefined names. A config author may be
    someone other than the operator running Shipyard, so templates are data, never code.
    Each distinct template is compiled once, with what it reads.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = _Sandbox(
            loader=_ProjectLoader(root),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            autoescape=False,
            auto_reload=False,
            cache_size=-1,
        )
        # Rendering uses a context shared with the caller (see `render`), so it carries these.
        self.globals: dict[str, Any] = dict(self.env.globals)
        self._strings: dict[str, Compiled] = {}
        self._files: dict[str, Compiled] = {}
        self._file_reads: dict[str, Reads] = {}

    def string(self, text: str) -> Compiled:
        """Compile a config string; raises jinja2.TemplateSyntaxError."""
        compiled = self._strings.get(text)
        if compiled is None:
            tree = self.env.parse(text)
            reads = self._closure(Reads.of(tree))  # before compiling, which rewrites the tree
            parts = simple_parts(tree)
            compiled = Compiled(self._ready(self.env.from_string(tree)), reads, parts)
            self._strings[text] = compiled
        return compiled

    def file(self, relative: str) -> Compiled:
        """Compile a project file; raises TemplateNotFound, TemplateSyntaxError, UnreadableText."""
        compiled = self._files.get(relative)
        if compiled is None:
            template = self._ready(self.env.get_template(relative))
            compiled = Compiled(template, self._closure(self._reads_of_file(relative)))
            self._files[relative] = compiled
        return compiled

    def _reads_of_file(self, relative: str) -> Reads:
        found = self._file_reads.get(relative)
        if found is None:
            assert self.env.loader is not None
            source, filename, _ = self.env.loader.get_source(self.env, relative)
            found = Reads.of(self.env.parse(source, relative, filename))
            self._file_reads[relative] = found
        return found

    def _closure(self, reads: Reads) -> frozenset[VarPath] | None:
        """What a template and every template it includes, imports or extends read."""
        paths = set(reads.paths)
        todo = list(reads.templates)
        seen: set[str] = set()
        while todo:
            other = todo.pop()
            if other is None:
                return None  # a computed template name: it could read anything
            if other in seen:
                continue
            seen.add(other)
            try:
                found = self._reads_of_file(other)
            except (jinja2.TemplateError, UnreadableText, OSError):
                continue  # reported when it renders
            paths |= found.paths
            todo.extend(found.templates)
        return frozenset(paths)

    @staticmethod
    def _ready(template: jinja2.Template) -> jinja2.Template:
        # A template's globals are a ChainMap over the environment's, copied into every render;
        # the environment never changes after setup, so a plain dict gives the same answers
        # without walking the chain at every render (the bulk of a small template's cost).
        template.globals = dict(template.globals)
        return template


class RenderFailed(Exception):
    """A template could not be compiled or rendered; carries the template line when known."""

    def __init__(self, message: str, line: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


def render(compiled: Compiled, context: dict[str, object]) -> str:
    """Render with `context`, which must hold `Renderer.globals`; the template never changes it."""
    if compiled.parts is not None:
        fast = _render_parts(compiled.parts, context)
        if fast is not None:
            return fast
    template = compiled.template
    try:
        try:
            return "".join(template.root_render_func(template.new_context(context, shared=True)))
        except Exception:
            template.environment.handle_exception()  # re-raises with the template's own lines
    except SecurityError as exc:
        raise RenderFailed(
            f"unsafe template refused: {exc}", _template_line(exc, template)
        ) from exc
    except jinja2.UndefinedError as exc:
        raise RenderFailed(exc.message or "undefined value", _template_line(exc, template)) from exc
    except jinja2.TemplateError as exc:
        raise RenderFailed(str(exc), _template_line(exc, template)) from exc
    except UnreadableText as exc:
        raise RenderFailed(exc.message, _template_line(exc, template)) from exc
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
