"""The customer statement as a pure function of invoices, payments, `as_of` and the period: open invoices and
their aging, payments in the period, one section per currency, and the edge cases (credits, partial payments,
several currencies, nothing open, hostile pay links)."""

from __future__ import annotations

from datetime import date

import pytest

from connector.domain.money import Money
from connector.receivables.statements import (
    InvoiceRecord,
    PaymentRecord,
    Statement,
    build_statement,
    statement_filename,
    statement_variables,
)

AS_OF = date(2026, 12, 1)


def gbp(amount: str) -> Money:
    return Money.of(amount, "GBP")


def invoice(
    n: str, due: date | None, balance: str, *, total: str = "100.00", currency: str = "GBP", status: str = "open"
) -> InvoiceRecord:
    return InvoiceRecord(
        n, f"INV-{n}", status, date(2026, 1, 1), due, Money.of(total, currency), Money.of(balance, currency)
    )


def payment(
    amount: str, on: date, number: str = "INV-1", *, kind: str = "payment", currency: str = "GBP", voided: bool = False
) -> PaymentRecord:
    return PaymentRecord(kind, Money.of(amount, currency), on, number, voided)


def statement(
    invoices: list[InvoiceRecord], payments: list[PaymentRecord] | None = None, **kwargs: object
) -> Statement:
    return build_statement(
        business_name="Books Ltd",
        customer_name="Acme",
        customer_external_id="c1",
        invoices=invoices,
        payments=payments or [],
        as_of=AS_OF,
        **kwargs,  # type: ignore[arg-type]
    )


def test_open_invoices_are_aged_into_the_five_buckets_at_their_boundaries() -> None:
    result = statement(
        [
            invoice("a", date(2026, 12, 1), "10.00"),  # due today: current
            invoice("b", date(2026, 11, 30), "20.00"),  # 1 day
            invoice("c", date(2026, 11, 1), "30.00"),  # 30 days
            invoice("d", date(2026, 10, 31), "40.00"),  # 31 days
            invoice("e", date(2026, 10, 2), "50.00"),  # 60 days
            invoice("f", date(2026, 10, 1), "60.00"),  # 61 days
            invoice("g", date(2026, 9, 2), "70.00"),  # 90 days
            invoice("h", date(2026, 9, 1), "80.00"),  # 91 days
            invoice("i", None, "5.00"),  # no due date: current, listed last
        ]
    )
    [section] = result.sections
    assert dict(section.aging) == {
        "current": gbp("15.00"),
        "1-30": gbp("50.00"),
        "31-60": gbp("90.00"),
        "61-90": gbp("130.00"),
        "90+": gbp("80.00"),
    }
    assert section.outstanding == gbp("365.00")
    assert section.overdue == gbp("350.00")
    assert [line.number for line in section.lines] == [f"INV-{n}" for n in "hgfedcbai"]
    assert [line.days_overdue for line in section.lines] == [91, 90, 61, 60, 31, 30, 1, 0, 0]
    assert sum((amount for _, amount in section.aging), gbp("0")) == section.outstanding


def test_partial_payments_show_the_outstanding_balance_and_the_payment_in_the_period() -> None:
    result = statement(
        [invoice("1", date(2026, 11, 1), "60.50", total="100.00")],
        [payment("39.50", date(2026, 11, 20))],
    )
    [section] = result.sections
    [line] = section.lines
    assert (line.amount, line.outstanding) == (gbp("100.00"), gbp("60.50"))
    assert [(p.paid_on, p.amount) for p in section.payments] == [(date(2026, 11, 20), gbp("39.50"))]
    assert section.received == gbp("39.50")


def test_the_period_is_the_thirty_days_up_to_as_of_and_voided_payments_never_count() -> None:
    result = statement(
        [invoice("1", date(2026, 11, 1), "10.00")],
        [
            payment("1.00", date(2026, 11, 2)),  # day 1 of the period
            payment("2.00", date(2026, 11, 1)),  # the day before it
            payment("4.00", date(2026, 12, 1)),  # as_of itself
            payment("8.00", date(2026, 12, 2)),  # after as_of
            payment("16.00", date(2026, 11, 15), voided=True),
        ],
    )
    assert result.period_start == date(2026, 11, 2)
    assert result.sections[0].received == gbp("5.00")


def test_credits_and_unapplied_money_are_payments_and_a_fully_credited_invoice_is_not_open() -> None:
    result = statement(
        [
            invoice("1", date(2026, 11, 1), "0.00", total="100.00"),  # credited in full, still "open" in a ledger
            invoice("2", date(2026, 11, 1), "-20.00", total="0.00"),  # a negative balance owes nothing
            invoice("3", date(2026, 11, 1), "40.00", status="paid"),  # not open
            invoice("4", date(2026, 11, 10), "75.00"),
        ],
        [
            payment("100.00", date(2026, 11, 5), "INV-1", kind="credit"),
            payment("25.00", date(2026, 11, 6), "", kind="overpayment"),
        ],
    )
    [section] = result.sections
    assert [line.number for line in section.lines] == ["INV-4"]
    assert result.open_invoice_ids == ("4",)
    assert [(p.kind, p.invoice_number) for p in section.payments] == [("credit", "INV-1"), ("overpayment", "")]
    words = statement_variables(result, "en_GB")["sections"][0]["payments"]
    assert [p["kind"] for p in words] == ["Credit note", "Overpayment"]


def test_each_currency_has_its_own_section_and_totals_never_mix() -> None:
    result = statement(
        [
            invoice("1", date(2026, 11, 1), "100.00"),
            invoice("2", date(2026, 11, 1), "5000", total="5000", currency="JPY"),
            invoice("3", date(2026, 12, 20), "10.00", currency="EUR"),
        ],
        [payment("50.00", date(2026, 11, 20), currency="USD")],  # a currency with payments and nothing open
    )
    assert [section.currency for section in result.sections] == ["EUR", "GBP", "JPY", "USD"]
    by_code = {section.currency: section for section in result.sections}
    assert by_code["JPY"].outstanding == Money.of("5000", "JPY")
    assert by_code["GBP"].outstanding == gbp("100.00")
    assert by_code["EUR"].overdue == Money.of("0", "EUR")
    assert by_code["USD"].lines == ()
    assert by_code["USD"].received == Money.of("50.00", "USD")
    for section in result.sections:
        assert all(amount.currency == section.currency for _, amount in section.aging)


def test_nothing_open_and_nothing_paid_is_an_empty_statement() -> None:
    result = statement([invoice("1", date(2026, 11, 1), "0.00")])
    assert result.sections == ()
    assert result.open_count == 0
    assert statement_variables(result, "en_US")["sections"] == []


@pytest.mark.parametrize(
    ("link", "kept"),
    [
        ("https://pay.example/i/1?x=1&y=2", True),
        ("javascript:alert(1)", False),
        ('https://pay.example/"><script>', False),
        ("https://pay.example/a b", False),
        ("https://pay.example/1\n", False),
        ("ftp://pay.example/1", False),
        ("https://" + "a" * 3000, False),
    ],
)
def test_only_plain_web_pay_links_are_kept(link: str, kept: bool) -> None:
    result = statement([invoice("1", date(2026, 11, 1), "10.00")], pay_links={"1": link})
    assert (result.sections[0].lines[0].pay_link == link) is kept


def test_amounts_and_dates_are_written_in_the_locale() -> None:
    result = statement([invoice("1", date(2026, 11, 1), "1234.50")])
    german = statement_variables(result, "de_DE")["sections"][0]
    assert german["outstanding"] == "1.234,50\xa0£"
    assert german["invoices"][0]["due_date"] == "01.11.2026"
    assert statement_variables(result, "en_US")["sections"][0]["outstanding"] == "£1,234.50"


def test_the_download_name_is_plain_ascii_whatever_the_customer_is_called() -> None:
    hostile = build_statement(
        business_name="B",
        customer_name='../"evil"\r\nname; <script> שלום 😀',
        customer_external_id="c1",
        invoices=[],
        payments=[],
        as_of=AS_OF,
    )
    assert statement_filename(hostile) == "statement-evil-name-script-2026-12-01.pdf"
    assert statement_filename(statement([])) == "statement-Acme-2026-12-01.pdf"
