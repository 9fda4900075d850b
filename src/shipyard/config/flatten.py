"""Flatten every instance (`service@host`) into one canonical config with a sha256 revision.

Layers, later winning: the template chain from the root down, then the service's overrides.
Variables, later winning: project, template chain and overrides, site, host. Strings in the
config and the rendered files see the variables (each by its own name) plus `service`,
`instance`, `site`, `host`, `ports` and `secrets`. An instance's `vars` (and so its revision)
hold only the variables its templates read, so changing one touches only the instances using it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import jinja2
from pydantic import ValidationError

from shipyard.config.artifact import (
    ArtifactRefused,
    Contents,
    artifact_digest,
    read_artifact,
    release_path_problem,
)
from shipyard.config.instance import (
    ConfigPath,
    Flattened,
    Instance,
    Json,
    config_strings,
    containers_of,
    revision_of,
)
from shipyard.config.loader import LoadedProject, display_name
from shipyard.config.merge import Origins, deep_merge, merge_layer, origin_of
from shipyard.config.models import InstanceSpec, Service, Strategy
from shipyard.config.reads import ByName, VarPath, by_name, used_variables
from shipyard.config.render import (
    Compiled,
    Renderer,
    RenderFailed,
    Secrets,
    fingerprint,
    is_template,
    mask,
    render,
    sealed_names,
    syntax_problem,
)
from shipyard.config.shared_artifacts import ArtifactFlattener, SiteArtifact
from shipyard.config.textfile import UnreadableText
from shipyard.config.topology import HostRef, all_hosts, instance_name, place
from shipyard.config.yamlsource import PathKey, format_path
from shipyard.errors import ConfigError, Problem

# Flattened and Instance are defined in config.instance; every front end imports them here.
__all__ = ["Flattened", "Instance", "flatten_project", "revision_of"]

NOT_RENDERED = ("vars", "files", "artifact")
# What a config string's text depends on: the same for every instance of the service, for
# each site, or for each instance (it reads the instance, its host or a host's variable).
SERVICE, SITE, INSTANCE = "service", "site", "instance"


@dataclass
class _Problems:
    """Problems by identity, with the instances they were seen in."""

    seen: dict[Problem, list[str]] = field(default_factory=dict)

    def add(self, problem: Problem, instance: str = "") -> None:
        self.seen.setdefault(problem, [])
        if instance:
            self.seen[problem].append(instance)

    def result(self) -> list[Problem]:
        out = []
        for seen, instances in self.seen.items():
            problem = seen
            if instances:
                more = f" and {len(instances) - 1} more" if len(instances) > 1 else ""
                problem = Problem(
                    f"{seen.message} (in {instances[0]}{more})",
                    seen.path,
                    seen.file,
                    seen.line,
                    seen.column,
                )
            out.append(problem)
        return sorted(out, key=lambda p: (p.file, p.line, p.column, p.path, p.message))


@dataclass
class _Prepared:
    """What every instance of a service shares, computed once."""

    spec: Json
    origins: Origins
    templated: list[tuple[ConfigPath, Compiled]]
    files: list[tuple[str, str, Compiled]]  # dest, source, compiled
    vars: Json
    reads: frozenset[VarPath] | None  # what its templates read; None: anything
    complete: bool = True  # False: a problem was found already, render only to find others
    strategy: Strategy | None = None
    grouped_reads: ByName | None = None  # `reads` grouped by variable (None: anything)
    # The containers holding templated strings, parents first: what each instance copies.
    containers: list[tuple[ConfigPath, str | int, ConfigPath]] = field(default_factory=list)
    # Per templated string: what its text depends on (SERVICE, SITE or INSTANCE), and the
    # texts (or failures) already rendered by (string's index, site).
    scopes: list[str] = field(default_factory=list)
    rendered: dict[tuple[int, str], str | RenderFailed] = field(default_factory=dict)


class _Flattener:
    def __init__(
        self, loaded: LoadedProject, environ: dict[str, str] | None, secret_key: bytes
    ) -> None:
        self.loaded = loaded
        self.secret_key = secret_key
        self.project = loaded.project
        self.marks = loaded.marks
        self.renderer = Renderer(loaded.root)
        self.secrets = Secrets(self.project.secrets, loaded.root, environ)
        self.problems = _Problems()
        self.shared: dict[str, dict[str, SiteArtifact]] = {}
        self.artifacts: dict[tuple[str, tuple[str, ...]], tuple[Contents, str] | None] = {}
        sites = self.project.sites.values()
        self.site_names = {n for s in sites for n in s.vars} | {"site"}
        self.host_names = {n for s in sites for h in s.hosts.values() for n in h.vars}
        self.host_names |= {"instance", "host"}

    def problem(self, path: PathKey, message: str) -> Problem:
        return self.marks.problem(path, message)

    def run(self) -> dict[str, Instance]:
        hosts = all_hosts(self.project)
        instances: dict[str, Instance] = {}
        for name, service in self.project.services.items():
            prepared = self._prepare(name, service)
            if prepared is None:
                continue
            site_vars: dict[str, Json] = {}
            for ref in place(service, hosts):
                if ref.site not in site_vars:
                    site = self.project.sites[ref.site]
                    site_vars[ref.site] = deep_merge(prepared.vars, site.vars)
                instance = self._instance(name, service, prepared, ref, site_vars[ref.site])
                if instance is not None:
                    instances[instance.name] = instance
        self.shared = ArtifactFlattener(
            self.loaded, self.renderer, self.secrets, self.secret_key, self.problems.add
        ).run()
        for secret, message in sorted(self.secrets.problems.items()):
            self.problems.add(self.problem(("secrets", secret), message))
        return instances

    def _prepare(self, name: str, service: Service) -> _Prepared | None:
        chain = []
        template: str | None = service.template
        while template is not None:
            chain.append(template)
            template = self.project.templates[template].extends
        raw = self.loaded.raw
        merged: Json = {}
        origins: Origins = {}
        for template in reversed(chain):
            body = {
                k: v
                for k, v in raw["templates"][template].items()
                if k not in ("extends", "locked")
            }
            merged = merge_layer(merged, body, origins, ("templates", template))
        overrides = raw["services"][name].get("overrides") or {}
        merged = merge_layer(merged, overrides, origins, ("services", name, "overrides"))
        try:
            spec = InstanceSpec.model_validate(merged)
        except ValidationError as exc:
            for error in exc.errors():
                loc = tuple(str(p) for p in error["loc"])
                message = str(error["msg"]).removeprefix("Value error, ")
                source = origin_of(origins, loc) if loc else ("services", name)
                self.problems.add(self.problem(source, message))
            return None
        doc = spec.model_dump(mode="json", exclude_none=True, exclude={"vars"})
        contents = None
        if spec.artifact is not None:
            exclude = tuple(spec.artifact.exclude)
            read = self._artifact(spec.artifact.path or "", exclude, origins)
            if read is None:
                return None
            contents, doc["artifact"]["digest"] = read
        for dest in sorted(spec.files or {}):
            clash = release_path_problem(dest, contents)
            if clash is not None:
                self.problems.add(self.problem(origin_of(origins, ("files", dest)), clash))
        templated = []
        for path, text in config_strings(doc):
            if path[0] in NOT_RENDERED or not is_template(text):
                continue
            try:
                templated.append((path, self.renderer.string(text)))
            except jinja2.TemplateSyntaxError as exc:
                where = self.marks.nearest(origin_of(origins, path))
                self.problems.add(
                    self.problem(origin_of(origins, path), f"template syntax error: {exc.message}")
                    if where
                    else Problem(f"template syntax error: {exc.message}", format_path(path))
                )
        # A file that cannot be compiled still lets the strings render, so that their own
        # problems are reported too; such a service yields no instances.
        files = self._compile_files(spec.files or {}, origins)
        variables = deep_merge(self.project.vars, spec.vars or {})
        reads: set[VarPath] | None = set()
        for compiled in [c for _, c in templated] + [c for _, _, c in files or []]:
            if reads is None or compiled.reads is None:
                reads = None
                break
            reads |= compiled.reads
        strategy = doc.get("strategy", {})
        templated_strategy = any(path[0] == "strategy" for path, _ in templated)
        return _Prepared(
            doc,
            origins,
            templated,
            files or [],
            variables,
            None if reads is None else frozenset(reads),
            complete=files is not None,
            # As `Instance.strategy` reads it from the config, once for every instance.
            strategy=None if templated_strategy else Strategy.model_validate(strategy),
            grouped_reads=None if reads is None else by_name(reads),
            containers=containers_of(doc, [path for path, _ in templated]),
            scopes=[self._scope(compiled) for _, compiled in templated],
        )

    def _compile_files(
        self, files: dict[str, str], origins: Origins
    ) -> list[tuple[str, str, Compiled]] | None:
        out = []
        ok = True
        for dest, source in sorted(files.items()):
            where = origin_of(origins, ("files", dest))
            pure = PurePosixPath(dest)
            if pure.is_absolute() or ".." in pure.parts or not dest:
                self.problems.add(self.problem(where, "must be a relative path inside the release"))
                ok = False
                continue
            try:
                out.append((dest, source, self.renderer.file(source)))
            except jinja2.TemplateNotFound:
                self.problems.add(self.problem(where, f"template file not found: {source}"))
                ok = False
            except jinja2.TemplateSyntaxError as exc:
                file = display_name(self.loaded.root / source)
                self.problems.add(syntax_problem(exc, file, format_path(where)))
                ok = False
            except UnreadableText as exc:
                file = display_name(self.loaded.root / source)
                problem = Problem(exc.message, format_path(where), file, exc.line, exc.column)
                self.problems.add(problem)
                ok = False
        return out if ok else None

    def _artifact(
        self, path: str, exclude: tuple[str, ...], origins: Origins
    ) -> tuple[Contents, str] | None:
        """The artifact's checked contents and digest, read once per path and exclusions."""
        key = (path, exclude)
        if key not in self.artifacts:
            try:
                contents = read_artifact(self.loaded.root, path, exclude)
                self.artifacts[key] = (contents, artifact_digest(contents))
            except ArtifactRefused as refused:
                self.artifacts[key] = None
                where = origin_of(origins, ("artifact", "path"))
                for message in refused.messages:
                    self.problems.add(self.problem(where, message))
        return self.artifacts[key]

    def _instance(
        self, name: str, service: Service, prepared: _Prepared, ref: HostRef, site_vars: Json
    ) -> Instance | None:
        label = instance_name(name, ref.name)
        variables = deep_merge(site_vars, ref.host.vars) if ref.host.vars else site_vars
        root = ref.root(self.loaded.home)
        host = {
            "name": ref.name,
            "address": ref.address,
            "labels": list(ref.host.labels),
            "root": root,
        }
        context: dict[str, object] = {
            **self.renderer.globals,
            **variables,
            "service": name,
            "instance": label,
            "site": ref.site,
            "host": host,
            "ports": prepared.spec.get("ports", {}),
            "secrets": self.secrets.tokens,
        }
        config: Json = {
            **prepared.spec,
            "instance": label,
            "service": name,
            "site": ref.site,
            "host": host,
            "vars": used_variables(variables, prepared.grouped_reads),
        }
        sealed: dict[ConfigPath, str] = {}
        used: set[str] = set()
        ok = True
        # A copy of each container holding a templated string, so the service's spec, which
        # every instance shares, is never changed.
        copies: dict[ConfigPath, Any] = {(): config}
        for parent, key, own in prepared.containers:
            above = copies[parent]
            found = above[key]
            copies[own] = above[key] = dict(found) if isinstance(found, dict) else list(found)
        for index, (path, template) in enumerate(prepared.templated):
            try:
                text = self._render_string(prepared, index, template, context, ref.site)
            except RenderFailed as exc:
                self.problems.add(
                    self.problem(origin_of(prepared.origins, path), exc.message), label
                )
                ok = False
                continue
            container = copies[path[:-1]]
            last = path[-1]
            container[int(last) if isinstance(container, list) else last] = self._seal(
                text, path, sealed, used
            )
        if prepared.files:
            rendered: Json = {}
            for dest, source, template in prepared.files:
                try:
                    text = render(template, context)
                except RenderFailed as exc:
                    file = display_name(self.loaded.root / source)
                    where = format_path(origin_of(prepared.origins, ("files", dest)))
                    self.problems.add(Problem(exc.message, where, file, exc.line, 0), label)
                    ok = False
                    continue
                content = self._seal(text, ("files", dest, "content"), sealed, used)
                rendered[dest] = {"source": source, "content": content}
            config["files"] = rendered
        if not ok or not prepared.complete:
            return None
        secrets = {}
        for secret in sorted(used):
            value = self.secrets.value(secret)
            if value is None:
                return None
            secrets[secret] = fingerprint(secret, value, self.secret_key)
        return Instance(
            name=label,
            service=name,
            host=ref.name,
            site=ref.site,
            config=config,
            revision=revision_of(config, secrets),
            depends_on=tuple(service.depends_on),
            secrets=secrets,
            sealed=sealed,
            known_strategy=prepared.strategy,
        )

    def _scope(self, compiled: Compiled) -> str:
        """What a config string's text depends on, from the variables it reads."""
        if compiled.reads is None:
            return INSTANCE
        names = {str(path[0]) for path in compiled.reads}
        if names & self.host_names:
            return INSTANCE
        return SITE if names & self.site_names else SERVICE

    @staticmethod
    def _render_string(
        prepared: _Prepared, index: int, template: Compiled, context: dict[str, object], site: str
    ) -> str:
        """The string's text: rendered once per service or site when it reads nothing of the
        instance, its host or a host's variables (the rest of the context is the same)."""
        scope = prepared.scopes[index]
        if scope == INSTANCE:
            return render(template, context)
        key = (index, site if scope == SITE else "")
        found = prepared.rendered.get(key)
        if found is None:
            try:
                found = render(template, context)
            except RenderFailed as exc:
                found = exc
            prepared.rendered[key] = found
        if isinstance(found, RenderFailed):
            raise found
        return found

    @staticmethod
    def _seal(text: str, path: ConfigPath, sealed: dict[ConfigPath, str], used: set[str]) -> str:
        names = sealed_names(text)
        if not names:
            return text
        used.update(names)
        sealed[path] = text
        return mask(text)


def flatten_project(
    loaded: LoadedProject,
    *,
    secret_key: bytes,
    environ: dict[str, str] | None = None,
    empty_ok: bool = False,
) -> Flattened:
    """Flatten every instance; raise ConfigError listing every problem (rendering included).

    `secret_key` keys the secrets' fingerprints (see `shipyard.store.secret_key`). A project
    without a single instance is a problem too (there is nothing to plan, deploy or validate),
    unless `empty_ok` (bootstrap prepares the hosts before any service is placed on them).
    """
    flattener = _Flattener(loaded, environ, secret_key)
    instances = flattener.run()
    problems = flattener.problems.result()
    if not problems and not instances and not empty_ok:
        problems = [loaded.marks.problem(("services",), "no services: nothing to deploy")]
        if not problems[0].file:
            problems = [Problem(problems[0].message, "services", display_name(loaded.file), 1)]
    if problems:
        raise ConfigError(problems)
    return Flattened(
        loaded=loaded, instances=instances, secrets=flattener.secrets, artifacts=flattener.shared
    )
