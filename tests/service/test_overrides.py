"""Customer and invoice overrides (issue 14): only for the client's own customers and invoices, every field
checked (the field named, nothing saved), combinations kept consistent, audited with before/after and
recorded as an activity the customer's / invoice's timeline shows, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from connector.errors import InvalidInput, UnknownRecord
from connector.library.audit import entries
from connector.library.overrides import (
    clear_invoice_override,
    customer_overrides,
    invoice_override,
    list_customers,
    update_customer_overrides,
    update_invoice_override,
)
from connector.library.settings import update_client_settings
from connector.storage import Store
from connector.storage.tables import Activity, Customer, Invoice, InvoiceOverride
from tests.support.clients import Client, client, customer, invoice

NOW = datetime(2026, 11, 16, 10, 0, tzinfo=UTC)  # Monday 16 November in London
ACTOR = "ann@practice.example"


def _setup(store: Store) -> tuple[Client, int]:
    c = client(store)
    cust = customer(store, c.connection_id, "c1", "Cust One", emails=["ap@cust.example"])
    invoice(store, c.connection_id, "1", customer_external_id="c1")
    return c, cust


def _row(store: Store, customer_id: int) -> Customer:
    with store.unit_of_work() as uow:
        row = uow.session.get(Customer, customer_id)
        assert row is not None
        return row


def test_customer_overrides_are_saved_audited_and_in_the_customers_timeline(store: Store) -> None:
    c, cust = _setup(store)
    changes = {
        "paused_until": "2026-12-01",
        "excluded": True,
        "dispute": True,
        "dispute_reason": "Says the goods arrived damaged",
        "promise_to_pay_until": date(2026, 11, 30),
        "promise_amount": "250.5",
        "promise_grace_days": 7,
        "cadence_id": c.gentle,
        "recipients_to": ["AP@Cust.Example", "ap@cust.example", "boss@cust.example"],
        "recipients_cc": ["boss@cust.example", "cfo@cust.example"],
        "locale": "fr-FR",
        "time_zone": "Europe/Paris",
        "holiday_calendar": "fr",
    }
    view = update_customer_overrides(store, c.org_id, c.connection_id, cust, changes, ACTOR, NOW)
    o = view.overrides
    assert o["paused_until"] == date(2026, 12, 1)
    assert o["excluded"] is True
    assert (o["dispute"], o["dispute_reason"]) == (True, "Says the goods arrived damaged")
    assert (o["promise_to_pay_until"], o["promise_amount"], o["promise_currency"], o["promise_grace_days"]) == (
        date(2026, 11, 30),
        "250.50",
        "GBP",
        7,
    )
    assert (o["cadence_id"], o["cadence_name"]) == (c.gentle, "gentle")
    assert o["recipients_to"] == ["AP@cust.example", "boss@cust.example"]  # de-duplicated, any case
    assert o["recipients_cc"] == ["cfo@cust.example"]  # already a To address
    assert (o["locale"], o["time_zone"], o["holiday_calendar"]) == ("fr_FR", "Europe/Paris", "FR")
    assert view.emails == ("ap@cust.example",)  # the ledger's addresses are kept apart
    row = _row(store, cust)
    assert row.promise_amount == Decimal("250.50")
    assert row.updated_at == NOW
    with store.unit_of_work() as uow:
        (entry,) = entries(uow, c.org_id, entity="customer", entity_id=str(cust))
        activity = uow.session.scalars(select(Activity).where(Activity.kind == "customer.overrides_updated")).one()
    assert entry.connection_id == c.connection_id
    assert entry.actor == ACTOR
    assert entry.change == "update"
    assert entry.before is not None
    assert entry.before["excluded"] is False
    assert entry.before["recipients_to"] is None
    assert entry.after is not None
    assert entry.after["promise_amount"] == "250.50"
    assert activity.detail["customer"] == "c1"
    assert activity.detail["customer_id"] == cust
    assert "excluded" in activity.detail["changed"]
    assert activity.subject == "Cust One"


def test_ending_a_dispute_clears_its_reason_and_clearing_a_promise_clears_amount_and_grace(store: Store) -> None:
    c, cust = _setup(store)
    update_customer_overrides(
        store,
        c.org_id,
        c.connection_id,
        cust,
        {"dispute": True, "dispute_reason": "wrong price", "promise_to_pay_until": "2026-11-20", "promise_amount": 100},
        ACTOR,
        NOW,
    )
    view = update_customer_overrides(
        store, c.org_id, c.connection_id, cust, {"dispute": False, "promise_to_pay_until": None}, ACTOR, NOW
    )
    o = view.overrides
    assert (o["dispute"], o["dispute_reason"]) == (False, "")
    assert (o["promise_to_pay_until"], o["promise_amount"], o["promise_currency"], o["promise_grace_days"]) == (
        None,
        None,
        "",
        3,
    )


def test_a_new_cadence_override_retires_the_legacy_name_and_null_restores_the_clients(store: Store) -> None:
    c, _ = _setup(store)
    cust = customer(store, c.connection_id, "c2", "Legacy Co", cadence="standard")
    view = update_customer_overrides(store, c.org_id, c.connection_id, cust, {"cadence_id": None}, ACTOR, NOW)
    assert view.overrides["cadence_id"] is None
    assert _row(store, cust).cadence == ""
    with store.unit_of_work() as uow:
        (entry,) = entries(uow, c.org_id, entity="customer", entity_id=str(cust))
    assert entry.before is not None
    assert entry.before["legacy_cadence"] == "standard"


def test_a_date_saved_earlier_may_have_passed_but_a_new_one_must_not_be_past(store: Store) -> None:
    c, cust = _setup(store)
    update_customer_overrides(store, c.org_id, c.connection_id, cust, {"paused_until": "2026-11-16"}, ACTOR, NOW)
    later = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    view = update_customer_overrides(
        store, c.org_id, c.connection_id, cust, {"paused_until": "2026-11-16", "excluded": True}, ACTOR, later
    )
    assert view.overrides["paused_until"] == date(2026, 11, 16)
    with pytest.raises(InvalidInput) as refused:
        update_customer_overrides(store, c.org_id, c.connection_id, cust, {"paused_until": "2026-11-19"}, ACTOR, later)
    assert refused.value.field == "paused_until"
    assert "past" in refused.value.user_message


def test_today_is_the_clients_date(store: Store) -> None:
    """At 23:30 UTC on the 16th it is already the 17th in Auckland: the 16th is in the past there."""
    c, cust = _setup(store)
    update_client_settings(store, c.org_id, c.connection_id, {"time_zone": "Pacific/Auckland"}, ACTOR, NOW)
    late = datetime(2026, 11, 16, 23, 30, tzinfo=UTC)
    with pytest.raises(InvalidInput):
        update_customer_overrides(store, c.org_id, c.connection_id, cust, {"paused_until": "2026-11-16"}, ACTOR, late)
    update_customer_overrides(store, c.org_id, c.connection_id, cust, {"paused_until": "2026-11-17"}, ACTOR, late)


CUSTOMER_REFUSALS: list[tuple[dict[str, Any], str]] = [
    ({"paused_until": "16/11/2026"}, "paused_until"),
    ({"paused_until": "2026-11-15"}, "paused_until"),
    ({"paused_until": "2099-01-01"}, "paused_until"),
    ({"paused_until": datetime(2026, 12, 1, tzinfo=UTC)}, "paused_until"),
    ({"excluded": "yes"}, "excluded"),
    ({"excluded": 1}, "excluded"),
    ({"dispute": True}, "dispute_reason"),
    ({"dispute": True, "dispute_reason": "   "}, "dispute_reason"),
    ({"dispute": True, "dispute_reason": "x" * 2001}, "dispute_reason"),
    ({"dispute": True, "dispute_reason": "bad\x00byte"}, "dispute_reason"),
    ({"promise_amount": "10"}, "promise_to_pay_until"),
    ({"promise_to_pay_until": "2026-11-30", "promise_amount": "0"}, "promise_amount"),
    ({"promise_to_pay_until": "2026-11-30", "promise_amount": "-5"}, "promise_amount"),
    ({"promise_to_pay_until": "2026-11-30", "promise_amount": "10.001"}, "promise_amount"),
    ({"promise_to_pay_until": "2026-11-30", "promise_amount": 10.5}, "promise_amount"),
    ({"promise_to_pay_until": "2026-11-30", "promise_amount": "ten"}, "promise_amount"),
    ({"promise_to_pay_until": "2026-11-30", "promise_amount": "1e999999"}, "promise_amount"),
    ({"promise_to_pay_until": "2026-11-30", "promise_amount": "10", "promise_currency": "EUR"}, "promise_currency"),
    ({"promise_to_pay_until": "2026-11-30", "promise_amount": "10", "promise_currency": "XYZ"}, "promise_currency"),
    ({"promise_to_pay_until": "2026-11-30", "promise_grace_days": 31}, "promise_grace_days"),
    ({"promise_to_pay_until": "2026-11-30", "promise_grace_days": -1}, "promise_grace_days"),
    ({"promise_grace_days": "3"}, "promise_grace_days"),
    ({"cadence_id": 999_999}, "cadence_id"),
    ({"recipients_to": []}, "recipients_to"),
    ({"recipients_to": "ap@cust.example"}, "recipients_to"),
    ({"recipients_to": ["ap@cust.example", "not-an-address"]}, "recipients_to[1]"),
    ({"recipients_to": ["ap@cust.example\r\nBcc: x@evil.example"]}, "recipients_to[0]"),
    ({"recipients_to": [f"p{i}@cust.example" for i in range(21)]}, "recipients_to"),
    ({"recipients_cc": [7]}, "recipients_cc[0]"),
    ({"locale": "zz_ZZ"}, "locale"),
    ({"time_zone": "Europe/Atlantis"}, "time_zone"),
    ({"holiday_calendar": "GB-XXX"}, "holiday_calendar"),
    ({"credit_limit": 5}, "credit_limit"),
]


@pytest.mark.parametrize(
    ("changes", "field"), CUSTOMER_REFUSALS, ids=[f"{i}-{f}" for i, (_, f) in enumerate(CUSTOMER_REFUSALS)]
)
def test_every_wrong_customer_override_is_refused_naming_its_field(
    store: Store, changes: dict[str, Any], field: str
) -> None:
    c, cust = _setup(store)
    with pytest.raises(InvalidInput) as refused:
        update_customer_overrides(store, c.org_id, c.connection_id, cust, {"excluded": True, **changes}, ACTOR, NOW)
    assert refused.value.field == field
    assert refused.value.user_message
    assert _row(store, cust).excluded is False
    with store.unit_of_work() as uow:
        assert entries(uow, c.org_id) == []


def test_a_promise_names_the_currency_when_the_customer_owes_in_several(store: Store) -> None:
    c, cust = _setup(store)
    invoice(store, c.connection_id, "2", customer_external_id="c1", currency="EUR")
    base = {"promise_to_pay_until": "2026-11-30", "promise_amount": "100"}
    with pytest.raises(InvalidInput) as refused:
        update_customer_overrides(store, c.org_id, c.connection_id, cust, base, ACTOR, NOW)
    assert refused.value.field == "promise_currency"
    assert "EUR, GBP" in refused.value.user_message
    view = update_customer_overrides(
        store, c.org_id, c.connection_id, cust, {**base, "promise_currency": "eur"}, ACTOR, NOW
    )
    assert (view.overrides["promise_amount"], view.overrides["promise_currency"]) == ("100.00", "EUR")


def test_customers_of_another_client_or_organization_are_unknown(store: Store) -> None:
    c, cust = _setup(store)
    other = client(store, organization="Other practice")
    theirs = customer(store, other.connection_id, "c1", "Their customer")
    with store.unit_of_work() as uow:
        second = uow.connections.add(c.org_id, "fake", "t-second", "Second client")
        uow.commit()
        second_id = second.id
    for org_id, cid, customer_id in (
        (c.org_id, c.connection_id, theirs),  # another organization's customer
        (c.org_id, other.connection_id, theirs),  # another organization's client
        (c.org_id, second_id, cust),  # the same organization, another client
        (c.org_id, c.connection_id, 999_999),
        (c.org_id, c.connection_id, 2**70),
        (c.org_id, 2**70, cust),
    ):
        with pytest.raises(UnknownRecord):
            update_customer_overrides(store, org_id, cid, customer_id, {"excluded": True}, ACTOR, NOW)
        with store.unit_of_work() as uow, pytest.raises(UnknownRecord):
            customer_overrides(uow, org_id, cid, customer_id)
    assert _row(store, theirs).excluded is False


def test_customers_list_by_name_with_search_and_a_stable_cursor(store: Store) -> None:
    c = client(store)
    names = ["Zeta Ltd", "alpha & co", "Beta_50%", "Alpha Partners", "Gamma"]
    ids = {name: customer(store, c.connection_id, f"e{i}", name) for i, name in enumerate(names)}
    customer(store, client(store, organization="Other").connection_id, "x", "Alpha Other org")
    with store.unit_of_work() as uow:
        everyone = [v.name for v in list_customers(uow, c.org_id, c.connection_id).items]
        first = list_customers(uow, c.org_id, c.connection_id, limit=2)
        assert first.next_cursor is not None
        customer(store, c.connection_id, "late", "Aardvark")  # sorts before the cursor: not repeated later
        second = list_customers(uow, c.org_id, c.connection_id, limit=2, cursor=first.next_cursor)
        assert second.next_cursor is not None
        third = list_customers(uow, c.org_id, c.connection_id, limit=2, cursor=second.next_cursor)
        seen = [v.name for page in (first, second, third) for v in page.items]
        # The database's own order (its collation), each customer once, the late one (sorting first) not slipped in.
        assert seen == everyone
        assert sorted(seen) == sorted(names)
        assert third.next_cursor is None
        found = list_customers(uow, c.org_id, c.connection_id, search="ALPHA")
        assert {v.id for v in found.items} == {ids["Alpha Partners"], ids["alpha & co"]}
        assert [v.name for v in list_customers(uow, c.org_id, c.connection_id, search="_50%").items] == ["Beta_50%"]
        assert [v.name for v in list_customers(uow, c.org_id, c.connection_id, search="%").items] == ["Beta_50%"]
        assert list_customers(uow, c.org_id, c.connection_id, search="a_p").items == ()
        for cursor in ("garbage", "W10", "eyJ4IjogMX0"):
            with pytest.raises(InvalidInput) as refused:
                list_customers(uow, c.org_id, c.connection_id, cursor=cursor)
            assert refused.value.field == "cursor"
        for limit in (0, 201, True):
            with pytest.raises(InvalidInput) as refused:
                list_customers(uow, c.org_id, c.connection_id, limit=limit)
            assert refused.value.field == "limit"


# -- invoices ---------------------------------------------------------------------------------------
def test_an_invoice_override_is_set_changed_and_cleared_with_audit_and_timeline(store: Store) -> None:
    c, _ = _setup(store)
    inv = invoice(store, c.connection_id, "9", customer_external_id="c1", due=date(2026, 11, 2))
    view = update_invoice_override(
        store,
        c.org_id,
        c.connection_id,
        inv,
        {"agreed_due_date": "2026-12-15", "dispute": True, "dispute_reason": "Missing delivery note"},
        ACTOR,
        NOW,
    )
    assert view.exists
    assert view.agreed_due_date == date(2026, 12, 15)
    assert view.dispute_reason
    assert view.due_date == date(2026, 11, 2)  # the ledger's due date is untouched
    with store.unit_of_work() as uow:
        row = uow.session.get(Invoice, inv)
        assert row is not None
        assert row.due_date == date(2026, 11, 2)
    view = update_invoice_override(store, c.org_id, c.connection_id, inv, {"dispute": False}, ACTOR, NOW)
    assert (view.dispute, view.dispute_reason, view.agreed_due_date) == (False, "", date(2026, 12, 15))
    view = clear_invoice_override(store, c.org_id, c.connection_id, inv, "bob", NOW)
    assert not view.exists
    assert view.agreed_due_date is None
    with store.unit_of_work() as uow:
        assert uow.session.scalars(select(InvoiceOverride)).all() == []
        audit = entries(uow, c.org_id, entity="invoice_override", entity_id=str(inv))
        kinds = list(uow.session.scalars(select(Activity.kind).where(Activity.kind.startswith("invoice."))))
        details = list(uow.session.scalars(select(Activity.detail).where(Activity.kind.startswith("invoice."))))
        assert invoice_override(uow, c.org_id, c.connection_id, inv).exists is False
    assert [e.change for e in audit] == ["delete", "update", "create"]
    assert audit[2].before is None
    assert audit[2].after is not None
    assert audit[2].after["agreed_due_date"] == "2026-12-15"
    assert audit[0].actor == "bob"
    assert audit[0].after is None
    assert audit[0].before is not None
    assert kinds == ["invoice.override_set", "invoice.override_updated", "invoice.override_cleared"]
    assert all(d["invoice"] == "9" and d["invoice_id"] == inv and d["customer"] == "c1" for d in details)


def test_put_replaces_the_whole_override(store: Store) -> None:
    c, _ = _setup(store)
    inv = invoice(store, c.connection_id, "9")
    update_invoice_override(store, c.org_id, c.connection_id, inv, {"excluded": True}, ACTOR, NOW)
    view = update_invoice_override(
        store, c.org_id, c.connection_id, inv, {"paused_until": "2026-12-01"}, ACTOR, NOW, replace=True
    )
    assert (view.excluded, view.paused_until) == (False, date(2026, 12, 1))


def test_clearing_an_invoice_without_override_records_nothing(store: Store) -> None:
    c, _ = _setup(store)
    inv = invoice(store, c.connection_id, "9")
    assert not clear_invoice_override(store, c.org_id, c.connection_id, inv, ACTOR, NOW).exists
    with store.unit_of_work() as uow:
        assert entries(uow, c.org_id) == []


INVOICE_REFUSALS: list[tuple[dict[str, Any], str]] = [
    ({"paused_until": "2026-11-01"}, "paused_until"),
    ({"paused_until": "tomorrow"}, "paused_until"),
    ({"excluded": None}, "excluded"),
    ({"dispute": True}, "dispute_reason"),
    ({"agreed_due_date": "2026-09-01"}, "agreed_due_date"),  # before the issue date
    ({"agreed_due_date": "2150-01-01"}, "agreed_due_date"),
    ({"agreed_due_date": 20261201}, "agreed_due_date"),
    ({"due_date": "2026-12-01"}, "due_date"),
]


@pytest.mark.parametrize(
    ("changes", "field"), INVOICE_REFUSALS, ids=[f"{i}-{f}" for i, (_, f) in enumerate(INVOICE_REFUSALS)]
)
def test_every_wrong_invoice_override_is_refused_naming_its_field(
    store: Store, changes: dict[str, Any], field: str
) -> None:
    c, _ = _setup(store)
    inv = invoice(store, c.connection_id, "9")
    with pytest.raises(InvalidInput) as refused:
        update_invoice_override(store, c.org_id, c.connection_id, inv, {"excluded": True, **changes}, ACTOR, NOW)
    assert refused.value.field == field
    with store.unit_of_work() as uow:
        assert uow.session.scalars(select(InvoiceOverride)).all() == []


def test_invoices_of_another_client_or_organization_are_unknown(store: Store) -> None:
    c, _ = _setup(store)
    other = client(store, organization="Other practice")
    theirs = invoice(store, other.connection_id, "1")
    for cid in (c.connection_id, other.connection_id):
        with pytest.raises(UnknownRecord):
            update_invoice_override(store, c.org_id, cid, theirs, {"excluded": True}, ACTOR, NOW)
        with pytest.raises(UnknownRecord):
            clear_invoice_override(store, c.org_id, cid, theirs, ACTOR, NOW)
    with store.unit_of_work() as uow:
        assert uow.session.scalars(select(InvoiceOverride)).all() == []
