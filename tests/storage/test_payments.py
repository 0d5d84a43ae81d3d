"""The payments repository: each money object's rows replaced as a whole, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime

from connector.domain.model import PaymentKind, PaymentSnapshot
from connector.domain.money import Money
from connector.storage import Store

AT = datetime(2026, 11, 20, 9, tzinfo=UTC)


def _snap(
    ext: str, invoice: str, amount: str, kind: PaymentKind = PaymentKind.PAYMENT, **extra: object
) -> PaymentSnapshot:
    return PaymentSnapshot(ext, kind, invoice, "c1", Money.of(amount, "GBP"), date(2026, 11, 10), **extra)  # type: ignore[arg-type]


def test_replace_merges_lines_keeps_other_objects_and_hides_voided(store: Store) -> None:
    with store.unit_of_work() as uow:
        org = uow.organizations.add("A")
        cid = uow.connections.add(org.id, "quickbooks", "1", "Books").id
        # two lines of one payment on one invoice are one row; a credit with the same id is another object
        uow.payments.replace(
            cid,
            {
                (PaymentKind.PAYMENT, "9"): [_snap("9", "1", "10.00"), _snap("9", "1", "5.00"), _snap("9", "", "2.00")],
                (PaymentKind.CREDIT, "9"): [_snap("9", "1", "7.00", PaymentKind.CREDIT)],
            },
            AT,
        )
        uow.commit()
    with store.unit_of_work() as uow:
        rows = {(p.kind, p.invoice_external_id): p.amount for p in uow.payments.for_connection(cid)}
        assert rows == {
            (PaymentKind.PAYMENT, "1"): Money.of("15.00", "GBP"),
            (PaymentKind.PAYMENT, ""): Money.of("2.00", "GBP"),
            (PaymentKind.CREDIT, "1"): Money.of("7.00", "GBP"),
        }
        uow.payments.replace(cid, {(PaymentKind.PAYMENT, "9"): [_snap("9", "1", "15.00", voided=True)]}, AT)
        uow.commit()
    with store.unit_of_work() as uow:
        assert [p.kind for p in uow.payments.for_connection(cid)] == [PaymentKind.CREDIT]
        assert sorted(p.voided for p in uow.payments.for_connection(cid, include_voided=True)) == [False, True]
        uow.payments.replace(cid, {(PaymentKind.CREDIT, "9"): []}, AT)
        uow.commit()
    with store.unit_of_work() as uow:
        assert [p.kind for p in uow.payments.for_connection(cid, include_voided=True)] == [PaymentKind.PAYMENT]
