"""Issue 16's team acceptance as one journey in a real browser (Debian's chromium through Playwright), against a
QuickBooks emulator of its own and a real SMTP server (aiosmtpd) that catches the invitations:

1. Olivia, owner of Harbour Street Bakery, comes from the QuickBooks App Store's launch URL, signs up with Intuit
   (one consent: the Intuit user and the company) and lands signed in on a new organization with its connection.
2. She launches again and lands on the same organization: nothing is created (counted in the database).
3. She connects a second QuickBooks company (Kowhai Catering Co.): two clients.
4. Arthur, an accountant already using Nudge for his own practice, is invited as an accountant; he follows the
   emailed link, signs in with Intuit, joins, and finds both organizations in his organization switcher.
5. Clara, the bakery's own bookkeeper, is invited as a viewer limited to the bakery; she signs in with Intuit (a new
   Nudge user) and sees only the bakery: the catering company's name is on none of her pages and its URL is 404.
6. Olivia removes Clara: the cookie saved from Clara's browser is refused on the next request (sign-in page; 401
   from the API).

Each step's screen is saved under tests/web/screenshots/team-journey-*.png (ignored by git: look at them).
Skipped, with the reason shown, when chromium is not installed (unless NUDGE_REQUIRE_BROWSER=1).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import func, select

from connector.config import settings_for_tests
from connector.storage import Store
from connector.storage.tables import Connection, Membership, Organization, User
from tests.support.browser import consent_at_intuit, serving
from tests.support.net import free_port
from tests.support.smtp import Inbox, smtp_server, smtp_settings, text_of
from web import create_app
from web.extensions import SERVICES_KEY

pytestmark = [pytest.mark.web, pytest.mark.browser]

SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
BAKERY, CATERING, PRACTICE = "Harbour Street Bakery", "Kowhai Catering Co.", "Arthur & Co Accountants"
OWNER, ACCOUNTANT, CLIENT = "owner@intuit-demo.example", "accountant@intuit-demo.example", "client@intuit-demo.example"


@dataclass(frozen=True)
class Journey:
    """The live Nudge, its store, the QuickBooks emulator (its Intuit users by email, its companies' realms by name)
    and the mailbox the invitations arrive in."""

    url: str
    store: Store
    intuit: dict[str, str]
    realms: dict[str, str]
    inbox: Inbox


@pytest.fixture
def journey(tmp_path: Path) -> Iterator[Journey]:
    from providers.quickbooks.emulator import start
    from providers.quickbooks.emulator.kit import nudge_settings

    emulator = start()  # its own: the consent page lists only this journey's companies
    realms = {name: str(emulator.store.add_company(name).realm) for name in (BAKERY, CATERING, PRACTICE)}
    intuit = {user.email: user.sub for user in emulator.emulator.oauth.user_list()}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    inbox = Inbox()
    try:
        with smtp_server(inbox) as smtp_port:
            qbo = nudge_settings(emulator.url, f"{url}/oauth/quickbooks/callback", webhook_key="journey-verifier")
            base = settings_for_tests(f"sqlite:///{tmp_path / 'web.sqlite3'}", providers={"quickbooks": qbo})
            settings = replace(
                base,
                web=replace(base.web, base_url=url),
                mail=smtp_settings(smtp_port, from_address="team@nudge.example", from_name="Nudge"),
            )
            app = create_app(settings)
            store: Store = app.extensions[SERVICES_KEY].store
            store.create_all()
            try:
                with serving(app, port):
                    yield Journey(url, store, intuit, realms, inbox)
            finally:
                store.dispose()
    finally:
        emulator.stop()


def counts(store: Store) -> dict[str, int]:
    with store.unit_of_work() as uow:
        return {
            table.__name__: int(uow.session.scalar(select(func.count()).select_from(table)) or 0)
            for table in (User, Organization, Membership, Connection)
        }


def connection_ids(store: Store, org_id: int) -> dict[str, int]:
    with store.unit_of_work() as uow:
        return {connection.name: connection.id for connection in uow.connections.for_organization(org_id)}


def invitation_link(journey: Journey, address: str) -> str:
    """The link of the latest invitation emailed to `address` (on the install's base URL)."""
    messages = journey.inbox.to(address)
    assert messages, f"no email to {address}; the mail server got: {[r for r, _ in journey.inbox.received]}"
    match = re.search(rf"({re.escape(journey.url)}/invitations/[A-Za-z0-9_\-]+)", text_of(messages[-1]))
    assert match, text_of(messages[-1])
    return match.group(1)


class People:
    """One Chromium; each person gets a browser context of their own (their own cookies). Any script error, CSP
    refusal or failed load on Nudge's pages fails the test (the emulator's pages are not Nudge's)."""

    def __init__(self, chromium: Any, journey: Journey) -> None:
        self.chromium = chromium
        self.journey = journey
        self.problems: list[str] = []
        self.refused_on_purpose: set[str] = set()  # a page the test expects to be 404 (the browser logs it)
        self.screens = 0
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def new(self) -> Any:
        context = self.chromium.new_context(viewport={"width": 1280, "height": 860}, base_url=self.journey.url)
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"script: {error}"))
        page.on("dialog", lambda dialog: dialog.accept())  # "Remove ...?" confirmations
        return page

    def _console(self, message: Any) -> None:
        where = str(message.location.get("url", ""))
        if message.type == "error" and where.startswith(self.journey.url) and where not in self.refused_on_purpose:
            self.problems.append(f"console: {message.text} at {where}")

    def screenshot(self, page: Any, name: str) -> None:
        """tests/web/screenshots/team-journey-<n>-<name>.png, numbered in the journey's order."""
        self.screens += 1
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(SCREENSHOTS / f"team-journey-{self.screens:02d}-{name}.png"), full_page=True)

    def launch_from_the_app_store(self, page: Any, email: str, company: str) -> None:
        """/launch/quickbooks signed out, Sign in with Intuit, consent as `email` with `company`."""
        from playwright.sync_api import expect

        page.goto("/launch/quickbooks")
        expect(page.get_by_role("heading", name="Welcome from the QuickBooks Online app store")).to_be_visible()
        page.get_by_role("button", name="Sign in with Intuit").click()
        consent_at_intuit(page, self.journey.intuit[email], self.journey.realms[company])

    def invite(self, page: Any, org_id: int, email: str, role: str, only: str = "") -> None:
        """The team page's "Invite someone" form (limited to the client `only` when given)."""
        from playwright.sync_api import expect

        page.goto(f"/orgs/{org_id}/team")
        form = page.locator("form.new-invitation")
        form.get_by_label("Email").fill(email)
        form.get_by_label("Role").select_option(role)
        if only:
            form.get_by_label("Only some clients").check()
            form.get_by_label(only).check()
        form.get_by_role("button", name="Send invitation").click()
        expect(page.get_by_role("row").filter(has_text=email)).to_contain_text("Pending")

    def accept_with_intuit(self, page: Any, email: str, organization: str, role: str) -> None:
        """The emailed link, Sign in with Intuit (identity only: no company asked for), then Join."""
        from playwright.sync_api import expect

        page.goto(invitation_link(self.journey, email))
        expect(page.get_by_role("heading", name=f"Join {organization}")).to_be_visible()
        self.screenshot(page, f"invitation-{role}")
        page.get_by_role("button", name="Sign in with Intuit").click()
        consent_at_intuit(page, self.journey.intuit[email])
        expect(page.get_by_role("heading", name=f"Join {organization} as {role}")).to_be_visible()
        expect(page.get_by_text(f"You are signed in as {email}.")).to_be_visible()
        self.screenshot(page, f"accept-{role}")
        page.get_by_role("button", name=f"Join {organization}").click()


@pytest.fixture
def people(journey: Journey, chromium_launch: dict[str, Any]) -> Iterator[People]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(**chromium_launch)
        try:
            crowd = People(chromium, journey)
            yield crowd
        finally:
            chromium.close()
    assert crowd.problems == [], crowd.problems  # no CSP refusal, no script error, no failed load


def test_a_team_from_the_quickbooks_launch_to_a_removed_member(journey: Journey, people: People) -> None:
    from playwright.sync_api import expect

    url, store = journey.url, journey.store
    signed_out = re.compile(rf"{re.escape(url)}/login\?next=")

    # 1. The App Store's launch URL, signed out: one Intuit consent signs Olivia up.
    olivia = people.new()
    olivia.goto("/launch/quickbooks")
    expect(olivia.get_by_role("heading", name="Welcome from the QuickBooks Online app store")).to_be_visible()
    people.screenshot(olivia, "launch")
    olivia.get_by_role("button", name="Sign in with Intuit").click()
    expect(olivia.get_by_label("Signed in to Intuit as")).to_be_visible()
    people.screenshot(olivia, "intuit-consent")
    consent_at_intuit(olivia, journey.intuit[OWNER], journey.realms[BAKERY])
    expect(olivia.get_by_text("Welcome to Nudge.")).to_be_visible()
    expect(olivia.get_by_role("heading", name=BAKERY)).to_be_visible()
    landed = re.fullmatch(rf"{re.escape(url)}/orgs/(\d+)/", olivia.url)
    assert landed, olivia.url
    org_id = int(landed.group(1))
    people.screenshot(olivia, "signed-up")
    with store.unit_of_work() as uow:
        owner = uow.users.by_identity("quickbooks", journey.intuit[OWNER])
        assert owner is not None
        assert owner.email == OWNER
        assert [(org.id, role) for org, role in uow.organizations.for_user(owner.id)] == [(org_id, "owner")]
        assert [c.tenant_id for c in uow.connections.for_organization(org_id)] == [journey.realms[BAKERY]]
    signed_up = counts(store)
    assert signed_up == {"User": 1, "Organization": 1, "Membership": 1, "Connection": 1}

    # 2. Signed out, she launches again: the same organization, nothing created.
    olivia.get_by_role("button", name="Sign out").click()
    expect(olivia).to_have_url(f"{url}/login")
    people.launch_from_the_app_store(olivia, OWNER, BAKERY)
    expect(olivia).to_have_url(f"{url}/orgs/{org_id}/")
    expect(olivia.get_by_text("You already have a Nudge account with this Intuit user")).to_be_visible()
    people.screenshot(olivia, "launched-again")
    assert counts(store) == signed_up

    # 3. A second company of hers: Connect QuickBooks Online, pick it at the emulator (no Intuit user asked for).
    olivia.get_by_role("button", name="Connect QuickBooks Online").click()
    olivia.locator(f'input[name="realm"][value="{journey.realms[CATERING]}"]').check()
    olivia.get_by_role("button", name="Connect").click()
    expect(olivia.get_by_text(f"Connected {CATERING} Its invoices are syncing")).to_be_visible()
    people.screenshot(olivia, "second-client")
    clients = connection_ids(store, org_id)
    assert set(clients) == {BAKERY, CATERING}

    # 4. Arthur already uses Nudge for his own practice (he signed up from the App Store too) ...
    arthur = people.new()
    people.launch_from_the_app_store(arthur, ACCOUNTANT, PRACTICE)
    expect(arthur.get_by_role("heading", name=PRACTICE)).to_be_visible()
    arthur.get_by_role("button", name="Sign out").click()
    expect(arthur).to_have_url(f"{url}/login")
    # ... Olivia invites him as an accountant; the email reaches the mail server; he accepts with Intuit.
    people.invite(olivia, org_id, ACCOUNTANT, "accountant")
    people.screenshot(olivia, "accountant-invited")
    [invitation] = journey.inbox.to(ACCOUNTANT)
    assert BAKERY in invitation["Subject"]
    people.accept_with_intuit(arthur, ACCOUNTANT, BAKERY, "accountant")
    expect(arthur).to_have_url(f"{url}/orgs/{org_id}/")
    switcher = arthur.locator("details.org-switcher")
    switcher.locator("summary").click()
    expect(switcher.get_by_role("link", name=PRACTICE)).to_be_visible()
    expect(switcher.get_by_role("link", name=BAKERY)).to_have_attribute("aria-current", "page")
    people.screenshot(arthur, "accountant-switcher")
    switcher.get_by_role("link", name=PRACTICE).click()
    expect(arthur.get_by_role("heading", name=PRACTICE)).to_be_visible()
    with store.unit_of_work() as uow:
        arthur_user = uow.users.by_email(ACCOUNTANT)
        assert arthur_user is not None
        assert uow.memberships.role(arthur_user.id, org_id) == "accountant"
    assert counts(store)["Organization"] == 2  # his practice and the bakery: joining created none

    # 5. Clara, the bakery's bookkeeper, for the bakery only: a new Nudge user through Intuit.
    people.invite(olivia, org_id, CLIENT, "viewer", only=BAKERY)
    body = text_of(journey.inbox.to(CLIENT)[-1])
    assert BAKERY in body
    assert CATERING not in body
    clara = people.new()
    people.accept_with_intuit(clara, CLIENT, BAKERY, "viewer")
    expect(clara).to_have_url(f"{url}/orgs/{org_id}/")
    people.screenshot(clara, "limited-overview")
    for path in (f"/orgs/{org_id}/", f"/orgs/{org_id}/clients/{clients[BAKERY]}/", f"/orgs/{org_id}/team"):
        clara.goto(path)
        expect(clara.get_by_text(BAKERY).first).to_be_visible()
        assert CATERING not in clara.content(), path
    people.screenshot(clara, "limited-team")
    other_client = f"/orgs/{org_id}/clients/{clients[CATERING]}/"
    people.refused_on_purpose.add(f"{url}{other_client}")
    refused = clara.goto(other_client)
    assert refused is not None
    assert refused.status == 404
    assert CATERING not in clara.content()
    people.screenshot(clara, "limited-other-client-refused")
    clara.goto(f"/orgs/{org_id}/")
    saved_cookies = clara.context.cookies()

    # 6. Olivia removes Clara: the cookie saved from Clara's browser signs nobody in any more.
    olivia.goto(f"/orgs/{org_id}/team")
    olivia.locator("li.member").filter(has_text=CLIENT).get_by_role("button", name="Remove").click()
    expect(olivia.get_by_text("Removed Clara Client: they no longer see")).to_be_visible()
    expect(olivia.locator("li.member").filter(has_text=CLIENT)).to_have_count(0)
    people.screenshot(olivia, "member-removed")
    clara.reload()
    expect(clara).to_have_url(signed_out)
    people.screenshot(clara, "removed-member-signed-out")
    replayed = people.chromium.new_context(base_url=url)
    replayed.add_cookies(saved_cookies)
    again = replayed.new_page()
    again.goto(f"/orgs/{org_id}/")
    expect(again).to_have_url(signed_out)
    replayed.close()
    cookie = {c["name"]: c["value"] for c in saved_cookies}
    api = requests.get(f"{url}/api/v1/orgs/{org_id}", cookies=cookie, timeout=10)
    assert api.status_code == 401, api.text[:500]
    with store.unit_of_work() as uow:
        clara_user = uow.users.by_email(CLIENT)
        assert clara_user is not None
        assert uow.memberships.role(clara_user.id, org_id) is None
