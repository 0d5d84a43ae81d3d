"""The one fake ledger of the tests: an in-memory AccountingAdapter.

Reads: a full reconcile (cursor None) pages through every open invoice, `page_size` at a time; an
incremental read pages through `changes`. Every cursor asked for is kept in `cursors`;
`fail_after_pages` makes a read raise Transient after that many pages; `quarantine` rides on every page.

Money: `payments` holds every money object's complete current set, keyed by (kind, id); a full read
carries all of it on its first page, an incremental read carries `payment_changes` (then empties it).
`pay`, `void` and `remove` change both, as a ledger would.

Writes are idempotent by key, like QuickBooks' requestid and Xero's Idempotency-Key: the first write of
a key records `writes[key] = (ref, detail)`, a repeat answers the same ref as replayed. `fail_with`
makes every write raise that error.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import date

from connector.domain.model import CustomerSnapshot, InvoiceSnapshot, InvoiceStatus, PaymentKind, PaymentSnapshot
from connector.domain.money import Money
from connector.errors import Transient
from connector.ports import AccountingAdapter, OpenCredits, Page, Quarantined, WriteResult


class FakeLedger(AccountingAdapter):
    reconcile_reads_open_credits = True  # its full reconcile hands over every money object

    def __init__(self, invoices: list[InvoiceSnapshot], page_size: int = 2) -> None:
        self.invoices = {i.external_id: i for i in invoices}
        self.page_size = page_size
        self.changes: list[InvoiceSnapshot] = []
        self.cursors: list[str | None] = []
        self.fail_after_pages: int | None = None
        self.quarantine: list[Quarantined] = []
        self.writes: dict[str, tuple[str, str]] = {}
        self.fail_with: Exception | None = None
        self.payments: dict[tuple[PaymentKind, str], list[PaymentSnapshot]] = {}
        self.payment_changes: dict[tuple[PaymentKind, str], list[PaymentSnapshot]] = {}
        self.credit_reads = 0

    # -- money ----------------------------------------------------------------------------------------
    def pay(
        self,
        external_id: str,
        invoice_external_id: str,
        amount: str,
        on: date,
        *,
        customer: str = "",
        kind: PaymentKind = PaymentKind.PAYMENT,
        currency: str = "USD",
    ) -> PaymentSnapshot:
        """Add one snapshot to money object (kind, external_id) ("" invoice: unapplied) and announce it."""
        invoice = self.invoices.get(invoice_external_id)
        who = customer or (invoice.customer_external_id if invoice else "")
        snapshot = PaymentSnapshot(external_id, kind, invoice_external_id, who, Money.of(amount, currency), on)
        key = (kind, external_id)
        self.payments.setdefault(key, []).append(snapshot)
        self.payment_changes[key] = list(self.payments[key])
        return snapshot

    def void(self, external_id: str, kind: PaymentKind = PaymentKind.PAYMENT) -> None:
        """The ledger voids the object: its snapshots come back with voided=True."""
        key = (kind, external_id)
        self.payments[key] = [replace(p, voided=True) for p in self.payments.get(key, [])]
        self.payment_changes[key] = list(self.payments[key])

    def remove(self, external_id: str, kind: PaymentKind = PaymentKind.PAYMENT) -> None:
        """The ledger deletes the object: it comes back with no snapshots."""
        key = (kind, external_id)
        self.payments.pop(key, None)
        self.payment_changes[key] = []

    # -- reads ----------------------------------------------------------------------------------------
    def changed_invoices(self, cursor: str | None, *, first_sync: bool = False) -> Iterator[Page]:
        self.cursors.append(cursor)
        source = (
            [i for i in self.invoices.values() if i.status is InvoiceStatus.OPEN] if cursor is None else self.changes
        )
        for index in range(0, max(len(source), 1), self.page_size):
            if self.fail_after_pages is not None and index // self.page_size >= self.fail_after_pages:
                raise Transient("ledger unavailable")
            chunk = source[index : index + self.page_size]
            customers = [CustomerSnapshot(i.customer_external_id, i.customer_name, i.emails) for i in chunk]
            money = {}
            if index == 0:
                money = dict(self.payments) if cursor is None else dict(self.payment_changes)
                self.payment_changes = {}
            yield Page(
                chunk,
                customers,
                f"cursor-{len(self.cursors)}-{index}",
                list(self.quarantine),
                full=cursor is None,
                payments=money,
            )

    def get_invoice(self, external_id: str) -> InvoiceSnapshot | None:
        return self.invoices.get(external_id)

    def customer_contacts(self, external_id: str) -> CustomerSnapshot:
        for invoice in self.invoices.values():
            if invoice.customer_external_id == external_id:
                return CustomerSnapshot(external_id, invoice.customer_name, invoice.emails)
        return CustomerSnapshot(external_id, "", ())

    def unapplied_credit(self, customer_external_id: str) -> Money | None:
        return None

    def open_credits(self) -> OpenCredits:
        """Every object with an unapplied remainder (its complete set), as one listing."""
        self.credit_reads += 1
        listed = {key: list(rows) for key, rows in self.payments.items() if any(row.unapplied for row in rows)}
        return OpenCredits(listed)

    def invoice_pdf(self, invoice: InvoiceSnapshot) -> bytes | None:
        return None

    def payment_link(self, invoice: InvoiceSnapshot) -> str | None:
        return None

    # -- writes ---------------------------------------------------------------------------------------
    def _write(self, kind: str, key: str, detail: str) -> WriteResult:
        if self.fail_with is not None:
            raise self.fail_with
        if key in self.writes:
            return WriteResult(self.writes[key][0], replayed=True)
        ref = f"{kind}-{len(self.writes) + 1}"
        self.writes[key] = (ref, detail)
        return WriteResult(ref)

    def add_note(self, invoice: InvoiceSnapshot, text: str, key: str) -> WriteResult:
        return self._write("note", key, text)

    def create_fee_invoice(self, invoice: InvoiceSnapshot, amount: Money, description: str, key: str) -> WriteResult:
        return self._write("fee", key, f"{amount} {description}")

    def create_credit(self, invoice: InvoiceSnapshot, amount: Money, reason: str, key: str) -> WriteResult:
        return self._write("credit", key, reason)

    def void_fee_invoice(self, external_ref: str, key: str) -> WriteResult:
        return self._write("void", key, external_ref)

    def send_via_provider(self, invoice: InvoiceSnapshot, to: str, key: str) -> WriteResult:
        return self._write("send", key, to)
