"""Config strings of text and plain lookups render without a Jinja context, exactly as Jinja would."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.config.render import Renderer, RenderFailed, render

CONTEXT: dict[str, object] = {
    "ports": {"http": 8080},
    "host": {"address": "10.0.0.1", "name": "web-1", "items": "shadowed", "labels": ["a"]},
    "region": "eu",
    "weight": 1.5,
    "on": True,
    "nothing": None,
    "secrets": {"db": "\x1esecret:db\x1e"},
}


@pytest.mark.parametrize(
    ("text", "simple"),
    [
        ("{{ ports.http }}", True),
        ("http://{{ host.address }}:{{ ports.http }}/healthz", True),
        ("{{region}}-{{ region }}\n", True),
        ("{# a comment #}{{ weight }}", True),
        ("{{ on }} {{ nothing }}", True),  # not plain values: Jinja prints them
        ("{{ host.labels }}", True),
        ("{{ host.items }}", False),  # a dict method by that name: left to Jinja
        ("pw={{ secrets.db }}", True),
        ("{{ region | upper }}", False),
        ("{{ host['address'] }}", False),
        ("{% if on %}yes{% endif %}", False),
        ("{{ ports.http + 1 }}", False),
        ("no template at all }}", True),
    ],
)
def test_the_same_text_as_jinja(tmp_path: Path, text: str, simple: bool) -> None:
    renderer = Renderer(tmp_path)
    compiled = renderer.string(text)
    context = {**renderer.globals, **CONTEXT}

    assert (compiled.parts is not None) is simple
    assert render(compiled, context) == compiled.template.render(context)


@pytest.mark.parametrize("text", ["{{ missing }}", "{{ ports.https }}", "{{ region.x }}"])
def test_an_undefined_lookup_fails_as_jinja_reports_it(tmp_path: Path, text: str) -> None:
    renderer = Renderer(tmp_path)
    compiled = renderer.string(text)
    assert compiled.parts is not None

    context = {**renderer.globals, **CONTEXT}

    with pytest.raises(RenderFailed) as failed:
        render(compiled, context)
    with pytest.raises(Exception, match=r"undefined|has no attribute") as direct:
        compiled.template.render(context)
    assert failed.value.message == str(direct.value)
