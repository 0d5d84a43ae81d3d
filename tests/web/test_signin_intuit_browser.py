"""A real browser (Debian's chromium through Playwright): the QuickBooks App Store's launch URL, signed out →
"Sign in with Intuit" → the consent page of the QuickBooks emulator (pick the Intuit user, pick the company) →
signed in on a NEW organization with its connection listed; signed out, the same Intuit user launches again and
lands on the SAME organization (no second one). One browser for the module.

Skipped, with the reason shown, when chromium is not installed (unless NUDGE_REQUIRE_BROWSER=1).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from connector.config import settings_for_tests
from connector.storage import Store
from connector.storage.tables import Connection, Organization, User
from tests.support.browser import consent_at_intuit, serving
from tests.support.net import free_port
from web import create_app
from web.extensions import SERVICES_KEY

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, qbo_emulator: Any) -> Iterator[tuple[str, Store]]:
    """Nudge on a live port, QuickBooks configured against the session's emulator with that port's callback."""
    from providers.quickbooks.emulator.kit import nudge_settings

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    database = Path(tmp_path_factory.mktemp("intuit-browser")) / "web.sqlite3"
    qbo = nudge_settings(qbo_emulator.url, f"{url}/oauth/quickbooks/callback", webhook_key="browser-verifier")
    app = create_app(settings_for_tests(f"sqlite:///{database}", providers={"quickbooks": qbo}))
    store: Store = app.extensions[SERVICES_KEY].store
    store.create_all()
    try:
        with serving(app, port):
            yield url, store
    finally:
        store.dispose()


@pytest.fixture(scope="module")
def browser(live: tuple[str, Store]) -> Iterator[Any]:
    import os
    import shutil

    from tests.web.conftest import CHROMIUM, CHROMIUM_ARGS

    path = CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")
    if not path:
        reason = f"chromium not found at {CHROMIUM} or on PATH (install it with `make browser`)"
        if os.environ.get("NUDGE_REQUIRE_BROWSER") == "1":
            pytest.fail(f"NUDGE_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def _counts(store: Store) -> tuple[int, int, int]:
    with store.unit_of_work() as uow:
        return tuple(  # type: ignore[return-value]
            uow.session.scalar(select(func.count()).select_from(t)) for t in (User, Organization, Connection)
        )


def test_quickbooks_launch_signs_up_then_lands_on_the_same_organization(
    live: tuple[str, Store], browser: Any, qbo_emulator: Any
) -> None:
    from playwright.sync_api import expect

    url, store = live
    company = qbo_emulator.store.add_company(f"Harakeke Joinery {uuid.uuid4().hex[:4]}")
    person = qbo_emulator.emulator.oauth.add_user(f"owner-{uuid.uuid4().hex[:6]}@example.com", "Hana", "Harakeke")
    problems: list[str] = []
    page = browser.new_page()
    page.set_default_timeout(15_000)
    page.on("pageerror", lambda error: problems.append(str(error)))

    def launch_and_consent() -> None:
        page.goto(f"{url}/launch/quickbooks")
        expect(page.get_by_role("heading", name="Welcome from the QuickBooks Online app store")).to_be_visible()
        page.get_by_role("button", name="Sign in with Intuit").click()
        consent_at_intuit(page, person.sub, company.realm)

    launch_and_consent()
    expect(page.get_by_text("Welcome to Nudge.")).to_be_visible()
    expect(page.get_by_role("heading", name=company.name)).to_be_visible()
    org_path = page.url.removeprefix(url)
    assert org_path.startswith("/orgs/")
    with store.unit_of_work() as uow:
        (connection,) = uow.connections.for_organization(int(org_path.split("/")[2]))
        assert connection.tenant_id == company.realm
    expect(page.get_by_text(company.name).first).to_be_visible()
    assert _counts(store) == (1, 1, 1)

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{url}/login")
    launch_and_consent()
    expect(page).to_have_url(f"{url}{org_path}")
    expect(page.get_by_text("You already have a Nudge account with this Intuit user")).to_be_visible()
    assert _counts(store) == (1, 1, 1)  # the same organization: nothing created
    page.close()
    assert problems == []
