"""Reports for the API (issue 14): aging per client per currency (never mixed), DSO per client in its home
currency, recovery per cadence step over a period; client-limited members see their clients' only."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from connector.domain.money import Money
from connector.errors import InvalidInput, UnknownRecord
from connector.receivables.actions import mark_sent
from connector.receivables.reports import aging, dso, recovery
from connector.storage import Store
from tests.support import receivables as seed

NOW = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
TODAY = NOW.date()


def test_aging_per_client_and_currency_with_every_bucket(store: Store) -> None:
    p = seed.organization(store, "P")
    q = seed.organization(store, "Q")
    a = seed.client(store, p, "Alpha")
    b = seed.client(store, p, "Beta", home_currency="EUR")
    seed.client(store, q, "Other")
    seed.invoice(store, a, "1", due=TODAY, balance="10.00")
    seed.invoice(store, a, "2", due=TODAY - timedelta(days=30), balance="20.005")  # rounded half-up to 20.01
    seed.invoice(store, a, "3", due=TODAY - timedelta(days=31), balance="30.00")
    seed.invoice(store, a, "4", due=TODAY - timedelta(days=91), balance="40.00")
    seed.invoice(store, a, "5", due=TODAY - timedelta(days=91), balance="7.00", currency="USD")
    seed.invoice(store, a, "6", due=TODAY - timedelta(days=91), balance="0.00", total="9.00", status="paid")
    seed.invoice(store, b, "1", due=TODAY - timedelta(days=61), balance="100.00", currency="EUR")
    rows = aging(store, p, NOW)
    assert [(row.client, row.currency) for row in rows] == [("Alpha", "GBP"), ("Alpha", "USD"), ("Beta", "EUR")]
    gbp = rows[0]
    assert [(bucket.bucket, bucket.count, bucket.balance) for bucket in gbp.buckets] == [
        ("current", 1, Money.of("10.00", "GBP")),
        ("1-30", 1, Money.of("20.01", "GBP")),
        ("31-60", 1, Money.of("30.00", "GBP")),
        ("61-90", 0, Money.of("0", "GBP")),
        ("90+", 1, Money.of("40.00", "GBP")),
    ]
    assert gbp.total == Money.of("100.01", "GBP")
    assert gbp.count == 4
    assert gbp.as_of == TODAY
    assert rows[1].total == Money.of("7.00", "USD")  # its own row: never added to pounds
    assert [bucket.count for bucket in rows[2].buckets] == [0, 0, 0, 1, 0]
    assert [row.currency for row in aging(store, p, NOW, connection_ids={b})] == ["EUR"]
    assert aging(store, p, NOW, connection_ids=set()) == []
    with pytest.raises(UnknownRecord):
        aging(store, p, NOW, connection_ids={b}, connection_id=a)


def test_dso_per_client_in_its_home_currency(store: Store) -> None:
    p = seed.organization(store, "P")
    a = seed.client(store, p, "Alpha", time_zone="Pacific/Auckland")  # already 30 November 23:00 there
    unknown = seed.client(store, p, "New", home_currency="")
    quiet = seed.client(store, p, "Quiet")
    # Sales: invoices issued in the 60 local days ending today (2 October..30 November): 1000 + 2000. The one
    # issued 60 days ago (1 October) is just outside; other currencies and voided invoices never count.
    seed.invoice(store, a, "1", due=TODAY + timedelta(days=30), issued=TODAY, balance="1000.00")
    seed.invoice(
        store, a, "2", due=TODAY, issued=TODAY - timedelta(days=59), balance="0.00", total="2000.00", status="paid"
    )
    seed.invoice(store, a, "3", due=TODAY, issued=TODAY - timedelta(days=60), balance="500.00")  # before the period
    seed.invoice(store, a, "4", due=TODAY, issued=TODAY - timedelta(days=5), balance="900.00", currency="USD")
    seed.invoice(store, a, "5", due=TODAY, issued=TODAY - timedelta(days=5), balance="50.00", status="voided")
    seed.invoice(store, quiet, "1", due=TODAY, issued=TODAY - timedelta(days=200), balance="10.00")
    rows = {row.connection_id: row for row in dso(store, p, NOW)}
    alpha = rows[a]
    assert alpha.currency == "GBP"
    assert alpha.period_end == date(2026, 11, 30)
    assert alpha.receivables == Money.of("1500.00", "GBP")  # open GBP balances: 1000 + 500
    assert alpha.sales == Money.of("3000.00", "GBP")
    assert alpha.dso == Decimal("30.0")  # 1500 / (3000 / 60)
    assert alpha.other_currency_invoices == 1
    assert rows[unknown].dso is None
    assert "home currency is not known" in rows[unknown].note
    assert rows[quiet].dso == Decimal(0)
    assert "no sales" in rows[quiet].note
    assert dso(store, p, NOW, period_days=1)[0].sales == Money.of("1000.00", "GBP")
    for bad in (0, 10_000, True):
        with pytest.raises(InvalidInput) as refused:
            dso(store, p, NOW, period_days=bad)  # type: ignore[arg-type]
        assert refused.value.field == "period_days"


def test_recovery_per_step_over_a_period_counts_an_email_marked_sent(store: Store) -> None:
    p = seed.organization(store, "P")
    a = seed.client(store, p, "Alpha")
    b = seed.client(store, p, "Beta")
    for cid in (a, b):
        seed.invoice(store, cid, "1", due=date(2026, 11, 1))
    sent = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)
    seed.action(store, a, "a" * 40, state="done", at=sent, step="overdue-7")
    uncertain = seed.action(store, b, "b" * 40, state="uncertain", at=sent, step="overdue-7")
    seed.payment(store, a, "PAY-A", "1", "100.00", date(2026, 11, 13))
    seed.payment(store, b, "PAY-B", "1", "80.00", date(2026, 11, 14), currency="EUR")
    seed.payment(store, a, "PAY-OLD", "1", "5.00", date(2026, 10, 1))  # before the period
    before = {row.step: row for row in recovery(store, p, date(2026, 11, 1))}
    assert before["overdue-7"].reminders_sent == 1
    assert before["overdue-7"].recovered == (Money.of("100.00", "GBP"),)
    assert before["(none)"].recovered == (Money.of("80.00", "EUR"),)  # no delivered reminder preceded it
    mark_sent(store, p, uncertain, "ann@practice.example", NOW)
    after = {row.step: row for row in recovery(store, p, date(2026, 11, 1))}
    step = after["overdue-7"]
    assert step.reminders_sent == 2
    assert step.paid_within_7_days == 2
    assert step.payments == 2
    assert step.recovered == (Money.of("80.00", "EUR"), Money.of("100.00", "GBP"))  # one amount per currency
    assert "(none)" not in after
    assert [row.recovered for row in recovery(store, p, date(2026, 11, 1), connection_ids={a})] == [
        (Money.of("100.00", "GBP"),)
    ]
