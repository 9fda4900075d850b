"""System-wide artifacts (`artifacts:`): their checks, and each one rendered once per site.

Not to be confused with `config.artifact`, a service's release tarball. A system-wide artifact
is a named set of files pushed to every host of its sites. Each site gets its own rendering
(site variables may differ) and so its own version: a sha256 over the target, the mode, each
file's masked content and the fingerprints of the secrets it uses. Secret values appear only
in `SiteArtifact.realise`, which the deploy layer calls for the bytes sent to a host.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jinja2

from shipyard.config.instance import canonical_json
from shipyard.config.loader import LoadedProject, display_name
from shipyard.config.merge import deep_merge
from shipyard.config.models import ALL_SITES, Project, SharedArtifact
from shipyard.config.render import (
    Compiled,
    Renderer,
    RenderFailed,
    Secrets,
    fingerprint,
    mask,
    render,
    reveal,
    sealed_names,
    syntax_problem,
)
from shipyard.config.textfile import MAX_FILE_BYTES, UnreadableText
from shipyard.config.yamlsource import PathKey, SourceMap, format_path
from shipyard.errors import Problem


@dataclass(frozen=True)
class ArtifactContent:
    """One file of an artifact as a site gets it. `data` is what is hashed and may be shown
    (secrets read `***`); `sealed` holds the rendered text with secret tokens, when any."""

    path: str  # relative to the artifact's target
    data: bytes
    sealed: str | None = None

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class SiteArtifact:
    """One artifact for one site: where it goes, its files and its version (content hash)."""

    name: str
    site: str
    target: str
    mode: str
    files: tuple[ArtifactContent, ...]
    version: str
    secrets: dict[str, str] = field(default_factory=dict)  # name -> fingerprint

    def realise(self, lookup: Callable[[str], str]) -> list[tuple[str, bytes]]:
        """Each file's path and the bytes the host gets (real secret values): never print them."""
        return [
            (f.path, f.data if f.sealed is None else reveal(f.sealed, lookup).encode())
            for f in self.files
        ]


def artifact_sites(artifact: SharedArtifact, project: Project) -> list[str]:
    """The sites an artifact goes to, in the project's order."""
    if artifact.sites == ALL_SITES:
        return list(project.sites)
    wanted = set(artifact.sites)
    return [name for name in project.sites if name in wanted]


def check_artifacts(project: Project, marks: SourceMap, declared_sites: set[str]) -> list[Problem]:
    """Unknown sites an artifact names (a damaged site, reported already, is not)."""
    problems = []
    for name, artifact in project.artifacts.items():
        if isinstance(artifact.sites, str):
            continue
        for index, site in enumerate(artifact.sites):
            if site not in project.sites and site not in declared_sites:
                path: PathKey = ("artifacts", name, "sites", index)
                problems.append(marks.problem(path, f'unknown site "{site}"'))
    return problems


def version_of(
    target: str, mode: str, files: list[ArtifactContent], secrets: dict[str, str]
) -> str:
    document = {"target": target, "mode": mode, "files": {f.path: f.digest for f in files}}
    digest = hashlib.sha256(canonical_json(document).encode())
    if secrets:
        digest.update(b"\0" + canonical_json(secrets).encode())
    return digest.hexdigest()


class ArtifactFlattener:
    """Renders every artifact for each of its sites, reporting problems as config errors."""

    def __init__(
        self,
        loaded: LoadedProject,
        renderer: Renderer,
        secrets: Secrets,
        secret_key: bytes,
        report: Callable[[Problem], None],
    ) -> None:
        self.loaded = loaded
        self.renderer = renderer
        self.secrets = secrets
        self.secret_key = secret_key
        self.report = report

    def run(self) -> dict[str, dict[str, SiteArtifact]]:
        out: dict[str, dict[str, SiteArtifact]] = {}
        project = self.loaded.project
        for name, artifact in project.artifacts.items():
            per_site = {}
            sources = self._sources(name, artifact)
            if sources is None:
                continue
            for site in artifact_sites(artifact, project):
                made = self._for_site(name, artifact, site, sources)
                if made is not None:
                    per_site[site] = made
            out[name] = per_site
        return out

    def _sources(self, name: str, artifact: SharedArtifact) -> dict[str, bytes | Compiled] | None:
        """Each file's bytes, or its compiled template; None when one has a problem."""
        out: dict[str, bytes | Compiled] = {}
        ok = True
        for path, spec in sorted(artifact.files.items()):
            where: PathKey = ("artifacts", name, "files", path)
            try:
                if artifact.template:
                    if spec.content is not None:
                        out[path] = self.renderer.string(spec.content)
                    else:
                        out[path] = self.renderer.file(str(spec.source))
                elif spec.content is not None:
                    out[path] = spec.content.encode()
                else:
                    out[path] = self._read(str(spec.source))
            except jinja2.TemplateNotFound:
                self.report(self._problem(where, f"file not found: {spec.source}"))
                ok = False
            except jinja2.TemplateSyntaxError as exc:
                file = display_name(self.loaded.root / (spec.source or "shipyard.yaml"))
                self.report(syntax_problem(exc, file, format_path(where)))
                ok = False
            except UnreadableText as exc:
                self.report(self._problem(where, f"cannot read {spec.source}: {exc.message}"))
                ok = False
            except OSError as exc:
                self.report(self._problem(where, f"cannot read {spec.source}: {exc.strerror}"))
                ok = False
        return out if ok else None

    def _read(self, source: str) -> bytes:
        """A project file's bytes (any content), bounded, from inside the project only."""
        root = self.loaded.root.resolve()
        path = (self.loaded.root / source).resolve()
        if not path.is_relative_to(root):
            raise UnreadableText("the file is outside the project directory (a link?)")
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(descriptor, "rb") as handle:
            if not stat.S_ISREG(os.fstat(descriptor).st_mode):
                raise UnreadableText("not a regular file")
            data = handle.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            raise UnreadableText(f"file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
        return data

    def _for_site(
        self,
        name: str,
        artifact: SharedArtifact,
        site: str,
        sources: dict[str, bytes | Compiled],
    ) -> SiteArtifact | None:
        project = self.loaded.project
        context: dict[str, object] = {
            **self.renderer.globals,
            **deep_merge(project.vars, project.sites[site].vars),
            "site": site,
            "artifact": name,
            "secrets": self.secrets.tokens,
        }
        files = []
        used: set[str] = set()
        ok = True
        for path, source in sources.items():
            if isinstance(source, bytes):
                files.append(ArtifactContent(path, source))
                continue
            try:
                text = render(source, context)
            except RenderFailed as exc:
                where = format_path(("artifacts", name, "files", path))
                spec = artifact.files[path]
                if spec.source is not None:
                    file = display_name(self.loaded.root / spec.source)
                    self.report(Problem(f"{exc.message} (site {site})", where, file, exc.line, 0))
                else:
                    problem = self._problem(("artifacts", name, "files", path), exc.message)
                    self.report(Problem(f"{problem.message} (site {site})", problem.path,
                                        problem.file, problem.line, problem.column))  # fmt: skip
                ok = False
                continue
            names = sealed_names(text)
            used.update(names)
            files.append(ArtifactContent(path, mask(text).encode(), text if names else None))
        if not ok:
            return None
        secrets = {}
        for secret in sorted(used):
            value = self.secrets.value(secret)
            if value is None:
                return None  # reported with the secrets' problems
            secrets[secret] = fingerprint(secret, value, self.secret_key)
        version = version_of(artifact.target, artifact.mode, files, secrets)
        return SiteArtifact(
            name, site, artifact.target, artifact.mode, tuple(files), version, secrets
        )

    def _problem(self, path: PathKey, message: str) -> Problem:
        return self.loaded.marks.problem(path, message)


def describe_files(artifact: SiteArtifact) -> list[dict[str, Any]]:
    """What may be shown of an artifact's files: paths, sizes and digests, never content."""
    return [{"path": f.path, "size": len(f.data), "sha256": f.digest} for f in artifact.files]
