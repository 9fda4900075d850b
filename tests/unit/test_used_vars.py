"""An instance's config and revision hold only the variables its templates read.

So changing a project variable makes stale only the instances that use it, wherever it is read:
a config string, a file template, a template that one includes, a macro.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from shipyard.config.flatten import Flattened

Flatten = Callable[..., Flattened]

PROJECT = """
vars: {color: "{color}", size: "{size}", shared: one}
sites:
  a:
    hosts:
      h1: {}
      h2: {vars: {local: yes}}
templates:
  base:
    commands: {start: [run]}
  colored:
    extends: base
    env: {COLOR: "{{ color }}"}
  filed:
    extends: base
    files: {app.conf: app.conf.j2}
  included:
    extends: base
    files: {main.conf: main.conf.j2}
  plain:
    extends: base
    env: {MODE: prod, NAME: "{{ instance }}"}
services:
  paint: {template: colored, sites: [a]}
  measure: {template: filed, sites: [a]}
  nested: {template: included, sites: [a]}
  other: {template: plain, sites: [a]}
"""

FILES = {
    "app.conf.j2": "{% for k in ['x'] %}size={{ size }}{% endfor %}\n",
    "main.conf.j2": '{% from "macros.j2" import line with context %}{{ line() }}\n{% include "part.j2" %}\n',
    "macros.j2": "{% macro line() %}shared={{ shared }}{% endmacro %}",
    "part.j2": "color={{ color }}\n",
}


def flat_with(flatten: Flatten, color: str = "red", size: str = "L") -> Flattened:
    text = PROJECT.replace("{color}", color).replace("{size}", size)
    return flatten(text, **FILES)


def revisions(flat: Flattened) -> dict[str, str]:
    return {name: instance.revision for name, instance in flat.instances.items()}


def changed(before: Flattened, after: Flattened) -> list[str]:
    old, new = revisions(before), revisions(after)
    return sorted(name for name in old if old[name] != new[name])


@pytest.mark.parametrize(
    ("change", "stale"),
    [
        ({"color": "blue"}, ["nested@h1", "nested@h2", "paint@h1", "paint@h2"]),
        ({"size": "XL"}, ["measure@h1", "measure@h2"]),
    ],
    ids=["string-and-included-file", "file-template"],
)
def test_a_variable_change_makes_stale_only_the_instances_reading_it(
    flatten: Flatten, change: dict[str, str], stale: list[str]
) -> None:
    assert changed(flat_with(flatten), flat_with(flatten, **change)) == stale


def test_an_instance_config_lists_only_the_variables_it_reads(flatten: Flatten) -> None:
    flat = flat_with(flatten)
    assert flat.instances["paint@h1"].config["vars"] == {"color": "red"}
    assert flat.instances["measure@h2"].config["vars"] == {"size": "L"}
    assert flat.instances["nested@h1"].config["vars"] == {"color": "red", "shared": "one"}
    assert flat.instances["other@h2"].config["vars"] == {}


def test_a_computed_include_keeps_every_variable(flatten: Flatten) -> None:
    text = PROJECT.replace("{color}", "red").replace("{size}", "L")
    files = {**FILES, "main.conf.j2": '{% include "pa" ~ "rt.j2" %}\n'}
    flat = flatten(text, **files)
    assert set(flat.instances["nested@h2"].config["vars"]) == {"color", "size", "shared", "local"}


MEMBERS = """
vars:
  db: {host: db1, port: "{port}", pool: {size: 5}}
sites:
  a:
    hosts:
      h1: {}
templates:
  base:
    commands: {start: [run]}
services:
  host_only:
    template: base
    sites: [a]
    overrides: {env: {DB: "{{ db.host }}", SIZE: "{{ db['pool'].size }}"}}
  port_only: {template: base, sites: [a], overrides: {env: {PORT: "{{ db.port }}"}}}
  by_method:
    template: base
    sites: [a]
    overrides: {env: {ALL: "{% for k, v in db.items() %}{{ k }}{% endfor %}"}}
  by_filter: {template: base, sites: [a], overrides: {env: {ALL: "{{ db | length }}"}}}
"""


def test_reading_a_member_keeps_only_that_member(flatten: Flatten) -> None:
    before = flatten(MEMBERS.replace("{port}", "5432"))
    after = flatten(MEMBERS.replace("{port}", "6432"))
    assert before.instances["host_only@h1"].config["vars"] == {
        "db": {"host": "db1", "pool": {"size": 5}}
    }
    assert before.instances["port_only@h1"].config["vars"] == {"db": {"port": "5432"}}
    assert changed(before, after) == ["by_filter@h1", "by_method@h1", "port_only@h1"]
