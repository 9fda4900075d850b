"""The README's configuration reference is the one the models generate."""

from __future__ import annotations

from pathlib import Path

from shipyard.config.reference import config_reference

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_reference_matches_the_models() -> None:
    text = README.read_text()
    start = text.index("<!-- reference:start -->\n") + len("<!-- reference:start -->\n")
    end = text.index("<!-- reference:end -->")
    assert text[start:end] == config_reference(), "run: make readme"
