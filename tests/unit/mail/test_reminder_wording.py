"""What reminders say (issue 12): grouped reminders say one thing, no claim of contact that did not
happen, and every announced late fee is stated in the email, whatever the template."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from connector.domain.actions import FeeWarning
from connector.domain.money import Money
from connector.mail.rendering import (
    TEMPLATE_NAMES,
    DiscountOffer,
    Installment,
    InvoiceLine,
    ReminderContext,
    ReminderHistory,
    render_reminder,
)

TODAY = date(2026, 11, 30)
APPLIES = date(2026, 12, 14)
FLAT = FeeWarning("standard", "Late fee", "flat", APPLIES, amount=Money.of("40", "GBP"))
PERCENT = FeeWarning("five", "Late fee", "percent", APPLIES, percent=Decimal("5"))
INTEREST = FeeWarning("interest", "Late payment interest", "interest", APPLIES, annual_rate=Decimal("8"))

OVERDUE = InvoiceLine("1001", date(2026, 11, 1), Money.of("500", "GBP"), 29)
ALSO_OVERDUE = InvoiceLine("1003", date(2026, 11, 10), Money.of("20", "GBP"), 20)
NOT_DUE = InvoiceLine("1002", date(2026, 12, 7), Money.of("300", "GBP"), -7)
LATER = InvoiceLine("1004", date(2026, 12, 20), Money.of("80", "GBP"), -20)

CLAIMS_OF_CONTACT = ("in touch", "wrote to you", "written to you", "again", "as we said", "a few times", "still")


def context(invoices: list[InvoiceLine], **kwargs: Any) -> ReminderContext:
    base: dict[str, Any] = {
        "customer_name": "Jane Doe",
        "business_name": "Acme Plumbing",
        "invoices": invoices,
        "today": TODAY,
    }
    base.update(kwargs)
    return ReminderContext(**base)


def step_extras(name: str) -> dict[str, Any]:
    """What each default template needs beyond the invoices to render its full wording."""
    if name == "discount_offer":
        return {"discount": DiscountOffer(Decimal(2), Money.of("6", "GBP"), Money.of("294", "GBP"), TODAY, "1001")}
    if name == "installment":
        return {"installment": Installment(1, 3, Money.of("100", "GBP"), date(2026, 12, 1))}
    return {}


def variables_seen(ctx: ReminderContext) -> str:
    """What a template sees of the split, through an override that prints it."""
    overrides = {
        "firm/body.txt": (
            "{{ total }}|{{ invoices|map(attribute='number')|join(',') }}|"
            "{{ coming_up|map(attribute='number')|join(',') }}|{{ max_days_overdue }}|{{ invoice.number }}"
        )
    }
    return render_reminder("firm", ctx, locale="en_GB", overrides=overrides).text.strip()


# -- grouped reminders say one thing ---------------------------------------------------------------------
def test_a_grouped_final_notice_totals_only_what_is_due_and_lists_the_rest_as_coming_up() -> None:
    subject, text, html = render_reminder("final_notice", context([OVERDUE, NOT_DUE, ALSO_OVERDUE]), locale="en_GB")

    assert subject == "Final notice: £520.00 is unpaid"
    heading, coming_up = text.split("Coming up (not due yet):\n")
    assert "Total due: £520.00" in heading
    assert "1002" not in heading
    assert "£300.00" not in heading
    assert "  - Invoice 1002: £300.00, due 7 December 2026\n" in coming_up
    assert "1001" not in coming_up
    assert html is not None
    html_heading, html_coming_up = html.split("Coming up (not due yet)")
    assert "£520.00" in html_heading
    assert "1002" not in html_heading
    assert "1002" in html_coming_up
    assert "£300.00" in html_coming_up
    assert variables_seen(context([OVERDUE, NOT_DUE, ALSO_OVERDUE])) == "£520.00|1001,1003|1002|29|1001"


def test_one_overdue_and_one_not_yet_due_is_a_final_notice_about_the_overdue_one() -> None:
    subject, text, html = render_reminder("final_notice", context([NOT_DUE, OVERDUE]), locale="en_GB")

    assert subject == "Final notice: invoice 1001 (£500.00) is unpaid"
    assert "Invoice 1001 for £500.00 was due on 1 November 2026 and is now 29 days overdue." in text
    heading, coming_up = text.split("Coming up (not due yet):\n")
    assert "1002" not in heading
    assert "Invoice 1002: £300.00, due 7 December 2026" in coming_up
    assert html is not None
    assert html.index("Coming up (not due yet)") < html.index("1002")
    assert variables_seen(context([NOT_DUE, OVERDUE])) == "£500.00|1001|1002|29|1001"


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_every_template_keeps_not_yet_due_invoices_out_of_its_subject_and_main_list(name: str) -> None:
    ctx = context([OVERDUE, ALSO_OVERDUE, NOT_DUE], **step_extras(name))
    subject, text, html = render_reminder(name, ctx, locale="en_GB")

    assert "1002" not in subject
    assert "£300.00" not in subject
    assert "£820.00" not in text  # never a total that includes the coming-up invoice
    assert text.count("Coming up (not due yet):") == 1
    assert "1002" not in text.split("Coming up (not due yet):")[0]
    assert html is not None
    assert html.count("Coming up (not due yet)") == 1
    assert "1002" not in html.split("Coming up (not due yet)")[0]


def test_a_courtesy_reminder_about_invoices_not_yet_due_lists_them_all_without_a_coming_up_section() -> None:
    subject, text, html = render_reminder("gentle_nudge", context([NOT_DUE, LATER]), locale="en_GB")

    assert subject == "A friendly reminder about 2 open invoices from Acme Plumbing"
    assert "  - Invoice 1002: £300.00, due 7 December 2026\n" in text
    assert "  - Invoice 1004: £80.00, due 20 December 2026\n" in text
    assert "Total due: £380.00" in text
    assert "Coming up" not in text
    assert html is not None
    assert "Coming up" not in html
    assert variables_seen(context([NOT_DUE, LATER])) == "£380.00|1002,1004||-7|1002"


def test_a_line_due_today_is_part_of_the_reminder_not_coming_up() -> None:
    due_today = InvoiceLine("1005", TODAY, Money.of("10", "GBP"), 0)

    assert variables_seen(context([due_today, NOT_DUE])) == "£10.00|1005|1002|0|1005"
    subject, text, _ = render_reminder("due_today", context([due_today, NOT_DUE]), locale="en_GB")
    assert subject == "Invoice 1005 is due today"
    assert "invoice 1005 for £10.00 is due today, 30 November 2026." in text


def test_a_discount_offered_on_a_coming_up_invoice_names_that_invoice() -> None:
    offer = DiscountOffer(Decimal(2), Money.of("6", "GBP"), Money.of("294", "GBP"), date(2026, 12, 1), "1002")
    subject, text, _ = render_reminder("discount_offer", context([OVERDUE, NOT_DUE], discount=offer), locale="en_GB")

    assert subject == "Take 2% off invoice 1002 if paid by 1 December 2026"
    assert "if you settle invoice 1002 by 1 December 2026" in text
    assert "you'd pay just £294.00 instead of £300.00" in text
    assert "Total due: £500.00" in text


# -- no claim of earlier contact that did not happen -------------------------------------------------------
@pytest.mark.parametrize("name", TEMPLATE_NAMES)
@pytest.mark.parametrize("invoices", [[OVERDUE], [OVERDUE, ALSO_OVERDUE, NOT_DUE]], ids=["one", "grouped"])
def test_with_no_reminder_sent_before_no_template_claims_earlier_contact(
    name: str, invoices: list[InvoiceLine]
) -> None:
    subject, text, html = render_reminder(name, context(invoices, **step_extras(name)), locale="en_GB")

    assert html is not None
    for said in (subject, text, html):
        for claim in CLAIMS_OF_CONTACT:
            assert claim not in said.lower(), f"{name} says {claim!r} without earlier contact"


def test_a_final_notice_after_one_reminder_says_when_we_wrote() -> None:
    history = ReminderHistory(1, date(2026, 11, 20), date(2026, 11, 20))
    subject, text, html = render_reminder("final_notice", context([OVERDUE], history=history), locale="en_GB")

    assert subject == "Final notice: invoice 1001 (£500.00) is still unpaid"
    assert "We wrote to you on 20 November 2026 about invoice 1001 for £500.00." in text
    assert "in touch" not in text
    assert html is not None
    assert "We wrote to you on 20 November 2026 about invoice <strong>1001</strong>" in html


def test_a_final_notice_after_three_reminders_counts_them_and_dates_the_first_and_last() -> None:
    history = ReminderHistory(3, date(2026, 11, 5), date(2026, 11, 25))
    _, text, html = render_reminder("final_notice", context([OVERDUE], history=history), locale="en_GB")

    assert (
        "We've been in touch 3 times since 5 November 2026 about invoice 1001 for £500.00, "
        "most recently on 25 November 2026." in text
    )
    assert "a few times" not in text
    assert html is not None
    assert "We've been in touch 3 times since 5 November 2026" in html


def test_a_grouped_final_notice_words_its_history_for_the_group() -> None:
    invoices = [OVERDUE, ALSO_OVERDUE]
    none = render_reminder("final_notice", context(invoices), locale="en_GB").text
    once = render_reminder(
        "final_notice", context(invoices, history={"count": 1, "first_on": date(2026, 11, 20)}), locale="en_GB"
    ).text
    thrice = render_reminder(
        "final_notice",
        context(invoices, history=ReminderHistory(3, date(2026, 11, 5), date(2026, 11, 25))),
        locale="en_GB",
    ).text

    assert "These invoices are overdue and we have not received payment for them:" in none
    assert "We wrote to you on 20 November 2026, and these invoices are still unpaid:" in once
    assert "We've been in touch 3 times since 5 November 2026, most recently on 25 November 2026" in thrice


def test_a_firm_reminder_mentions_the_last_reminder_only_when_there_was_one() -> None:
    before = ReminderHistory(2, date(2026, 11, 5), date(2026, 11, 20))

    assert "We last wrote to you about it on 20 November 2026." in (
        render_reminder("firm", context([OVERDUE], history=before), locale="en_GB").text
    )
    assert "wrote" not in render_reminder("firm", context([OVERDUE]), locale="en_GB").text


def test_templates_see_the_history_with_localized_dates() -> None:
    overrides = {"firm/body.txt": "{{ history.count }}|{{ history.first_on }}|{{ history.last_on }}"}
    before = ReminderHistory(2, date(2026, 11, 5), date(2026, 11, 20))

    seen = render_reminder("firm", context([OVERDUE], history=before), locale="de_DE", overrides=overrides)
    never = render_reminder("firm", context([OVERDUE]), locale="de_DE", overrides=overrides)

    assert seen.text == "2|5. November 2026|20. November 2026\n"
    assert never.text == "0||\n"  # first_on / last_on are none before any reminder was sent


# -- fee warnings ---------------------------------------------------------------------------------------
WARNINGS = {
    "flat": (
        FLAT,
        "en_GB",
        "Under our payment terms a late fee of £40.00 will be added to invoice 1001 "
        "if it is still unpaid on 14 December 2026.",
        "a late fee of <strong>£40.00</strong> will be added to invoice 1001 "
        "if it is still unpaid on <strong>14 December 2026</strong>.",
    ),
    "percent": (
        PERCENT,
        "en_GB",
        "Under our payment terms a late fee of 5% of the balance will be added to invoice 1001 "
        "if it is still unpaid on 14 December 2026.",
        "a late fee of <strong>5%</strong> of the balance will be added to invoice 1001",
    ),
    "interest": (
        INTEREST,
        "en_GB",
        "Under our payment terms interest of 8% a year will be charged on the overdue balance of invoice 1001 "
        "from 14 December 2026.",
        "interest of <strong>8% a year</strong> will be charged on the overdue balance of invoice 1001 "
        "from <strong>14 December 2026</strong>.",
    ),
    "flat_de": (
        FeeWarning("standard", "Mahngebühr", "flat", APPLIES, amount=Money.of("40", "EUR")),
        "de_DE",
        "Under our payment terms a late fee of 40,00\xa0€ will be added to invoice 1001 "
        "if it is still unpaid on 14. Dezember 2026.",
        "a late fee of <strong>40,00\xa0€</strong> will be added to invoice 1001",
    ),
    "interest_de": (
        FeeWarning("zinsen", "Verzugszinsen", "eu_statutory", APPLIES, annual_rate=Decimal("11.27")),
        "de_DE",
        "Under our payment terms interest of 11,27\xa0% a year will be charged on the overdue balance of "
        "invoice 1001 from 14. Dezember 2026.",
        "interest of <strong>11,27\xa0% a year</strong>",
    ),
}


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
@pytest.mark.parametrize("kind", WARNINGS)
def test_every_template_states_each_fee_warning_once_in_text_and_html(name: str, kind: str) -> None:
    warning, locale, sentence, html_sentence = WARNINGS[kind]
    line = InvoiceLine("1001", date(2026, 11, 1), Money.of("500", "GBP"), 29, fee_warning=warning)

    _, text, html = render_reminder(name, context([line, NOT_DUE], **step_extras(name)), locale=locale)

    assert text.count(sentence) == 1
    assert html is not None
    assert html.count(html_sentence) == 1
    assert html.index(html_sentence) < html.index("</body>")


def test_one_sentence_per_invoice_that_carries_a_warning() -> None:
    lines = [
        InvoiceLine("1001", date(2026, 11, 1), Money.of("500", "GBP"), 29, fee_warning=FLAT),
        InvoiceLine("1003", date(2026, 11, 10), Money.of("20", "GBP"), 20, fee_warning=INTEREST),
        InvoiceLine("1006", date(2026, 11, 12), Money.of("9", "GBP"), 18),
    ]
    _, text, _ = render_reminder("firm", context(lines), locale="en_GB")

    assert text.count("Under our payment terms") == 2
    assert "a late fee of £40.00 will be added to invoice 1001" in text
    assert "interest of 8% a year will be charged on the overdue balance of invoice 1003" in text


def test_templates_see_each_lines_warning_and_the_list_of_warnings() -> None:
    line = InvoiceLine("1001", date(2026, 11, 1), Money.of("500", "GBP"), 29, fee_warning=INTEREST)
    overrides = {
        "firm/body.txt": (
            "{{ invoice.fee_warning.annual_rate }} {{ invoice.fee_warning.description }} "
            "{{ invoice.fee_warning.amount }}| {% for w in fee_warnings %}{{ w.number }} {{ w.kind }} "
            "{{ w.applies_from }} {{ w.applies_from.iso }}{% endfor %}"
        )
    }
    _, text, _ = render_reminder("firm", context([line, OVERDUE]), locale="en_GB", overrides=overrides)

    assert text == "8% Late payment interest | 1001 interest 14 December 2026 2026-12-14\n"


def test_an_override_that_leaves_out_the_warning_gets_the_built_in_paragraph_appended() -> None:
    line = InvoiceLine("1001", date(2026, 11, 1), Money.of("500", "GBP"), 29, fee_warning=FLAT)
    overrides = {
        "firm/subject.txt": "Invoice {{ invoice.number }}",
        "firm/body.txt": "Please pay invoice {{ invoice.number }}.",
        "firm/body.html": "<html><body><p>Please pay invoice {{ invoice.number }}.</p></body></html>",
    }
    _, text, html = render_reminder("firm", context([line]), locale="en_GB", overrides=overrides)

    assert text == (
        "Please pay invoice 1001.\n\nUnder our payment terms a late fee of £40.00 will be added to invoice 1001 "
        "if it is still unpaid on 14 December 2026.\n"
    )
    assert html is not None
    assert html.startswith("<html><body><p>Please pay invoice 1001.</p>\n<p ")
    assert html.endswith("</p>\n</body></html>\n")
    assert "a late fee of <strong>£40.00</strong> will be added to invoice 1001" in html


def test_a_text_only_override_gets_the_paragraph_in_its_text() -> None:
    line = InvoiceLine("1001", date(2026, 11, 1), Money.of("500", "GBP"), 29, fee_warning=PERCENT)
    rendered = render_reminder(
        "gentle_nudge", context([line]), locale="en_GB", overrides={"gentle_nudge/body.txt": "Hello."}
    )

    assert rendered.html is None
    assert rendered.text.startswith("Hello.\n\nUnder our payment terms a late fee of 5% of the balance")


def test_emptying_the_shipped_partial_cannot_remove_the_statement() -> None:
    line = InvoiceLine("1001", date(2026, 11, 1), Money.of("500", "GBP"), 29, fee_warning=FLAT)
    overrides = {"_fee_warning.txt": "", "_fee_warning.html": ""}
    _, text, html = render_reminder("final_notice", context([line]), locale="en_GB", overrides=overrides)

    assert text.count("a late fee of £40.00 will be added to invoice 1001") == 1
    assert html is not None
    assert html.count("a late fee of <strong>£40.00</strong> will be added to invoice 1001") == 1


def test_an_override_stating_the_warning_in_its_own_words_is_left_as_written() -> None:
    line = InvoiceLine("1001", date(2026, 11, 1), Money.of("500", "GBP"), 29, fee_warning=FLAT)
    own_words = (
        "Pay {{ invoice.number }}.{% for w in fee_warnings %} From {{ w.applies_from }} we add {{ w.amount }}."
        "{% endfor %}"
    )
    _, text, _ = render_reminder("firm", context([line]), locale="en_GB", overrides={"firm/body.txt": own_words})

    assert text == "Pay 1001. From 14 December 2026 we add £40.00.\n"


def test_an_override_that_mentions_the_warning_without_its_amount_and_date_gets_the_paragraph() -> None:
    line = InvoiceLine("1001", date(2026, 11, 1), Money.of("500", "GBP"), 29, fee_warning=FLAT)
    vague = "Pay {{ invoice.number }}.{% if fee_warnings %} Fees may apply.{% endif %}"
    _, text, _ = render_reminder("firm", context([line]), locale="en_GB", overrides={"firm/body.txt": vague})

    assert text.startswith("Pay 1001. Fees may apply.\n\nUnder our payment terms a late fee of £40.00")


def test_without_fee_warnings_nothing_is_appended_to_an_override() -> None:
    rendered = render_reminder("firm", context([OVERDUE]), locale="en_GB", overrides={"firm/body.txt": "Pay."})

    assert rendered.text == "Pay.\n"


def test_one_fee_over_several_invoices_is_one_sentence_naming_them_all() -> None:
    def pounds(amount: str) -> Money:
        return Money(Decimal(amount), "GBP")

    flat = FeeWarning(
        policy="p", description="Late fee", kind="flat", applies_from=date(2026, 12, 9), amount=pounds("25")
    )
    lines = [
        InvoiceLine(number, date(2026, 9, 20), pounds("100.00"), 73, None, pounds("100.00"), fee_warning=flat)
        for number in ("1001", "1002", "1003")
    ]
    context = ReminderContext(customer_name="B", business_name="H", today=date(2026, 12, 2), invoices=lines)
    text = render_reminder("firm", context, locale="en_GB").text
    assert text.count("Under our payment terms") == 1
    assert "a late fee of £25.00 will be added to each of invoices 1001, 1002 and 1003 if they are still unpaid" in text
