"""The templates screen in a browser on the demo's data: the list, a template's editor, its preview on a real open
invoice of a chosen client (subject, text, and the HTML in a sandboxed frame), a broken template refused at its line
with what was typed kept, and a good change saved; at 1440 and 390 px, axe clean.

The pages are checked (screenshot + axe) before a preview is rendered: once htmx has swapped in the preview's srcdoc
frame, Playwright never reports the page network-idle, which `check` waits for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect

from connector.library import items
from connector.library.resolve import TEMPLATE
from tests.web.pages.conftest import World

pytestmark = [pytest.mark.web, pytest.mark.browser]

ORG = 1


def _template(world: World, name: str) -> items.ItemView:
    with world.services.store.unit_of_work() as uow:
        return next(item for item in items.list_items(uow, ORG, TEMPLATE) if item.name == name)


@pytest.mark.parametrize("width", ["desktop", "phone"])
def test_the_templates_and_an_editor_at_both_widths(
    browse: Callable[..., Any], check: Callable[[Any, str], None], width: str
) -> None:
    page = browse(width)
    page.goto(f"/orgs/{ORG}/templates")
    expect(page.get_by_role("heading", name="Templates", exact=True)).to_be_visible()
    listed = page.get_by_test_id("templates")
    for name in ("gentle_nudge", "due_today", "firm", "final_notice", "installment", "discount_offer"):
        expect(listed.get_by_role("link", name=name, exact=True)).to_be_visible()
    expect(listed).to_contain_text("cadence “standard”")
    check(page, "templates")

    listed.get_by_role("link", name="firm", exact=True).click()
    expect(page.get_by_role("heading", name="firm")).to_be_visible()
    expect(page.get_by_label("Client", exact=True)).to_have_value("1")
    check(page, "template-editor")


def test_preview_on_a_real_invoice_refuse_a_broken_line_then_save(browse: Callable[..., Any], world: World) -> None:
    firm = _template(world, "firm")
    page = browse("desktop")
    page.goto(f"/orgs/{ORG}/templates/{firm.id}")

    subject = page.get_by_label("Subject")
    subject.fill("Reminder: invoice {{ invoice.number }} for {{ customer_name }}")
    page.get_by_label("Client", exact=True).select_option(label="Thames Joinery Ltd")
    invoice = page.get_by_label("Open invoice")
    expect(invoice.locator("option").first).to_contain_text("TJ-")  # the invoices of the chosen client
    chosen = invoice.locator("option").nth(1)
    number = (chosen.text_content() or "").split(" · ")[0]
    customer = (chosen.text_content() or "").split(" · ")[1]
    invoice.select_option(index=1)
    page.get_by_role("button", name="Preview", exact=True).click()

    expect(page.get_by_test_id("rendered-subject")).to_have_text(f"Reminder: invoice {number} for {customer}")
    expect(page.get_by_test_id("rendered-text")).to_contain_text(number)
    frame = page.frame_locator("[data-testid=rendered-html]")
    expect(frame.locator("body")).to_contain_text(customer)
    expect(page.get_by_test_id("rendered-html")).to_have_attribute("sandbox", "")

    text = page.get_by_label("Plain text", exact=True)
    typed = "Hello {{ customer_name }},\n\nPlease pay {{ customer.nmae }} today.\n"
    text.fill(typed)
    page.get_by_role("button", name="Preview", exact=True).click()
    expect(page.get_by_test_id("preview")).to_contain_text("Plain text: line 3: uses a value that does not exist")

    page.get_by_role("button", name="Save as version 2").click()
    expect(page.get_by_test_id("refused")).to_contain_text("Not saved: the template does not work yet.")
    expect(page.get_by_test_id("error-text")).to_contain_text("line 3: uses a value that does not exist")
    expect(page.get_by_test_id("error-text")).to_contain_text("{{ customer.nmae }}")
    expect(page.get_by_label("Plain text", exact=True)).to_have_value(typed)
    expect(page.get_by_label("Subject")).to_have_value("Reminder: invoice {{ invoice.number }} for {{ customer_name }}")
    assert _template(world, "firm").version == 1

    page.get_by_label("Plain text", exact=True).fill("Hello {{ customer_name }},\n\nPlease pay {{ total }} today.\n")
    page.get_by_role("button", name="Save as version 2").click()
    expect(page.get_by_text("Saved “firm” as version 2. The next reminders use it.")).to_be_visible()
    saved = _template(world, "firm")
    assert saved.version == 2
    assert saved.body["subject.txt"] == "Reminder: invoice {{ invoice.number }} for {{ customer_name }}"
    assert saved.body["body.txt"] == "Hello {{ customer_name }},\n\nPlease pay {{ total }} today.\n"
