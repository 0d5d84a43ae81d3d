"""The client page in a browser on the demo's data: figures, the charts (aging, DSO trend, collected per week,
recovery per step) with their tables for screen readers, what goes out next, the recent activity, the links to
the invoices, and Disconnect… asking first."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.web.pages.conftest import World

pytestmark = [pytest.mark.web, pytest.mark.browser]

THAMES = "Thames Joinery Ltd"


def _open_client(page: Any, name: str) -> None:
    page.get_by_role("link", name=name).click()
    expect(page.get_by_role("heading", name=name, level=1)).to_be_visible()


@pytest.mark.parametrize("width", ["desktop", "phone"])
def test_client_page_shows_figures_charts_upcoming_and_activity(
    browse: Callable[..., Any], check: Callable[[Any, str], None], width: str
) -> None:
    page = browse(width)
    _open_client(page, THAMES)
    expect(page.get_by_test_id("figure-receivables")).to_contain_text("£")
    expect(page.get_by_test_id("figure-dso")).to_contain_text(re.compile(r"\d+\.\d days"))
    expect(page.get_by_test_id("figure-people")).to_contain_text("open task")
    for heading in ("Aging", "DSO trend", "Collected per week", "Recovery per cadence step", "Next 7 days"):
        expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
    # every chart is an image with a name, and its figures are in a table for screen readers
    expect(page.get_by_role("img", name="Aging in GBP")).to_be_visible()
    expect(page.get_by_role("img", name="Aging in AUD")).to_have_count(0)  # other currencies in words below it
    expect(page.get_by_role("img", name="Payments by the step before them")).to_be_visible()
    expect(page.get_by_role("img", name="DSO week by week (GBP)")).to_be_visible()
    expect(page.get_by_role("img", name="Collected per week in GBP")).to_be_visible()
    expect(page.get_by_role("table", name="Aging in GBP")).to_have_count(1)
    expect(page.locator("#chart-aging-in-gbp rect.bar")).to_have_count(5)
    expect(page.locator("#chart-dso-week-by-week-gbp circle.dot")).not_to_have_count(0)
    # the recovery table names the steps that preceded payments
    expect(page.locator("table.recovery tbody tr")).not_to_have_count(0)
    # what goes out next, in words: "Reminder (firm) to Acme — INV-1001, Mon 30 Nov"
    forecast = page.get_by_test_id("forecast")
    expect(forecast.locator("li").first).to_be_visible()
    expect(forecast).to_contain_text(re.compile(r"Reminder \([a-z ]+\) to [A-Z][\w ]+ — TJ-\d+"))
    expect(forecast).to_contain_text(re.compile(r", (Mon|Tue|Wed|Thu|Fri|Sat|Sun) \d{1,2} (Nov|Dec)"))
    activity = page.get_by_test_id("activity")
    expect(activity.locator("li")).not_to_have_count(0)
    expect(activity).not_to_contain_text("turn")  # the worker's every turn is not news
    check(page, "client")


def test_client_page_links_to_its_invoices_and_asks_before_disconnecting(
    world: World, browse: Callable[..., Any]
) -> None:
    page = browse("desktop")
    _open_client(page, THAMES)
    invoices = page.get_by_role("button", name="Invoices", exact=True)  # a link styled as a button
    expect(invoices).to_have_attribute("href", re.compile(r"^/orgs/\d+/clients/\d+/invoices$"))
    page.get_by_role("button", name="Disconnect…").click()
    expect(page.get_by_role("heading", name=f"Disconnect {THAMES}?")).to_be_visible()
    page.get_by_role("link", name="Cancel").click()
    expect(page.get_by_role("heading", name="Clients")).to_be_visible()
    with world.services.store.unit_of_work() as uow:  # nothing was disconnected
        assert {c.status for c in uow.session.scalars(_connections())} == {"active"}


def _connections() -> Any:
    from sqlalchemy import select

    from connector.storage.tables import Connection

    return select(Connection)
