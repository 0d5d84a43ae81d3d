"""The bench's ledgers in the emulators (child processes, reached over their admin APIs only).

Each tenant gets one customer with an email address and a few open invoices due 30 to 90 days ahead:
at rest nothing is due to be chased, so the measured window's work is the sync itself, plus what a
webhook's change brings. A change is either a customer's partial payment on an open invoice (visible in
Nudge's store as the invoice's lower balance) or an invoice a user enters that was already 10 days overdue
(visible as a new invoice row; the cadence's catch-up then sends one reminder and writes one note for it
in the same turn, the effects `duplicate_effects` checks).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from providers.quickbooks.emulator.kit import QuickBooksKit
from providers.xero.emulator.kit import XeroKit

DUE_AHEAD_DAYS = (30, 60, 90)  # the seeded invoices' due dates, days from today
OVERDUE_DAYS = 10  # an entered invoice's due date, days before today
PAYMENT = Decimal("1.00")  # a webhook's partial payment

Kit = QuickBooksKit | XeroKit


@dataclass(frozen=True)
class Tenant:
    """One seeded QuickBooks company or Xero organisation: what a change needs to name."""

    provider: str
    tenant_id: str
    customer_id: str
    grant: dict[str, Any]


@dataclass(frozen=True)
class Change:
    """A change made in a ledger: the invoice it touched and what Nudge's store must show once synced."""

    provider: str
    tenant_id: str
    invoice_id: str
    kind: str  # "payment" (the balance drops to `balance`) | "entered" (a new overdue invoice appears)
    balance: Decimal


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def _qbo_invoice(customer: str, number: str, amount: Decimal, issued: date, due: date) -> dict[str, Any]:
    line = {
        "DetailType": "SalesItemLineDetail",
        "Amount": str(amount),
        "Description": "Professional services",
        "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "Qty": 1, "UnitPrice": str(amount)},
    }
    return {
        "DocNumber": number,
        "CustomerRef": {"value": customer},
        "TxnDate": issued.isoformat(),
        "DueDate": due.isoformat(),
        "Line": [line],
    }


def _xero_invoice(contact: str, number: str, amount: Decimal, issued: date, due: date) -> dict[str, Any]:
    line = {"Description": "Joinery and fitting", "Quantity": 1, "UnitAmount": str(amount), "AccountCode": "200"}
    return {
        "Type": "ACCREC",
        "Status": "AUTHORISED",
        "InvoiceNumber": number,
        "Contact": {"ContactID": contact},
        "Date": issued.isoformat(),
        "DueDate": due.isoformat(),
        "LineAmountTypes": "NoTax",
        "LineItems": [line],
    }


def seed_tenant(kit: Kit, n: int, today: date) -> Tenant:
    """A tenant with one customer and len(DUE_AHEAD_DAYS) open invoices, and its OAuth grant."""
    name = f"Bench {kit.provider} {n}"
    email = f"ap{n}@customer-{kit.provider}.example"
    amounts = [Decimal(100 + n % 900 + k) for k in range(len(DUE_AHEAD_DAYS))]
    if kit.provider == "quickbooks":
        realm = str(kit.admin("companies", {"name": name})["realm"])
        customer = kit.admin(
            f"companies/{realm}/customers", {"DisplayName": f"Customer {n}", "PrimaryEmailAddr": {"Address": email}}
        )["Customer"]["Id"]
        for k, (days, amount) in enumerate(zip(DUE_AHEAD_DAYS, amounts, strict=True)):
            due = today + timedelta(days=days)
            body = _qbo_invoice(str(customer), f"B{n}-{k}", amount, due - timedelta(days=30), due)
            kit.admin(f"companies/{realm}/invoices", body)
        return Tenant(kit.provider, realm, str(customer), kit.grant(realm))
    contact = {"Name": f"Customer {n}", "EmailAddress": email}
    created = kit.admin("seed", {"tenants": [{"name": name, "contacts": [contact]}]})["tenants"][0]
    tenant, contact_id = str(created["tenantId"]), str(created["contacts"][0])
    invoices = [
        _xero_invoice(contact_id, f"B{n}-{k}", amount, today + timedelta(days=days - 30), today + timedelta(days=days))
        for k, (days, amount) in enumerate(zip(DUE_AHEAD_DAYS, amounts, strict=True))
    ]
    kit.admin("seed", {"tenants": [{"tenantId": tenant, "invoices": invoices}]})
    return Tenant(kit.provider, tenant, contact_id, kit.grant(tenant))


def pay(kit: Kit, tenant: str, invoice: str, balance: Decimal) -> Change:
    """The customer pays PAYMENT off `invoice` (whose balance was `balance`)."""
    if kit.provider == "quickbooks":
        kit.admin(f"companies/{tenant}/pay", {"invoice_id": invoice, "amount": str(PAYMENT)})
    else:
        kit.admin("payments", {"tenant": tenant, "invoice": invoice, "amount": str(PAYMENT)})
    return Change(kit.provider, tenant, invoice, "payment", balance - PAYMENT)


def enter_overdue_invoice(kit: Kit, tenant: Tenant, number: str, today: date) -> Change:
    """A user enters an invoice of the tenant's customer that fell due OVERDUE_DAYS ago."""
    due = today - timedelta(days=OVERDUE_DAYS)
    amount = Decimal("250.00")
    if kit.provider == "quickbooks":
        body = _qbo_invoice(tenant.customer_id, number, amount, due - timedelta(days=30), due)
        invoice = str(kit.admin(f"companies/{tenant.tenant_id}/invoices", body)["Invoice"]["Id"])
    else:
        body = _xero_invoice(tenant.customer_id, number, amount, due - timedelta(days=30), due)
        seeded = kit.admin("seed", {"tenants": [{"tenantId": tenant.tenant_id, "invoices": [body]}]})
        invoice = str(seeded["tenants"][0]["invoices"][0])
    return Change(kit.provider, tenant.tenant_id, invoice, "entered", amount)


def webhook_body(change: Change, at: datetime) -> bytes:
    """The provider's delivery for the change (QuickBooks' eventNotifications, Xero's events), stamped `at`."""
    if change.provider == "quickbooks":
        operation = "Create" if change.kind == "entered" else "Update"
        entity = {"name": "Invoice", "id": change.invoice_id, "operation": operation, "lastUpdated": _stamp(at) + "Z"}
        body: dict[str, Any] = {
            "eventNotifications": [{"realmId": change.tenant_id, "dataChangeEvent": {"entities": [entity]}}]
        }
    else:
        event = {
            "resourceUrl": f"https://api.xero.com/api.xro/2.0/Invoices/{change.invoice_id}",
            "resourceId": change.invoice_id,
            "eventDateUtc": _stamp(at),
            "eventType": "CREATE" if change.kind == "entered" else "UPDATE",
            "eventCategory": "INVOICE",
            "tenantId": change.tenant_id,
            "tenantType": "ORGANISATION",
        }
        body = {"events": [event], "firstEventSequence": 1, "lastEventSequence": 1, "entropy": "BENCHENTROPY"}
    return json.dumps(body, separators=(",", ":")).encode()


def note_duplicates(kit: Kit, tenant: str, invoice: str) -> tuple[int, int]:
    """(notes on the invoice, notes beyond the first of the same text): Nudge's notes as the ledger holds them."""
    if kit.provider == "quickbooks":
        import re

        listed = kit.admin(f"companies/{tenant}/invoices", method="GET")["Invoice"]
        [found] = [i for i in listed if str(i["Id"]) == invoice]
        markers = re.findall(r"\[nudge [0-9a-f]+\]", str(found.get("PrivateNote") or ""))
        return len(markers), len(markers) - len(set(markers))
    history = kit.admin(f"tenants/{tenant}/invoices/{invoice}", method="GET")["history"]
    notes = [str(record.get("Details", "")) for record in history if record.get("Changes") == "Note"]
    return len(notes), len(notes) - len(set(notes))
