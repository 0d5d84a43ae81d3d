"""The invoices screen in a real browser on the demo's data: the list, a filter (the htmx swap), the pages, an
invoice's story and one of its emails exactly as sent (the demo ran through the real executor, so its reminders
were kept), at 1440 and 390 px, axe clean."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy import func, select

from connector.storage.tables import Connection, Invoice, PaymentPlan, SentMessage
from tests.web.pages.conftest import World

pytestmark = [pytest.mark.web, pytest.mark.browser]


def _hudson(world: World) -> tuple[int, int]:
    """(organization id, connection id) of the demo's QuickBooks company."""
    with world.services.store.unit_of_work() as uow:
        connection = uow.session.scalars(select(Connection).where(Connection.provider == "quickbooks")).one()
        return connection.organization_id, connection.id


def _reminded(world: World, connection_id: int) -> tuple[int, str, SentMessage]:
    """An open invoice of the client that was reminded (its id and number) and the latest email kept about it."""
    with world.services.store.unit_of_work() as uow:
        emails = list(
            uow.session.scalars(
                select(SentMessage)
                .where(SentMessage.connection_id == connection_id, SentMessage.state == "sent")
                .order_by(SentMessage.sent_at.desc())
            )
        )
        invoices = {
            row.external_id: row
            for row in uow.session.scalars(
                select(Invoice).where(Invoice.connection_id == connection_id, Invoice.status == "open")
            )
        }
        for kept in emails:
            for external_id in kept.invoice_external_ids:
                if external_id in invoices:
                    return invoices[external_id].id, invoices[external_id].number, kept
    raise AssertionError("the demo kept no email about an open invoice")


@pytest.mark.parametrize("width", ["desktop", "phone"])
def test_list_filter_page_open_an_invoice_and_its_email(
    browse: Callable[..., Any], check: Callable[[Any, str], None], world: World, width: str
) -> None:
    org_id, connection_id = _hudson(world)
    with world.services.store.unit_of_work() as uow:
        total = uow.session.scalar(select(func.count()).where(Invoice.connection_id == connection_id))
        planned = uow.session.scalar(
            select(func.count(func.distinct(PaymentPlan.invoice_external_id))).where(
                PaymentPlan.connection_id == connection_id, PaymentPlan.state == "active"
            )
        )
    assert total is not None
    assert total > 50
    invoice_id, number, kept = _reminded(world, connection_id)
    page = browse(width)
    base = f"/orgs/{org_id}/clients/{connection_id}/invoices"

    page.goto(base)
    expect(page.get_by_role("heading", name="Invoices", exact=False).first).to_be_visible()
    rows = page.locator("table.invoice-table tbody tr")
    expect(rows).to_have_count(50)
    check(page, "invoices")

    # Pages: next, then back to the same first page.
    first_number = rows.first.locator("td").first.inner_text()
    page.get_by_role("button", name="Next →").click()
    expect(page.get_by_role("button", name="← Previous")).to_be_visible()
    expect(rows.first.locator("td").first).not_to_have_text(first_number)
    page.get_by_role("button", name="← Previous").click()
    expect(rows.first.locator("td").first).to_have_text(first_number)

    # A filter through the form (htmx swaps the table and keeps the URL shareable).
    page.get_by_label("Payment plan").select_option("yes")
    page.get_by_role("button", name="Show invoices").click()
    expect(page).to_have_url(re.compile(rf"{re.escape(base)}\?.*plan=yes"))
    expect(rows).to_have_count(planned or 0)
    for text in rows.locator("td.badges").all_inner_texts():
        assert "Payment plan" in text

    # Search the reminded invoice and open it.
    page.get_by_label("Payment plan").select_option("")
    page.get_by_label("Search").fill(number)
    page.get_by_role("button", name="Show invoices").click()
    expect(rows).to_have_count(1)
    page.get_by_role("link", name=number, exact=True).click()
    expect(page.get_by_role("heading", name=f"Invoice {number}")).to_be_visible()
    expect(page.get_by_role("heading", name="What happened")).to_be_visible()
    story = page.locator("ol.story").last
    expect(story).to_contain_text("Reminder sent to")
    expect(story).to_contain_text(f"Subject: “{kept.subject}”")
    assert page.url.endswith(f"{base}/{invoice_id}")
    check(page, "invoice")

    # The email exactly as sent: its headers, its HTML part in a sandboxed frame, its text, the .eml.
    page.locator(f'a[href="{base}/{invoice_id}/emails/{kept.id}"]').first.click()
    expect(page.get_by_role("heading", name=kept.subject)).to_be_visible()
    headers = page.locator("dl.email-headers")
    expect(headers).to_contain_text(kept.to_addresses[0])
    expect(headers).to_contain_text("billing@nudge.example")
    frame = page.locator("iframe.email-html")
    expect(frame).to_have_attribute("sandbox", "")
    expect(page.frame_locator("iframe.email-html").locator("body")).to_contain_text(number)
    # the whole email shows: the frame is as tall as its content (sized on the server, no script), within a step
    frame_height = frame.evaluate("frame => frame.clientHeight")
    email_height = page.frame_locator("iframe.email-html").locator("html").evaluate("html => html.scrollHeight")
    assert email_height <= frame_height <= email_height * 1.6 + 120, (email_height, frame_height)
    expect(page.get_by_role("link", name="Open the email in its own tab")).to_have_attribute(
        "href", f"{base}/{invoice_id}/emails/{kept.id}/body.html"
    )
    expect(page.locator("pre.email-text")).to_contain_text(number)
    check(page, "invoice-email")
    with page.expect_download() as download:
        page.get_by_role("button", name="Download the email (.eml)").click()
    path = download.value.path()
    with open(path, "rb") as handle:
        assert handle.read() == kept.raw  # byte for byte what was handed over
