"""The masker replaces every known secret value, whole values before their parts."""

from __future__ import annotations

import io
import json
import logging
import shlex
import textwrap
from pathlib import Path

import pytest

from shipyard.config.flatten import flatten_project
from shipyard.config.loader import load_project
from shipyard.errors import ConfigError
from shipyard.masking import MASK, Masker, log_handler, masker_for

TEST_KEY = b"security-test-secret-key"  # the store's key for fingerprints, in tests


@pytest.mark.parametrize(
    ("values", "text", "expected"),
    [
        (["hunter22"], "password=hunter22 ok", "password=*** ok"),
        (["hunter22"], "hunter22hunter22", "******"),
        (["abc"], "abc is too short to mask", "abc is too short to mask"),
        (["s3cr3t", "s3cr3t-long"], "x s3cr3t-long y", f"x {MASK} y"),
        (["a.b*c+d"], "regex a.b*c+d chars, not axbbc+d", "regex *** chars, not axbbc+d"),
        (["line-one\nline-two"], "got line-two only", "got *** only"),
        ([], "nothing known", "nothing known"),
    ],
)
def test_text_masks_every_known_value(values: list[str], text: str, expected: str) -> None:
    assert Masker(values).text(text) == expected


def test_json_masks_keys_and_nested_strings() -> None:
    masker = Masker(["tok-1234"])
    value = {"a": ["tok-1234", 3, {"tok-1234": "x tok-1234"}], "n": None}
    assert masker.json(value) == {"a": [MASK, 3, {MASK: f"x {MASK}"}], "n": None}


def test_added_values_are_masked_from_then_on() -> None:
    masker = Masker()
    assert masker.empty
    masker.add("later-value")
    assert masker("a later-value") == f"a {MASK}"


def test_masker_for_knows_every_secret_of_a_project_used_or_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "token.txt").write_text("file-secret-value\n")
    (tmp_path / "shipyard.yaml").write_text(
        textwrap.dedent(
            """\
            name: masked
            ssh: {sudo_password: {env: MASK_SUDO}}
            secrets:
              used: {env: MASK_USED}
              unused: {file: token.txt}
              unset: {env: MASK_UNSET}
            sites: {here: {hosts: {box: {connection: local}}}}
            templates: {app: {commands: {start: [sleep, "1"]}, env: {A: "{{ secrets.used }}"}}}
            services: {web: {template: app, hosts: [box]}}
            """
        )
    )
    monkeypatch.setenv("MASK_USED", "env-secret-value")
    monkeypatch.setenv("MASK_SUDO", "sudo-secret-value")
    monkeypatch.delenv("MASK_UNSET", raising=False)
    loaded = load_project(tmp_path / "shipyard.yaml")
    flat = flatten_project(loaded, secret_key=TEST_KEY)
    text = "env-secret-value file-secret-value sudo-secret-value"
    for masker in (masker_for(loaded), masker_for(flat)):
        assert masker(text) == f"{MASK} {MASK} {MASK}"
    assert flat.secrets.problems == {}  # the unused, unset secret is no problem of flattening


@pytest.mark.parametrize(
    "secret", ["it's-a-secret", 'quo"te\\secret', "tab\tsecret", "naïve-sécret"]
)
def test_a_secret_is_masked_as_a_described_command_or_quoted_value_writes_it(secret: str) -> None:
    masker = Masker([secret])
    for written in (
        shlex.join(["sh", "-c", f"echo {secret}; exit 1"]),
        json.dumps({"reason": f"got {secret}"}),
        repr(f"got {secret}"),
    ):
        assert MASK in masker(written), written
        assert secret not in masker(written)


def test_log_records_are_masked_and_escaped_message_and_traceback() -> None:
    stream = io.StringIO()
    handler = log_handler(lambda: Masker(["log-secret-value"]))
    handler.setStream(stream)
    logger = logging.getLogger("shipyard.test.masked")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            raise RuntimeError("failed with log-secret-value\x1b[2J")
        except RuntimeError:
            logger.exception("host said %s", "log-secret-value \x1b]0;title\x07")
    finally:
        logger.removeHandler(handler)
    written = stream.getvalue()
    assert "log-secret-value" not in written
    assert f"host said {MASK} \\x1b]0;title\\x07" in written
    assert f"RuntimeError: failed with {MASK}\\x1b[2J" in written
    assert "\x1b" not in written


def test_a_secret_too_short_to_mask_is_a_config_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "shipyard.yaml").write_text(
        textwrap.dedent(
            """\
            name: short
            secrets:
              pin: {env: MASK_PIN}
            sites: {here: {hosts: {box: {connection: local}}}}
            templates: {app: {commands: {start: [sleep, "1"]}, env: {A: "{{ secrets.pin }}"}}}
            services: {web: {template: app, hosts: [box]}}
            """
        )
    )
    with pytest.raises(ConfigError) as raised:
        flatten_project(
            load_project(tmp_path / "shipyard.yaml"),
            secret_key=TEST_KEY,
            environ={"MASK_PIN": "123"},
        )
    assert "shipyard.yaml:3:3: secrets.pin: the value is shorter than 4 characters" in str(
        raised.value
    )
