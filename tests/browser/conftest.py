"""The dashboard in real Chromium (Debian's, driven by Playwright): a `shipyard serve` process
over a copy of the hello example (two sites of two local hosts, bootstrapped and deployed once
per module), users of every role, and a signed-in browser page per role.

    def test_something(dashboard: Dashboard) -> None:
        page = dashboard.page_as("ada")  # signed in, on the overview
        dashboard.snap(page, "overview")  # a screenshot, and axe's check of the page

Screenshots go to `<the run's base temporary directory>/screenshots` (and also to
$SHIPYARD_SCREENSHOTS when it is set: the README's pictures are made so). Every page must
load without a console error or a refused script or style (the server's strict CSP).
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.hello_copy import copy_hello, stop_hosts, upload
from tests.server.serve_process import ServeProcess, serving

playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = Path("/usr/bin/chromium")
PASSWORD = "correct horse battery staple 42"
# name -> (roles, sites of the deployment role)
USERS: dict[str, tuple[list[str], list[str] | None]] = {
    "ada": (["admin"], None),
    "dana": (["deployment"], ["east"]),
    "vera": (["viewer"], None),
    "dex": (["design"], None),
}
SERIOUS = ("serious", "critical")


@dataclass
class Dashboard:
    """The served hello fleet, an admin API client, and a browser with a context per user."""

    server: ServeProcess
    api: httpx.Client
    root: Path
    original: dict[str, str]  # the project's files as first served
    browser: Any
    shots: list[Path]
    contexts: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url

    def page_as(self, user: str) -> Any:
        """A page of `user`'s browser context, signed in through the form, on the overview."""
        context = self.contexts.get(user)
        if context is None:
            context = self.browser.new_context(viewport={"width": 1280, "height": 800})
            self.contexts[user] = context
            page = context.new_page()
            self._watch(page, user)
            page.goto(f"{self.url}/login")
            page.get_by_label("User").fill(user)
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(f"{self.url}/")
            return page
        page = context.new_page()
        self._watch(page, user)
        page.goto(f"{self.url}/")
        return page

    def forget_refusals(self) -> None:
        """Drop the console's notes of 403 answers: a test that provokes them expects them."""
        self.problems[:] = [p for p in self.problems if "status of 403" not in p]

    def close_pages(self) -> None:
        """Each open page holds an event stream, and a browser opens at most six connections
        to one server over HTTP/1.1: a test starts with none open."""
        for context in self.contexts.values():
            for page in context.pages:
                page.close()

    def _watch(self, page: Any, user: str) -> None:
        def console(message: Any) -> None:
            if message.type == "error":
                self.problems.append(f"{user}: console error on {page.url}: {message.text}")

        page.on("console", console)
        page.on("pageerror", lambda error: self.problems.append(f"{user}: {error}"))

    def snap(self, page: Any, name: str) -> None:
        """A full-page screenshot, and axe-core's check: no serious or critical violation."""
        for folder in self.shots:
            folder.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(folder / f"{name}.png"), full_page=True)
        violations = accessibility(page)
        bad = [v for v in violations if v.get("impact") in SERIOUS]
        assert not bad, f"{name}: " + json.dumps(
            [{"id": v["id"], "help": v["help"], "nodes": len(v["nodes"])} for v in bad], indent=1
        )

    def publish(self, *changes: tuple[str, str], message: str = "") -> int:
        """Upload the first-served project with `changes` as a new config version."""
        files = upload_files(self.original, *changes)
        answer = self.api.post("/api/versions", json={"files": files, "message": message})
        assert answer.status_code in (200, 201), answer.text
        return int(answer.json()["version"]["id"])

    def roll_out(self, body: dict[str, Any], timeout: float = 180.0) -> dict[str, Any]:
        """Start a rollout over the API and wait until it is over."""
        started = self.api.post("/api/rollouts", json=body)
        assert started.status_code == 202, started.text
        return self.wait(started.json()["id"], timeout)

    def wait(self, rollout_id: str, timeout: float = 180.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.api.get(f"/api/rollouts/{rollout_id}").json()
            if found["status"] != "in_progress" and not found.get("running_here"):
                return dict(found)
            time.sleep(0.2)
        raise AssertionError(f"rollout {rollout_id} still running after {timeout:g} s")


def upload_files(original: dict[str, str], *changes: tuple[str, str]) -> dict[str, str]:
    files = dict(original)
    text = base64.b64decode(files["shipyard.yaml"]).decode()
    for old, new in changes:
        assert old in text, f"{old!r} is not in shipyard.yaml"
        text = text.replace(old, new)
    files["shipyard.yaml"] = base64.b64encode(text.encode()).decode()
    return files


def accessibility(page: Any) -> list[dict[str, Any]]:
    """axe-core's violations of the page as it is now (axe from axe-playwright-python)."""
    import axe_playwright_python

    source = (Path(axe_playwright_python.__file__).parent / "axe.min.js").read_text()
    page.evaluate(source + "\n;true")
    found: dict[str, Any] = page.evaluate("async () => await axe.run(document)")
    return list(found["violations"])


# Each module's hello hosts on a network of its own: modules run at once in two workers, and
# scripts/demo_addresses.py's search for a free one would race between them.
NETS = {"test_dashboard": "127.0.61", "test_site_pages": "127.0.62", "test_admin_page": "127.0.64"}


@pytest.fixture(scope="module")
def hello(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """A copy of the hello example on the module's loopback network (scripts/demo_addresses.py
    checks that every address is free)."""
    net = NETS.get(request.module.__name__.rsplit(".", 1)[-1], "127.0.63")
    root = copy_hello(tmp_path_factory.mktemp("hello"), net=net)
    try:
        yield root
    finally:
        stop_hosts(root)


@pytest.fixture(scope="module")
def dashboard(hello: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    """The served, bootstrapped, deployed hello fleet; its users; Chromium."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make system-deps` installs Debian's chromium")
    env = {"SHIPYARD_ACTOR": "browser-tests", "SHIPYARD_HEALTH_INTERVAL": "0"}
    log = hello.parent / "serve.log"
    with serving(hello / "shipyard.yaml", env, log=log) as server, server.client() as api:
        api.timeout = httpx.Timeout(120.0)
        for name, (roles, sites) in USERS.items():
            made = api.post(
                "/api/users",
                json={"name": name, "roles": roles, "sites": sites, "password": PASSWORD},
            )
            assert made.status_code in (200, 201), made.text
        booted = api.post("/api/bootstrap", json={})
        assert booted.status_code == 200, booted.text
        original = upload(hello)
        shots = [tmp_path_factory.getbasetemp() / "screenshots"]
        if os.environ.get("SHIPYARD_SCREENSHOTS"):
            shots.append(Path(os.environ["SHIPYARD_SCREENSHOTS"]))
        with playwright_api.sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=str(CHROMIUM), headless=True)
            made = Dashboard(server, api, hello, original, browser, shots)
            first = made.roll_out({"instances": []})
            assert first["status"] == "success", first
            try:
                yield made
            finally:
                for context in made.contexts.values():
                    context.close()
                browser.close()


@pytest.fixture(scope="module")
def signed_in(dashboard: Dashboard) -> None:
    """Every user signed in before a test watches the console: the sign-in form's page has no
    icon, and Chromium's request for /favicon.ico (404) is logged as a console error now and
    then."""
    for user in USERS:
        page = dashboard.page_as(user)
        page.wait_for_load_state("networkidle")
        page.close()


def accept_dialogs(page: Any) -> None:
    page.on("dialog", lambda dialog: dialog.accept())


@pytest.fixture
def clean_console(dashboard: Dashboard) -> Iterator[Callable[[], None]]:
    """Fails the test when a page logged an error (a refused script, a failed request)."""
    dashboard.problems.clear()

    def check() -> None:
        assert not dashboard.problems, "\n".join(dashboard.problems)

    try:
        yield check
        check()
    finally:
        dashboard.close_pages()
