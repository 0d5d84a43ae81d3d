"""The customer page (issue 17) in a real browser on the demo's data: the link comes from a reminder the demo sent;
the customer (no sign-in) promises to pay, asks for a plan that the owner (signed in, in another browser context)
approves in the inbox and the customer is told by email, disputes an invoice, says another is paid; a changed or
expired link is refused with a page that says what to do; no route under /c/ reaches another customer's invoice,
whatever id is put in the URL. Screenshots at 1440 and 390 px, axe clean."""

from __future__ import annotations

import email
import re
from collections.abc import Callable
from datetime import timedelta
from email import policy
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy import func, select

from connector.bootstrap import customer_links
from connector.receivables.customer_page import load_page
from connector.storage.tables import Customer, CustomerRequest, Invoice, InvoiceOverride, PaymentPlan
from tests.web.pages.conftest import World
from web.customer_page import THROTTLE_KEY, PageThrottle

pytestmark = [pytest.mark.web, pytest.mark.browser]

LINK = re.compile(r"https?://[^\s\"'<>]+/c/([A-Za-z0-9_.\-]+)")


def _reminder_links(folder: Path) -> dict[str, str]:
    """Customer page tokens the demo's reminders carried, by recipient address (the latest message wins)."""
    found: dict[str, str] = {}
    for path in sorted((folder / "outbox").rglob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        body = message.get_body(("plain",))
        match = LINK.search(body.get_content() if body is not None else "")
        if match:
            found[str(message["To"])] = match.group(1)
    return found


def _customer_with_open_invoices(world: World, token: str) -> tuple[int, int, list[Invoice]]:
    """(connection id, customer id, their open invoices) of the customer a token names."""
    links = customer_links(world.services.settings)
    assert links is not None
    claim = links.read(token, world.clock.now())
    with world.services.store.unit_of_work() as uow:
        customer = uow.session.get(Customer, claim.customer_id)
        assert customer is not None
        invoices = list(
            uow.session.scalars(
                select(Invoice)
                .where(
                    Invoice.connection_id == claim.connection_id,
                    Invoice.customer_external_id == customer.external_id,
                    Invoice.status == "open",
                    Invoice.balance > 0,
                )
                .order_by(Invoice.due_date, Invoice.number, Invoice.id)
            )
        )
        uow.session.expunge_all()
    return claim.connection_id, claim.customer_id, invoices


def _pick(world: World) -> tuple[str, int, int, list[Invoice]]:
    """A customer whose reminder carried a link, who owes at least two invoices now and has not used the page yet
    (the demo's own customer page scenes are someone else), nor is in dispute."""
    for token in _reminder_links(world.folder).values():
        connection_id, customer_id, invoices = _customer_with_open_invoices(world, token)
        if len(invoices) < 2 or not _untouched(world, customer_id):
            continue
        # Other page tests share this world and may have put an invoice on a plan: those have no plan form.
        page = load_page(world.services.store, connection_id, customer_id, world.clock.now())
        free = {line.id for line in page.invoices if not (line.on_plan or line.disputed or line.plan_requested)}
        invoices = [invoice for invoice in invoices if invoice.id in free]
        if len(invoices) >= 2:
            return token, connection_id, customer_id, invoices
    raise AssertionError("no reminder of the demo links to a customer who owes two invoices")


def _untouched(world: World, customer_id: int) -> bool:
    with world.services.store.unit_of_work() as uow:
        customer = uow.session.get(Customer, customer_id)
        asked = uow.session.scalar(
            select(func.count(CustomerRequest.id)).where(CustomerRequest.customer_id == customer_id)
        )
        disputed = uow.session.scalar(
            select(func.count(InvoiceOverride.id)).where(
                InvoiceOverride.dispute.is_(True),
                InvoiceOverride.invoice_external_id.in_(
                    select(Invoice.external_id).where(
                        Invoice.customer_external_id == (customer.external_id if customer else "")
                    )
                ),
            )
        )
        return customer is not None and not customer.dispute and not asked and not disputed


def _open_actions(page: Any, number: str) -> None:
    """Unfold an invoice's "Something about this invoice?" forms (clicking an unfolded one would fold it)."""
    details = page.get_by_test_id(f"actions-{number}")
    expect(details).to_be_visible()
    if not details.evaluate("element => element.open"):
        details.locator("summary").click()
    expect(details.locator("form").first).to_be_visible()


def _others(world: World, connection_id: int, customer_id: int) -> list[int]:
    """Invoice ids the link must never reach: other customers' (this client's and the other client's), paid ones."""
    with world.services.store.unit_of_work() as uow:
        customer = uow.session.get(Customer, customer_id)
        assert customer is not None
        others = list(
            uow.session.scalars(
                select(Invoice.id).where(Invoice.customer_external_id != customer.external_id).order_by(Invoice.id)
            )
        )
        paid = list(
            uow.session.scalars(
                select(Invoice.id).where(
                    Invoice.connection_id == connection_id,
                    Invoice.customer_external_id == customer.external_id,
                    Invoice.status != "open",
                )
            )
        )
        other_clients = [i for i in others if i not in paid]
        highest = uow.session.scalar(select(func.max(Invoice.id))) or 0
    return [*other_clients[:3], *other_clients[-3:], *paid[:2], highest + 1, 0, 2**31 - 1, 2**31]


def test_the_customer_page_from_promise_to_an_approved_plan(
    world: World, chromium: Any, browse: Callable[..., Any], check: Callable[[Any, str], None]
) -> None:
    token, connection_id, customer_id, invoices = _pick(world)
    first, second = invoices[0], invoices[1]
    today = world.clock.now().date()
    customer_context = chromium.new_context(viewport={"width": 1440, "height": 900}, base_url=world.url)
    try:
        page = customer_context.new_page()
        page.goto(f"/c/{token}")
        expect(page.get_by_role("heading", name=re.compile("^Invoices for "))).to_be_visible()
        expect(page.get_by_test_id(f"invoice-{first.number}")).to_be_visible()
        check(page, "customer-page")

        # Promise to pay in a week.
        page.get_by_label("I will pay by").fill((today + timedelta(days=7)).isoformat())
        page.get_by_role("button", name="Promise to pay").click()
        expect(page.get_by_test_id("flash")).to_contain_text("we noted that you will pay by")
        expect(page.get_by_test_id("promise-noted")).to_be_visible()

        # Dispute the first invoice; what they type comes back as text, never markup.
        _open_actions(page, first.number)
        page.get_by_test_id(f"dispute-form-{first.number}").get_by_label("What is wrong?").fill(
            "<b>Not ordered</b> & never delivered"
        )
        page.get_by_role("button", name="Dispute this invoice").first.click()
        expect(page.get_by_test_id("flash")).to_contain_text(f"invoice {first.number} is marked as disputed")
        expect(page.get_by_test_id(f"invoice-{first.number}")).to_contain_text("In dispute")
        expect(page.get_by_test_id("requests")).to_contain_text("“<b>Not ordered</b> & never delivered”")

        # Say the second invoice is already paid.
        _open_actions(page, second.number)
        paid_form = page.get_by_test_id(f"paid-form-{second.number}")
        paid_form.get_by_label("Paid on").fill((today - timedelta(days=2)).isoformat())
        paid_form.get_by_label("Payment reference").fill("BACS 88120")
        paid_form.get_by_role("button", name="Tell us it is paid").click()
        expect(page.get_by_test_id("flash")).to_contain_text(f"look for your payment for invoice {second.number}")
        expect(page.get_by_test_id(f"invoice-{second.number}")).to_contain_text("Payment reported")

        # Ask for a plan on the second invoice: three monthly installments from next week.
        _open_actions(page, second.number)
        plan_form = page.get_by_test_id(f"plan-form-{second.number}")
        plan_form.get_by_label("Installments").select_option("3")
        plan_form.get_by_label("First payment on").fill((today + timedelta(days=7)).isoformat())
        plan_form.get_by_role("button", name="Ask for this plan").click()
        expect(page.get_by_test_id("flash")).to_contain_text("request for a payment plan")
        expect(page.get_by_test_id(f"invoice-{second.number}")).to_contain_text("Plan requested")
        check(page, "customer-page-told")

        with world.services.store.unit_of_work() as uow:
            kinds = sorted(
                r.kind
                for r in uow.session.scalars(select(CustomerRequest).where(CustomerRequest.customer_id == customer_id))
            )
            override = uow.session.scalars(
                select(InvoiceOverride).where(
                    InvoiceOverride.connection_id == connection_id,
                    InvoiceOverride.invoice_external_id == first.external_id,
                )
            ).one()
            customer = uow.session.get(Customer, customer_id)
            assert customer is not None
            assert customer.promise_to_pay_until == today + timedelta(days=7)
        assert kinds == ["dispute", "paid", "plan", "promise"]
        assert (override.dispute, override.dispute_reason) == (True, "<b>Not ordered</b> & never delivered")

        # The owner approves the plan in the inbox, as asked.
        owner = browse()
        owner.goto(f"/orgs/{_org_of(world, connection_id)}/inbox#group-requests")
        requests = owner.get_by_test_id("group-requests")
        expect(requests).to_contain_text(f"asks for a payment plan on {second.number}")
        expect(requests).to_contain_text(f"disputes {first.number}")
        expect(requests).to_contain_text(f"says {second.number} is paid")
        check(owner, "inbox-customer-requests")
        plan_item = requests.locator("li.inbox-item", has_text="asks for a payment plan")
        plan_item.get_by_role("button", name="Approve…").click()
        plan_item.get_by_role("button", name="Agree this plan").click()
        expect(owner.get_by_text("Agreed the payment plan on")).to_be_visible()

        with world.services.store.unit_of_work() as uow:
            plan = uow.session.scalars(
                select(PaymentPlan).where(PaymentPlan.invoice_external_id == second.external_id)
            ).one()
            assert (plan.state, len(plan.installments)) == ("active", 3)
        told = [
            m
            for m in (
                email.message_from_bytes(p.read_bytes(), policy=policy.default)
                for p in (world.folder / "outbox").rglob("*.eml")
            )
            if m["Subject"] == f"Your payment plan for invoice {second.number} is agreed"
        ]
        assert len(told) == 1

        page.reload()
        expect(page.get_by_test_id("request-plan-approved")).to_contain_text("agreed")
        expect(page.get_by_test_id(f"invoice-{second.number}")).to_contain_text("Payment plan")
    finally:
        customer_context.close()


def _org_of(world: World, connection_id: int) -> int:
    with world.services.store.unit_of_work() as uow:
        connection = uow.connections.by_id(connection_id)
        assert connection is not None
        return connection.organization_id


def test_a_changed_or_expired_link_is_refused_and_no_route_reaches_another_customers_invoice(
    world: World, chromium: Any, check: Callable[[Any, str], None]
) -> None:
    token, connection_id, customer_id, invoices = _pick(world)
    links = customer_links(world.services.settings)
    assert links is not None
    for width, (w, h) in (("desktop", (1440, 900)), ("phone", (390, 844))):
        context = chromium.new_context(viewport={"width": w, "height": h}, base_url=world.url)
        try:
            page = context.new_page()
            page.nudge_width = width  # type: ignore[attr-defined]
            page.goto(f"/c/{token}")
            check(page, "customer-page")
            changed = token[:-1] + ("A" if token[-1] != "A" else "B")
            answer = page.goto(f"/c/{changed}")
            assert answer is not None
            assert answer.status == 403
            expect(page.get_by_test_id("customer-link-refused")).to_contain_text("latest email")
            check(page, "customer-link-changed")
            expired = links.token(connection_id, customer_id, world.clock.now() - timedelta(days=links.valid_days + 1))
            answer = page.goto(f"/c/{expired}")
            assert answer is not None
            assert answer.status == 410
            expect(page.get_by_role("heading", name="This link has expired")).to_be_visible()
            check(page, "customer-link-expired")
        finally:
            context.close()

    # Dozens of tries from one address would meet the page's rate limit first (shown at the end): for the ownership
    # checks, this app's throttle allows more.
    limited = world.app.extensions[THROTTLE_KEY]
    world.app.extensions[THROTTLE_KEY] = PageThrottle("memory://", "1000 per minute")
    context = chromium.new_context(base_url=world.url)
    try:
        page = context.new_page()
        page.goto(f"/c/{token}")
        csrf = page.locator("input[name=csrf_token]").first.get_attribute("value")
        own = invoices[0].id
        forms = {
            "plan": {"count": "3", "first": world.clock.now().date().isoformat(), "every": "month"},
            "dispute": {"reason": "not ours"},
            "paid": {"paid_on": world.clock.now().date().isoformat(), "reference": "x"},
        }
        before = _requests_and_disputes(world)
        reached = []
        for other in _others(world, connection_id, customer_id):
            for route in ("pdf", "pay"):
                status = page.request.get(f"/c/{token}/invoices/{other}/{route}", max_redirects=0).status
                if status != 404:
                    reached.append(f"GET {route} {other}: {status}")
            for route, form in forms.items():
                answer = page.request.post(
                    f"/c/{token}/invoices/{other}/{route}", form={"csrf_token": csrf or "", **form}, max_redirects=0
                )
                if answer.status != 404:
                    reached.append(f"POST {route} {other}: {answer.status}")
        assert reached == []
        assert _requests_and_disputes(world) == before
        # The customer's own invoice under the same routes does answer (the 404s above are about ownership).
        assert (
            page.request.post(
                f"/c/{token}/invoices/{own}/dispute", form={"csrf_token": csrf or "", "reason": "x"}, max_redirects=0
            ).status
            == 303
        )
        # The customer's statement comes as a PDF (from the store, in their locale); under another token, refused.
        statement = page.request.get(f"/c/{token}/statement.pdf")
        assert (statement.status, statement.headers["content-type"]) == (200, "application/pdf")
        assert statement.body().startswith(b"%PDF")
        assert page.request.get(f"/c/{token[:-2]}xx/statement.pdf").status == 403
        # The configured limit (30 a minute per link and per address): over it, 429 with Retry-After.
        world.app.extensions[THROTTLE_KEY] = limited
        answers = [page.request.get(f"/c/{token}") for _ in range(31)]
        assert answers[-1].status == 429
        assert int(answers[-1].headers["retry-after"]) > 0
        assert "Wait a few minutes" in answers[-1].text()
    finally:
        world.app.extensions[THROTTLE_KEY] = limited
        context.close()


def _requests_and_disputes(world: World) -> tuple[int, int]:
    with world.services.store.unit_of_work() as uow:
        requests = uow.session.scalar(select(func.count(CustomerRequest.id))) or 0
        disputes = uow.session.scalar(select(func.count(InvoiceOverride.id)).where(InvoiceOverride.dispute.is_(True)))
        return requests, disputes or 0
