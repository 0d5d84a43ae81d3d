"""The hand-off pack (issue 17) made by the executor for `escalate: handoff` escalations: one pack per customer and
day, made exactly once (a retried escalation finds it), with a UK letter before claim (statutory interest and
compensation, Information Sheet, Reply Form) or a final demand, an evidence ZIP whose summary matches the ledger,
and an agency CSV that no spreadsheet runs as formulas; hostile names never escape into paths or markup."""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select, update

from connector.domain.actions import Action, ActionKind
from connector.domain.model import CustomerSnapshot, InvoiceSnapshot
from connector.domain.money import Money
from connector.handoff.service import StoreHandoffDesk
from connector.outbox.executor import Executor
from connector.storage import Store
from connector.storage.tables import Action as ActionRow
from connector.storage.tables import HandoffPack, Invoice, SentMessage
from connector.tasks.service import StoreTaskDesk
from tests.service.test_tasks import NoMail, _plan
from tests.support.ledger import FakeLedger
from tests.support.outbox import connection_with_invoices, invoice_snapshot
from tests.support.pdf import pdf_text, words

DUE = date(2026, 10, 1)
NOW = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
HOSTILE_ADDRESS = ("=cmd|' /C calc'!A0", "<b>1 High St</b>", "London")
HOSTILE_NUMBER = "../../etc/passwd"


class PackLedger(FakeLedger):
    """A ledger with invoice PDFs, pay links and a customer address (a hostile one)."""

    def __init__(self, invoices: list[InvoiceSnapshot]) -> None:
        super().__init__(invoices)
        self.pdf_calls = 0

    def invoice_pdf(self, invoice: InvoiceSnapshot) -> bytes | None:
        self.pdf_calls += 1
        return b"%PDF-1.4 invoice " + invoice.external_id.encode()

    def payment_link(self, invoice: InvoiceSnapshot) -> str | None:
        return f"https://pay.example/{invoice.external_id}"

    def customer_contacts(self, external_id: str) -> CustomerSnapshot:
        return CustomerSnapshot(external_id, "Cust One", ("ap@cust.example",), address=HOSTILE_ADDRESS, phone="+44 20")


def _connection(store: Store, **fields: object) -> tuple[int, list[InvoiceSnapshot]]:
    invoices = [
        invoice_snapshot(1, due=DUE, updated_at=NOW - timedelta(days=60)),
        replace(
            invoice_snapshot(2, due=DUE, updated_at=NOW - timedelta(days=60)),
            number=HOSTILE_NUMBER,
            total=Money.of("1500.00", "GBP"),
            balance=Money.of("1200.00", "GBP"),
        ),
    ]
    cid = connection_with_invoices(store, invoices, first_seen_at=NOW - timedelta(days=90), **fields)
    with store.unit_of_work() as uow:
        uow.memberships.add(
            uow.users.add("owner@books.example", "x").id, uow.connections.by_id(cid).organization_id, "owner"
        )  # type: ignore[union-attr]
        uow.session.add(
            SentMessage(
                action_key="r" * 40,
                connection_id=cid,
                customer_external_id="c1",
                invoice_external_ids=["1", "2"],
                state="sent",
                mailer="smtp",
                message_id="<m1@books.example>",
                subject="=Invoice INV-1 is overdue",
                from_address="ar@books.example",
                to_addresses=["ap@cust.example"],
                sent_at=NOW - timedelta(days=20),
                raw=b"Subject: Invoice INV-1 is overdue\r\n\r\nPlease pay.\r\n",
            )
        )
        uow.commit()
    return cid, invoices


def _handoff(cid: int, invoice: str) -> Action:
    return Action(
        key=f"handoff-{invoice}".ljust(40, "0"),
        kind=ActionKind.ESCALATE,
        connection_id=str(cid),
        customer_external_id="c1",
        invoice_external_ids=(invoice,),
        scheduled_at=NOW - timedelta(minutes=5),
        local_date=NOW.date(),
        step_id="handoff",
        rule="cadence 'standard' step 'handoff' (60 days after due): escalate; no further reminders; hand-off pack",
        amount=Money.of("500.00", "GBP"),
        due_date=DUE,
        customer_name="Cust One",
        handoff=True,
    )


def _executor(store: Store, ledger: FakeLedger) -> Executor:
    now = lambda: NOW  # noqa: E731
    return Executor(
        store,
        ledger,
        NoMail(),
        now,
        "w1",
        tasks=StoreTaskDesk(store, now),
        handoffs=StoreHandoffDesk(store, now, uk_base_rate=Decimal("4.00")),
    )


def _packs(store: Store) -> list[HandoffPack]:
    with store.unit_of_work() as uow:
        rows = list(uow.session.scalars(select(HandoffPack).order_by(HandoffPack.id)))
        uow.session.expunge_all()
        return rows


def test_two_handoffs_of_one_customer_and_day_make_one_pack_once(store: Store) -> None:
    cid, invoices = _connection(store, time_zone="Europe/London", holiday_country="GB", home_currency="GBP")
    ledger = PackLedger(invoices)
    for invoice in ("1", "2"):
        _plan(store, cid, _handoff(cid, invoice))
    _executor(store, ledger).run_due(cid)
    (pack,) = _packs(store)
    assert sorted(pack.invoice_external_ids) == ["1", "2"]
    assert pack.kind == "pre_action"
    with store.unit_of_work() as uow:
        refs = list(uow.session.scalars(select(ActionRow.external_ref).order_by(ActionRow.id)))
    assert all(ref.endswith(f"pack:{pack.id}") for ref in refs), refs
    # A crash after the pack was stored but before the action was recorded done: the retry finds the pack.
    with store.unit_of_work() as uow:
        uow.session.execute(update(ActionRow).values(state="planned", external_ref=""))
        uow.commit()
    calls = ledger.pdf_calls
    _executor(store, ledger).run_due(cid)
    assert [p.id for p in _packs(store)] == [pack.id]
    assert ledger.pdf_calls == calls  # found by its key before the ledger is asked anything


def test_a_uk_pack_claims_statutory_interest_and_its_summary_matches_the_ledger(store: Store) -> None:
    cid, invoices = _connection(store, time_zone="Europe/London", holiday_country="GB", home_currency="GBP")
    for invoice in ("1", "2"):
        _plan(store, cid, _handoff(cid, invoice))
    _executor(store, PackLedger(invoices)).run_due(cid)
    (pack,) = _packs(store)
    archive = zipfile.ZipFile(io.BytesIO(pack.evidence_zip))
    names = archive.namelist()
    assert all(not n.startswith("/") and ".." not in n for n in names), names
    assert {"summary.pdf", "letter.pdf", "placement.csv", "messages.csv", "messages/001.eml", "fees.csv"} <= set(names)
    assert "invoices/invoice-INV-1.pdf" in names
    assert "invoices/invoice-etc-passwd.pdf" in names
    with store.unit_of_work() as uow:
        ledger_total = sum(uow.session.scalars(select(Invoice.balance).where(Invoice.connection_id == cid)))
    summary = words(pdf_text(archive.read("summary.pdf")))
    assert f"Ledger outstanding GBP: {ledger_total:.2f}" in summary  # 500.00 + 1200.00
    assert pack.totals["GBP"]["outstanding"] == "1700.00"
    letter = words(pdf_text(pack.letter_pdf))
    assert "Letter before claim" in letter
    assert "Pre-Action Protocol for Debt Claims" in letter
    assert "Information Sheet" in letter
    assert "Reply Form" in letter
    assert "I dispute the debt" in letter
    assert "30 December 2026" in letter  # 30 days to reply
    # 500 x 12 % x 60 / 365 = 9.86 and £40; 1200 x 12 % x 60 / 365 = 23.67 and £70
    assert "£9.86" in letter
    assert "£23.67" in letter
    assert "£40.00" in letter
    assert "£70.00" in letter
    assert "<b>1 High St</b> London" in letter  # markup from the ledger printed as text, never interpreted
    rows = {r["invoice_number"]: r for r in csv.DictReader(io.StringIO(pack.placement_csv.decode()))}
    assert sorted(rows) == [HOSTILE_NUMBER, "INV-1"]
    assert rows["INV-1"]["address"].startswith("'=cmd")
    assert rows[HOSTILE_NUMBER]["interest_claimed"] == "23.67"
    assert rows[HOSTILE_NUMBER]["compensation_claimed"] == "70.00"
    assert rows["INV-1"]["last_contact_date"] == "2026-11-10"
    assert rows["INV-1"]["contact_phone"] == "'+44 20"
    messages = list(csv.DictReader(io.StringIO(archive.read("messages.csv").decode())))
    assert messages[0]["subject"] == "'=Invoice INV-1 is overdue"
    assert messages[0]["delivery"] == "sent"
    assert messages[0]["invoices"] == f"INV-1, {HOSTILE_NUMBER}"  # numbers, as the customer knows them


def test_outside_the_uk_the_letter_is_a_final_demand_without_statutory_sums(store: Store) -> None:
    cid, invoices = _connection(store, time_zone="America/New_York", holiday_country="US", home_currency="USD")
    _plan(store, cid, _handoff(cid, "1"))
    _executor(store, PackLedger(invoices)).run_due(cid)
    (pack,) = _packs(store)
    assert pack.kind == "final_demand"
    assert pack.invoice_external_ids == ["1"]
    letter = words(pdf_text(pack.letter_pdf))
    assert "Final demand" in letter
    assert "Reply Form" not in letter
    assert "Interest" not in letter
    assert pack.totals["GBP"]["interest"] == "0.00"
