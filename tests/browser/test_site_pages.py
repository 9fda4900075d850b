"""The dashboard's pages of artifacts, events, audit and versions, as their users drive them in
real Chromium over the served hello fleet: a failed artifact site retried from the browser, the
event log searched, the audit log filtered and its chain checked, and a version's diff naming
its versions. The admin page has a module of its own (test_admin_page.py)."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import expect

from .conftest import Dashboard, accept_dialogs

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(900),
    pytest.mark.usefixtures("signed_in"),
]

# A system-wide artifact for every site; the hello project has none.
ARTIFACTS = (
    "\nservices:\n",
    "\nartifacts:\n  motd:\n    target: /shared/motd\n    files:\n"
    '      motd.txt: {content: "shipped by the browser tests\\n"}\n\nservices:\n',
)


def test_a_failed_artifact_site_shows_its_reason_and_a_retry_from_the_browser_turns_it_green(
    dashboard: Dashboard, clean_console: Callable[[], None]
) -> None:
    # A file where west-1's artifact directory must go: the push there fails.
    blocker = dashboard.root / ".shipyard" / "hosts" / "west-1" / "shared"
    blocker.write_text("in the way\n")
    try:
        dashboard.publish(ARTIFACTS, message="an artifact for every site")
        pushed = dashboard.api.post("/api/artifacts/deploy", json={})
        assert pushed.status_code == 200, pushed.text
        assert not pushed.json()["ok"]

        page = dashboard.page_as("ada")
        accept_dialogs(page)
        page.goto(f"{dashboard.url}/artifacts")
        west = page.locator('td[data-cell="motd|west"]')
        expect(west).to_contain_text("failed")
        expect(west.locator(".reason")).to_contain_text("Not a directory")  # mkdir's own word
        expect(page.locator('td[data-cell="motd|east"]')).to_contain_text("success")
        expect(page.get_by_role("button", name="Retry motd at east")).to_have_count(0)
        dashboard.snap(page, "artifacts-failed")
    finally:
        blocker.unlink()

    page.get_by_role("button", name="Retry motd at west").click()
    expect(west).to_contain_text("success", timeout=60_000)
    expect(west).not_to_contain_text("failed")
    expect(page.get_by_role("button", name="Retry motd at west")).to_have_count(0)
    assert (blocker / "motd" / "motd.txt").read_text() == "shipped by the browser tests\n"
    dashboard.snap(page, "artifacts")

    scoped = dashboard.page_as("dana")  # deploys to east only: sees east only
    scoped.goto(f"{dashboard.url}/artifacts")
    expect(scoped.locator('td[data-cell="motd|east"]')).to_contain_text("success")
    expect(scoped.locator('td[data-cell="motd|west"]')).to_have_count(0)


def test_the_event_log_finds_the_first_deployment_by_keyword_and_says_when_nothing_matches(
    dashboard: Dashboard, clean_console: Callable[[], None]
) -> None:
    page = dashboard.page_as("vera")
    page.goto(f"{dashboard.url}/events")
    rows = page.locator("table.events tbody tr")
    expect(rows.first).to_be_visible()

    page.get_by_label("Keywords").fill("greeter@east-1 health-checking")
    page.get_by_role("button", name="Search").click()
    page.wait_for_url(re.compile(r".*/events\?.*q=greeter"))
    expect(rows.first).to_be_visible()
    texts = rows.all_inner_texts()
    assert texts
    assert all("greeter@east-1" in t and "health-checking" in t for t in texts), texts
    expect(page.get_by_label("Keywords")).to_have_value("greeter@east-1 health-checking")
    dashboard.snap(page, "events")

    page.get_by_label("Keywords").fill("zebrafish")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_text("No event matches this search.")).to_be_visible()
    expect(rows).to_have_count(0)


def test_the_event_log_fits_a_narrow_window(
    dashboard: Dashboard, clean_console: Callable[[], None]
) -> None:
    page = dashboard.page_as("vera")
    page.set_viewport_size({"width": 480, "height": 800})
    page.goto(f"{dashboard.url}/events")
    expect(page.locator("table.events tbody tr").first).to_be_attached()
    expect(page.get_by_label("Keywords")).to_be_visible()
    wider = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert wider <= 1, f"the page is {wider} px wider than the window"
    dashboard.snap(page, "narrow-events")


def test_the_audit_log_is_searched_by_action_and_actor_and_its_chain_is_intact(
    dashboard: Dashboard, clean_console: Callable[[], None]
) -> None:
    page = dashboard.page_as("vera")
    page.goto(f"{dashboard.url}/audit")
    expect(page.locator("[data-verdict]")).to_contain_text("Chain intact")

    page.get_by_label("Action").fill("user.add")
    page.get_by_role("button", name="Search").click()
    page.wait_for_url(re.compile(r".*/audit\?.*action=user\.add"))
    rows = page.locator("table.audit tbody tr")
    expect(rows.first).to_be_visible()
    texts = rows.all_inner_texts()
    assert all("user.add" in t for t in texts), texts
    for name in ("ada", "dana", "vera"):
        expect(page.locator("table.audit")).to_contain_text(f"user:{name}")
    actor = page.locator("table.audit tbody tr td:nth-child(3)").first.inner_text()
    dashboard.snap(page, "audit")

    page.get_by_label("Actor").fill(actor)
    page.get_by_role("button", name="Search").click()
    expect(rows.first).to_be_visible()
    assert all(actor in t for t in rows.all_inner_texts())

    page.get_by_label("Actor").fill("nobody-at-all")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_text("No audit entry matches this search.")).to_be_visible()


def test_a_version_diff_highlights_the_changed_line_and_only_designers_may_publish(
    dashboard: Dashboard, clean_console: Callable[[], None]
) -> None:
    before = dashboard.api.get("/api/versions").json()["serving"]
    new = dashboard.publish(("greeting: Hello", "greeting: Howdy"), message="howdy")

    page = dashboard.page_as("ada")
    page.goto(f"{dashboard.url}/versions")
    row = page.locator("table.versions tbody tr", has_text="howdy")
    expect(row).to_contain_text("serving")
    expect(page.get_by_role("button", name="Publish from the project directory")).to_be_visible()
    dashboard.snap(page, "versions")

    page.get_by_label("From version").select_option(str(before))
    page.get_by_label("To version").select_option(str(new))
    page.get_by_role("button", name="Show the diff").click()
    page.wait_for_url(f"{dashboard.url}/versions/{before}/diff/{new}")
    expect(page.locator("pre.diff span.add", has_text="greeting: Howdy")).to_be_visible()
    expect(page.locator("pre.diff span.del", has_text="greeting: Hello")).to_be_visible()
    expect(page.locator("table.diff-table")).to_contain_text("greeter@east-1")
    # An instance's rendered file, headed with the two versions (not an instance diff's sides).
    entries = page.locator("table.diff-table tr", has_text="greeter@east-1").locator("pre.diff")
    entries = entries.filter(has_text="config.json")
    expect(entries).to_contain_text(f"--- version {before}/config.json")
    expect(entries).to_contain_text(f"+++ version {new}/config.json")
    expect(page.locator("table.diff-table")).not_to_contain_text("deployed")
    expect(page.locator("table.diff-table")).not_to_contain_text("derived")
    expect(page.locator("table.diff-table thead")).to_contain_text(f"Revision in version {new}")
    dashboard.snap(page, "version-diff")

    viewer = dashboard.page_as("vera")
    viewer.goto(f"{dashboard.url}/versions")
    expect(viewer.locator("table.versions")).to_contain_text("howdy")
    expect(viewer.get_by_role("button", name="Publish from the project directory")).to_have_count(0)
