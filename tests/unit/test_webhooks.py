"""Webhooks without I/O: signatures (and the README's verifier agreeing), URLs checked and shown
without credentials, the back-off, and the cursor held before an id gap for a while only."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from shipyard.app.webhook_dispatch import Backoff, GapWatch
from shipyard.app.webhooks import checked_phases, checked_url, shown_url, sign, verify
from shipyard.errors import UsageError

README = Path(__file__).resolve().parents[2] / "README.md"
SECRET = "k" * 24


def test_a_signature_verifies_within_five_minutes_only() -> None:
    header = sign(SECRET, b"{}", 1000)
    assert re.fullmatch(r"t=1000,v1=[0-9a-f]{64}", header)
    assert verify(SECRET, header, "{}", now=1300)
    assert not verify(SECRET, header, "{}", now=1301)
    assert not verify(SECRET, header, "{}", now=699)  # from the future too


def test_the_readme_verifier_accepts_what_the_server_signs_and_refuses_a_replay() -> None:
    section = README.read_text().split("## Webhooks", 1)[1]
    code = section.split("```python", 1)[1].split("```", 1)[0]
    scope: dict[str, object] = {}
    exec(code, scope)  # the README's own sample
    readme_verify = scope["verify"]
    assert callable(readme_verify)
    check: Callable[[str, str, bytes], bool] = readme_verify
    now = int(time.time())
    assert check(SECRET, sign(SECRET, b'{"a":1}', now), b'{"a":1}')
    assert not check(SECRET, sign(SECRET, b'{"a":1}', now - 301), b'{"a":1}')
    assert not check(SECRET, sign(SECRET, b'{"a":1}', now), b'{"a":2}')


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://example.test/h", "https://example.test/h"),
        ("https://u:p@example.test:8443/h?x=1", "https://***@example.test:8443/h?x=1"),
        ("http://token@[::1]:9/h", "http://***@[::1]:9/h"),
    ],
)
def test_a_url_is_shown_without_its_credentials(url: str, shown: str) -> None:
    assert shown_url(url) == shown


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://example.test/", "only http and https"),
        ("example.test/hook", "only http and https"),
        ("http:///nohost", "no host"),
        ("http://example.test:99999/", "not a valid URL"),
        ("http://exa mple.test/", "percent-encoded"),
    ],
)
def test_a_url_that_is_not_http_is_refused_saying_why(url: str, why: str) -> None:
    with pytest.raises(UsageError, match=why):
        checked_url(url)


def test_the_filter_takes_known_phases_only() -> None:
    assert checked_phases(["finished", "finished", "rollout-finished"]) == (
        "finished",
        "rollout-finished",
    )
    with pytest.raises(UsageError, match="unknown phase 'done'"):
        checked_phases(["done"])


@pytest.mark.parametrize(("attempts", "ceiling"), [(1, 1.0), (2, 2.0), (5, 16.0), (20, 300.0)])
def test_the_back_off_doubles_up_to_its_cap_with_full_jitter(attempts: int, ceiling: float) -> None:
    assert Backoff().delay(attempts, rng=lambda low, high: high) == ceiling
    assert Backoff().delay(attempts, rng=lambda low, high: low) == 0.0


def test_the_cursor_waits_before_a_gap_then_moves_past_it() -> None:
    now = [0.0]
    gaps = GapWatch(wait=10.0, clock=lambda: now[0])
    assert gaps.settled(0, [1, 2, 3]) == 3
    assert gaps.settled(3, [4, 6, 7]) == 4  # 5 is not visible yet
    now[0] = 9.0
    assert gaps.settled(4, [6, 7]) == 4
    assert gaps.settled(4, [5, 6, 7]) == 7  # it came
    assert gaps.settled(7, [9]) == 7
    now[0] = 20.0
    assert gaps.settled(7, [9]) == 9  # it never came: a rolled-back id
