"""Every validation error names file:line:column and the field path, and all are reported at once."""

from __future__ import annotations

import textwrap

import pytest
from tests.unit.conftest import TEST_SECRET_KEY, WriteProject

from shipyard.config.flatten import flatten_project
from shipyard.config.loader import load_project
from shipyard.errors import ConfigError

SITES = """
sites:
  a:
    hosts:
      h1: {labels: [web]}
      h2: {}
"""

CASES = [
    pytest.param(
        """
        templates:
          t: {commands: {start: [run]}}
        services:
          api: {template: t, sites: [a], depends_on: [db, db2]}
          db: {template: t, sites: [a]}
        """,
        [
            'shipyard.yaml:10:51: services.api.depends_on[1]: unknown service "db2"',
        ],
        id="unknown-dependency",
    ),
    pytest.param(
        """
        templates:
          t: {commands: {start: [run]}}
        services:
          api: {template: tt, sites: [a]}
        """,
        [
            'shipyard.yaml:10:19: services.api.template: unknown template "tt"',
        ],
        id="unknown-template",
    ),
    pytest.param(
        """
        templates:
          t: {commands: {start: [run]}}
        services:
          api: {template: t, sites: [b], hosts: [h9], labels: [db]}
        """,
        [
            "shipyard.yaml:10:3: services.api: placed on no host (give sites, hosts or labels that match)",
            'shipyard.yaml:10:30: services.api.sites[0]: unknown site "b"',
            'shipyard.yaml:10:42: services.api.hosts[0]: unknown host "h9"',
            'shipyard.yaml:10:56: services.api.labels[0]: unknown label "db"',
        ],
        id="unknown-placement",
    ),
    pytest.param(
        """
        templates:
          a: {extends: b}
          b: {extends: c}
          c: {extends: a}
        services: {}
        """,
        [
            "shipyard.yaml:8:16: templates.a.extends: inheritance cycle a -> b -> c -> a",
        ],
        id="extends-cycle",
    ),
    pytest.param(
        """
        templates:
          t: {commands: {start: [run]}}
        services:
          x: {template: t, sites: [a], depends_on: [y]}
          y: {template: t, sites: [a], depends_on: [z]}
          z: {template: t, sites: [a], depends_on: [x]}
        """,
        [
            "shipyard.yaml:10:32: services.x.depends_on: dependency cycle x -> y -> z -> x",
        ],
        id="depends-cycle",
    ),
    pytest.param(
        """
        templates:
          base:
            commands: {start: [run]}
            env: {MODE: prod}
            locked: [env.MODE]
          child:
            extends: base
            env: {MODE: dev}
        services:
          api:
            template: child
            sites: [a]
        """,
        [
            'shipyard.yaml:14:17: templates.child.env.MODE: overrides "env.MODE", locked by template "base" (shipyard.yaml:11)',
        ],
        id="lock-in-derived-template",
    ),
    pytest.param(
        """
        templates:
          base:
            commands: {start: [run]}
            health: {command: [check]}
            locked: [health]
        services:
          api:
            template: base
            sites: [a]
            overrides:
              health: {retries: 1}
          web:
            template: base
            sites: [a]
            overrides:
              health: !remove
        """,
        [
            'shipyard.yaml:17:25: services.api.overrides.health.retries: overrides "health", locked by template "base" (shipyard.yaml:11)',
            'shipyard.yaml:22:15: services.web.overrides.health: removes "health", locked by template "base" (shipyard.yaml:11)',
        ],
        id="lock-in-service",
    ),
    pytest.param(
        """
        templates:
          t: {commands: {start: [run]}, strategy: {kind: fast, batch: "x%"}, colour: red}
        services:
          api: {template: t, sites: [a]}
        """,
        [
            "shipyard.yaml:8:50: templates.t.strategy.kind: Input should be 'restart', 'rolling', 'blue-green' or 'canary'",
            "shipyard.yaml:8:63: templates.t.strategy.batch: must be a count or a percentage like '25%', not 'x%'",
            "shipyard.yaml:8:78: templates.t.colour: unknown field",
        ],
        id="schema-errors-all-at-once",
    ),
    pytest.param(
        """
        templates:
          t: {commands: {start: [run]}}
        services:
          api: {sites: [a]}
        """,
        [
            "shipyard.yaml:10:3: services.api.template: required field is missing",
        ],
        id="missing-field",
    ),
    pytest.param(
        """
        templates:
          t:
            commands: {start: [run]}
            env: {URL: "http://{{ db_host }}:5432"}
        services:
          api: {template: t, sites: [a]}
        """,
        [
            "shipyard.yaml:10:16: templates.t.env.URL: 'db_host' is undefined (in api@h1 and 1 more)",
        ],
        id="undefined-variable-in-config",
    ),
    pytest.param(
        """
        templates:
          t:
            commands: {start: [run]}
            files: {app.ini: app.ini.j2}
        services:
          api: {template: t, hosts: [h2]}
        """,
        ["app.ini.j2:3:0: templates.t.files.app.ini: 'missing' is undefined (in api@h2)"],
        id="undefined-variable-in-file",
    ),
    pytest.param(
        """
        templates:
          t: {commands: {start: [run]}}
        services:
          api: {template: t, sites: [a]}
          api2: {template: t, sites: [a], depends_on: [api, api2]}
        """,
        [
            "shipyard.yaml:11:53: services.api2.depends_on[1]: a service cannot depend on itself",
        ],
        id="self-dependency",
    ),
    pytest.param(
        """
        templates:
          t: {artifact: {path: nowhere}, commands: {start: [run]}}
        services:
          api: {template: t, sites: [a]}
        """,
        [
            "shipyard.yaml:8:24: templates.t.artifact.path: artifact not found: nowhere",
        ],
        id="missing-artifact",
    ),
    pytest.param(
        """
        templates:
          t: {}
        services:
          api: {template: t, sites: [a]}
        """,
        [
            "shipyard.yaml:10:3: services.api: no start command (commands.start) in its template chain",
        ],
        id="no-start-command",
    ),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_invalid_project_is_reported_with_position_and_path(
    write_project: WriteProject, text: str, expected: list[str]
) -> None:
    path = write_project(
        SITES + textwrap.dedent(text),
        **{"app.ini.j2": "[app]\nname = {{ service }}\nvalue = {{ missing }}\n"},
    )
    with pytest.raises(ConfigError) as caught:
        flatten_project(load_project(path), secret_key=TEST_SECRET_KEY, environ={})
    assert [str(p) for p in caught.value.problems] == expected


def test_duplicate_keys_and_yaml_syntax_are_located(write_project: WriteProject) -> None:
    path = write_project("name: x\nsites:\n  a:\n    hosts: {h: {}}\nname: y\n")
    with pytest.raises(ConfigError) as caught:
        load_project(path)
    assert [str(p) for p in caught.value.problems] == [
        "shipyard.yaml:5:1: name: duplicate key (first at line 1)"
    ]
    path = write_project("sites: [a\n")
    with pytest.raises(ConfigError) as caught:
        load_project(path)
    assert str(caught.value.problems[0]).startswith("shipyard.yaml:2:1: invalid YAML")


def test_included_files_are_located_and_duplicates_named(write_project: WriteProject) -> None:
    path = write_project(
        """
        include: [more/*.yaml]
        sites:
          a:
            hosts: {h1: {}}
        templates:
          t: {commands: {start: [run]}}
        services:
          api: {template: t, sites: [a]}
        """,
        **{
            "more/extra.yaml": """
            services:
              api: {template: t, sites: [a]}
              web: {template: nope, sites: [a]}
            """
        },
    )
    with pytest.raises(ConfigError) as caught:
        load_project(path)
    assert [str(p) for p in caught.value.problems] == [
        "more/extra.yaml:3:3: services.api: defined twice (first defined at shipyard.yaml:8)",
        'more/extra.yaml:4:19: services.web.template: unknown template "nope"',
    ]


def test_unset_secret_is_reported_without_its_value(write_project: WriteProject) -> None:
    path = write_project(
        SITES
        + textwrap.dedent(
            """
        secrets:
          token: {env: API_TOKEN}
        templates:
          t: {commands: {start: [run]}, env: {TOKEN: "{{ secrets.token }}"}}
        services:
          api: {template: t, hosts: [h1]}
        """
        )
    )
    with pytest.raises(ConfigError) as caught:
        flatten_project(load_project(path), secret_key=TEST_SECRET_KEY, environ={})
    assert [str(p) for p in caught.value.problems] == [
        "shipyard.yaml:8:3: secrets.token: environment variable API_TOKEN is not set"
    ]


def test_reserved_variable_names_are_refused(write_project: WriteProject) -> None:
    path = write_project(SITES + "vars: {host: x}\ntemplates: {}\nservices: {}\n")
    with pytest.raises(ConfigError) as caught:
        load_project(path)
    assert [str(p) for p in caught.value.problems] == [
        'shipyard.yaml:6:14: vars.host: "host" is a reserved name; choose another variable name'
    ]
