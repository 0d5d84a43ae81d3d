"""A real browser (Debian's chromium through Playwright) signs in with the form, sees the home page, signs out.

Skipped, with the reason shown, when chromium is not installed — unless NUDGE_REQUIRE_BROWSER=1 (CI),
where a missing browser fails the run. `make browser` installs it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask

from connector.domain.model import Role
from tests.support.browser import serving

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.browser


def _chromium() -> str:
    path = CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")
    if path:
        return path
    reason = f"chromium not found at {CHROMIUM} or on PATH (install it with `make browser`)"
    if os.environ.get("NUDGE_REQUIRE_BROWSER") == "1":
        pytest.fail(f"NUDGE_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture
def live_url(app: Flask) -> Iterator[str]:
    with serving(app) as url:
        yield url


def test_sign_in_home_and_sign_out_in_a_real_browser(live_url: str, make_user: Callable[..., Any]) -> None:
    executable = _chromium()
    from playwright.sync_api import expect, sync_playwright

    account = make_user("Browser Books Ltd", Role.ACCOUNTANT, display_name="Grace Hopper")
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(15_000)
            page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: problems.append(str(error)))

            page.goto(f"{live_url}/")
            expect(page).to_have_url(f"{live_url}/login?next=%2F")
            expect(page.get_by_role("heading", name="Sign in")).to_be_visible()

            page.get_by_label("Email").fill(account.email)
            page.get_by_label("Password").fill("a wrong password")
            page.get_by_role("button", name="Sign in", exact=True).click()
            expect(page.get_by_role("alert")).to_have_text("Invalid email or password.")

            page.get_by_label("Email").fill(account.email)
            page.get_by_label("Password").fill(account.password)
            page.get_by_role("button", name="Sign in", exact=True).click()
            expect(page).to_have_url(f"{live_url}/orgs/{account.org_id}/")
            expect(page.get_by_role("heading", name="Browser Books Ltd")).to_be_visible()
            expect(page.get_by_text("No clients connected yet")).to_be_visible()
            expect(page.get_by_test_id("who")).to_have_text("Grace Hopper")
            # The vendored stylesheet loaded under the CSP: the top bar took its colours from it.
            background = page.locator("header.topbar").evaluate("element => getComputedStyle(element).backgroundColor")
            assert background == "rgb(29, 36, 48)"

            page.get_by_role("button", name="Sign out").click()
            expect(page).to_have_url(f"{live_url}/login")
            expect(page.get_by_text("You have been signed out.")).to_be_visible()
            page.goto(f"{live_url}/orgs/{account.org_id}/")
            expect(page).to_have_url(f"{live_url}/login?next=%2Forgs%2F{account.org_id}%2F")
        finally:
            browser.close()
    assert problems == []  # no CSP violations, no script errors
