"""The pages in a real browser, on the demo's data.

`demo_world` runs `nudge demo` (three weeks, both emulated companies) once per test session and keeps its folder
pristine; every test gets its own copy (`world`: database, outbox and config), an app on it whose clock stands
at the demo's end, and a live server. `browse(width)` opens a signed-in Chromium page at 1440 or 390 px;
`check(page, name)` saves a full-page screenshot under tests/web/screenshots/ (ignored by git: look at them)
and runs axe-core on the page: any serious or critical violation fails the test with axe's words.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import make_server

from connector.bootstrap import Services, build
from connector.config import load_settings
from tests.support.clock import FakeClock
from tests.support.pages_demo import DEMO_DAYS, DEMO_START, demo_folder
from web import create_app

pytestmark = [pytest.mark.web, pytest.mark.browser]

# The pages are looked at on the morning after the demo's last day (09:30 in London, 04:30 in New York).
LOOKED_AT = DEMO_START + timedelta(days=DEMO_DAYS, hours=9, minutes=30)
DEMO_EMAIL = "demo@example.com"
DEMO_PASSWORD = "nudge-demo-password"
WIDTHS = {"desktop": (1440, 900), "phone": (390, 844)}
SCREENSHOTS = Path(__file__).resolve().parent.parent / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
SERIOUS = ("serious", "critical")


@dataclass(frozen=True)
class World:
    """One test's copy of the demo: its folder, services (clock at LOOKED_AT), app and live URL."""

    folder: Path
    services: Services
    app: Flask
    url: str

    @property
    def clock(self) -> FakeClock:
        """The app's clock (tests may move it)."""
        clock = self.services.clock
        assert isinstance(clock, FakeClock)
        return clock


@pytest.fixture(scope="session")
def demo_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's folder after `nudge demo --days 21 --start 2026-11-09`: run once per test session, shared by the
    xdist workers (started by the controller in the background, tests/support/pages_demo.py; whoever takes its file
    lock first runs it, the others wait and reuse it; never changed after)."""
    base = tmp_path_factory.getbasetemp()
    # Under xdist each worker's base is <session root>/popen-gwN: the root is common to the session's workers.
    return demo_folder(base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base)


def copy_world(source: Path, target: Path) -> Path:
    """A copy of the demo folder at `target`, its config pointing at the copy (database, outbox, instance)."""
    shutil.copytree(source, target)
    config = target / "nudge.yaml"
    config.write_text(config.read_text(encoding="utf-8").replace(str(source), str(target)), encoding="utf-8")
    return config


@pytest.fixture
def world(demo_world: Path, tmp_path: Path) -> Iterator[World]:
    """This test's own copy of the demo, served by a live app (threaded Werkzeug on 127.0.0.1)."""
    config = copy_world(demo_world, tmp_path / "demo")
    services = build(load_settings(str(config)), clock=FakeClock(LOOKED_AT))
    app = create_app(services.settings, services)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="nudge-pages", daemon=True)
    thread.start()
    try:
        yield World(tmp_path / "demo", services, app, f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
        thread.join(timeout=10)
        services.store.dispose()


def _chromium() -> str:
    path = CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")
    if path:
        return path
    reason = f"chromium not found at {CHROMIUM} or on PATH (install it with `make browser`)"
    if os.environ.get("NUDGE_REQUIRE_BROWSER") == "1":
        pytest.fail(f"NUDGE_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """One headless Chromium per test module (Debian's; Playwright never downloads one). Not per session: Playwright's
    sync API runs an event loop while it is started, and the other browser tests (tests/web/test_browser.py, ...)
    start their own on the same xdist worker once this module is done."""
    executable = _chromium()
    from playwright.sync_api import expect, sync_playwright

    # The previews and impacts are computed on the server (a plan over every open invoice): on two busy cores one
    # takes longer than expect's 5 s default. As long as the page's own default: a failing check waits longer,
    # a passing one no longer.
    expect.set_options(timeout=15_000)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def browse(world: World, chromium: Any) -> Iterator[Callable[..., Any]]:
    """browse(width="desktop"|"phone", *, email=DEMO_EMAIL, password=DEMO_PASSWORD): a signed-in page.

    The page fails the test on any console error or uncaught script error (a CSP refusal shows up there);
    confirmation dialogs are accepted.
    """
    contexts: list[Any] = []
    problems: list[str] = []

    def open_page(width: str = "desktop", *, email: str = DEMO_EMAIL, password: str = DEMO_PASSWORD) -> Any:
        w, h = WIDTHS[width]
        context = chromium.new_context(viewport={"width": w, "height": h}, base_url=world.url)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.on("console", lambda m: problems.append(f"console: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(f"script: {e}"))
        page.on("dialog", lambda dialog: dialog.accept())
        page.goto("/login")
        page.get_by_label("Email").fill(email)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in", exact=True).click()
        page.wait_for_load_state()
        page.nudge_width = width  # type: ignore[attr-defined]  # for check(): the screenshot's name
        return page

    yield open_page
    for context in contexts:
        context.close()
    assert not problems, "the browser reported errors:\n" + "\n".join(problems)


def axe_problems(page: Any) -> list[str]:
    """axe-core's serious and critical violations on `page`, one line each (rule, impact, help, first targets)."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    found = []
    for violation in results.response["violations"]:
        if violation.get("impact") in SERIOUS:
            targets = [", ".join(node["target"]) for node in violation["nodes"][:3]]
            found.append(f"{violation['id']} ({violation['impact']}): {violation['help']} at {targets}")
    return found


@pytest.fixture
def check() -> Callable[[Any, str], None]:
    """check(page, name): screenshot to tests/web/screenshots/<name>-<width>.png, then axe (serious/critical fail)."""

    def run(page: Any, name: str) -> None:
        page.wait_for_load_state("networkidle")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        width = getattr(page, "nudge_width", "desktop")
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{width}.png"), full_page=True)
        problems = axe_problems(page)
        assert not problems, f"axe on {name} ({width}, {page.url}):\n" + "\n".join(problems)

    return run
