"""The dashboard's pages of artifacts, events, audit and versions, as their users drive them in
real Chromium over the served hello fleet: a failed artifact site retried from the browser, the
event log searched and paged, the audit log filtered, paged and its chain checked, a version's
diff naming its versions, and a designer publishing while no one else is offered it. The admin
page has a module of its own (test_admin_page.py)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect

from shipyard.app import eventlog
from shipyard.events import Event, Phase
from shipyard.server.pages import audit as audit_page
from shipyard.store import default_url, open_store

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


def test_the_event_log_goes_on_500_at_a_time_where_the_newer_page_stopped(
    dashboard: Dashboard, clean_console: Callable[[], None]
) -> None:
    with open_store(default_url(dashboard.root)) as store:
        at = store.clock()
        made = store.append_events(
            [
                Event(Phase.HEALTH, at, site="east", subject="paging probe", detail=f"probe {n}")
                for n in range(eventlog.PAGE + 100)
            ]
        )
    page = dashboard.page_as("vera")
    page.goto(f"{dashboard.url}/events")
    first = shown_ids(page, "table.events tbody tr", "data-event")
    assert len(first) == eventlog.PAGE
    assert first[-1] in made  # ours are the newest 600: the first page ends among them

    page.get_by_role("link", name="Next page (older)").click()
    page.wait_for_url(re.compile(rf".*/events\?before={first[-1]}$"))
    expect(page.get_by_text("older than the previous page")).to_be_visible()
    second = shown_ids(page, "table.events tbody tr", "data-event")
    # The next page starts right below the first, and the two hold what one long page would.
    whole = dashboard.api.get(
        "/api/events/log", params={"limit": len(first) + len(second), "before": first[0] + 1}
    ).json()
    assert first + second == [e["id"] for e in whole["events"]]
    assert not set(first) & set(second)
    assert set(made) <= set(first + second)
    assert second[0] == max(i for i in made if i < first[-1])


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


def test_the_audit_log_goes_on_a_page_at_a_time_where_the_newer_page_stopped(
    dashboard: Dashboard, clean_console: Callable[[], None]
) -> None:
    with open_store(default_url(dashboard.root)) as store:
        made = [
            store.append_audit(
                actor="paging-test", action="test.page", target=f"entry:{n}", result="success"
            ).id
            for n in range(audit_page.PAGE_ENTRIES + 50)
        ]
    page = dashboard.page_as("vera")
    page.goto(f"{dashboard.url}/audit")
    # Entries written by another process than the server's keep the chain whole.
    expect(page.locator("[data-verdict]")).to_contain_text("Chain intact")
    first = shown_ids(page, "table.audit tbody tr", None)
    assert len(first) == audit_page.PAGE_ENTRIES
    assert first[-1] in made

    page.get_by_role("link", name="Next page (older)").click()
    page.wait_for_url(re.compile(rf".*/audit\?before={first[-1]}$"))
    second = shown_ids(page, "table.audit tbody tr", None)
    whole = dashboard.api.get(
        "/api/audit", params={"limit": len(first) + len(second), "before": first[0] + 1}
    ).json()
    assert first + second == [e["id"] for e in whole["entries"]]
    assert not set(first) & set(second)
    assert set(made) <= set(first + second)
    assert second[0] == max(i for i in made if i < first[-1])


def shown_ids(page: Any, rows: str, attribute: str | None) -> list[int]:
    """The ids of the rows a page shows, top to bottom: each row's `attribute`, or the number
    in its first cell."""
    found = page.locator(rows)
    expect(found.first).to_be_attached()
    if attribute is None:
        return [int(t) for t in found.locator("td:first-child").all_inner_texts()]
    return [int(r.get_attribute(attribute)) for r in found.all()]


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


def test_a_designer_publishes_from_the_browser_and_no_one_else_is_offered_the_button(
    dashboard: Dashboard, clean_console: Callable[[], None]
) -> None:
    project = dashboard.root / "shipyard.yaml"  # the served directory: a change to publish
    project.write_text(project.read_text() + "\n# published from the browser\n")
    before = dashboard.api.get("/api/versions").json()["serving"]
    page = dashboard.page_as("dex")
    accept_dialogs(page)
    page.goto(f"{dashboard.url}/versions")
    page.get_by_label("Message").fill("from the directory")
    page.get_by_role("button", name="Publish from the project directory").click()
    row = page.locator("table.versions tbody tr", has_text="from the directory")
    expect(row).to_contain_text("serving")
    expect(row).to_contain_text("dex")
    expect(row).to_contain_text("reload")
    listed = dashboard.api.get("/api/versions").json()
    newest = listed["versions"][0]
    assert listed["serving"] == newest["id"] > before
    assert (newest["message"], newest["published_by"]) == ("from the directory", "dex")

    for user in ("dana", "vera"):  # deployment and viewer: neither may publish
        other = dashboard.page_as(user)
        other.goto(f"{dashboard.url}/versions")
        expect(other.locator("table.versions")).to_contain_text("from the directory")
        publish = other.get_by_role("button", name="Publish from the project directory")
        expect(publish).to_have_count(0)
