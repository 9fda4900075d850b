"""Checks across the project: references, placement, inheritance and dependency cycles, locks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shipyard.config.graph import find_cycle
from shipyard.config.models import Project, ServiceBody
from shipyard.config.shared_artifacts import check_artifacts
from shipyard.config.topology import all_hosts, place
from shipyard.config.yamlsource import REMOVE, PathKey, SourceMap
from shipyard.errors import Problem

BODY_FIELDS = frozenset(ServiceBody.model_fields)
RESERVED_VARS = frozenset({"service", "instance", "host", "site", "ports", "secrets", "env"})


def check_project(
    project: Project,
    raw: dict[str, Any],
    marks: SourceMap,
    root: Path,
    damaged: frozenset[PathKey] = frozenset(),
) -> list[Problem]:
    """Every problem that needs more than one entry to see.

    `damaged` holds the entries (`("services", "api")`) whose own problems were reported: a
    reference to one is not reported as unknown, nor is what their damage implies.
    """
    problems: list[Problem] = []
    declared = _declared(raw, damaged)
    problems += _duplicate_hosts(project, marks)
    problems += _template_references(project, marks, declared)
    problems += _service_references(project, marks, declared, damaged)
    problems += _reserved_vars(project, marks)
    problems += check_locks(project, raw, marks)  # independent of the above: always checked
    problems += check_artifacts(project, marks, declared["site"])
    return problems


def _duplicate_hosts(project: Project, marks: SourceMap) -> list[Problem]:
    seen: dict[str, str] = {}
    problems = []
    for site_name, site in project.sites.items():
        for host_name in site.hosts:
            if host_name in seen:
                problems.append(
                    marks.problem(
                        ("sites", site_name, "hosts", host_name),
                        f'host "{host_name}" is already declared in site "{seen[host_name]}"',
                    )
                )
            else:
                seen[host_name] = site_name
    return problems


def _declared(raw: dict[str, Any], damaged: frozenset[PathKey]) -> dict[str, set[str]]:
    """Names of entries that are written but invalid (reported already), by kind."""
    out: dict[str, set[str]] = {"site": set(), "host": set(), "template": set(), "service": set()}
    for section, name, *rest in damaged:
        if rest or section not in ("sites", "templates", "services"):
            continue
        out[str(section).removesuffix("s")].add(str(name))
        entry = raw[section][name] if section == "sites" else None
        if isinstance(entry, dict) and isinstance(entry.get("hosts"), dict):
            out["host"] |= {str(h) for h in entry["hosts"]}
    return out


def _template_references(
    project: Project, marks: SourceMap, declared: dict[str, set[str]]
) -> list[Problem]:
    problems = []
    parents: dict[str, list[str]] = {}
    for name, template in project.templates.items():
        parents[name] = []
        if template.extends is None:
            continue
        if template.extends in declared["template"]:
            pass  # an invalid template, reported where it is written
        elif template.extends not in project.templates:
            problems.append(
                marks.problem(
                    ("templates", name, "extends"), f'unknown template "{template.extends}"'
                )
            )
        else:
            parents[name] = [template.extends]
        for index, locked in enumerate(template.locked):
            if locked.split(".")[0] not in BODY_FIELDS:
                problems.append(
                    marks.problem(
                        ("templates", name, "locked", index), f'no member "{locked}" to lock'
                    )
                )
    cycle = find_cycle(parents)
    if cycle:
        problems.append(
            marks.problem(
                ("templates", cycle[0], "extends"), "inheritance cycle " + " -> ".join(cycle)
            )
        )
    return problems


def _service_references(
    project: Project,
    marks: SourceMap,
    declared: dict[str, set[str]],
    damaged: frozenset[PathKey],
) -> list[Problem]:
    problems = []
    hosts = all_hosts(project)
    labels = {label for ref in hosts.values() for label in ref.host.labels}
    for name, service in project.services.items():
        path: PathKey = ("services", name)
        uncertain = path in damaged  # its placement may have lost a member
        if service.template in declared["template"]:
            pass
        elif service.template not in project.templates:
            problems.append(
                marks.problem((*path, "template"), f'unknown template "{service.template}"')
            )
        for field, known, kind in (
            ("sites", project.sites, "site"),
            ("hosts", hosts, "host"),
            ("labels", labels, "label"),
        ):
            for index, ref in enumerate(getattr(service, field)):
                if kind in declared and ref in declared[kind]:
                    uncertain = True
                elif kind == "label" and declared["host"]:
                    uncertain = uncertain or ref not in known  # it may be on an invalid host
                elif ref not in known:
                    problems.append(marks.problem((*path, field, index), f'unknown {kind} "{ref}"'))
        if not place(service, hosts) and not uncertain:
            problems.append(
                marks.problem(path, "placed on no host (give sites, hosts or labels that match)")
            )
        for index, dep in enumerate(service.depends_on):
            if dep == name:
                problems.append(
                    marks.problem((*path, "depends_on", index), "a service cannot depend on itself")
                )
            elif dep not in project.services and dep not in declared["service"]:
                problems.append(
                    marks.problem((*path, "depends_on", index), f'unknown service "{dep}"')
                )
    cycle = find_cycle(
        {n: [d for d in s.depends_on if d != n] for n, s in project.services.items()}
    )
    if cycle:
        problems.append(
            marks.problem(
                ("services", cycle[0], "depends_on"), "dependency cycle " + " -> ".join(cycle)
            )
        )
    return problems


def _reserved_vars(project: Project, marks: SourceMap) -> list[Problem]:
    scopes: list[tuple[PathKey, dict[str, Any] | None]] = [(("vars",), project.vars)]
    for site_name, site in project.sites.items():
        scopes.append((("sites", site_name, "vars"), site.vars))
        for host_name, host in site.hosts.items():
            scopes.append((("sites", site_name, "hosts", host_name, "vars"), host.vars))
    for name, template in project.templates.items():
        scopes.append((("templates", name, "vars"), template.vars))
    for name, service in project.services.items():
        scopes.append((("services", name, "overrides", "vars"), service.overrides.vars))
    return [
        marks.problem((*path, key), f'"{key}" is a reserved name; choose another variable name')
        for path, values in scopes
        for key in values or {}
        if key in RESERVED_VARS
    ]


def leaf_paths(body: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Paths of the members a body sets: a mapping merges, so only its leaves count."""
    if isinstance(body, dict) and body:
        return [p for key, value in body.items() for p in leaf_paths(value, (*prefix, str(key)))]
    return [prefix] if prefix else []


def _clashes(setting: tuple[str, ...], locked: tuple[str, ...]) -> bool:
    shorter = min(len(setting), len(locked))
    return setting[:shorter] == locked[:shorter]


def check_locks(project: Project, raw: dict[str, Any], marks: SourceMap) -> list[Problem]:
    """A member locked in a template may not be set or removed by what derives from it."""
    problems = []

    def locks_above(template: str) -> list[tuple[tuple[str, ...], str, int]]:
        """Locks up the chain, as far as it goes: an unknown name or a cycle is reported apart."""
        out = []
        seen: set[str] = set()
        name: str | None = template
        while name is not None and name in project.templates and name not in seen:
            seen.add(name)
            for index, path in enumerate(project.templates[name].locked):
                out.append((tuple(path.split(".")), name, index))
            name = project.templates[name].extends
        return out

    def check(body: Any, where: PathKey, locks: list[tuple[tuple[str, ...], str, int]]) -> None:
        for setting in leaf_paths(body):
            for locked, owner, index in locks:
                if _clashes(setting, locked):
                    mark = marks.get(("templates", owner, "locked", index))
                    at = f" ({mark.file}:{mark.line})" if mark else ""
                    verb = "removes" if _get(body, setting) is REMOVE else "overrides"
                    problems.append(
                        marks.problem(
                            (*where, *setting),
                            f'{verb} "{".".join(locked)}", locked by template "{owner}"{at}',
                        )
                    )
                    break

    for name, template in project.templates.items():
        if template.extends is not None:
            body = {k: v for k, v in raw["templates"][name].items() if k in BODY_FIELDS}
            check(body, ("templates", name), locks_above(template.extends))
    for name, service in project.services.items():
        overrides = raw["services"][name].get("overrides") or {}
        check(overrides, ("services", name, "overrides"), locks_above(service.template))
    return problems


def _get(body: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        body = body[part]
    return body
