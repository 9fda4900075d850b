"""The dashboard as its users drive it, in real Chromium, over the served hello fleet: signing
in, the overview, instances and their diffs, a deployment started from the browser and
followed live, a failure's reason, cancelling, and what each role is offered and refused."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import expect

from .conftest import Dashboard

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


def test_signing_in_leads_to_the_overview(
    dashboard: Dashboard, clean_console: Callable[[], None]
) -> None:
    context = dashboard.browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{dashboard.url}/instances?site=east")
        assert "/login" in page.url  # nobody signed in: to the form, and back after
        page.get_by_label("User").fill("vera")
        page.get_by_label("Password").fill("wrong")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("alert")).to_contain_text("wrong")
        page.get_by_label("Password").fill("correct horse battery staple 42")
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(re.compile(r".*/instances\?site=east$"))
    finally:
        context.close()
    page = dashboard.page_as("ada")
    page.get_by_role("heading", name="Overview").wait_for()
    sites = page.locator("section[data-region=sites] tbody tr")
    assert sites.count() == 2
    expect(page.get_by_role("link", name="east", exact=True)).to_be_visible()
    assert "6" in page.locator("section[data-region=totals]").inner_text()
    dashboard.snap(page, "overview")
