"""One emulated Xero organisation: contacts, invoices, credit notes, payments and their rules.

Rules follow docs/provider-api-facts.md §2.2-§2.5. Where the doc marks a behaviour [unverified], the emulator
picks the stricter reading and says so in a comment. Callers hold `XeroState.lock`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from providers.xero.emulator.wire import money, new_id, parse_amount, parse_date

# Tax rates (percent) by TaxType; a NZ-style organisation (docs/payloads samples are NZD).
DEFAULT_TAX_RATES: dict[str, Decimal] = {
    "NONE": Decimal(0),
    "OUTPUT": Decimal(15),
    "OUTPUT2": Decimal(15),
    "EXEMPTOUTPUT": Decimal(0),
    "ZERORATEDOUTPUT": Decimal(0),
}
DEFAULT_ACCOUNTS: dict[str, str] = {
    "090": "Business Bank Account",
    "200": "Sales",
    "260": "Other Revenue",
    "270": "Interest Income",
    "400": "Advertising",
}
# [unverified] recalled from Xero's "History and Notes" page: Details is at most 250 characters.
HISTORY_DETAILS_MAX = 250
OPEN_EDITABLE = {"DRAFT", "SUBMITTED"}
INVOICE_STATUSES = {"DRAFT", "SUBMITTED", "AUTHORISED", "PAID", "VOIDED", "DELETED"}
NOT_MODIFIABLE = "Invoice not of valid status for modification"  # payload xero_validation_error_invoice_status.json


class XeroValidation(Exception):
    """A rule was broken: becomes a 400 ValidationException with `element` and its messages."""

    def __init__(self, element: dict[str, Any], messages: list[str]) -> None:
        super().__init__("; ".join(messages))
        self.element = element
        self.messages = messages


class NotFound(Exception):
    """No such record in this organisation (404)."""


_ADDRESS_FIELDS = (
    "AddressType",
    "AddressLine1",
    "AddressLine2",
    "AddressLine3",
    "AddressLine4",
    "City",
    "Region",
    "PostalCode",
    "Country",
    "AttentionTo",
)
_PHONE_FIELDS = ("PhoneType", "PhoneNumber", "PhoneAreaCode", "PhoneCountryCode")


@dataclass
class Ledger:
    """The records of one organisation (tenant)."""

    tenant_id: str
    name: str
    tenant_type: str = "ORGANISATION"
    currency: str = "NZD"
    short_code: str = "!emu1"
    time_zone: str = "Pacific/Auckland"  # the organisation's zone (IANA); dates travel as its local midnight
    country_code: str = "NZ"  # Organisation.CountryCode (ISO 3166-1 alpha-2)
    region: str = ""  # Region of the organisation's street address ("": no Region in the address)
    reminders_enabled: bool = False
    tax_rates: dict[str, Decimal] = field(default_factory=lambda: dict(DEFAULT_TAX_RATES))
    accounts: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_ACCOUNTS))
    contacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    invoices: dict[str, dict[str, Any]] = field(default_factory=dict)
    credit_notes: dict[str, dict[str, Any]] = field(default_factory=dict)
    payments: dict[str, dict[str, Any]] = field(default_factory=dict)
    overpayments: dict[str, dict[str, Any]] = field(default_factory=dict)
    prepayments: dict[str, dict[str, Any]] = field(default_factory=dict)
    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    history: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    emails: list[dict[str, Any]] = field(default_factory=list)
    online_tokens: dict[str, str] = field(default_factory=dict)  # token -> InvoiceID
    numbers: set[str] = field(default_factory=set)
    invoice_seq: int = 0
    credit_seq: int = 0
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (category, id, CREATE|UPDATE)

    # -- contacts -----------------------------------------------------------------------------
    def upsert_contact(self, data: dict[str, Any], now: datetime) -> dict[str, Any]:
        """Create a contact, or update the one named by ContactID."""
        contact_id = str(data.get("ContactID") or "")
        existing = self.contacts.get(contact_id) if contact_id else None
        name = str(data.get("Name") or (existing or {}).get("Name") or "").strip()
        if not name:
            raise XeroValidation(dict(data), ["The contact name must be specified."])
        for other in self.contacts.values():
            if other["Name"].lower() == name.lower() and other is not existing and other["ContactStatus"] == "ACTIVE":
                raise XeroValidation(
                    dict(data),
                    [
                        f"The contact name {name} is already assigned to another contact. "
                        "The contact name must be unique across all active contacts."
                    ],
                )
        record = existing or {
            "ContactID": contact_id or new_id(),
            "ContactStatus": "ACTIVE",
            "EmailAddress": "",
            "ContactPersons": [],
            "IsSupplier": False,
        }
        record["Name"] = name
        for key in ("EmailAddress", "FirstName", "LastName", "ContactNumber", "AccountNumber"):
            if key in data:
                record[key] = str(data[key] or "")
        if "ContactStatus" in data:
            record["ContactStatus"] = str(data["ContactStatus"]).upper()
        if "ContactPersons" in data:
            record["ContactPersons"] = [
                {
                    "FirstName": str(p.get("FirstName", "")),
                    "LastName": str(p.get("LastName", "")),
                    "EmailAddress": str(p.get("EmailAddress", "")),
                    "IncludeInEmails": bool(p.get("IncludeInEmails", False)),
                }
                for p in data["ContactPersons"] or []
            ]
        for key, fields in (("Addresses", _ADDRESS_FIELDS), ("Phones", _PHONE_FIELDS)):
            if key in data:  # Xero keeps the address and phone fields it knows, as text
                record[key] = [
                    {field: str(row[field] or "") for field in fields if field in row}
                    for row in data[key] or []
                    if isinstance(row, dict)
                ]
        record["UpdatedDateUTC"] = now
        self.contacts[record["ContactID"]] = record
        self.events.append(("CONTACT", record["ContactID"], "UPDATE" if existing else "CREATE"))
        return record

    def contact_for(self, ref: Any, now: datetime) -> dict[str, Any]:
        """The contact a document names by ContactID (must exist) or by Name (created when new)."""
        if not isinstance(ref, dict):
            raise XeroValidation({}, ["A Contact must be specified for this type of transaction"])
        contact_id = str(ref.get("ContactID") or "")
        if contact_id:
            contact = self.contacts.get(contact_id)
            if contact is None:
                raise XeroValidation(dict(ref), ["The contact with the specified ContactID could not be found"])
            return contact
        name = str(ref.get("Name") or "").strip()
        if not name:
            raise XeroValidation({}, ["A Contact must be specified for this type of transaction"])
        for contact in self.contacts.values():
            if contact["Name"].lower() == name.lower():
                return contact
        return self.upsert_contact({"Name": name, "EmailAddress": ref.get("EmailAddress", "")}, now)

    # -- lines and totals ---------------------------------------------------------------------
    def _lines(self, raw_lines: Any, amount_types: str, element: dict[str, Any]) -> list[dict[str, Any]]:
        errors: list[str] = []
        lines: list[dict[str, Any]] = []
        for raw in raw_lines or []:
            description = str(raw.get("Description") or "")
            quantity = parse_amount(raw.get("Quantity", 1), "Quantity")
            unit = parse_amount(raw.get("UnitAmount", 0), "UnitAmount")
            tax_type = str(raw.get("TaxType") or "NONE")
            account = str(raw.get("AccountCode") or "")
            if not description and not raw.get("ItemCode"):
                errors.append("Description cannot be empty")
            if account and account not in self.accounts:
                errors.append(f"Account code '{account}' is not a valid code for this document.")
            if tax_type not in self.tax_rates:
                errors.append(
                    f"The TaxType code '{tax_type}' does not exist or cannot be used for this type of transaction."
                )
                continue
            line_amount = money(quantity * unit)
            rate = self.tax_rates[tax_type] / 100
            if amount_types == "Inclusive":
                tax = money(line_amount - line_amount / (1 + rate))
            elif amount_types == "NoTax":
                tax = Decimal("0.00")
            else:
                tax = money(line_amount * rate)
            lines.append(
                {
                    "LineItemID": str(raw.get("LineItemID") or new_id()),
                    "Description": description,
                    "Quantity": quantity,
                    "UnitAmount": unit,
                    "ItemCode": str(raw.get("ItemCode") or ""),
                    "AccountCode": account,
                    "TaxType": tax_type,
                    "TaxAmount": tax,
                    "LineAmount": line_amount,
                    "Tracking": [],
                }
            )
        if errors:
            raise XeroValidation(element, errors)
        return lines

    @staticmethod
    def _totals(lines: list[dict[str, Any]], amount_types: str) -> tuple[Decimal, Decimal, Decimal]:
        tax = sum((line["TaxAmount"] for line in lines), Decimal("0.00"))
        gross = sum((line["LineAmount"] for line in lines), Decimal("0.00"))
        if amount_types == "Inclusive":
            return money(gross - tax), money(tax), money(gross)
        return money(gross), money(tax), money(gross + tax)

    def _history(
        self, record_id: str, changes: str, details: str, now: datetime, user: str = "System Generated"
    ) -> None:
        self.history.setdefault(record_id, []).append(
            {"Changes": changes, "DateUTC": now, "User": user, "Details": details}
        )

    def _next_number(self) -> str:
        while True:
            self.invoice_seq += 1
            number = f"INV-{self.invoice_seq:04d}"
            if number not in self.numbers:
                return number

    # -- invoices -----------------------------------------------------------------------------
    def create_invoice(self, data: dict[str, Any], now: datetime) -> dict[str, Any]:
        """PUT /Invoices (or POST without an existing id): validate and store a new invoice."""
        element = dict(data)
        kind = str(data.get("Type") or "")
        status = str(data.get("Status") or "DRAFT").upper()
        amount_types = str(data.get("LineAmountTypes") or "Exclusive")
        try:
            issue = parse_date(data.get("Date")) or now.date()
            due = parse_date(data.get("DueDate"))
        except ValueError as exc:
            raise XeroValidation(element, [str(exc)]) from exc
        number = str(data.get("InvoiceNumber") or "")
        currency = str(data.get("CurrencyCode") or self.currency).upper()
        errors = self._new_invoice_errors(kind, status, due, number)
        if errors:
            raise XeroValidation(element, errors)
        contact = self.contact_for(data.get("Contact"), now)
        lines = self._lines(data.get("LineItems"), amount_types, element)
        if status != "DRAFT":
            self._check_approvable(lines, element)
        sub, tax, total = self._totals(lines, amount_types)
        if kind == "ACCREC" and not number:
            number = self._next_number()
        invoice_id = new_id()
        record: dict[str, Any] = {
            "Type": kind,
            "InvoiceID": invoice_id,
            "InvoiceNumber": number,
            "Reference": str(data.get("Reference") or ""),
            "Contact": {"ContactID": contact["ContactID"], "Name": contact["Name"]},
            "Date": issue,
            "DueDate": due,
            "Status": status,
            "LineAmountTypes": amount_types,
            "LineItems": lines,
            "SubTotal": sub,
            "TotalTax": tax,
            "Total": total,
            "AmountDue": total,
            "AmountPaid": Decimal("0.00"),
            "AmountCredited": Decimal("0.00"),
            "CurrencyCode": currency,
            "CurrencyRate": Decimal("1.000000"),
            "SentToContact": bool(data.get("SentToContact", False)) and status == "AUTHORISED",
            "Payments": [],
            "CreditNotes": [],
            "Prepayments": [],
            "Overpayments": [],
            "IsDiscounted": False,
            "HasAttachments": False,
            "HasErrors": False,
            "UpdatedDateUTC": now,
            "FullyPaidOnDate": None,
        }
        self._store_new_invoice(record, contact, now)
        return record

    def _new_invoice_errors(self, kind: str, status: str, due: date | None, number: str) -> list[str]:
        """What is wrong with a new invoice's type, status, due date and number (empty when nothing)."""
        errors: list[str] = []
        if kind not in ("ACCREC", "ACCPAY"):
            errors.append("Invoice Type must be specified" if not kind else f"'{kind}' is not a valid Invoice Type")
        if status not in ("DRAFT", "SUBMITTED", "AUTHORISED"):
            errors.append(f"Invoices cannot be created with a status of {status}")
        if status != "DRAFT" and due is None:
            errors.append("Due Date is mandatory for approved invoices")  # [unverified] wording
        if number and number in self.numbers:
            errors.append("Invoice # must be unique.")
        return errors

    @staticmethod
    def _check_approvable(lines: list[dict[str, Any]], element: dict[str, Any]) -> None:
        """An invoice created approved needs at least one line item, each with an account code."""
        if not lines:
            raise XeroValidation(element, ["Invoices must have at least one line item to be approved"])
        missing = [line for line in lines if not line["AccountCode"]]
        if missing:
            raise XeroValidation(element, ["Account code must be specified for approved invoices"])

    def _store_new_invoice(self, record: dict[str, Any], contact: dict[str, Any], now: datetime) -> None:
        """Keep a new invoice and its number, write its history, mark its contact a customer, raise the event."""
        invoice_id, number, kind = record["InvoiceID"], record["InvoiceNumber"], record["Type"]
        self.invoices[invoice_id] = record
        if number:
            self.numbers.add(number)
        self._history(invoice_id, "Created", f"INV {number} to {contact['Name']} for {record['Total']}.", now)
        if record["Status"] == "AUTHORISED":
            self._history(invoice_id, "Approved", f"INV {number} approved.", now)
        contact["IsCustomer"] = contact.get("IsCustomer") or kind == "ACCREC"
        self.events.append(("INVOICE", invoice_id, "CREATE"))

    def find_invoice(self, ref: str) -> dict[str, Any]:
        """By InvoiceID, or by InvoiceNumber (Xero accepts either in the path)."""
        record = self.invoices.get(ref)
        if record is None:
            record = next((i for i in self.invoices.values() if i["InvoiceNumber"] == ref), None)
        if record is None:
            raise NotFound(ref)
        return record

    def update_invoice(self, record: dict[str, Any], data: dict[str, Any], now: datetime) -> dict[str, Any]:
        """POST /Invoices/{id}: the real modification rules (docs/provider-api-facts.md §2.2)."""
        element = dict(data)
        element.setdefault("InvoiceID", record["InvoiceID"])
        current = record["Status"]
        wanted = str(data.get("Status") or current).upper()
        allocated = self._check_modification(record, data, wanted, element)
        self._edit_lines(record, data, element)
        self._edit_fields(record, data, wanted, allocated, element, now)
        if wanted != "DRAFT" and record["DueDate"] is None:
            raise XeroValidation(element, ["Due Date is mandatory for approved invoices"])
        self._change_status(record, current, wanted, now)
        record["UpdatedDateUTC"] = now
        self.events.append(("INVOICE", record["InvoiceID"], "UPDATE"))
        return record

    def _check_modification(
        self, record: dict[str, Any], data: dict[str, Any], wanted: str, element: dict[str, Any]
    ) -> bool:
        """Refuse an unknown status, a closed invoice, forbidden edits or status change; whether money is allocated."""
        current = record["Status"]
        if wanted not in INVOICE_STATUSES:
            raise XeroValidation(element, [f"'{wanted}' is not a valid Invoice Status"])
        if current in ("PAID", "VOIDED", "DELETED"):
            raise XeroValidation(element, [NOT_MODIFIABLE])
        allocated = record["AmountPaid"] > 0 or record["AmountCredited"] > 0
        changes_lines = "LineItems" in data or "LineAmountTypes" in data or "CurrencyCode" in data
        changes_contact = "Contact" in data and (data["Contact"] or {}).get("ContactID") not in (
            None,
            record["Contact"]["ContactID"],
        )
        if allocated and (changes_lines or changes_contact):
            # Facts doc §2.2 [3p]: an invoice with a payment or credit note allocated rejects changes.
            raise XeroValidation(
                element,
                [NOT_MODIFIABLE + ". This document has a payment or credit note allocated to it."],
            )
        if wanted != current:
            self._check_transition(current, wanted, allocated, element)
        return allocated

    @staticmethod
    def _check_transition(current: str, wanted: str, allocated: bool, element: dict[str, Any]) -> None:
        """Refuse a status change Xero does not allow, or voiding an invoice with an allocation."""
        allowed = {
            "DRAFT": {"SUBMITTED", "AUTHORISED", "DELETED"},
            "SUBMITTED": {"DRAFT", "AUTHORISED", "DELETED"},
            "AUTHORISED": {"VOIDED"},
        }[current]
        if wanted not in allowed:
            raise XeroValidation(element, [NOT_MODIFIABLE])
        if wanted == "VOIDED" and allocated:
            raise XeroValidation(
                element, ["This document cannot be voided as it has a payment or credit note allocated"]
            )

    def _edit_lines(self, record: dict[str, Any], data: dict[str, Any], element: dict[str, Any]) -> None:
        """New line items (and totals, amount due) and line amount types, when given."""
        amount_types = str(data.get("LineAmountTypes") or record["LineAmountTypes"])
        if "LineItems" in data:
            lines = self._lines(data["LineItems"], amount_types, element)
            sub, tax, total = self._totals(lines, amount_types)
            record.update(LineItems=lines, SubTotal=sub, TotalTax=tax, Total=total, AmountDue=total)
        record["LineAmountTypes"] = amount_types

    def _edit_fields(
        self,
        record: dict[str, Any],
        data: dict[str, Any],
        wanted: str,
        allocated: bool,
        element: dict[str, Any],
        now: datetime,
    ) -> None:
        """The dates, reference, contact (unless allocated) and SentToContact (approved invoices only), when given."""
        try:
            if "DueDate" in data:
                record["DueDate"] = parse_date(data["DueDate"])
            if "Date" in data:
                record["Date"] = parse_date(data["Date"]) or record["Date"]
        except ValueError as exc:
            raise XeroValidation(element, [str(exc)]) from exc
        if "Reference" in data:
            record["Reference"] = str(data["Reference"] or "")
        if "Contact" in data and not allocated:
            contact = self.contact_for(data["Contact"], now)
            record["Contact"] = {"ContactID": contact["ContactID"], "Name": contact["Name"]}
        if "SentToContact" in data:
            if wanted not in ("AUTHORISED",) and data["SentToContact"]:
                raise XeroValidation(element, ["SentToContact can only be set on approved invoices"])
            record["SentToContact"] = bool(data["SentToContact"])

    def _change_status(self, record: dict[str, Any], current: str, wanted: str, now: datetime) -> None:
        """Set the status (voided and deleted invoices owe nothing) and write the matching history entry."""
        record["Status"] = wanted
        if wanted == "VOIDED":
            record["AmountDue"] = Decimal("0.00")
            self._history(record["InvoiceID"], "Voided", f"INV {record['InvoiceNumber']} voided.", now)
        elif wanted == "DELETED":
            record["AmountDue"] = Decimal("0.00")
            self._history(record["InvoiceID"], "Deleted", f"INV {record['InvoiceNumber']} deleted.", now)
        elif wanted == "AUTHORISED" and current != "AUTHORISED":
            self._history(record["InvoiceID"], "Approved", f"INV {record['InvoiceNumber']} approved.", now)
        else:
            self._history(record["InvoiceID"], "Edited", f"INV {record['InvoiceNumber']} edited.", now)

    def add_note(self, record_id: str, details: str, now: datetime) -> dict[str, Any]:
        """PUT .../History: one note (≤ HISTORY_DETAILS_MAX characters)."""
        element = {"Details": details}
        if not details.strip():
            raise XeroValidation(element, ["The Details field is required."])
        if len(details) > HISTORY_DETAILS_MAX:
            raise XeroValidation(
                element, [f"The Details field must be a string with a maximum length of {HISTORY_DETAILS_MAX}."]
            )
        note = {"Changes": "Note", "DateUTC": now, "User": "Nudge (API)", "Details": details}
        self.history.setdefault(record_id, []).append(note)
        return note

    # -- payments and credits -----------------------------------------------------------------
    def apply_payment(self, invoice: dict[str, Any], amount: Decimal, on: date, now: datetime) -> dict[str, Any]:
        """A payment against an AUTHORISED invoice (admin API and PUT /Payments)."""
        element = {"Invoice": {"InvoiceID": invoice["InvoiceID"]}, "Amount": amount}
        amount = money(amount)
        if invoice["Status"] != "AUTHORISED":
            raise XeroValidation(element, ["Payments can only be made against Authorised documents"])
        if amount <= 0:
            raise XeroValidation(element, ["Payment amount must be greater than zero"])
        if amount > invoice["AmountDue"]:
            raise XeroValidation(element, ["Payment amount exceeds the amount outstanding on this document"])
        payment_id = new_id()
        payment = {
            "PaymentID": payment_id,
            "Date": on,
            "Amount": amount,
            "CurrencyRate": Decimal("1.000000"),
            "PaymentType": "ACCRECPAYMENT",
            "Status": "AUTHORISED",
            "Invoice": {"InvoiceID": invoice["InvoiceID"], "InvoiceNumber": invoice["InvoiceNumber"]},
            "UpdatedDateUTC": now,
            "HasAccount": False,
            "HasValidationErrors": False,
        }
        self.payments[payment_id] = payment
        invoice["Payments"].append(
            {
                k: payment[k]
                for k in ("PaymentID", "Date", "Amount", "CurrencyRate", "HasAccount", "HasValidationErrors")
            }
        )
        invoice["AmountPaid"] = money(invoice["AmountPaid"] + amount)
        self._settle(invoice, amount, on, now)
        self._history(invoice["InvoiceID"], "Payment", f"Payment received for {amount}.", now)
        return payment

    def delete_payment(self, payment_id: str, now: datetime) -> dict[str, Any]:
        """POST /Payments/{id} {"Status": "DELETED"}: the payment stays listed as DELETED, its invoice owes it again."""
        payment = self.payments.get(payment_id)
        if payment is None:
            raise NotFound(payment_id)
        if payment["Status"] == "DELETED":
            return payment
        invoice = self.invoices[payment["Invoice"]["InvoiceID"]]
        amount = payment["Amount"]
        payment["Status"] = "DELETED"
        payment["UpdatedDateUTC"] = now
        invoice["Payments"] = [p for p in invoice["Payments"] if p["PaymentID"] != payment_id]
        invoice["AmountPaid"] = money(invoice["AmountPaid"] - amount)
        invoice["AmountDue"] = money(invoice["AmountDue"] + amount)
        if invoice["Status"] == "PAID":
            invoice["Status"] = "AUTHORISED"
            invoice["FullyPaidOnDate"] = None
        invoice["UpdatedDateUTC"] = now
        self.events.append(("INVOICE", invoice["InvoiceID"], "UPDATE"))
        self._history(invoice["InvoiceID"], "Payment Deleted", f"Payment for {amount} deleted.", now)
        return payment

    def allocate_unapplied(
        self, record: dict[str, Any], invoice: dict[str, Any], amount: Decimal, on: date, now: datetime
    ) -> dict[str, Any]:
        """PUT /Overpayments|Prepayments/{id}/Allocations: part of the remaining credit pays an invoice."""
        kind = "Overpayment" if "OverpaymentID" in record else "Prepayment"
        element = {"Invoice": {"InvoiceID": invoice["InvoiceID"]}, "Amount": amount}
        amount = money(amount)
        errors = []
        if record["Status"] != "AUTHORISED" or invoice["Status"] != "AUTHORISED":
            errors.append(f"Only AUTHORISED {kind.lower()}s can be allocated to AUTHORISED invoices")
        if invoice["Contact"]["ContactID"] != record["Contact"]["ContactID"]:
            errors.append(f"The {kind.lower()} and the invoice must be for the same contact")
        if amount <= 0 or amount > record["RemainingCredit"] or amount > invoice["AmountDue"]:
            errors.append("The amount allocated must be positive and within the remaining credit and amount due")
        if errors:
            raise XeroValidation(element, errors)
        allocation = {
            "AllocationID": new_id(),
            "Amount": amount,
            "Date": on,
            "Invoice": {"InvoiceID": invoice["InvoiceID"], "InvoiceNumber": invoice["InvoiceNumber"]},
            "IsDeleted": False,
        }
        record["Allocations"].append(allocation)
        record["RemainingCredit"] = money(record["RemainingCredit"] - amount)
        if record["RemainingCredit"] == 0:
            record["Status"] = "PAID"
        record["UpdatedDateUTC"] = now
        invoice[f"{kind}s"].append(
            {f"{kind}ID": record[f"{kind}ID"], "AppliedAmount": amount, "Date": on, "Total": record["Total"]}
        )
        invoice["AmountPaid"] = money(invoice["AmountPaid"] + amount)
        self._settle(invoice, amount, on, now)
        return allocation

    def _settle(self, invoice: dict[str, Any], amount: Decimal, on: date, now: datetime) -> None:
        invoice["AmountDue"] = money(invoice["AmountDue"] - amount)
        if invoice["AmountDue"] == 0:
            invoice["Status"] = "PAID"
            invoice["FullyPaidOnDate"] = on
        invoice["UpdatedDateUTC"] = now
        self.events.append(("INVOICE", invoice["InvoiceID"], "UPDATE"))

    def create_credit_note(self, data: dict[str, Any], now: datetime) -> dict[str, Any]:
        """PUT /CreditNotes."""
        element = dict(data)
        kind = str(data.get("Type") or "")
        if kind not in ("ACCRECCREDIT", "ACCPAYCREDIT"):
            raise XeroValidation(element, ["Credit Note Type must be specified"])
        status = str(data.get("Status") or "DRAFT").upper()
        if status not in ("DRAFT", "SUBMITTED", "AUTHORISED"):
            raise XeroValidation(element, [f"Credit notes cannot be created with a status of {status}"])
        contact = self.contact_for(data.get("Contact"), now)
        amount_types = str(data.get("LineAmountTypes") or "Exclusive")
        lines = self._lines(data.get("LineItems"), amount_types, element)
        sub, tax, total = self._totals(lines, amount_types)
        self.credit_seq += 1
        try:
            issue = parse_date(data.get("Date")) or now.date()
        except ValueError as exc:
            raise XeroValidation(element, [str(exc)]) from exc
        credit_id = new_id()
        record = {
            "CreditNoteID": credit_id,
            "CreditNoteNumber": str(data.get("CreditNoteNumber") or f"CN-{self.credit_seq:04d}"),
            "Type": kind,
            "Reference": str(data.get("Reference") or ""),
            "Contact": {"ContactID": contact["ContactID"], "Name": contact["Name"]},
            "Date": issue,
            "Status": status,
            "LineAmountTypes": amount_types,
            "LineItems": lines,
            "SubTotal": sub,
            "TotalTax": tax,
            "Total": total,
            "RemainingCredit": total,
            "Allocations": [],
            "CurrencyCode": str(data.get("CurrencyCode") or self.currency).upper(),
            "CurrencyRate": Decimal("1.000000"),
            "UpdatedDateUTC": now,
            "FullyPaidOnDate": None,
            "HasErrors": False,
        }
        self.credit_notes[credit_id] = record
        self._history(credit_id, "Created", f"Credit note for {total}.", now)
        self.events.append(("CREDITNOTE", credit_id, "CREATE"))
        return record

    def allocate_credit(self, credit: dict[str, Any], data: dict[str, Any], now: datetime) -> dict[str, Any]:
        """PUT /CreditNotes/{id}/Allocations: apply credit to an invoice of the same contact and currency."""
        element = dict(data)
        invoice_ref = (data.get("Invoice") or {}).get("InvoiceID") or ""
        invoice = self.invoices.get(str(invoice_ref))
        if invoice is None:
            raise XeroValidation(element, ["Invoice could not be found"])
        amount = money(parse_amount(data.get("Amount"), "Amount"))
        try:
            on = parse_date(data.get("Date")) or now.date()
        except ValueError as exc:
            raise XeroValidation(element, [str(exc)]) from exc
        errors = self._allocation_errors(credit, invoice, amount)
        if errors:
            raise XeroValidation(element, errors)
        allocation = {
            "AllocationID": new_id(),
            "Amount": amount,
            "Date": on,
            "Invoice": {"InvoiceID": invoice["InvoiceID"], "InvoiceNumber": invoice["InvoiceNumber"]},
            "CreditNote": {"CreditNoteID": credit["CreditNoteID"]},
            "IsDeleted": False,
        }
        credit["Allocations"].append(allocation)
        credit["RemainingCredit"] = money(credit["RemainingCredit"] - amount)
        if credit["RemainingCredit"] == 0:
            credit["Status"] = "PAID"
            credit["FullyPaidOnDate"] = on
        credit["UpdatedDateUTC"] = now
        invoice["CreditNotes"].append(
            {
                "CreditNoteID": credit["CreditNoteID"],
                "CreditNoteNumber": credit["CreditNoteNumber"],
                "AppliedAmount": amount,
                "Date": on,
                "Total": credit["Total"],
            }
        )
        invoice["AmountCredited"] = money(invoice["AmountCredited"] + amount)
        self._settle(invoice, amount, on, now)
        self._history(
            invoice["InvoiceID"], "Credit Applied", f"Credit note {credit['CreditNoteNumber']} for {amount}.", now
        )
        self.events.append(("CREDITNOTE", credit["CreditNoteID"], "UPDATE"))
        return allocation

    @staticmethod
    def _allocation_errors(credit: dict[str, Any], invoice: dict[str, Any], amount: Decimal) -> list[str]:
        """What forbids allocating `amount` of `credit` to `invoice`: statuses, contact, currency, amounts."""
        errors = []
        if credit["Status"] != "AUTHORISED":
            errors.append("Only credit notes with a status of AUTHORISED can be allocated")
        if invoice["Status"] != "AUTHORISED":
            errors.append("Credit can only be allocated to AUTHORISED invoices")
        if invoice["Contact"]["ContactID"] != credit["Contact"]["ContactID"]:
            errors.append("The credit note and the invoice must be for the same contact")
        if invoice["CurrencyCode"] != credit["CurrencyCode"]:
            errors.append("The credit note and the invoice must be in the same currency")
        if amount <= 0:
            errors.append("Allocation amount must be greater than zero")
        if amount > credit["RemainingCredit"]:
            errors.append("The amount allocated exceeds the remaining credit on the credit note")
        if amount > invoice["AmountDue"]:
            errors.append("The amount allocated exceeds the amount due on the invoice")
        return errors

    def add_unapplied(self, kind: str, data: dict[str, Any], now: datetime) -> dict[str, Any]:
        """Seed an overpayment or prepayment (RECEIVE-OVERPAYMENT / RECEIVE-PREPAYMENT) with remaining credit."""
        contact = self.contact_for(data.get("Contact"), now)
        amount = money(parse_amount(data.get("Total", data.get("Amount")), "Total"))
        remaining = money(parse_amount(data.get("RemainingCredit", amount), "RemainingCredit"))
        record_id = str(data.get(f"{kind}ID") or new_id())
        record = {
            f"{kind}ID": record_id,
            "Type": f"RECEIVE-{kind.upper()}",
            "Contact": {"ContactID": contact["ContactID"], "Name": contact["Name"]},
            "Date": parse_date(data.get("Date")) or now.date(),
            "Status": "AUTHORISED" if remaining > 0 else "PAID",
            "LineAmountTypes": "NoTax",
            "SubTotal": amount,
            "TotalTax": Decimal("0.00"),
            "Total": amount,
            "RemainingCredit": remaining,
            "CurrencyCode": str(data.get("CurrencyCode") or self.currency).upper(),
            "CurrencyRate": Decimal("1.000000"),
            "Allocations": [],
            "UpdatedDateUTC": now,
            "HasAttachments": False,
        }
        (self.overpayments if kind == "Overpayment" else self.prepayments)[record_id] = record
        return record

    def bulk_invoices(self, count: int, contacts: int, now: datetime, *, seed: int = 1, paid_every: int = 0) -> None:
        """Generate `count` AUTHORISED ACCREC invoices over `contacts` contacts, fast (bench, demo)."""
        import random

        rng = random.Random(seed)
        people = []
        for n in range(contacts):
            people.append(
                self.upsert_contact(
                    {
                        "Name": f"Customer {n + 1:05d}",
                        "EmailAddress": f"ap{n + 1}@customer{n + 1}.example",
                        "ContactPersons": [
                            {
                                "FirstName": "Pat",
                                "LastName": f"Payables{n + 1}",
                                "EmailAddress": f"pat{n + 1}@customer{n + 1}.example",
                                "IncludeInEmails": True,
                            }
                        ],
                    },
                    now,
                )
            )
        base = now - timedelta(days=120)
        for n in range(count):
            contact = people[n % len(people)]
            cents = rng.randint(5_000, 500_000)
            total = Decimal(cents).scaleb(-2)
            issue = (base + timedelta(days=rng.randint(0, 90))).date()
            invoice_id = new_id()
            number = self._next_number()
            self.numbers.add(number)
            stamp = now - timedelta(seconds=count - n)  # distinct, ascending UpdatedDateUTC
            record = {
                "Type": "ACCREC",
                "InvoiceID": invoice_id,
                "InvoiceNumber": number,
                "Reference": f"PO-{n + 1}",
                "Contact": {"ContactID": contact["ContactID"], "Name": contact["Name"]},
                "Date": issue,
                "DueDate": issue + timedelta(days=30),
                "Status": "AUTHORISED",
                "LineAmountTypes": "NoTax",
                "LineItems": [
                    {
                        "LineItemID": new_id(),
                        "Description": "Services",
                        "Quantity": Decimal(1),
                        "UnitAmount": total,
                        "ItemCode": "",
                        "AccountCode": "200",
                        "TaxType": "NONE",
                        "TaxAmount": Decimal("0.00"),
                        "LineAmount": total,
                        "Tracking": [],
                    }
                ],
                "SubTotal": total,
                "TotalTax": Decimal("0.00"),
                "Total": total,
                "AmountDue": total,
                "AmountPaid": Decimal("0.00"),
                "AmountCredited": Decimal("0.00"),
                "CurrencyCode": self.currency,
                "CurrencyRate": Decimal("1.000000"),
                "SentToContact": True,
                "Payments": [],
                "CreditNotes": [],
                "Prepayments": [],
                "Overpayments": [],
                "IsDiscounted": False,
                "HasAttachments": False,
                "HasErrors": False,
                "UpdatedDateUTC": stamp,
                "FullyPaidOnDate": None,
            }
            self.invoices[invoice_id] = record
            contact["IsCustomer"] = True
            if paid_every and n % paid_every == 0:
                self.apply_payment(record, total, issue, stamp)
                record["UpdatedDateUTC"] = stamp
