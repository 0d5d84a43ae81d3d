"""Invoices for the API (issue 14): filters, keyset pages stable under inserts, aging on the client's own
calendar (30/31-day edges, midnight in far zones), client-limited visibility, and one invoice's timeline."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from connector.domain.actions import ActionKind, HoldReason
from connector.domain.money import Money
from connector.errors import InvalidInput, UnknownRecord
from connector.library import audit
from connector.receivables.common import Page
from connector.receivables.invoices import InvoiceFilter, InvoiceView, bucket_of, invoice_detail, list_invoices
from connector.storage import Store
from connector.storage.tables import ClientSettings, PaymentPlan
from tests.support import receivables as seed

NOW = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
TODAY = NOW.date()


def _all(store: Store, org_id: int, limit: int = 50, **kwargs: object) -> list[InvoiceView]:
    """Every page of a listing, followed cursor by cursor."""
    found: list[InvoiceView] = []
    cursor: str | None = None
    while True:
        page: Page[InvoiceView] = list_invoices(store, org_id, NOW, cursor=cursor, limit=limit, **kwargs)  # type: ignore[arg-type]
        found.extend(page.items)
        if page.next_cursor is None:
            return found
        cursor = page.next_cursor


def _numbers(items: list[InvoiceView] | tuple[InvoiceView, ...]) -> list[str]:
    return [item.number for item in items]


@pytest.fixture
def practice(store: Store) -> dict[str, int]:
    """Practice P with clients A (London) and B (GBP and EUR invoices), and another practice Q with one client."""
    p = seed.organization(store, "P")
    q = seed.organization(store, "Q")
    a = seed.client(store, p, "Alpha Ltd", time_zone="Europe/London")
    b = seed.client(store, p, "Beta GmbH", time_zone="Europe/Berlin", home_currency="EUR")
    other = seed.client(store, q, "Other")
    seed.customer(store, a, "c1", "Cust One")
    acme = seed.customer(store, a, "c2", "ACME 100% Widgets")
    seed.invoice(store, a, "1", due=TODAY - timedelta(days=5))
    seed.invoice(store, a, "2", due=TODAY - timedelta(days=45), customer_id="c2", customer_name="ACME 100% Widgets")
    seed.invoice(store, a, "3", due=TODAY + timedelta(days=10), status="paid", balance="0.00", total="80.00")
    seed.invoice(store, b, "1", due=TODAY - timedelta(days=100), currency="EUR", balance="250.00")
    seed.invoice(store, b, "2", due=None, currency="EUR", number="B-NODATE")
    seed.invoice(store, other, "1", due=TODAY - timedelta(days=5), number="Q-SECRET")
    return {"p": p, "q": q, "a": a, "b": b, "other": other, "acme": acme}


def test_the_listing_covers_every_visible_client_sorted_by_due_date_with_undated_last(
    store: Store, practice: dict[str, int]
) -> None:
    items = _all(store, practice["p"])
    assert [(item.client, item.number) for item in items] == [
        ("Beta GmbH", "INV-1"),  # 100 days late
        ("Alpha Ltd", "INV-2"),  # 45
        ("Alpha Ltd", "INV-1"),  # 5
        ("Alpha Ltd", "INV-3"),  # due in 10 days
        ("Beta GmbH", "B-NODATE"),  # no due date: last
    ]
    assert "Q-SECRET" not in _numbers(items)
    first = items[0]
    assert first.balance == Money.of("250.00", "EUR")
    assert first.aging == "90+"
    assert first.days_past_due == 100
    assert items[-1].due_date is None
    assert items[-1].aging == "current"
    assert items[-1].days_past_due is None


def test_filters_client_customer_status_due_range_and_search(store: Store, practice: dict[str, int]) -> None:
    p = practice["p"]
    assert _numbers(_all(store, p, filters=InvoiceFilter(connection_id=practice["b"]))) == ["INV-1", "B-NODATE"]
    by_customer = _all(store, p, filters=InvoiceFilter(customer_id=practice["acme"]))
    assert [(item.number, item.customer_id) for item in by_customer] == [("INV-2", practice["acme"])]
    assert _numbers(_all(store, p, filters=InvoiceFilter(status="paid"))) == ["INV-3"]
    window = InvoiceFilter(due_from=TODAY - timedelta(days=50), due_to=TODAY)
    assert _numbers(_all(store, p, filters=window)) == ["INV-2", "INV-1"]
    # Search: the number or the customer's name, any case; "%" is a character, not a wildcard.
    assert _numbers(_all(store, p, filters=InvoiceFilter(search="acme 100%"))) == ["INV-2"]
    assert _numbers(_all(store, p, filters=InvoiceFilter(search="1%"))) == []
    assert _numbers(_all(store, p, filters=InvoiceFilter(search="nodate"))) == ["B-NODATE"]


def test_refused_filters_name_their_field(store: Store, practice: dict[str, int]) -> None:
    p = practice["p"]
    cases = [
        (InvoiceFilter(status="late"), "status"),
        (InvoiceFilter(aging="0-10"), "aging"),
        (InvoiceFilter(due_from=TODAY, due_to=TODAY - timedelta(days=1)), "due_from"),
        (InvoiceFilter(search="x" * 201), "search"),
    ]
    for filters, field in cases:
        with pytest.raises(InvalidInput) as refused:
            list_invoices(store, p, NOW, filters=filters)
        assert refused.value.field == field
    with pytest.raises(InvalidInput) as refused:
        list_invoices(store, p, NOW, limit=0)
    assert refused.value.field == "limit"
    for bad in ("not-a-cursor", "eyJ4IjoxfQ", seed_cursor_of_another_listing()):
        with pytest.raises(InvalidInput) as refused:
            list_invoices(store, p, NOW, cursor=bad)
        assert refused.value.field == "cursor"
    with pytest.raises(UnknownRecord) as unknown:
        list_invoices(store, p, NOW, filters=InvoiceFilter(connection_id=practice["other"]))
    assert unknown.value.field == "connection_id"


def seed_cursor_of_another_listing() -> str:
    from connector.receivables.common import encode_cursor

    return encode_cursor("actions", ["2026-11-30T10:00:00+00:00", 1])


def test_pages_are_stable_when_invoices_arrive_between_them(store: Store) -> None:
    p = seed.organization(store, "P")
    a = seed.client(store, p, "Alpha")
    for n in range(1, 8):  # due on days 1..7 of November
        seed.invoice(store, a, str(n), due=date(2026, 11, n))
    seed.invoice(store, a, "same-day", due=date(2026, 11, 3))  # ties on the due date: the id decides
    first = list_invoices(store, p, NOW, limit=3)
    assert _numbers(first.items) == ["INV-1", "INV-2", "INV-3"]
    assert first.next_cursor is not None
    # Synced meanwhile: one before the cursor (never shown on a later page), one after (shown once).
    seed.invoice(store, a, "early", due=date(2026, 10, 1))
    seed.invoice(store, a, "late", due=date(2026, 11, 5))
    rest: list[InvoiceView] = []
    cursor: str | None = first.next_cursor
    while cursor is not None:
        page = list_invoices(store, p, NOW, limit=3, cursor=cursor)
        rest.extend(page.items)
        cursor = page.next_cursor
    assert _numbers(rest) == ["INV-same-day", "INV-4", "INV-5", "INV-late", "INV-6", "INV-7"]
    seen = [*first.items, *rest]
    assert len({item.id for item in seen}) == len(seen)  # no invoice twice


def test_an_exact_last_page_has_no_next_cursor(store: Store) -> None:
    p = seed.organization(store, "P")
    a = seed.client(store, p, "Alpha")
    for n in range(1, 5):
        seed.invoice(store, a, str(n), due=date(2026, 11, n))
    first = list_invoices(store, p, NOW, limit=2)
    second = list_invoices(store, p, NOW, limit=2, cursor=first.next_cursor)
    assert _numbers(second.items) == ["INV-3", "INV-4"]
    assert second.next_cursor is None


def test_aging_buckets_at_their_edges(store: Store) -> None:
    assert [bucket_of(days) for days in (None, -3, 0, 1, 30, 31, 60, 61, 90, 91, 400)] == [
        "current",
        "current",
        "current",
        "1-30",
        "1-30",
        "31-60",
        "31-60",
        "61-90",
        "61-90",
        "90+",
        "90+",
    ]
    p = seed.organization(store, "P")
    a = seed.client(store, p, "Alpha")
    for days in (0, 1, 30, 31, 60, 61, 90, 91):
        seed.invoice(store, a, f"d{days}", due=TODAY - timedelta(days=days))
    seed.invoice(store, a, "paid", due=TODAY - timedelta(days=30), status="paid", balance="0.00", total="5.00")
    seed.invoice(store, a, "undated", due=None)

    def bucket(name: str) -> list[str]:
        return sorted(_numbers(_all(store, p, filters=InvoiceFilter(aging=name))))

    assert bucket("current") == ["INV-d0", "INV-undated"]
    assert bucket("1-30") == ["INV-d1", "INV-d30"]  # exactly 30 days late is still 1-30; paid ones are not aged
    assert bucket("31-60") == ["INV-d31", "INV-d60"]
    assert bucket("61-90") == ["INV-d61", "INV-d90"]
    assert bucket("90+") == ["INV-d91"]


def test_aging_counts_days_on_the_clients_calendar_around_midnight(store: Store) -> None:
    """At 11:30 UTC on 30 November it is already 1 December in Auckland, and still 30 November in Los Angeles
    at 05:00 UTC on 1 December: an invoice due on 30 November is a day late in Auckland, current in LA."""
    p = seed.organization(store, "P")
    auckland = seed.client(store, p, "Kiwi", time_zone="Pacific/Auckland")
    los_angeles = seed.client(store, p, "Coast", time_zone="America/Los_Angeles")
    utc = seed.client(store, p, "Plain", time_zone="UTC")
    # The client's own setting wins over the ledger's zone: this one is a London ledger set to Auckland.
    moved = seed.client(store, p, "Moved", time_zone="Europe/London")
    with store.unit_of_work() as uow:
        uow.session.add(ClientSettings(connection_id=moved, time_zone="Pacific/Auckland"))
        uow.commit()
    for cid in (auckland, los_angeles, utc, moved):
        seed.invoice(store, cid, "1", due=date(2026, 11, 30), number=f"N-{cid}")

    def aged(now: datetime) -> dict[int, str]:
        return {item.connection_id: item.aging for item in list_invoices(store, p, now).items}

    late_in_auckland = datetime(2026, 11, 30, 11, 30, tzinfo=UTC)
    assert aged(late_in_auckland) == {auckland: "1-30", los_angeles: "current", utc: "current", moved: "1-30"}
    early_in_los_angeles = datetime(2026, 12, 1, 5, 0, tzinfo=UTC)
    assert aged(early_in_los_angeles) == {auckland: "1-30", los_angeles: "current", utc: "1-30", moved: "1-30"}
    # The bucket filter asks the same question in SQL, per client.
    only_late = list_invoices(store, p, late_in_auckland, filters=InvoiceFilter(aging="1-30")).items
    assert sorted(item.connection_id for item in only_late) == sorted([auckland, moved])


def test_a_client_limited_member_sees_only_their_clients(store: Store, practice: dict[str, int]) -> None:
    p, a, b = practice["p"], practice["a"], practice["b"]
    mine = _all(store, p, connection_ids={a})
    assert {item.connection_id for item in mine} == {a}
    assert len(mine) == 3
    assert _all(store, p, connection_ids=set()) == []
    # Another organization's client named in the set changes nothing: visibility is the organization's first.
    assert {item.connection_id for item in _all(store, p, connection_ids={a, practice["other"]})} == {a}
    with pytest.raises(UnknownRecord):
        list_invoices(store, p, NOW, connection_ids={a}, filters=InvoiceFilter(connection_id=b))
    beta_invoice = _all(store, p, filters=InvoiceFilter(connection_id=b))[0]
    with pytest.raises(UnknownRecord):
        invoice_detail(store, p, b, beta_invoice.id, NOW, connection_ids={a})
    with pytest.raises(UnknownRecord) as unknown:
        invoice_detail(store, p, a, beta_invoice.id, NOW)  # an invoice id of another client
    assert unknown.value.field == "invoice_id"
    with pytest.raises(UnknownRecord):
        invoice_detail(store, practice["q"], b, beta_invoice.id, NOW)  # another organization
    acme_in_a = practice["acme"]
    with pytest.raises(UnknownRecord) as unknown:
        list_invoices(store, p, NOW, connection_ids={b}, filters=InvoiceFilter(customer_id=acme_in_a))
    assert unknown.value.field == "customer_id"


def test_the_detail_merges_actions_holds_payments_tasks_activities_and_audit_newest_first(store: Store) -> None:
    p = seed.organization(store, "P")
    a = seed.client(store, p, "Alpha", time_zone="Europe/London")
    seed.customer(store, a, "c1", "Cust One", emails=("ap@cust.example",))
    inv = seed.invoice(store, a, "1", due=date(2026, 11, 1), balance="60.00", total="100.00")
    seed.invoice(store, a, "2", due=date(2026, 11, 1))
    seed.invoice(store, a, "9", due=date(2026, 11, 1), customer_id="c9", customer_name="Someone Else")
    # A grouped reminder about invoices 1 and 2 (its row names no single invoice), sent on 8 November.
    seed.action(
        store,
        a,
        "r" * 40,
        invoices=("1", "2"),
        grouped=True,
        state="done",
        at=datetime(2026, 11, 8, 9, 30, tzinfo=UTC),
        updated_at=datetime(2026, 11, 8, 9, 31, tzinfo=UTC),
        recipients=("ap@cust.example",),
        ref="<msg@nudge>",
    )
    fee = Money.of("25.00", "GBP")
    seed.action(
        store,
        a,
        "f" * 40,
        kind=ActionKind.LATE_FEE,
        state="done",
        amount=fee,
        at=datetime(2026, 11, 15, 9, 30, tzinfo=UTC),
        updated_at=datetime(2026, 11, 15, 9, 32, tzinfo=UTC),
        ref="FEE-77",
        step="late",
    )
    seed.action(
        store,
        a,
        "h" * 40,
        kind=ActionKind.HOLD,
        state="done",
        hold=HoldReason.DISPUTE,
        at=datetime(2026, 11, 20, 9, 0, tzinfo=UTC),
    )
    seed.action(store, a, "p" * 40, state="planned", at=datetime(2026, 12, 2, 9, 30, tzinfo=UTC), step="overdue-30")
    seed.action(store, a, "x" * 40, invoices=("9",), customer_id="c9", state="done")  # another customer's
    seed.payment(store, a, "PAY-1", "1", "40.00", date(2026, 11, 18))
    seed.task(store, p, a, due_on=date(2026, 11, 22))
    with store.unit_of_work() as uow:
        uow.activities.record(
            p,
            "action.approved",
            "p" * 40,
            connection_id=a,
            actor="ann@practice.example",
            at=datetime(2026, 11, 25, 8, 0, tzinfo=UTC),
        )
        audit.record(
            uow,
            organization_id=p,
            actor="ann@practice.example",
            at=datetime(2026, 11, 26, 8, 0, tzinfo=UTC),
            entity="invoice_override",
            entity_id=inv,
            change="update",
            before={"dispute": False},
            after={"dispute": True, "dispute_reason": "wrong quantity"},
            connection_id=a,
        )
        plan = PaymentPlan(connection_id=a, invoice_external_id="1", grace_days=3)
        other_plan = PaymentPlan(connection_id=a, invoice_external_id="2", grace_days=3)
        uow.session.add_all([plan, other_plan])
        uow.flush()
        for plan_id, day in ((plan.id, 27), (other_plan.id, 28)):  # the second is invoice 2's: not in this timeline
            audit.record(
                uow,
                organization_id=p,
                actor="ann@practice.example",
                at=datetime(2026, 11, day, 8, 0, tzinfo=UTC),
                entity="payment_plan",
                entity_id=plan_id,
                change="create",
                before=None,
                after={"installments": 2},
                connection_id=a,
            )
        uow.commit()

    detail = invoice_detail(store, p, a, inv, NOW)
    assert detail.invoice.number == "INV-1"
    assert detail.invoice.balance == Money.of("60.00", "GBP")
    assert detail.customer is not None
    assert detail.customer.emails == ("ap@cust.example",)
    assert [(pay.external_id, pay.amount) for pay in detail.payments] == [("PAY-1", Money.of("40.00", "GBP"))]
    assert [action.key[0] for action in detail.actions] == ["r", "f", "h", "p"]  # not the other customer's
    timeline = detail.timeline
    assert [entry.at for entry in timeline] == sorted((entry.at for entry in timeline), reverse=True)
    types = [(entry.type, entry.kind) for entry in timeline]
    assert types == [
        ("action", "remind"),  # planned for 2 December
        ("audit", "payment_plan.create"),
        ("audit", "invoice_override.update"),
        ("activity", "action.approved"),
        ("hold", "dispute"),
        ("payment", "payment"),
        ("action", "late_fee"),
        ("action", "remind"),
        ("task", "call.open"),  # opened on 1 October (the seed's moment)
    ]
    sent = timeline[-2]
    assert sent.detail["recipients"] == ["ap@cust.example"]
    assert sent.detail["state"] == "done"
    assert sent.at == datetime(2026, 11, 8, 9, 31, tzinfo=UTC)  # when it went out, not when it was planned
    fee_entry = timeline[-3]
    assert fee_entry.detail["ledger_ref"] == "FEE-77"
    assert fee_entry.detail["amount"] == "25.00"
    assert fee_entry.detail["currency"] == "GBP"
    hold = next(entry for entry in timeline if entry.type == "hold")
    assert "dispute" in hold.summary
    audit_entry = next(entry for entry in timeline if entry.kind == "invoice_override.update")
    assert audit_entry.actor == "ann@practice.example"
    assert audit_entry.detail["after"] == {"dispute": True, "dispute_reason": "wrong quantity"}
    # The payment sorts at the start of its London day.
    payment = next(entry for entry in timeline if entry.type == "payment")
    assert payment.at == datetime(2026, 11, 18, 0, 0, tzinfo=UTC)
    assert payment.detail["amount"] == "40.00"
