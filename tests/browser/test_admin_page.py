"""The admin page as its users drive it in real Chromium over the served hello fleet: a token
shown once, a user added and disabled, a user's roles and sites changed (what the store then
holds, and its audit), a webhook's secret shown once and its delivery log; a viewer is offered
none of it and refused when she forges it."""

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


def test_an_admin_sees_a_new_token_once_and_adds_a_user_and_a_viewer_is_refused(
    dashboard: Dashboard, clean_console: Callable[[], None]
) -> None:
    page = dashboard.page_as("ada")
    accept_dialogs(page)
    page.goto(f"{dashboard.url}/admin")
    form = page.locator("#token-form")
    form.get_by_label("What it is for").fill("browser-ci")
    form.get_by_role("button", name="Create token").click()
    shown = page.locator("#new-token code.secret-once")
    expect(shown).to_have_text(re.compile(r"^shy_\S{20,}$"))
    token = shown.inner_text()
    listed = dashboard.api.get("/api/whoami", headers={"Authorization": f"Bearer {token}"})
    assert listed.status_code == 200, listed.text  # the token shown works

    page.reload()
    expect(page.locator("table.tokens")).to_contain_text("browser-ci")
    expect(page.locator("#new-token")).to_be_empty()
    assert token not in page.content()  # shown once: never again

    users = page.locator("#user-form")
    users.get_by_label("Name").fill("olga")
    users.get_by_label("deployment", exact=True).check()
    users.get_by_label("viewer", exact=True).uncheck()
    users.get_by_label("west", exact=True).check()
    users.get_by_label("Password (none: tokens only)").fill("another long password 7")
    users.get_by_role("button", name="Add user").click()
    olga = page.locator('tr[data-user="olga"]')
    expect(olga).to_contain_text("deployment")
    expect(olga).to_contain_text("west")
    expect(olga).to_contain_text("enabled")
    page.get_by_role("button", name="Disable olga").click()
    expect(olga).to_contain_text("disabled")
    dashboard.snap(page, "admin")

    viewer = dashboard.page_as("vera")
    expect(viewer.get_by_role("navigation", name="Pages")).not_to_contain_text("Admin")
    refused = viewer.goto(f"{dashboard.url}/admin")
    assert refused is not None
    assert refused.status == 403
    # The browser reports the refused page load itself as a console error: that one is expected.
    dashboard.problems[:] = [p for p in dashboard.problems if "status of 403" not in p]
    expect(viewer.get_by_role("heading", level=1)).to_contain_text("403")


def test_an_admin_changes_a_users_roles_and_sites_on_the_page_and_a_viewer_is_refused(
    dashboard: Dashboard, clean_console: Callable[[], None]
) -> None:
    try:
        page = dashboard.page_as("ada")
        page.goto(f"{dashboard.url}/admin")
        expect(page.locator('tr[data-user="ada"] details')).to_have_count(0)  # not oneself
        dana = page.locator('tr[data-user="dana"]')
        roles, sites = dana.locator("td").nth(0), dana.locator("td").nth(1)
        form = page.locator("#change-dana")
        dana.get_by_label("Change the roles and sites of dana").click()
        expect(form.get_by_label("deployment", exact=True)).to_be_checked()
        expect(form.get_by_label("east", exact=True)).to_be_checked()
        form.get_by_label("viewer", exact=True).check()
        form.get_by_label("west", exact=True).check()
        form.get_by_role("button", name="Save the roles and sites of dana").click()
        expect(roles).to_have_text("deployment, viewer")  # after the page's reload
        expect(sites).to_have_text("east, west")
        stored = dashboard.api.get("/api/users/dana").json()
        assert (stored["roles"], stored["sites"]) == (["deployment", "viewer"], ["east", "west"])

        dana.get_by_label("Change the roles and sites of dana").click()
        for box in ("viewer", "east", "west"):  # no site ticked: every site
            form.get_by_label(box, exact=True).uncheck()
        form.get_by_role("button", name="Save the roles and sites of dana").click()
        expect(sites).to_have_text("every site")
        expect(roles).to_have_text("deployment")
        stored = dashboard.api.get("/api/users/dana").json()
        assert (stored["roles"], stored["sites"]) == (["deployment"], None)
        audited = dashboard.api.get(
            "/api/audit", params={"actor": "ada", "action": "user.change", "limit": 2}
        ).json()["entries"]
        assert [(e["target"], e["detail"]["roles"], e["detail"]["sites"]) for e in audited] == [
            ("user:dana", ["deployment"], None),
            ("user:dana", ["deployment", "viewer"], ["east", "west"]),
        ]

        dana.get_by_label("Change the roles and sites of dana").click()
        form.get_by_label("deployment", exact=True).uncheck()  # no role at all: refused
        form.get_by_role("button", name="Save the roles and sites of dana").click()
        expect(page.locator("#notice")).to_contain_text("Refused")
        dashboard.problems[:] = [p for p in dashboard.problems if "status of 422" not in p]
        assert dashboard.api.get("/api/users/dana").json()["roles"] == ["deployment"]

        viewer = dashboard.page_as("vera")
        refused = viewer.goto(f"{dashboard.url}/admin")
        assert refused is not None
        assert refused.status == 403
        expect(viewer.locator("#change-dana")).to_have_count(0)
        viewer.goto(f"{dashboard.url}/")
        forged = viewer.evaluate(
            """async () => {
                try { await window.shipyardApi("PATCH", "/api/users/dana", {roles: ["admin"]});
                      return "";
                } catch (e) { return `${e.status} ${e.message}`; }
            }"""
        )  # with her own session's CSRF token: refused for the permission she lacks
        assert forged.startswith("403"), forged
        dashboard.forget_refusals()
        assert dashboard.api.get("/api/users/dana").json()["roles"] == ["deployment"]
        denied = dashboard.api.get(
            "/api/audit", params={"actor": "vera", "action": "permission.denied", "limit": 1}
        ).json()["entries"]
        assert denied[0]["target"] == "PATCH /api/users/{name}"
    finally:
        dashboard.api.patch("/api/users/dana", json={"roles": ["deployment"], "sites": ["east"]})


def test_an_admin_adds_a_webhook_sees_its_secret_once_and_reads_its_delivery_log(
    dashboard: Dashboard, clean_console: Callable[[], None]
) -> None:
    page = dashboard.page_as("ada")
    page.goto(f"{dashboard.url}/admin")
    form = page.locator("#webhook-form")
    form.get_by_label("URL").fill("http://127.0.0.1:9/nobody-listens")  # refused at once
    form.get_by_label("finished", exact=True).check()
    form.get_by_role("button", name="Add webhook").click()
    expect(page.locator("#new-secret code.secret-once")).not_to_be_empty()
    secret = page.locator("#new-secret code.secret-once").inner_text()

    dashboard.roll_out({"instances": ["greeter@east-2"], "force": True})
    page.reload()
    assert secret not in page.content()
    hook = page.locator("table.webhooks tbody tr", has_text="nobody-listens")
    expect(hook).to_contain_text("finished")
    hook.get_by_role("link", name="Delivery log").click()
    deliveries = page.locator("table.deliveries tbody tr")
    for _ in range(60):  # the dispatcher records a delivery once it has read the event
        if deliveries.count():
            break
        page.wait_for_timeout(500)
        page.reload()
    expect(deliveries.first).to_be_visible()
    assert page.locator("table.deliveries").inner_text().strip()
