"""The overview in a browser on the demo's data: the frame every page shares, both clients with their money and
health, sorting and filtering through the query string, the way into a client, and the empty state of an
organization without clients."""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from playwright.sync_api import expect

from connector.accounts.users import create_user
from connector.domain.model import Role
from connector.receivables import reports
from connector.receivables.overview import overview
from tests.web.pages.conftest import DEMO_EMAIL, World
from web.pages.ui import money

pytestmark = [pytest.mark.web, pytest.mark.browser]

HUDSON = "Hudson Valley Design Co."
THAMES = "Thames Joinery Ltd"


def _client_rows(page: Any) -> Any:
    return page.locator("table.overview-table tbody tr")


def _aging(world: World) -> dict[tuple[str, str], Decimal]:
    """Open receivables per (client, currency) as the aging report (the API's) computes them."""
    with world.services.store.unit_of_work() as uow:
        org_id = next(org.id for org, _role in uow.organizations.for_user(_demo_user(uow)))
    rows = reports.aging(world.services.store, org_id, world.clock.now())
    return {(row.client, row.currency): row.total.amount for row in rows}


def _demo_user(uow: Any) -> int:
    user = uow.users.by_email(DEMO_EMAIL)
    assert user is not None
    return int(user.id)


@pytest.mark.parametrize("width", ["desktop", "phone"])
def test_overview_lists_every_client_with_money_per_currency(
    world: World, browse: Callable[..., Any], check: Callable[[Any, str], None], width: str
) -> None:
    aging = _aging(world)
    page = browse(width)
    expect(page.get_by_role("heading", name="Clients")).to_be_visible()
    # the frame every page shares: who is signed in, the main navigation (signing out: test_journey.py)
    expect(page.get_by_test_id("who")).to_have_count(1)
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    expect(_client_rows(page)).to_have_count(2)
    hudson = _client_rows(page).filter(has_text=HUDSON)
    expect(hudson.get_by_role("link", name=HUDSON)).to_be_visible()
    expect(hudson).to_contain_text(money(aging[(HUDSON, "USD")], "USD"))  # its home currency, then the others
    expect(hudson).to_contain_text(money(aging[(HUDSON, "EUR")], "EUR"))
    expect(hudson.get_by_test_id(re.compile(r"health-\d+"))).to_have_text(re.compile(r"Last synced \d+ h ago"))
    thames = _client_rows(page).filter(has_text=THAMES)
    expect(thames).to_contain_text(money(aging[(THAMES, "GBP")], "GBP"))
    # one totals line per currency, never added across currencies
    currencies = sorted({currency for _client, currency in aging})
    expect(page.locator("table.overview-table tfoot tr")).to_have_count(len(currencies))
    for currency in currencies:
        total = sum((amount for (_client, code), amount in aging.items() if code == currency), Decimal(0))
        expect(page.get_by_test_id(f"total-{currency}")).to_contain_text(money(total, currency))
    check(page, "overview")


def test_sort_and_filter_through_the_query_string(
    world: World, browse: Callable[..., Any], check: Callable[[Any, str], None]
) -> None:
    with world.services.store.unit_of_work() as uow:
        org_id = next(org.id for org, _role in uow.organizations.for_user(_demo_user(uow)))
    lines = overview(world.services.store, org_id, world.clock.now())
    by_dso = [line.name for line in sorted(lines, key=lambda line: line.dso.days or 0, reverse=True)]
    page = browse("desktop")
    expect(_client_rows(page).first).to_contain_text(HUDSON)  # by name
    # a second click on the current column turns the order round
    page.get_by_role("link", name="Client", exact=True).click()
    expect(page).to_have_url(re.compile(r"dir=desc"))
    expect(_client_rows(page).first).to_contain_text(THAMES)
    expect(page.get_by_role("columnheader", name="Client", exact=True)).to_have_attribute("aria-sort", "descending")

    page.get_by_role("link", name="DSO", exact=True).click()  # largest first
    expect(page).to_have_url(re.compile(r"sort=dso"))
    expect(_client_rows(page).first).to_contain_text(by_dso[0])
    expect(page.get_by_role("columnheader", name="DSO", exact=True)).to_have_attribute("aria-sort", "descending")
    page.get_by_role("link", name="DSO", exact=True).click()
    expect(_client_rows(page).first).to_contain_text(by_dso[-1])

    page.get_by_label("Client name", exact=True).fill("thames")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"q=thames"))
    expect(page).to_have_url(re.compile(r"sort=dso"))  # the order is kept
    expect(_client_rows(page)).to_have_count(1)
    expect(page.get_by_role("status").filter(has_text="client")).to_contain_text("1 of 2 clients match")

    page.get_by_role("link", name="Clear filters").click()
    page.get_by_label("Currency", exact=True).select_option("USD")
    page.get_by_role("button", name="Filter").click()
    expect(_client_rows(page)).to_have_count(1)
    expect(_client_rows(page).first).to_contain_text(HUDSON)
    expect(_client_rows(page).first).not_to_contain_text("€")  # only the currency asked for
    expect(page.get_by_test_id("total-USD")).to_be_visible()
    expect(page.get_by_test_id("total-EUR")).to_have_count(0)

    page.get_by_label("Currency", exact=True).select_option("")
    page.get_by_label("Sync", exact=True).select_option("attention")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_text("No clients match these filters")).to_be_visible()
    check(page, "overview-no-match")
    page.get_by_role("link", name="Clear filters").first.click()
    expect(_client_rows(page)).to_have_count(2)


def test_a_client_name_opens_its_page(browse: Callable[..., Any]) -> None:
    page = browse("phone")
    page.get_by_role("link", name=THAMES).click()
    expect(page.get_by_role("heading", name=THAMES, level=1)).to_be_visible()
    expect(page).to_have_url(re.compile(r"/orgs/\d+/clients/\d+/$"))
    page.get_by_role("navigation", name="breadcrumb").get_by_role("link", name="Overview").click()
    expect(page.get_by_role("heading", name="Clients")).to_be_visible()


@pytest.mark.parametrize("width", ["desktop", "phone"])
def test_an_organization_without_clients_says_to_connect_one(
    world: World, browse: Callable[..., Any], check: Callable[[Any, str], None], width: str
) -> None:
    with world.services.store.unit_of_work() as uow:
        org = uow.organizations.add("Fresh Books Practice")
        user = create_user(uow, "fresh@example.com", "a long enough password", display_name="Fresh Owner")
        uow.memberships.add(user.id, org.id, Role.OWNER)
        uow.commit()
    page = browse(width, email="fresh@example.com", password="a long enough password")
    expect(page.get_by_role("heading", name="Fresh Books Practice")).to_be_visible()
    expect(page.get_by_text("No clients connected yet")).to_be_visible()
    expect(page.get_by_role("button", name=re.compile(r"^Connect "))).not_to_have_count(0)
    expect(page.locator("table")).to_have_count(0)
    check(page, "overview-empty")
