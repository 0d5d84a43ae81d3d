"""The Customer screen in a real browser on the demo's data: the list and a customer at 1440 and 390 px (axe clean),
pause and dispute through the forms, the payment plan wizard end to end (a total that does not add up is refused,
then saved, shown and cancelled), recipients and the cadence override."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy import func, select

from connector.storage.tables import Connection, Customer, Invoice, PaymentPlan
from tests.web.pages.conftest import World

pytestmark = [pytest.mark.web, pytest.mark.browser]

CUSTOMER = "Harbor Florists"  # a Hudson Valley Design Co. customer with late invoices and no plan
INVOICE = "HV-1001"


def _ids(world: World, name: str = CUSTOMER) -> tuple[int, int, int]:
    """(organization, client, customer) ids of the demo's customer `name`."""
    with world.services.store.unit_of_work() as uow:
        customer = uow.session.scalars(select(Customer).where(Customer.name == name)).first()
        assert customer is not None
        connection = uow.session.get(Connection, customer.connection_id)
        assert connection is not None
        return connection.organization_id, connection.id, customer.id


def _customer(world: World, customer_id: int) -> Customer:
    with world.services.store.unit_of_work() as uow:
        row = uow.session.get(Customer, customer_id)
        assert row is not None
        uow.session.expunge(row)
        return row


def _open_customer(page: Any, world: World) -> str:
    """From the client's customer list to the customer; the customer page's path."""
    org_id, connection_id, customer_id = _ids(world)
    page.goto(f"/orgs/{org_id}/clients/{connection_id}/customers")
    _go(page.get_by_role("link", name=CUSTOMER, exact=True))
    expect(page.get_by_role("heading", level=1)).to_have_text(CUSTOMER)
    return f"/orgs/{org_id}/clients/{connection_id}/customers/{customer_id}"


def _go(locator: Any) -> None:
    """Click something that loads a page, and wait until that page has loaded: a locator polled while the
    page's own stylesheet is still loading forces a style pass without it (Pico's data: icons, refused by the CSP)."""
    with locator.page.expect_navigation():
        locator.click()


def _success(page: Any) -> Any:
    return page.locator(".flash-success")


@pytest.mark.parametrize("width", ["desktop", "phone"])
def test_the_list_a_customer_and_an_invoices_terms_at_both_widths(
    browse: Callable[..., Any], check: Callable[[Any, str], None], world: World, width: str
) -> None:
    page = browse(width)
    org_id, connection_id, _ = _ids(world)
    page.goto(f"/orgs/{org_id}/clients/{connection_id}/customers")
    expect(page.get_by_role("heading", level=1)).to_have_text("Customers of Hudson Valley Design Co.")
    with world.services.store.unit_of_work() as uow:
        customers = uow.session.scalar(
            select(func.count()).select_from(Customer).where(Customer.connection_id == connection_id)
        )
    expect(page.get_by_test_id("customers").get_by_role("link")).to_have_count(customers)  # every one (< a page)
    check(page, "customers-list")
    page.get_by_label("Search by name").fill("harbor")
    _go(page.get_by_role("button", name="Search"))
    expect(page.get_by_test_id("customers").get_by_role("link")).to_have_count(3)
    _go(page.get_by_role("link", name=CUSTOMER, exact=True))
    expect(page.get_by_role("heading", level=1)).to_have_text(CUSTOMER)
    expect(page.get_by_test_id("open-USD")).to_have_text("$21,780.91")
    expect(page.get_by_test_id("in-effect")).to_contain_text("Reminders follow the cadence.")
    expect(page.get_by_test_id("open-invoices").get_by_role("link", name=INVOICE, exact=True)).to_be_visible()
    expect(page.get_by_role("heading", name="Reminders sent")).to_be_visible()
    check(page, "customer")
    _go(page.get_by_role("link", name=f"Change terms of {INVOICE}", exact=True))
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"Invoice {INVOICE}")
    check(page, "customer-invoice")
    _go(page.get_by_role("button", name="Set up a payment plan"))
    expect(page.get_by_label("Number of installments")).to_have_value("3")
    check(page, "customer-plan-step1")
    _go(page.get_by_role("button", name="Propose installments"))
    expect(page.get_by_test_id("plan-total")).to_contain_text("Adds up exactly")
    check(page, "customer-plan-step2")


def test_pause_and_dispute_through_the_forms(browse: Callable[..., Any], world: World) -> None:
    page = browse("desktop")
    _, _, customer_id = _ids(world)
    _open_customer(page, world)
    pause = page.locator("#pause")
    pause.get_by_label("Pause until").fill("2099-01-01")
    _go(pause.get_by_role("button", name="Pause reminders"))
    expect(page.locator("#pause-paused_until-error")).to_contain_text("more than 10 years ahead")
    expect(page.locator("#pause").get_by_label("Pause until")).to_have_value("2099-01-01")
    assert _customer(world, customer_id).paused_until is None
    page.locator("#pause").get_by_label("Pause until").fill("2026-12-15")
    _go(page.locator("#pause").get_by_role("button", name="Pause reminders"))
    expect(_success(page)).to_have_text(f"Reminders to {CUSTOMER} paused until Dec 15, 2026.")
    expect(page.get_by_test_id("in-effect")).to_contain_text("No reminders until Dec 15, 2026.")
    assert str(_customer(world, customer_id).paused_until) == "2026-12-15"

    dispute = page.locator("#dispute")
    dispute.get_by_label("What does the customer dispute?").fill('Says the <b>flowers</b> arrived wilted & "late"')
    _go(dispute.get_by_role("button", name="Mark as disputed"))
    expect(_success(page)).to_have_text(
        f"{CUSTOMER} is marked as disputing: no reminders or fees until you resolve it."
    )
    expect(page.get_by_test_id("in-effect")).to_contain_text('Says the <b>flowers</b> arrived wilted & "late"')
    expect(page.get_by_test_id("changes")).to_contain_text("Disputed")
    row = _customer(world, customer_id)
    assert row.dispute
    assert row.dispute_reason == 'Says the <b>flowers</b> arrived wilted & "late"'
    _go(page.locator("#dispute").get_by_role("button", name="Resolve the dispute"))
    expect(_success(page)).to_have_text(f"The dispute with {CUSTOMER} is resolved: reminders follow the cadence again.")
    _go(page.locator("#pause").get_by_role("button", name="Resume reminders now"))
    expect(_success(page)).to_have_text(f"Reminders to {CUSTOMER} resumed.")
    expect(page.get_by_test_id("in-effect")).to_contain_text("Reminders follow the cadence.")
    row = _customer(world, customer_id)
    assert (row.dispute, row.paused_until) == (False, None)


def test_the_payment_plan_wizard_end_to_end(browse: Callable[..., Any], world: World) -> None:
    page = browse("desktop")
    _open_customer(page, world)
    expect(page.locator("#plans")).to_contain_text("No payment plan")
    _go(page.get_by_role("link", name=f"Change terms of {INVOICE}", exact=True))
    _go(page.get_by_role("button", name="Set up a payment plan"))
    page.get_by_label("Number of installments").fill("4")
    page.get_by_label("How often").select_option("fortnight")
    page.get_by_label("First installment on").fill("2026-12-04")
    _go(page.get_by_role("button", name="Propose installments"))
    amounts = page.get_by_role("textbox", name=re.compile(r"Amount of installment \d"))
    expect(amounts).to_have_count(4)
    expect(page.get_by_label("Date of installment 2")).to_have_value("2026-12-18")
    expect(page.get_by_test_id("plan-total")).to_contain_text("Adds up exactly")
    # Typing re-counts the total on the server (htmx) before anything is saved.
    page.get_by_label("Amount of installment 1").fill("1000.00")
    expect(page.get_by_test_id("plan-total")).to_contain_text("$4.40 short")
    _go(page.get_by_role("button", name="Save the plan"))
    expect(page.locator(".flash-error")).to_contain_text("4.40 USD short of the invoice's balance of 4017.61 USD")
    expect(page.get_by_label("Amount of installment 1")).to_have_value("1000.00")
    page.get_by_label("Amount of installment 1").fill("1e400")
    expect(page.get_by_test_id("plan-total")).to_contain_text("Not an amount: installment 1")
    _go(page.get_by_role("button", name="Add an installment"))
    expect(amounts).to_have_count(5)
    _go(page.get_by_role("button", name="Remove installment 5"))
    expect(amounts).to_have_count(4)
    page.get_by_label("Amount of installment 1").fill("1004.40")
    expect(page.get_by_test_id("plan-total")).to_contain_text("Adds up exactly")
    _go(page.get_by_role("button", name="Save the plan"))
    expect(_success(page)).to_have_text(
        f"Payment plan for invoice {INVOICE} saved: 4 installments adding up to $4,017.61, "
        "the first $1,004.40 on Dec 4, 2026."
    )
    plan_card = page.locator("#plans")
    expect(plan_card).to_contain_text(f"Invoice {INVOICE}")
    expect(plan_card.get_by_role("row")).to_have_count(5)
    expect(page.get_by_test_id("open-invoices")).to_contain_text("Payment plan")
    with world.services.store.unit_of_work() as uow:
        invoice = uow.session.scalars(select(Invoice).where(Invoice.number == INVOICE)).one()
        plan = uow.session.scalars(
            select(PaymentPlan).where(
                PaymentPlan.connection_id == invoice.connection_id,
                PaymentPlan.invoice_external_id == invoice.external_id,
            )
        ).one()
        assert plan.state == "active"
        assert sorted(str(item.amount) for item in plan.installments)[0].startswith("1004.4")
        plan_id = plan.id
    _go(plan_card.get_by_role("button", name="Cancel this plan"))  # the confirmation is accepted
    expect(_success(page)).to_have_text(
        f"The payment plan for invoice {INVOICE} is cancelled: reminders follow its due date again."
    )
    expect(page.locator("#plans")).to_contain_text("No payment plan")
    with world.services.store.unit_of_work() as uow:
        found = uow.session.get(PaymentPlan, plan_id)
        assert found is not None
        assert found.state == "cancelled"


def test_recipients_and_the_cadence_override(browse: Callable[..., Any], world: World) -> None:
    page = browse("phone")
    _, _, customer_id = _ids(world)
    _open_customer(page, world)
    form = page.locator("#recipients")
    form.get_by_label("To", exact=True).fill("pay@harbor.example, owner@harbor")
    _go(form.get_by_role("button", name="Save the addresses"))
    expect(page.locator("#recipients-recipients_to-error")).to_contain_text("not a deliverable address")
    expect(page.locator("#recipients").get_by_label("To", exact=True)).to_have_value("pay@harbor.example, owner@harbor")
    page.locator("#recipients").get_by_label("To", exact=True).fill("pay@harbor.example, owner@harbor.example")
    page.locator("#recipients").get_by_label("Copy to").fill("books@harbor.example")
    _go(page.locator("#recipients").get_by_role("button", name="Save the addresses"))
    expect(_success(page)).to_have_text(
        f"Reminders to {CUSTOMER} now go to pay@harbor.example, owner@harbor.example (copy to books@harbor.example)."
    )
    expect(page.locator(".customer-head")).to_contain_text("pay@harbor.example, owner@harbor.example")
    row = _customer(world, customer_id)
    assert row.recipients_to == ["pay@harbor.example", "owner@harbor.example"]
    assert row.recipients_cc == ["books@harbor.example"]

    page.locator("#cadence").get_by_label(f"Cadence for {CUSTOMER}").select_option(label="standard")
    _go(page.locator("#cadence").get_by_role("button", name="Save the cadence"))
    expect(_success(page)).to_have_text(f"{CUSTOMER} now follows the cadence “standard”.")
    expect(page.get_by_test_id("in-effect")).to_contain_text("set for this customer")
    assert _customer(world, customer_id).cadence_id is not None
    page.locator("#cadence").get_by_label(f"Cadence for {CUSTOMER}").select_option(index=0)
    _go(page.locator("#cadence").get_by_role("button", name="Save the cadence"))
    expect(_success(page)).to_have_text(f"{CUSTOMER} follows the client's cadence (“standard”) again.")
    assert _customer(world, customer_id).cadence_id is None
