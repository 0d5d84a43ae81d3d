"""The hand-off pack's files: the letter (PDF), the one-page summary (PDF), the evidence ZIP, the placement CSV.

Every name and text comes from the ledger or a person, so: PDFs render through `connector.documents` (escaped,
nothing fetched), CSV cells go through `csv_cell` (no formulas), ZIP entry names through `safe_name` (fixed
folders, no path from the data, no traversal). The ZIP's entries carry the letter's date as their time, so the
same evidence makes the same bytes.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from connector.documents.pdf import render_pdf
from connector.domain.handoff import (
    Claim,
    CurrencyTotals,
    csv_cell,
    reply_by,
    safe_name,
    totals,
    unique_names,
)
from connector.domain.money import Money
from connector.handoff.evidence import Evidence, decimal_text

PRE_ACTION = "pre_action"
FINAL_DEMAND = "final_demand"
LETTER_TITLES = {PRE_ACTION: "Letter before claim", FINAL_DEMAND: "Final demand"}
PLACEMENT_COLUMNS = (
    "debtor_name",
    "debtor_reference",
    "address",
    "contact_email",
    "contact_phone",
    "invoice_number",
    "invoice_date",
    "due_date",
    "currency",
    "original_amount",
    "amount_outstanding",
    "interest_claimed",
    "compensation_claimed",
    "total_claimed",
    "last_contact_date",
    "last_reply_date",
    "disputed",
    "letter_date",
    "letter",
    "creditor",
    "notes",
)


@dataclass(frozen=True)
class Contact:
    """How to reach the debtor, as the ledger has it (address lines and phone may be empty)."""

    address: tuple[str, ...] = ()
    phone: str = ""


@dataclass(frozen=True)
class PackFiles:
    """A made pack: its three files and what its summary states."""

    kind: str
    letter_pdf: bytes
    summary_pdf: bytes
    evidence_zip: bytes
    placement_csv: bytes
    totals: tuple[CurrencyTotals, ...]
    missing_pdfs: tuple[str, ...]


def make_files(
    evidence: Evidence,
    claims: Sequence[Claim],
    *,
    kind: str,
    letter_date: date,
    reference: str,
    contact: Contact,
    invoice_pdfs: Mapping[str, bytes],
    pay_links: Mapping[str, str],
    base_rate: Decimal | None,
) -> PackFiles:
    """Render the pack of `claims` (one per handed-over invoice) from `evidence`; `invoice_pdfs` by ledger id."""
    sums = totals(claims)
    common: dict[str, Any] = {
        "business_name": evidence.business_name,
        "customer_name": evidence.customer_name,
        "address": contact.address,
        "letter_date": letter_date,
        "reference": reference,
        "claims": list(claims),
        "totals": list(sums),
    }
    rate = claims[0].annual_rate if claims and claims[0].annual_rate is not None else None
    daily = [Money(c.debt.outstanding.amount * rate / Decimal(36500), c.currency) for c in claims if rate is not None]
    letter = render_pdf(
        "handoff_letter.html",
        {
            **common,
            "title": LETTER_TITLES[kind],
            "pre_action": kind == PRE_ACTION,
            "email": evidence.customer_emails[0] if evidence.customer_emails else "",
            "reply_by": reply_by(letter_date),
            "reply_to": evidence.reply_to,
            "rate": decimal_text(rate),
            "base_rate": decimal_text(base_rate),
            "daily": _per_currency(daily),
            "fees_deducted": any(c.fees_deducted is not None and c.fees_deducted.is_positive() for c in claims),
            "pay_links": [
                {"number": c.debt.number, "url": pay_links[c.debt.external_id]}
                for c in claims
                if c.debt.external_id in pay_links
            ],
        },
        locale=evidence.locale,
    )
    missing = tuple(c.debt.number for c in claims if c.debt.external_id not in invoice_pdfs)
    summary = render_pdf(
        "handoff_summary.html",
        {
            **common,
            "letter_kind": LETTER_TITLES[kind],
            "counts": {
                "messages": len(evidence.messages),
                "replies": len(evidence.replies),
                "notes": len(evidence.notes),
                "fees": len(evidence.fees),
                "payments": len(evidence.payments),
                "promises": len(evidence.promises),
                "pdfs": len(claims) - len(missing),
            },
        },
        locale=evidence.locale,
    )
    placement = placement_csv(evidence, claims, contact, letter_date, kind)
    archive = _zip(evidence, claims, letter, summary, placement, invoice_pdfs, letter_date, missing)
    return PackFiles(kind, letter, summary, archive, placement, sums, missing)


def _per_currency(amounts: Iterable[Money]) -> list[Money]:
    by: dict[str, Money] = {}
    for amount in amounts:
        by[amount.currency] = by[amount.currency] + amount if amount.currency in by else amount
    return [by[c] for c in sorted(by)]


def _csv(header: Sequence[str], rows: Iterable[Sequence[object]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([csv_cell(value) for value in row])
    return out.getvalue().encode("utf-8")


def placement_csv(evidence: Evidence, claims: Sequence[Claim], contact: Contact, letter_date: date, kind: str) -> bytes:
    """The agency placement file: one row per debt, the fields collection agencies ask for."""
    last_contact = max((m.sent_at for m in evidence.messages), default=None)
    last_reply = max((r.received_at for r in evidence.replies if r.kind == "human"), default=None)
    notes = " | ".join(f"{n.at.date().isoformat()} {n.source}: {n.text}" for n in evidence.notes[-5:])
    rows = [
        (
            evidence.customer_name,
            evidence.customer_external_id,
            ", ".join(contact.address),
            evidence.customer_emails[0] if evidence.customer_emails else "",
            contact.phone,
            claim.debt.number,
            _day(claim.debt.issue_date),
            _day(claim.debt.due_date),
            claim.currency,
            claim.debt.total.amount,
            claim.debt.outstanding.amount,
            claim.interest.amount,
            claim.compensation.amount,
            claim.total.amount,
            last_contact.date().isoformat() if last_contact else "",
            last_reply.date().isoformat() if last_reply else "",
            "yes" if claim.debt.disputed else "no",
            letter_date.isoformat(),
            LETTER_TITLES[kind],
            evidence.business_name,
            notes,
        )
        for claim in claims
    ]
    return _csv(PLACEMENT_COLUMNS, rows)


def _day(value: date | None) -> str:
    return value.isoformat() if value is not None else ""


def _zip(
    evidence: Evidence,
    claims: Sequence[Claim],
    letter: bytes,
    summary: bytes,
    placement: bytes,
    invoice_pdfs: Mapping[str, bytes],
    letter_date: date,
    missing: Sequence[str],
) -> bytes:
    stamp = (letter_date.year, letter_date.month, letter_date.day, 0, 0, 0)
    entries: list[tuple[str, bytes]] = [
        ("summary.pdf", summary),
        ("letter.pdf", letter),
        ("placement.csv", placement),
    ]
    pdf_claims = [c for c in claims if c.debt.external_id in invoice_pdfs]
    pdf_names = unique_names([f"invoice-{safe_name(c.debt.number, fallback='invoice')}.pdf" for c in pdf_claims])
    entries += [
        (f"invoices/{name}", invoice_pdfs[c.debt.external_id]) for name, c in zip(pdf_names, pdf_claims, strict=True)
    ]
    entries.append(
        (
            "messages.csv",
            _csv(
                ("sent_at", "to", "subject", "delivery", "message_id", "invoices", "file"),
                (
                    (
                        m.sent_at.isoformat(),
                        ", ".join(m.to),
                        m.subject,
                        m.state,
                        m.message_id,
                        ", ".join(m.invoices),
                        f"messages/{n:03d}.eml",
                    )
                    for n, m in enumerate(evidence.messages, start=1)
                ),
            ),
        )
    )
    entries += [(f"messages/{n:03d}.eml", m.raw) for n, m in enumerate(evidence.messages, start=1)]
    entries.append(
        (
            "replies.csv",
            _csv(
                ("received_at", "from", "subject", "kind", "text"),
                ((r.received_at.isoformat(), r.from_address, r.subject, r.kind, r.text) for r in evidence.replies),
            ),
        )
    )
    entries.append(
        (
            "notes.csv",
            _csv(
                ("at", "source", "invoices", "text"),
                ((n.at.isoformat(), n.source, n.invoice, n.text) for n in evidence.notes),
            ),
        )
    )
    entries.append(
        (
            "fees.csv",
            _csv(
                ("assessed_on", "invoice", "kind", "policy", "amount", "currency", "calculation", "ledger_ref"),
                (
                    (
                        _day(f.assessed_on),
                        f.invoice,
                        f.kind,
                        f.policy,
                        f.amount.amount if f.amount else "",
                        f.amount.currency if f.amount else "",
                        f.calculation,
                        f.ledger_ref,
                    )
                    for f in evidence.fees
                ),
            ),
        )
    )
    entries.append(
        (
            "payments.csv",
            _csv(
                ("paid_on", "invoice", "kind", "amount", "currency", "voided"),
                (
                    (
                        p.paid_on.isoformat(),
                        p.invoice,
                        p.kind,
                        p.amount.amount,
                        p.amount.currency,
                        "yes" if p.voided else "no",
                    )
                    for p in evidence.payments
                ),
            ),
        )
    )
    entries.append(
        (
            "promises-and-plans.csv",
            _csv(
                ("what", "invoice", "state", "detail"),
                ((p.what, p.invoice, p.state, p.detail) for p in evidence.promises),
            ),
        )
    )
    readme = [
        f"Hand-off pack of {evidence.customer_name} from {evidence.business_name},"
        f" letter dated {letter_date.isoformat()}.",
        "summary.pdf: one page with the totals; letter.pdf: the letter sent;"
        " placement.csv: one row per debt for an agency.",
        "invoices/: the invoices as the ledger renders them; messages/: every email sent, byte for byte (.eml).",
        "messages.csv, replies.csv, notes.csv, fees.csv, payments.csv, promises-and-plans.csv: the record.",
    ]
    if missing:
        readme.append("The ledger gave no PDF of: " + ", ".join(missing))
    entries.append(("README.txt", ("\r\n".join(readme) + "\r\n").encode("utf-8")))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return out.getvalue()
