"""The dashboard as its users drive it, in real Chromium, over the served hello fleet: signing
in, the overview, instances and their diffs, a deployment started from the browser and
followed live, a failure's reason, cancelling, and what each role is offered and refused."""

from __future__ import annotations

import contextlib
import http.server
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

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


def record_changes(page: Any, selector: str) -> None:
    """Keep every text the element at `selector` shows, in `window.seen` (a MutationObserver),
    and mark the page so that a reload would show (window.kept is gone after one)."""
    page.evaluate(
        """(selector) => {
            window.kept = true;
            window.seen = [];
            const target = document.querySelector(selector);
            new MutationObserver(() => window.seen.push(target.textContent.trim()))
                .observe(target, {childList: true, subtree: true, characterData: true});
        }""",
        selector,
    )


def test_an_instance_page_shows_its_diff_and_history(
    dashboard: Dashboard, clean_console: Callable[[], None]
) -> None:
    dashboard.publish(("release: v1", "release: v2"), message="v2")
    page = dashboard.page_as("ada")
    page.get_by_role("link", name="Instances").click()
    expect(page.locator("table.instances tbody tr")).to_have_count(6)
    expect(page.locator("table.instances")).to_contain_text("stale")
    page.locator("select[name=view]").select_option("grid")
    page.get_by_role("button", name="Filter").click()
    grid = page.locator("table.instances-grid")
    expect(grid.locator("tbody tr")).to_have_count(4)  # hosts, by the services they run
    expect(grid.locator(".stale")).to_have_count(6)
    dashboard.snap(page, "instances-grid")
    grid.get_by_role("link", name="greeter@east-1").click()
    page.wait_for_url("**/instances/greeter@east-1")
    diff = page.locator("table.diff-table")
    expect(diff).to_contain_text('"v1"')
    expect(diff).to_contain_text('"v2"')
    expect(diff).to_contain_text("--- deployed/config.json")  # its sides: not a version's
    expect(diff).to_contain_text("+++ derived/config.json")
    expect(page.locator("section[aria-labelledby=history-h]")).to_contain_text("success")
    expect(page.get_by_role("button", name="Deploy", exact=True)).to_be_visible()
    dashboard.snap(page, "instance")


def test_a_deployment_started_in_the_browser_is_followed_live(
    dashboard: Dashboard, clean_console: Callable[[], None]
) -> None:
    watcher = dashboard.page_as("ada")
    watcher.goto(f"{dashboard.url}/instances?site=east")
    record_changes(watcher, '[data-live="greeter@east-1"]')

    page = dashboard.page_as("ada")
    page.goto(f"{dashboard.url}/instances?site=east")
    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_label("Choose greeter@east-1").check()
    page.get_by_role("button", name="Preview plan").click()
    expect(page.locator("#preview")).to_contain_text("greeter@east-1: update")
    dashboard.snap(page, "instances")
    page.get_by_role("button", name="Deploy chosen").click()
    page.wait_for_url(re.compile(r".*/rollouts/[0-9a-f-]+$"))
    rollout_id = page.url.rsplit("/", 1)[1]
    finished = page.locator('[data-step="greeter@east-1|finished"]')
    expect(finished).to_contain_text("success", timeout=120_000)
    page.locator("details[data-log-of='greeter@east-1'] summary").click()
    expect(page.locator("details[data-log-of='greeter@east-1'] pre")).to_contain_text(
        "──", timeout=30_000
    )
    expect(page.locator("[data-rollout-status]").first).to_contain_text("success")
    dashboard.snap(page, "rollout")

    # The other tab saw the cell change as the deployment ran, and was never reloaded.
    expect(watcher.locator('[data-live="greeter@east-1"]')).to_contain_text("success")
    seen = watcher.evaluate("window.seen")
    assert any("in_progress" in text for text in seen), seen
    assert watcher.evaluate("window.kept") is True
    assert dashboard.api.get(f"/api/rollouts/{rollout_id}").json()["status"] == "success"


def test_a_failed_deployment_shows_its_reason(
    dashboard: Dashboard, clean_console: Callable[[], None]
) -> None:
    dashboard.publish(
        ("release: v1", "release: v2"),
        ("/healthz", "/no-such-page"),
        ("retries: 20", "retries: 2"),
        message="a health check that cannot pass",
    )
    page = dashboard.page_as("ada")
    page.goto(f"{dashboard.url}/instances/greeter@west-2")
    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Redeploy (force)").click()
    page.wait_for_url(re.compile(r".*/rollouts/[0-9a-f-]+$"))
    expect(page.locator('[data-step="greeter@west-2|finished"]')).to_contain_text(
        "failed", timeout=120_000
    )
    reason = page.locator('td[data-reason="greeter@west-2"]')
    expect(reason).to_contain_text("health")
    dashboard.snap(page, "rollout-failed")
    page.get_by_role("link", name="greeter@west-2").first.click()
    expect(page.locator("p.reason")).to_contain_text("health")
    # Back to a deployable project, and the instance to health.
    dashboard.publish(("release: v1", "release: v2"), message="v2 again")
    assert dashboard.roll_out({"instances": ["greeter@west-2"]})["status"] == "success"


def test_cancelling_a_rollout_from_its_page(
    dashboard: Dashboard, clean_console: Callable[[], None]
) -> None:
    slow = (
        "    template: hello\n    sites: [east, west]\n",
        "    template: hello\n    sites: [east, west]\n"
        "    overrides:\n      strategy: {kind: rolling, batch: 1, pause: 5}\n",
    )
    dashboard.publish(("release: v1", "release: v3"), slow, message="slow greeter")
    started = dashboard.api.post("/api/rollouts", json={"instances": ["greeter"], "force": True})
    assert started.status_code == 202, started.text
    rollout_id = started.json()["id"]
    page = dashboard.page_as("ada")
    page.goto(f"{dashboard.url}/rollouts/{rollout_id}")
    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Cancel rollout").click()
    expect(page.locator("#notice")).to_contain_text("Cancelling")
    done = dashboard.wait(rollout_id)
    assert done["status"] != "success", done
    skipped = [o for o in done["outcomes"] if o["result"] == "skipped"]
    assert skipped, done
    name = skipped[0]["instance"]
    expect(page.locator(f'td[data-reason="{name}"]')).to_contain_text("cancel", timeout=30_000)
    expect(page.get_by_role("button", name="Cancel rollout")).to_be_disabled()
    dashboard.snap(page, "rollout-cancelled")
    dashboard.publish(("release: v1", "release: v2"), message="v2 again")


def test_a_viewer_is_offered_no_action_and_a_forged_post_is_refused(
    dashboard: Dashboard, clean_console: Callable[[], None]
) -> None:
    page = dashboard.page_as("vera")
    expect(page.get_by_role("link", name="Admin")).to_have_count(0)
    page.get_by_role("link", name="Instances").click()
    expect(page.locator("table.instances tbody tr")).to_have_count(6)
    expect(page.locator("input[name=instances]")).to_have_count(0)
    expect(page.get_by_role("button", name="Deploy chosen")).to_have_count(0)
    page.goto(f"{dashboard.url}/instances/greeter@east-1")
    expect(page.get_by_role("button")).to_have_count(1)  # Sign out, and nothing else
    dashboard.snap(page, "instance-viewer")
    refused = page.evaluate(
        """async () => {
            try { await window.shipyardApi("POST", "/api/rollouts", {instances: []}); return "";
            } catch (e) { return `${e.status} ${e.message}`; }
        }"""
    )
    assert refused.startswith("403"), refused
    dashboard.forget_refusals()

    # Another origin's page posts a form to the API in the admin's signed-in browser: the
    # browser sends the session cookie (same site), and the server refuses it all the same.
    before = len(dashboard.api.get("/api/rollouts").json()["rollouts"])
    admin = dashboard.page_as("ada")
    with forging_site(f"{dashboard.url}/api/rollouts") as forged:
        admin.goto(forged)
        admin.wait_for_url(f"{dashboard.url}/api/rollouts")
        assert "csrf" in admin.content()
    dashboard.forget_refusals()
    assert len(dashboard.api.get("/api/rollouts").json()["rollouts"]) == before


def test_a_deployer_of_one_site_sees_the_others_read_only(
    dashboard: Dashboard, clean_console: Callable[[], None]
) -> None:
    page = dashboard.page_as("dana")
    page.goto(f"{dashboard.url}/instances")
    expect(page.get_by_label("Choose greeter@east-1")).to_be_visible()
    expect(page.get_by_label("Choose greeter@west-1")).to_have_count(0)
    expect(page.locator("table.instances")).to_contain_text("greeter@west-1")
    dashboard.snap(page, "instances-scoped")
    page.goto(f"{dashboard.url}/instances/greeter@west-1")
    expect(page.get_by_text("Read-only: west is outside your sites")).to_be_visible()
    expect(page.get_by_role("button", name="Deploy", exact=True)).to_have_count(0)
    refused = page.evaluate(
        """async () => {
            try { await window.shipyardApi("POST", "/api/rollouts", {instances: ["greeter@west-1"]});
                  return "";
            } catch (e) { return `${e.status} ${e.message}`; }
        }"""
    )
    assert refused.startswith("403"), refused
    assert "west" in refused, refused
    dashboard.forget_refusals()


@contextlib.contextmanager
def forging_site(target: str) -> Iterator[str]:
    """A page on another loopback port whose form posts itself to `target` at once."""
    html = (
        f"<!doctype html><html><body><form method='post' action='{target}'>"
        "<input name='instances' value='greeter@east-1'></form>"
        "<script>document.forms[0].submit()</script></body></html>"
    )

    class Forger(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Forger)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
