"""A customer's payment whose ledger id equals the id of a fee invoice Nudge wrote is still the customer's money.

QuickBooks numbers each entity type on its own (Invoice 175 and Payment 175 can both exist, as in its
emulator), so Nudge's own documents are recognised among payment rows only as credits, never by id alone.
"""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import select

from connector.outbox.attribution import attribute
from connector.outbox.money import load_money, own_documents
from connector.outbox.planning import plan_connection
from connector.storage import Store
from connector.storage.tables import Action as ActionRow
from tests.service.test_payments import NOW, RULES, _setup, _turn, snapshot


def test_a_payment_sharing_its_id_with_nudges_fee_invoice_counts_as_the_customers(store: Store) -> None:
    """The customer's payment is in the invoice's payments and attributed, though its id is the fee invoice's."""
    cid, ledger = _setup(store, [snapshot(1)])
    _turn(store, ledger, cid, NOW)
    fee_ref = next(ref for ref, _ in ledger.writes.values() if ref.startswith("fee"))
    ledger.pay(fee_ref, "1", "100.00", date(2026, 11, 18), currency="GBP")  # same id, another entity type
    _turn(store, ledger, cid, NOW + timedelta(days=3))
    with store.unit_of_work() as uow:
        assert fee_ref in own_documents(uow, cid)
        payments = load_money(uow, cid).payments.get("1", ())
        attributed = [a.payment_external_id for a in attribute(uow, [cid], date(2026, 11, 1))]
    assert [p.amount.amount for p in payments] == [100]
    assert attributed == [fee_ref]


def test_an_open_invoice_sharing_its_id_with_nudges_credit_is_still_chased(store: Store) -> None:
    """A customer's open invoice whose id equals a credit memo Nudge wrote (another entity type) is planned."""
    cid, _ = _setup(store, [snapshot(1), snapshot(2)])
    with store.unit_of_work() as uow:  # Nudge's discount credit on invoice 1 is CreditMemo "2" in the ledger
        uow.session.add(
            ActionRow(
                key="discount-credit-1",
                connection_id=cid,
                kind="discount_credit",
                invoice_external_id="1",
                state="done",
                scheduled_at=NOW,
                external_ref="2",
            )
        )
        uow.commit()
    plan_connection(store, cid, RULES, NOW)
    with store.unit_of_work() as uow:
        chased = set(uow.session.scalars(select(ActionRow.invoice_external_id).where(ActionRow.kind == "note")))
    assert chased == {"1", "2"}
