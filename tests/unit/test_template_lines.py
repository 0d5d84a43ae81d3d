"""TemplateError carries the template line for render-time failures (undefined values, unsafe access, errors
raised while rendering), not only for syntax errors: a template editor can point at it."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from connector.domain.money import Money
from connector.errors import TemplateError
from connector.mail.rendering import InvoiceLine, ReminderContext, render_reminder

CONTEXT = ReminderContext(
    customer_name="Blue Harbor Cafe",
    business_name="Acme Plumbing",
    invoices=[InvoiceLine("1001", date(2026, 3, 2), Money(Decimal("10.00"), "USD"), 3)],
    today=date(2026, 3, 5),
)


@pytest.mark.parametrize(
    ("body", "line", "words"),
    [
        ("Hello\n\n{{ foo }}\n", 3, "'foo' is undefined"),
        ("Hello\n{{ 1 // 0 }}\n", 2, "ZeroDivisionError"),
        ("a\nb\nc\n{{ invoice.number.__class__ }}\n", 4, "underscore"),
        ("Hello\n{% if %}\n", 2, "syntax error"),
    ],
)
def test_the_line_of_a_failing_template_part(body: str, line: int, words: str) -> None:
    overrides = {"firm/subject.txt": "Overdue", "firm/body.txt": body}
    with pytest.raises(TemplateError) as failed:
        render_reminder("firm", CONTEXT, locale="en_US", overrides=overrides)
    assert failed.value.template == "firm/body.txt"
    assert failed.value.line == line
    assert words in failed.value.user_message
