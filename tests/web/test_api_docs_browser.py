"""The rendered API docs (/api/v1/docs) work in a real browser under the app's Content-Security-Policy.

Debian's chromium through Playwright; skipped with the reason when chromium is missing, unless
NUDGE_REQUIRE_BROWSER=1 (`make browser` installs it), as in tests/web/test_browser.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from tests.support.browser import serving

pytestmark = pytest.mark.browser


@pytest.fixture
def live_url(app: Flask) -> Iterator[str]:
    with serving(app) as url:
        yield url


def test_swagger_ui_renders_the_document_without_csp_violations(live_url: str, chromium_launch: dict[str, Any]) -> None:
    from playwright.sync_api import expect, sync_playwright

    problems: list[str] = []
    outside: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(**chromium_launch)
        try:
            page = browser.new_page()
            page.set_default_timeout(20_000)
            page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on(
                "request", lambda request: None if request.url.startswith(live_url) else outside.append(request.url)
            )
            page.goto(f"{live_url}/api/v1/docs")
            expect(page.locator(".swagger-ui .info .title")).to_contain_text("Nudge API")
            expect(
                page.locator(".opblock-summary-path").filter(has_text="/api/v1/orgs/{org_id}/tokens").first
            ).to_be_visible()
            expect(page.get_by_role("button", name="Authorize")).to_be_visible()
        finally:
            browser.close()
    assert problems == []  # no CSP violation, no script error
    assert [url for url in outside if not url.startswith("data:")] == []  # nothing from another host
