"""Reminder templates: defaults render in every locale, user templates run in a sandbox that fails safely."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from connector.domain.money import Money
from connector.errors import NudgeError, TemplateError
from connector.mail.rendering import (
    PARTS,
    TEMPLATE_NAMES,
    DiscountOffer,
    Installment,
    InvoiceLine,
    ReminderContext,
    check_template,
    default_template_source,
    format_day,
    format_money,
    render_reminder,
)

LINK = "https://pay.example.com/i/1001"


def context(currency: str = "USD", amount: str = "1234.50", **kwargs: Any) -> ReminderContext:
    invoices = kwargs.pop("invoices", None) or [
        InvoiceLine("INV-1001", date(2024, 3, 5), Money.of(amount, currency), days_overdue=12, payment_link=LINK)
    ]
    base: dict[str, Any] = {
        "customer_name": "Jane Doe",
        "business_name": "Acme Plumbing",
        "invoices": invoices,
        "today": date(2024, 3, 17),
        "contact_name": "Sam Lee",
        "has_attachment": True,
    }
    base.update(kwargs)
    return ReminderContext(**base)


def full_context(name: str) -> ReminderContext:
    extra: dict[str, Any] = {}
    if name == "discount_offer":
        extra["discount"] = DiscountOffer(
            Decimal("2.5"), Money.of("30.86", "USD"), Money.of("1203.64", "USD"), date(2024, 3, 1)
        )
    if name == "installment":
        extra["installment"] = Installment(2, 4, Money.of("300", "USD"), date(2024, 4, 1), Money.of("600", "USD"))
    if name == "final_notice":
        extra["late_fee"] = Money.of("25", "USD")
    if name == "due_today":
        extra["invoices"] = [InvoiceLine("INV-1001", date(2024, 3, 17), Money.of("1234.50", "USD"), 0, LINK)]
    return context(**extra)


@pytest.mark.parametrize(
    ("locale", "currency", "amount", "money_text", "date_text"),
    [
        ("en_US", "USD", "1234.50", "$1,234.50", "March 5, 2024"),
        ("de_DE", "EUR", "1234.50", "1.234,50\xa0€", "5. März 2024"),
        ("de-DE", "EUR", "1234.50", "1.234,50\xa0€", "5. März 2024"),
        ("ja_JP", "JPY", "1234.5", "￥1,235", "2024年3月5日"),  # Money rounds JPY half-up to 1235
    ],
)
def test_amounts_and_dates_follow_the_customers_locale(
    locale: str, currency: str, amount: str, money_text: str, date_text: str
) -> None:
    _, text, html = render_reminder("firm", context(currency, amount), locale=locale)

    assert money_text in text
    assert date_text in text
    assert html is not None
    assert money_text in html
    assert date_text in html
    assert format_money(Money.of(amount, currency), locale) == money_text
    assert format_day(date(2024, 3, 5), locale) == date_text


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_every_default_template_renders_subject_text_and_html(name: str) -> None:
    subject, text, html = render_reminder(name, full_context(name), locale="en_US")

    assert subject
    assert "\n" not in subject
    assert len(subject) < 120
    assert text.startswith("Hi Jane Doe,\n\n")
    assert "INV-1001" in text
    assert LINK in text
    assert "Sam Lee\nAcme Plumbing\n" in text
    assert "attached" in text
    assert html is not None
    assert html.lstrip().startswith("<!DOCTYPE html>")
    assert f'href="{LINK}"' in html
    assert "Acme Plumbing" in html
    assert "{{" not in text
    assert "{%" not in text
    assert "{{" not in html
    for part in PARTS:
        assert default_template_source(name, part).strip()


def test_default_templates_say_what_each_step_is_about() -> None:
    rendered = {name: render_reminder(name, full_context(name), locale="en_US") for name in TEMPLATE_NAMES}

    assert rendered["gentle_nudge"].subject == "A friendly reminder about invoice INV-1001 from Acme Plumbing"
    assert rendered["due_today"].subject == "Invoice INV-1001 is due today"
    assert "is due today, March 17, 2024" in rendered["due_today"].text
    assert rendered["firm"].subject == "Invoice INV-1001 is now 12 days overdue"
    # no reminder was sent before: a final notice does not say "still"
    assert rendered["final_notice"].subject == "Final notice: invoice INV-1001 ($1,234.50) is unpaid"
    assert "a late fee of $25.00 has been added" in rendered["final_notice"].text
    assert rendered["installment"].subject == "Payment plan: installment 2 of 4 is due April 1, 2024"
    assert "$300.00, is due on April 1, 2024. Once it's paid, $600.00 will be left" in rendered["installment"].text
    assert rendered["discount_offer"].subject == "Take 2.5% off invoice INV-1001 if paid by March 1, 2024"
    assert "you'd pay just $1,203.64 instead of $1,234.50" in rendered["discount_offer"].text


def test_several_invoices_become_one_statement_with_per_currency_totals() -> None:
    invoices = [
        InvoiceLine("A-1", date(2024, 3, 1), Money.of("100", "EUR"), 16, "https://pay.example.com/a1"),
        InvoiceLine("A-2", date(2024, 3, 10), Money.of("50.5", "EUR"), 7, "https://pay.example.com/a2"),
        InvoiceLine("A-3", date(2024, 3, 12), Money.of("20", "USD"), 5),
    ]
    subject, text, html = render_reminder("firm", context(invoices=invoices), locale="de_DE")

    assert subject == "3 invoices from Acme Plumbing are overdue"
    assert (
        "  - Invoice A-1: 100,00\xa0€, due 1. März 2024 (16 days ago)\n    Pay online: https://pay.example.com/a1"
        in text
    )
    assert "  - Invoice A-2: 50,50\xa0€, due 10. März 2024 (7 days ago)" in text
    assert "Total due: 150,50\xa0€ + 20,00\xa0$" in text
    assert html is not None
    assert 'href="https://pay.example.com/a2"' in html


def test_values_are_html_escaped_in_html_but_kept_as_is_in_text() -> None:
    ctx = context(customer_name="Tom & Jerry <script>alert(1)</script>")
    _, text, html = render_reminder("gentle_nudge", ctx, locale="en_US")

    assert "Hi Tom & Jerry <script>alert(1)</script>," in text
    assert html is not None
    assert "<script>" not in html
    assert "Tom &amp; Jerry &lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_a_payment_link_that_is_not_http_is_left_out() -> None:
    invoices = [InvoiceLine("INV-9", date(2024, 3, 5), Money.of("5", "USD"), 3, "javascript:alert(1)")]
    _, text, html = render_reminder("firm", context(invoices=invoices), locale="en_US")

    assert "javascript" not in text
    assert html is not None
    assert "javascript" not in html


def test_overrides_replace_defaults_and_see_the_same_formatted_values() -> None:
    overrides = {
        "firm/subject.txt": "{{ business_name }}: {{ invoice.number }} ({{ invoice.balance }})",
        "firm/body.txt": (
            "Dear {{ customer_name }}, {{ total }} since {{ invoice.due_date|date('short') }}; "
            "raw {{ invoice.balance.amount }} {{ invoice.balance.currency }}; {{ extra.ref }}; "
            "{{ extra.when }}; {{ extra.fee|money }}; {{ 1234.5|number }}; {{ 3|percent }}"
        ),
    }
    ctx = context("EUR", extra={"ref": "R-7", "when": date(2024, 12, 24), "fee": Money.of("40", "GBP")})
    subject, text, html = render_reminder("firm", ctx, locale="de_DE", overrides=overrides)

    assert subject == "Acme Plumbing: INV-1001 (1.234,50\xa0€)"
    assert text == (
        "Dear Jane Doe, 1.234,50\xa0€ since 05.03.24; raw 1234.50 EUR; R-7; 24. Dezember 2024; "
        "40,00\xa0£; 1.234,5; 3\xa0%\n"
    )
    assert html is None  # the text was customized, the HTML not: send text only, never two different messages


def test_a_new_template_name_can_come_from_overrides_and_extend_the_layout() -> None:
    overrides = {
        "thanks/subject.txt": "Thank you, {{ customer_name }}",
        "thanks/body.txt": "We got it.",
        "thanks/body.html": '{% extends "_layout.html" %}{% block content %}<p>We got it.</p>{% endblock %}',
    }
    subject, text, html = render_reminder("thanks", context(), locale="en_US", overrides=overrides)

    assert (subject, text) == ("Thank you, Jane Doe", "We got it.\n")
    assert html is not None
    assert "<p>We got it.</p>" in html
    assert "Acme Plumbing" in html


UNSAFE = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ invoice.balance.money.__class__ }}",
    "{{ self.__dict__ }}",
    "{{ '{0.__class__}'.format(1) }}",
    "{% for x in range(10) %}{{ x.__class__ }}{% endfor %}",
    "{{ invoices.append(1) }}",
    "{{ extra.update({'a': 1}) }}",
    "{{ 'x' * 100000 }}",
    "{{ 9 ** 99999 }}",
    "{% for i in range(1000000) %}{% endfor %}",
]


@pytest.mark.parametrize("source", UNSAFE)
def test_a_template_reaching_for_python_internals_fails_safely_naming_the_template(source: str) -> None:
    overrides = {"firm/body.txt": source}
    with pytest.raises(TemplateError) as caught:
        render_reminder("firm", context(), locale="en_US", overrides=overrides)

    error = caught.value
    assert isinstance(error, NudgeError)
    assert error.template == "firm/body.txt"
    assert "'firm/body.txt'" in error.user_message
    assert "may not do" in error.user_message
    assert "<class" not in error.user_message  # nothing of the internals leaks into the message


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("Hello {{ customer }}", "uses a value that does not exist: 'customer' is undefined"),
        ("Hello {% if %}", "has a syntax error on line 1"),
        ("line one\n{{ 1 / 0 }}", "could not be rendered: ZeroDivisionError"),
        ("{% include '../../mail.py' %}", "refers to '../../mail.py', which does not exist"),
        ("{{ lipsum() }}", "'lipsum' is undefined"),
    ],
)
def test_broken_user_templates_raise_template_error(source: str, expected: str) -> None:
    with pytest.raises(TemplateError, match=re.escape("'gentle_nudge/body.html'")) as caught:
        render_reminder(
            "gentle_nudge",
            context(),
            locale="en_US",
            overrides={"gentle_nudge/body.txt": "fine", "gentle_nudge/body.html": source},
        )
    assert expected in caught.value.user_message


def test_syntax_errors_report_their_line() -> None:
    with pytest.raises(TemplateError) as caught:
        check_template("ok\nok\n{% for %}", name="firm/body.txt")
    assert caught.value.line == 3
    assert "line 3" in caught.value.user_message
    check_template("{{ invoice.number }}", name="firm/body.txt")  # a valid one passes


def test_a_subject_must_render_to_one_line() -> None:
    ctx = context(customer_name="Jane\r\nBcc: victim@example.org")
    overrides = {"firm/subject.txt": "Hello {{ customer_name }}"}
    with pytest.raises(TemplateError, match=re.escape("'firm/subject.txt' produced a subject with a line break")):
        render_reminder("firm", ctx, locale="en_US", overrides=overrides)
    with pytest.raises(TemplateError, match="empty subject"):
        render_reminder("firm", context(), locale="en_US", overrides={"firm/subject.txt": "  "})


def test_unknown_and_incomplete_templates_are_refused() -> None:
    with pytest.raises(TemplateError, match="unknown template 'nope'"):
        render_reminder("nope", context(), locale="en_US")
    with pytest.raises(TemplateError, match="is not a template name"):
        render_reminder("../firm", context(), locale="en_US")
    with pytest.raises(TemplateError, match="every reminder needs a plain-text body"):
        render_reminder("x", context(), locale="en_US", overrides={"x/subject.txt": "s", "x/body.html": "<p>h</p>"})
    with pytest.raises(TemplateError, match="customize both"):
        render_reminder("firm", context(), locale="en_US", overrides={"firm/body.html": "<p>h</p>"})


def test_an_unknown_locale_falls_back_to_en_us() -> None:
    _, text, _ = render_reminder("firm", context(), locale="xx_NOPE")
    assert "$1,234.50" in text
    assert "March 5, 2024" in text
