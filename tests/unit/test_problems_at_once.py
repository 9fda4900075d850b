"""Every independent problem is reported once, and no problem brings others that are not real."""

from __future__ import annotations

import textwrap

import pytest
from tests.unit.conftest import TEST_SECRET_KEY, WriteProject

from shipyard.config.flatten import flatten_project
from shipyard.config.loader import load_project
from shipyard.errors import ConfigError

CASES = [
    pytest.param(
        """
        sites: {a: {hosts: {h1: {}}}}
        templates:
          x: {extends: y}
          y: {extends: x}
          t: {commands: {start: [run]}, health: {http: "http://h/"}, locked: [health]}
        services:
          api: {template: t, sites: [a], overrides: {health: {http: "http://other/"}}}
        """,
        [
            "shipyard.yaml:3:16: templates.x.extends: inheritance cycle x -> y -> x",
            'shipyard.yaml:7:61: services.api.overrides.health.http: overrides "health", '
            'locked by template "t" (shipyard.yaml:5)',
        ],
        id="a-cycle-does-not-hide-a-locked-override",
    ),
    pytest.param(
        """
        sites: {a: {hosts: {h1: {}}}}
        templates:
          t: {commands: {start: [run]}, env: {MODE: prod}, locked: [env.MODE]}
          c: {extends: t, env: {MODE: dev}}
          o: {extends: nope}
        services:
          api: {template: missing, sites: [a]}
          web: {template: t, sites: [a], overrides: {env: {MODE: !remove }}}
        """,
        [
            'shipyard.yaml:4:31: templates.c.env.MODE: overrides "env.MODE", locked by template "t" '
            "(shipyard.yaml:3)",
            'shipyard.yaml:5:16: templates.o.extends: unknown template "nope"',
            'shipyard.yaml:7:19: services.api.template: unknown template "missing"',
            'shipyard.yaml:8:58: services.web.overrides.env.MODE: removes "env.MODE", locked by '
            'template "t" (shipyard.yaml:3)',
        ],
        id="unknown-templates-do-not-hide-locks",
    ),
    pytest.param(
        """
        sites:
          a:
            hosts:
              h1: {port: abc, labels: [web]}
              h2: {labels: [web, "bad label"]}
        templates:
          t: {commands: {start: [run]}}
        services:
          api: {template: t, hosts: [h1]}
          web: {template: t, labels: [web]}
        """,
        [
            "shipyard.yaml:4:18: sites.a.hosts.h1.port: Input should be a valid integer, "
            "unable to parse string as an integer",
            "shipyard.yaml:5:26: sites.a.hosts.h2.labels[1]: invalid name 'bad label' "
            "(letters, digits, '_', '.', '-')",
        ],
        id="a-bad-host-member-keeps-the-host",
    ),
    pytest.param(
        """
        ssh: {port: 0}
        secrets: {token: {env: TOKEN}}
        vars: {service: x}
        sites: {a: {hosts: {h1: {}}}}
        templates:
          t: {commands: {start: [run]}}
        services:
          api: {template: t, sites: [a]}
        """,
        [
            "shipyard.yaml:1:13: ssh.port: Input should be greater than or equal to 1",
            'shipyard.yaml:3:17: vars.service: "service" is a reserved name; choose another '
            "variable name",
        ],
        id="a-bad-project-setting-keeps-the-rest",
    ),
    pytest.param(
        """
        sites:
          a: {hosts: {h1: {}}}
          b: {vars: {x: 1}}
        templates:
          t: {commands: {start: [run]}}
          bad: {extends: t, ports: {http: none}}
        services:
          db: {template: 7, sites: [a]}
          api: {template: t, sites: a, depends_on: [db]}
          web: {template: bad, sites: [b], depends_on: [api]}
        """,
        [
            "shipyard.yaml:3:3: sites.b.hosts: required field is missing",
            "shipyard.yaml:6:35: templates.bad.ports.http: Input should be a valid integer, "
            "unable to parse string as an integer",
            "shipyard.yaml:8:18: services.db.template: Input should be a valid string",
            "shipyard.yaml:9:29: services.api.sites: Input should be a valid list",
        ],
        id="references-to-invalid-entries-are-not-unknown",
    ),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_independent_problems_are_all_reported_once_without_cascades(
    write_project: WriteProject, text: str, expected: list[str]
) -> None:
    path = write_project(textwrap.dedent(text))
    with pytest.raises(ConfigError) as caught:
        load_project(path)
    assert [str(p) for p in caught.value.problems] == expected


def test_a_broken_file_template_does_not_hide_a_broken_string(
    write_project: WriteProject,
) -> None:
    path = write_project(
        """
        sites: {a: {hosts: {h1: {}}}}
        templates:
          t:
            commands: {start: [run]}
            env: {X: "{{ nowhere }}"}
            files: {app.conf: missing.j2}
        services:
          api: {template: t, sites: [a]}
        """
    )
    with pytest.raises(ConfigError) as caught:
        flatten_project(load_project(path), secret_key=TEST_SECRET_KEY, environ={})
    assert [str(p) for p in caught.value.problems] == [
        "shipyard.yaml:5:14: templates.t.env.X: 'nowhere' is undefined (in api@h1)",
        "shipyard.yaml:6:23: templates.t.files.app.conf: template file not found: missing.j2",
    ]
