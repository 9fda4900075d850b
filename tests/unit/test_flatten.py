"""Flattening: inheritance, overrides, variables, removal, rendered files and secrets."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from shipyard.config.flatten import Flattened
from shipyard.config.models import Strategy
from shipyard.errors import ConfigError

Flatten = Callable[..., Flattened]

BASE = """
sites:
  east:
    vars: {region: east, tier: site}
    hosts:
      e1: {labels: [web], vars: {tier: host}}
      e2: {}
  west:
    hosts:
      w1: {labels: [web]}
vars: {greeting: hi, tier: project}
templates:
  root:
    commands: {start: [serve, --port, "{{ ports.http }}"]}
    env: {MODE: prod, LEVEL: info, TIER: "{{ tier }}"}
    ports: {http: 8000}
    health: {http: "http://127.0.0.1:{{ ports.http }}/healthz"}
    vars: {tier: template}
  child:
    extends: root
    env: {LEVEL: debug, EXTRA: "1"}
    commands: {start: [serve2]}
"""

CASES: list[Any] = [
    pytest.param(
        "services: {api: {template: child, hosts: [e2]}}",
        "api@e2",
        {
            ("env",): {"MODE": "prod", "LEVEL": "debug", "EXTRA": "1", "TIER": "site"},
            ("commands", "start"): ["serve2"],
        },
        id="maps-merge-lists-replace",
    ),
    pytest.param(
        "services: {api: {template: child, hosts: [e1], overrides: {env: {MODE: !remove }}}}",
        "api@e1",
        {("env",): {"LEVEL": "debug", "EXTRA": "1", "TIER": "host"}},
        id="remove-and-host-vars-win",
    ),
    pytest.param(
        "services: {api: {template: root, hosts: [w1], overrides: {ports: {http: 9000}}}}",
        "api@w1",
        {
            ("commands", "start"): ["serve", "--port", "9000"],
            ("health", "http"): "http://127.0.0.1:9000/healthz",
            ("env", "TIER"): "template",
            ("vars",): {"tier": "template"},  # only what its templates read: no greeting
        },
        id="override-feeds-rendering",
    ),
    pytest.param(
        "services: {api: {template: root, labels: [web], overrides: {health: !remove }}}",
        "api@w1",
        {("health",): None},
        id="remove-a-whole-member",
    ),
]


def _get(config: dict[str, Any], path: tuple[str, ...]) -> Any:
    for part in path:
        if part not in config:
            return None
        config = config[part]
    return config


@pytest.mark.parametrize(("services", "instance", "expected"), CASES)
def test_flattened_values(
    flatten: Flatten, services: str, instance: str, expected: dict[tuple[str, ...], Any]
) -> None:
    flat = flatten(BASE + services)
    config = flat.instances[instance].config
    for path, value in expected.items():
        assert _get(config, path) == value, path


def test_placement_by_site_host_and_label_names_each_instance(flatten: Flatten) -> None:
    flat = flatten(
        BASE
        + """
services:
  a: {template: root, sites: [east]}
  b: {template: root, labels: [web], hosts: [e2]}
"""
    )
    assert list(flat.instances) == ["a@e1", "a@e2", "b@e1", "b@e2", "b@w1"]
    assert flat.instances["b@w1"].site == "west"


def test_files_are_rendered_per_instance(flatten: Flatten) -> None:
    flat = flatten(
        BASE
        + """
services:
  api:
    template: root
    sites: [east]
    overrides: {files: {conf/app.ini: app.ini.j2}}
""",
        **{"app.ini.j2": "[app]\nname = {{ instance }}\nregion = {{ region }}\n"},
    )
    files = flat.instances["api@e1"].config["files"]
    assert files == {
        "conf/app.ini": {
            "source": "app.ini.j2",
            "content": "[app]\nname = api@e1\nregion = east\n",
        }
    }


def test_secrets_are_masked_but_change_the_revision_and_are_revealed_for_the_host(
    flatten: Flatten,
) -> None:
    text = (
        BASE
        + """
secrets: {token: {env: TOKEN}}
services:
  api:
    template: root
    hosts: [e1]
    overrides:
      env: {TOKEN: "Bearer {{ secrets.token }}"}
      files: {secret.txt: secret.j2}
"""
    )
    files = {"secret.j2": "token={{ secrets.token }}\n"}
    first = flatten(text, environ={"TOKEN": "s3cr3t"}, **files)
    instance = first.instances["api@e1"]
    assert instance.config["env"]["TOKEN"] == "Bearer ***"
    assert instance.config["files"]["secret.txt"]["content"] == "token=***\n"
    assert "s3cr3t" not in repr(instance.config)
    real = first.realise(instance)
    assert real["env"]["TOKEN"] == "Bearer s3cr3t"
    assert real["files"]["secret.txt"]["content"] == "token=s3cr3t\n"
    second = flatten(text, environ={"TOKEN": "other"}, **files)
    assert second.instances["api@e1"].config == instance.config
    assert second.instances["api@e1"].revision != instance.revision


def test_artifact_content_is_part_of_the_revision(flatten: Flatten) -> None:
    text = (
        BASE + "services: {api: {template: root, hosts: [e1], overrides: {artifact: {path: app}}}}"
    )
    before = flatten(text, **{"app/main.py": "print(1)\n"}).instances["api@e1"]
    after = flatten(text, **{"app/main.py": "print(2)\n"}).instances["api@e1"]
    assert before.config["artifact"]["digest"].startswith("sha256:")
    assert before.revision != after.revision


def test_the_same_input_gives_the_same_revision(flatten: Flatten) -> None:
    text = BASE + "services: {api: {template: child, sites: [east]}}"
    first = {n: i.revision for n, i in flatten(text).instances.items()}
    again = {n: i.revision for n, i in flatten(text).instances.items()}
    assert first == again
    assert len(set(first.values())) == len(first)  # each host renders differently


def test_each_instance_gets_its_own_rendered_strings_in_nested_lists_and_maps(
    flatten: Flatten,
) -> None:
    flat = flatten(
        BASE
        + """
services:
  api:
    template: root
    sites: [east, west]
    overrides:
      commands: {start: [serve, --name, "{{ instance }}", --tier, "{{ tier }}"]}
      env: {WHO: "{{ host.name }}"}
"""
    )
    e1, e2, w1 = (flat.instances[n].config for n in ("api@e1", "api@e2", "api@w1"))
    assert e1["commands"]["start"] == ["serve", "--name", "api@e1", "--tier", "host"]
    assert e2["commands"]["start"] == ["serve", "--name", "api@e2", "--tier", "site"]
    assert w1["commands"]["start"] == ["serve", "--name", "api@w1", "--tier", "template"]
    assert [c["env"]["WHO"] for c in (e1, e2, w1)] == ["e1", "e2", "w1"]
    assert e1["ports"] is w1["ports"]  # what no template changes is shared, not copied


def test_an_instance_strategy_is_what_its_config_says(flatten: Flatten) -> None:
    flat = flatten(
        BASE
        + """
services:
  api: {template: root, sites: [east], overrides: {strategy: {kind: rolling, batch: "50%"}}}
"""
    )
    for instance in flat.instances.values():
        assert instance.strategy == Strategy.model_validate(instance.config["strategy"])
        assert instance.strategy.kind == "rolling"


def test_a_string_rendered_once_per_site_still_differs_by_site_and_fails_where_it_fails(
    flatten: Flatten,
) -> None:
    text = """
sites:
  east: {vars: {region: east}, hosts: {e1: {}, e2: {}}}
  west: {vars: {region: west}, hosts: {w1: {}}}
  north: {hosts: {n1: {}}}
templates:
  t: {commands: {start: [run, "{{ region }}", "{{ ports.http }}"]}, ports: {http: 8000}}
"""
    flat = flatten(text + "services: {api: {template: t, sites: [east, west]}}")
    starts = {n: i.config["commands"]["start"] for n, i in flat.instances.items()}
    assert starts == {
        "api@e1": ["run", "east", "8000"],
        "api@e2": ["run", "east", "8000"],
        "api@w1": ["run", "west", "8000"],
    }
    with pytest.raises(ConfigError) as failed:
        flatten(text + "services: {api: {template: t, sites: [east, north]}}")
    assert [p.message for p in failed.value.problems] == ["'region' is undefined (in api@n1)"]
