"""The whole journey of the issue's acceptance, in one browser session, at 1440 and 390 px.

Sign in → overview → client → invoices → an invoice's story → the email exactly as sent → its customer → pause and
dispute → the payment plan wizard → a cadence edited with its preview and impact → a template previewed on a real
invoice → the inbox: approve, complete a call, mark an uncertain email sent → a client's sender changed → sign out.
The demo's data (tests/web/pages/conftest.py); the only thing added is one email whose send is uncertain (a crash
between the hand-over and the answer), which the demo never produces.

Every page the journey passes is screenshot and checked by axe, at both widths, in its own screen's test (overview,
client, invoices, customers, cadences, templates, inbox, settings): the journey does not check them again.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from connector.domain.actions import ActionKind
from connector.storage.tables import Action as ActionRow
from connector.storage.tables import Connection, Customer, Invoice, PaymentPlan, SentMessage, Task
from tests.web.pages.conftest import World
from tests.web.pages.test_inbox import _action, submit

pytestmark = [pytest.mark.web, pytest.mark.browser]

HUDSON = "Hudson Valley Design Co."
THAMES = "Thames Joinery Ltd"


def _story_invoice(world: World) -> tuple[int, int, str, int, str, int]:
    """(org, client, invoice id, number, customer name, email id) of an open Hudson invoice that was reminded,
    has no plan yet, and whose customer is neither paused nor disputed."""
    with world.services.store.unit_of_work() as uow:
        connection = uow.session.scalars(select(Connection).where(Connection.name == HUDSON)).one()
        planned = set(
            uow.session.scalars(
                select(PaymentPlan.invoice_external_id).where(
                    PaymentPlan.connection_id == connection.id, PaymentPlan.state == "active"
                )
            )
        )
        quiet = {
            row.external_id: row
            for row in uow.session.scalars(select(Customer).where(Customer.connection_id == connection.id))
            if not row.dispute and not row.excluded and row.paused_until is None and row.promise_to_pay_until is None
        }
        emails = uow.session.scalars(
            select(SentMessage)
            .where(SentMessage.connection_id == connection.id, SentMessage.state == "sent")
            .order_by(SentMessage.id.desc())
        )
        for email in emails:
            for external_id in email.invoice_external_ids:
                invoice = uow.session.scalars(
                    select(Invoice).where(
                        Invoice.connection_id == connection.id,
                        Invoice.external_id == external_id,
                        Invoice.status == "open",
                    )
                ).first()
                if invoice and external_id not in planned and invoice.customer_external_id in quiet:
                    customer = quiet[invoice.customer_external_id]
                    return (
                        connection.organization_id,
                        connection.id,
                        invoice.id,
                        invoice.number,
                        customer.name,
                        email.id,
                    )
    raise AssertionError("the demo reminded no open invoice of a quiet customer")


def _go(page: Any, locator: Any) -> None:
    """Follow a link or press a form's button and wait for the next page (stylesheets included)."""
    submit(page, locator)


@pytest.mark.parametrize("width", ["desktop", "phone"])
def test_the_journey_through_every_screen(browse: Callable[..., Any], world: World, width: str) -> None:
    org_id, client_id, invoice_id, number, customer, email_id = _story_invoice(world)
    with world.services.store.unit_of_work() as uow:
        invoice = uow.session.get(Invoice, invoice_id)
        assert invoice is not None
        uow.session.expunge(invoice)
        approval = uow.session.scalars(
            select(ActionRow.id).where(ActionRow.state == "awaiting_approval").order_by(ActionRow.id)
        ).first()
        call = uow.session.scalars(
            select(Task.id).where(Task.state == "open", Task.kind == "call").order_by(Task.id)
        ).first()
    assert approval is not None, "the demo leaves an action waiting for approval"
    assert call is not None, "the demo leaves a call to make"
    uncertain = _action(
        world,
        invoice,
        "journey-uncertain",
        ActionKind.REMIND,
        "uncertain",
        "the mail server took the whole message but its reply never came; it may have been delivered",
    )

    # Sign in: the overview of every client.
    page = browse(width)
    expect(page.get_by_role("heading", name="Clients")).to_be_visible()
    expect(page.get_by_role("link", name=THAMES)).to_be_visible()

    # A client, then its invoices, then one invoice's whole story and the email exactly as sent.
    _go(page, page.get_by_role("link", name=HUDSON))
    expect(page.get_by_role("heading", name=HUDSON, level=1)).to_be_visible()
    _go(page, page.get_by_role("link", name=f"All invoices of {HUDSON}"))
    page.get_by_label("Search").fill(number)
    _go(page, page.get_by_role("button", name="Show invoices"))
    _go(page, page.get_by_role("link", name=number, exact=True))
    expect(page.get_by_role("heading", name=f"Invoice {number}")).to_be_visible()
    expect(page.get_by_role("heading", name="What happened")).to_be_visible()
    base = f"/orgs/{org_id}/clients/{client_id}/invoices/{invoice_id}"
    _go(page, page.locator(f'a[href="{base}/emails/{email_id}"]').first)
    expect(page.locator("dl.email-headers")).to_be_visible()
    expect(page.frame_locator("iframe.email-html").locator("body")).to_contain_text(number)

    # The customer: pause, dispute (then resolve), and a payment plan through the wizard.
    page.goto(base)
    _go(page, page.get_by_role("link", name=customer, exact=True).first)
    expect(page.get_by_role("heading", level=1)).to_have_text(customer)
    page.locator("#pause").get_by_label("Pause until").fill("2026-12-15")
    _go(page, page.locator("#pause").get_by_role("button", name="Pause reminders"))
    expect(page.locator(".flash-success")).to_have_text(f"Reminders to {customer} paused until Dec 15, 2026.")
    page.locator("#dispute").get_by_label("What does the customer dispute?").fill("Says the order was short")
    _go(page, page.locator("#dispute").get_by_role("button", name="Mark as disputed"))
    expect(page.get_by_test_id("in-effect")).to_contain_text("Says the order was short")
    _go(page, page.locator("#dispute").get_by_role("button", name="Resolve the dispute"))
    _go(page, page.locator("#pause").get_by_role("button", name="Resume reminders now"))
    _go(page, page.get_by_role("link", name=f"Change terms of {number}", exact=True))
    _go(page, page.get_by_role("button", name="Set up a payment plan"))
    page.get_by_label("First installment on").fill(date(2026, 12, 7).isoformat())
    _go(page, page.get_by_role("button", name="Propose installments"))
    expect(page.get_by_test_id("plan-total")).to_contain_text("Adds up exactly")
    _go(page, page.get_by_role("button", name="Save the plan"))
    expect(page.locator(".flash-success")).to_contain_text(f"Payment plan for invoice {number} saved")

    # A cadence: edit a step, preview it on a client, see the impact across clients, save a new version.
    _go(page, page.get_by_role("navigation", name="Sections").get_by_role("link", name="Cadences"))
    _go(page, page.get_by_test_id("cadences").get_by_role("link", name="standard"))
    step = page.get_by_test_id("step").nth(2)
    step.locator("summary").click()
    step.get_by_label("Days from the due date").fill("5")
    page.get_by_label("Client", exact=True).select_option(label=THAMES)
    expect(page.get_by_test_id("preview")).to_contain_text("Over the next 30 days")
    page.get_by_role("button", name="Show the impact").click()
    expect(page.get_by_test_id("impact")).to_contain_text("Over the next 14 days")
    _go(page, page.get_by_role("button", name="Save as version 2").first)
    expect(page.get_by_text("Saved “standard” as version 2. It applies from the next plan.")).to_be_visible()

    # A template: previewed on a real open invoice of a chosen client.
    _go(page, page.get_by_role("navigation", name="Sections").get_by_role("link", name="Templates"))
    _go(page, page.get_by_role("link", name="firm", exact=True).first)
    page.get_by_label("Client", exact=True).select_option(label=THAMES)
    # The client's open invoices come in by htmx: preview only once they are there.
    expect(page.get_by_label("Open invoice").locator("option").first).to_contain_text("TJ-")
    page.get_by_role("button", name="Preview", exact=True).click()
    expect(page.get_by_test_id("rendered-subject")).to_contain_text("TJ-", timeout=15_000)
    expect(page.frame_locator("[data-testid=rendered-html]").locator("body")).not_to_be_empty()

    # The inbox: approve an action, complete a call with a note, mark the uncertain email sent.
    _go(page, page.get_by_role("navigation", name="Sections").get_by_role("link", name="Inbox"))
    page.get_by_test_id(f"approval-{approval}").get_by_role("checkbox").check()
    _go(page, page.get_by_role("button", name="Approve selected"))
    expect(page.get_by_role("status").filter(has_text="Approved 1 action")).to_be_visible()
    task = page.get_by_test_id(f"calls-{call}")
    task.get_by_text("Complete…").click()
    task.get_by_label("What happened?").fill("Spoke to their bookkeeper: paying on Friday")
    _go(page, task.get_by_role("button", name="Complete the task"))
    expect(page.get_by_test_id(f"calls-{call}")).to_have_count(0)
    _go(page, page.get_by_test_id(f"uncertain-{uncertain}").get_by_role("button", name="Mark sent"))
    expect(page.get_by_test_id(f"uncertain-{uncertain}")).to_have_count(0)

    # Settings: the sender Thames Joinery's customers see.
    _go(page, page.get_by_role("navigation", name="Sections").get_by_role("link", name="Settings"))
    _go(page, page.get_by_role("link", name=f"Settings of {THAMES}"))
    page.get_by_label("From name").fill("Thames Joinery Accounts")
    page.get_by_label("Reply-To address").fill("accounts@thames-joinery.example")
    _go(page, page.get_by_role("button", name="Save settings"))
    expect(page.get_by_role("status").filter(has_text=f"Saved {THAMES}")).to_be_visible()

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()

    with world.services.store.unit_of_work() as uow:
        states = {
            row.id: row.state
            for row in uow.session.scalars(select(ActionRow).where(ActionRow.id.in_([approval, uncertain])))
        }
        assert states[uncertain] == "done"
        assert states[approval] != "awaiting_approval"
        done_call = uow.session.get(Task, call)
        assert done_call is not None
        assert done_call.state == "done"
        assert uow.session.scalars(
            select(PaymentPlan).where(PaymentPlan.connection_id == client_id, PaymentPlan.state == "active")
        ).first()
