"""The invoices screen's read models (issue 15): the listing's holds and filters (plan, dispute, pause, search with
LIKE wildcards as plain characters), paging both ways, the detail's story in plain words with each reminder's kept
email and ledger links, and one kept email read back (scoped to its client and invoice), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from connector.config import MailSettings
from connector.domain.actions import ActionKind
from connector.domain.money import Money
from connector.errors import InvalidInput, UnknownRecord
from connector.mail.archive import Concerning, keep, settle
from connector.mail.message import OutgoingMessage, prepare
from connector.ports import ProviderSettings, ProviderSpec
from connector.receivables.invoices import InvoiceFilter, InvoiceView, invoice_detail, invoice_page, sent_email
from connector.registry import Registry
from connector.storage import Store
from connector.storage.tables import Connection, Customer, Installment, InvoiceOverride, PaymentPlan
from tests.support import receivables as seed

NOW = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
TODAY = NOW.date()
SETTINGS = MailSettings(backend="maildir", outbox_path="/nowhere", from_address="billing@books.example")


@pytest.fixture
def books(store: Store) -> dict[str, int]:
    """Organization P, client A with five invoices of three customers; organization Q with a client of its own."""
    p = seed.organization(store, "P")
    q = seed.organization(store, "Q")
    a = seed.client(store, p, "Alpha Ltd", time_zone="Europe/London")
    b = seed.client(store, p, "Beta Ltd")
    other = seed.client(store, q, "Other")
    seed.customer(store, a, "c1", "Cust One", ("ap@one.example",))
    seed.customer(store, a, "c2", "100%_Sure Ltd")
    seed.customer(store, a, "c3", "O'Brien & <Sons>")
    ids = {
        "inv1": seed.invoice(store, a, "1", due=TODAY - timedelta(days=40)),
        "inv2": seed.invoice(
            store, a, "2", due=TODAY - timedelta(days=20), customer_id="c2", customer_name="100%_Sure Ltd"
        ),
        "inv3": seed.invoice(
            store, a, "3", due=TODAY - timedelta(days=10), customer_id="c3", customer_name="O'Brien & <Sons>"
        ),
        "inv4": seed.invoice(store, a, "4", due=TODAY + timedelta(days=5), number="50%OFF"),
        "inv5": seed.invoice(store, a, "5", due=None),
        "inv_b": seed.invoice(store, b, "1", due=TODAY),
        "inv_q": seed.invoice(store, other, "1", due=TODAY),
    }
    with store.unit_of_work() as uow:
        plan = PaymentPlan(connection_id=a, invoice_external_id="1", grace_days=3, created_at=NOW)
        plan.installments = [
            Installment(due_date=TODAY + timedelta(days=7), amount=Decimal("50.00"), currency="GBP"),
            Installment(due_date=TODAY + timedelta(days=37), amount=Decimal("50.00"), currency="GBP"),
        ]
        uow.session.add(plan)
        uow.session.add(PaymentPlan(connection_id=a, invoice_external_id="2", grace_days=3, state="broken"))
        uow.session.add(
            InvoiceOverride(
                connection_id=a, invoice_external_id="2", dispute=True, dispute_reason="wrong quantity",
                paused_until=TODAY + timedelta(days=3),
            )
        )  # fmt: skip
        customer = uow.session.query(Customer).filter_by(connection_id=a, external_id="c3").one()
        customer.paused_until = TODAY + timedelta(days=9)
        customer.excluded = True
        uow.commit()
    return {"p": p, "q": q, "a": a, "b": b, "other": other, **ids}


def _page(store: Store, books: dict[str, int], **filters: object) -> list[InvoiceView]:
    found = invoice_page(store, books["p"], NOW, filters=InvoiceFilter(connection_id=books["a"], **filters))  # type: ignore[arg-type]
    return list(found.items)


def test_the_listing_says_what_holds_each_invoice(store: Store, books: dict[str, int]) -> None:
    rows = {row.number: row for row in _page(store, books)}
    assert rows["INV-1"].has_plan
    assert not rows["INV-1"].disputed
    assert not rows["INV-2"].has_plan  # its plan was broken
    assert rows["INV-2"].disputed
    assert rows["INV-2"].paused_until == TODAY + timedelta(days=3)
    assert rows["INV-3"].paused_until == TODAY + timedelta(days=9)
    assert rows["INV-3"].excluded
    assert not any((rows["50%OFF"].has_plan, rows["50%OFF"].disputed, rows["50%OFF"].excluded))


def test_filters_by_plan_and_dispute(store: Store, books: dict[str, int]) -> None:
    assert [row.number for row in _page(store, books, has_plan=True)] == ["INV-1"]
    assert "INV-1" not in [row.number for row in _page(store, books, has_plan=False)]
    assert [row.number for row in _page(store, books, disputed=True)] == ["INV-2"]
    assert [row.number for row in _page(store, books, disputed=False)] == ["INV-1", "INV-3", "50%OFF", "INV-5"]
    with store.unit_of_work() as uow:  # a customer in dispute puts every invoice of theirs in dispute
        uow.session.query(Customer).filter_by(connection_id=books["a"], external_id="c1").one().dispute = True
        uow.commit()
    assert [row.number for row in _page(store, books, disputed=True)] == ["INV-1", "INV-2", "50%OFF", "INV-5"]


@pytest.mark.parametrize(
    ("search", "numbers"),
    [
        ("%", ["INV-2", "50%OFF"]),  # a percent sign is a percent sign, not "anything"
        ("_", ["INV-2"]),  # likewise the underscore
        ("0%o", ["50%OFF"]),
        ("o'brien", ["INV-3"]),
        ("<sons>", ["INV-3"]),
        ("  inv-1  ", ["INV-1"]),
        ("\\", []),
        ("nothing like it", []),
    ],
)
def test_search_takes_wildcards_and_quotes_literally(
    store: Store, books: dict[str, int], search: str, numbers: list[str]
) -> None:
    assert [row.number for row in _page(store, books, search=search)] == numbers


def test_pages_forward_and_back(store: Store, books: dict[str, int]) -> None:
    args = {"filters": InvoiceFilter(connection_id=books["a"]), "limit": 2}
    first = invoice_page(store, books["p"], NOW, **args)  # type: ignore[arg-type]
    assert [row.number for row in first.items] == ["INV-1", "INV-2"]
    assert first.prev_cursor is None
    assert first.next_cursor is not None
    second = invoice_page(store, books["p"], NOW, cursor=first.next_cursor, **args)  # type: ignore[arg-type]
    assert [row.number for row in second.items] == ["INV-3", "50%OFF"]
    third = invoice_page(store, books["p"], NOW, cursor=second.next_cursor, **args)  # type: ignore[arg-type]
    assert [row.number for row in third.items] == ["INV-5"]  # the undated one, last
    assert third.next_cursor is None
    assert third.prev_cursor is not None
    back = invoice_page(store, books["p"], NOW, before=third.prev_cursor, **args)  # type: ignore[arg-type]
    assert [row.number for row in back.items] == ["INV-3", "50%OFF"]
    assert back.next_cursor is not None
    assert back.prev_cursor is not None
    start = invoice_page(store, books["p"], NOW, before=back.prev_cursor, **args)  # type: ignore[arg-type]
    assert [row.number for row in start.items] == ["INV-1", "INV-2"]
    assert start.prev_cursor is None
    assert start.next_cursor is not None
    with pytest.raises(InvalidInput):  # a next cursor is not a "before" one, and the other way round
        invoice_page(store, books["p"], NOW, before=first.next_cursor, **args)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        invoice_page(store, books["p"], NOW, cursor=third.prev_cursor, **args)  # type: ignore[arg-type]


def _email(store: Store, connection_id: int, key: str, invoices: list[str], *, html: str | None = "<p>Pay</p>") -> int:
    message = OutgoingMessage(
        to=["ap@one.example"],
        cc=["boss@one.example"],
        subject="Invoice INV-1 is overdue",
        text="Please pay INV-1.",
        html=html,
        thread_key=f"{connection_id}:invoice:1",
        message_key=key,
        reply_to="accounts@alpha.example",
        from_name="Alpha Ltd",
    )
    prepared = prepare(message, SETTINGS, now=NOW - timedelta(days=2))
    email_id = keep(
        store, prepared, Concerning(key, connection_id, "c1", invoices), mailer="maildir", at=NOW - timedelta(days=2)
    )
    with store.unit_of_work() as uow:
        settle(uow.session, key, "sent")
        uow.commit()
    return email_id


def _registry() -> Registry:
    spec = ProviderSpec(
        key="fake",
        display_name="Fake Books",
        authorization_url=lambda *a: "",
        exchange_code=lambda *a: None,  # type: ignore[arg-type, return-value]
        refresh=lambda *a: None,  # type: ignore[arg-type, return-value]
        revoke=lambda *a: None,
        connect=lambda *a: [],
        verify_webhook=lambda *a: False,
        parse_webhook=lambda *a: [],
        adapter=lambda *a: None,  # type: ignore[arg-type, return-value]
        ledger_url=lambda settings, tenant, kind, ident: f"https://books.example/{tenant}/{kind}/{ident}",
    )
    settings = ProviderSettings(key="fake", client_id="x", client_secret="y", redirect_uri="")
    return Registry({"fake": spec}, {"fake": settings})


def test_the_story_tells_each_entry_in_words_with_its_email_and_ledger_link(
    store: Store, books: dict[str, int]
) -> None:
    a = books["a"]
    sent_at = NOW - timedelta(days=2)
    seed.action(store, a, "r" * 40, state="done", at=sent_at, updated_at=sent_at, recipients=("ap@one.example",))
    email_id = _email(store, a, "r" * 40, ["1"])
    seed.action(store, a, "f" * 40, kind=ActionKind.LATE_FEE, state="done", amount=Money.of("25.00", "GBP"),
                at=NOW - timedelta(days=1), updated_at=NOW - timedelta(days=1), ref="FEE-77")  # fmt: skip
    seed.action(store, a, "n" * 40, kind=ActionKind.NOTE, state="done", at=NOW - timedelta(hours=5),
                updated_at=NOW - timedelta(hours=5), ref="1")  # fmt: skip
    seed.action(store, a, "u" * 40, state="uncertain", at=NOW - timedelta(hours=3), updated_at=NOW - timedelta(hours=3))
    seed.action(store, a, "p" * 40, state="planned", at=NOW + timedelta(days=2))
    seed.payment(store, a, "PAY-1", "1", "40.00", TODAY - timedelta(days=1))
    with store.unit_of_work() as uow:
        uow.session.get(Connection, a).tenant_id = "realm-9"  # type: ignore[union-attr]
        uow.session.get(Connection, a).provider = "fake"  # type: ignore[union-attr]
        uow.activities.record(books["p"], "action.remind", "r" * 40, connection_id=a, at=sent_at)  # told twice
        uow.activities.record(books["p"], "action.approved", "p" * 40, connection_id=a, actor="ann@p.example", at=NOW)
        uow.activities.record(books["p"], "sync.quarantined", "1", connection_id=a, at=NOW - timedelta(days=3),
                              detail={"field": "DueDate", "reason": "not a date"})  # fmt: skip
        uow.commit()

    detail = invoice_detail(store, books["p"], a, books["inv1"], NOW, registry=_registry())

    assert detail.ledger_name == "Fake Books"
    assert detail.ledger_url == "https://books.example/realm-9/invoice/1"
    assert detail.plan is not None
    assert detail.plan.state == "active"
    assert len(detail.plan.installments) == 2
    assert detail.invoice.has_plan
    words = [(entry.type, entry.words) for entry in detail.timeline if not entry.repeats]
    assert words[0] == (
        "action",
        f"Reminder to the customer's addresses planned for {(NOW + timedelta(days=2)):%d %b %Y %H:%M} UTC",
    )
    reminder = next(entry for entry in detail.timeline if entry.ref == "r" * 40)
    assert reminder.words == "Reminder sent to ap@one.example, boss@one.example"
    assert reminder.email_id == email_id
    assert reminder.email_subject == "Invoice INV-1 is overdue"
    fee = next(entry for entry in detail.timeline if entry.ref == "f" * 40)
    assert fee.words == "Late fee of £25.00 charged in Fake Books as fee invoice FEE-77"
    assert fee.ledger_url == "https://books.example/realm-9/invoice/FEE-77"
    note = next(entry for entry in detail.timeline if entry.ref == "n" * 40)
    assert note.ledger_url == "https://books.example/realm-9/invoice/1"
    uncertain = next(entry for entry in detail.timeline if entry.ref == "u" * 40)
    assert uncertain.words.startswith("Reminder to the customer's addresses may or may not have been sent")
    assert uncertain.email_id is None  # nothing was kept: it was never handed over by a two-step mailer
    told = next(entry for entry in detail.timeline if entry.kind == "action.remind")
    assert told.repeats == "r" * 40
    approved = next(entry for entry in detail.timeline if entry.kind == "action.approved")
    assert approved.words == "Reminder approved by ann@p.example"
    assert not approved.repeats
    quarantined = next(entry for entry in detail.timeline if entry.kind == "sync.quarantined")
    assert quarantined.words == "Fake Books sent data Nudge could not read (DueDate): not a date"
    payment = next(entry for entry in detail.timeline if entry.type == "payment")
    assert payment.words == "Payment of £40.00 applied in Fake Books"
    assert all(entry.words for entry in detail.timeline)


def test_a_kept_email_reads_back_only_in_its_own_client_and_invoice(store: Store, books: dict[str, int]) -> None:
    a = books["a"]
    seed.action(store, a, "r" * 40, state="done", at=NOW, updated_at=NOW)
    email_id = _email(store, a, "r" * 40, ["1", "3"])  # a statement-style reminder about two invoices

    found = sent_email(store, books["p"], a, books["inv1"], email_id)
    assert found.state == "sent"
    assert found.subject == "Invoice INV-1 is overdue"
    assert found.to == ("ap@one.example",)
    assert found.cc == ("boss@one.example",)
    assert found.message.header("Reply-To") == "accounts@alpha.example"
    assert found.message.header("From") == "Alpha Ltd <billing@books.example>"
    assert found.message.text is not None
    assert found.message.text.strip() == "Please pay INV-1."
    assert found.message.html is not None
    assert "<p>Pay</p>" in found.message.html
    assert sent_email(store, books["p"], a, books["inv3"], email_id).id == email_id  # the other invoice it lists

    for org, client, invoice in (
        (books["p"], a, books["inv2"]),  # an invoice the email does not concern
        (books["p"], books["b"], books["inv_b"]),  # another client
        (books["q"], books["other"], books["inv_q"]),  # another organization
        (books["q"], a, books["inv1"]),  # another organization naming this client
    ):
        with pytest.raises(UnknownRecord):
            sent_email(store, org, client, invoice, email_id)
    with pytest.raises(UnknownRecord):
        sent_email(store, books["p"], a, books["inv1"], email_id + 1000)
    with pytest.raises(UnknownRecord):
        sent_email(store, books["p"], a, books["inv1"], email_id, connection_ids={books["b"]})  # a limited member


def test_an_email_marked_sent_by_a_person_reads_as_sent(store: Store, books: dict[str, int]) -> None:
    a = books["a"]
    seed.action(store, a, "m" * 40, state="done", at=NOW, updated_at=NOW)
    email_id = _email(store, a, "m" * 40, ["1"], html=None)
    with store.unit_of_work() as uow:
        settle(uow.session, "m" * 40, "uncertain")  # the worker stopped; then a person marked the action sent
        uow.commit()
    found = sent_email(store, books["p"], a, books["inv1"], email_id)
    assert found.state == "sent"
    assert found.message.html is None
    assert found.sent_at == NOW - timedelta(days=2)
    assert isinstance(found.sent_at.date(), date)


def test_a_grouped_email_that_went_without_this_invoice_is_not_linked_from_it(
    store: Store, books: dict[str, int]
) -> None:
    a = books["a"]
    sent_at = NOW - timedelta(days=1)
    seed.action(store, a, "g" * 40, state="done", at=sent_at, updated_at=sent_at, invoices=("1", "4"), grouped=True)
    email_id = _email(store, a, "g" * 40, ["4"])  # invoice 1 was paid by the time it went out: left out

    left = invoice_detail(store, books["p"], a, books["inv1"], NOW)
    entry = next(entry for entry in left.timeline if entry.ref == "g" * 40)
    assert entry.email_id is None
    assert entry.words.endswith("this invoice was left out of it, it no longer needed chasing")
    kept = invoice_detail(store, books["p"], a, books["inv4"], NOW)
    assert next(entry for entry in kept.timeline if entry.ref == "g" * 40).email_id == email_id
