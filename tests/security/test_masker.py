"""The masker replaces every known secret value, whole values before their parts."""

from __future__ import annotations

import pytest

from shipyard.masking import MASK, Masker


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
