"""What reminders say about the customer page (issue 17): every shipped template links to the customer's page (text
and HTML) when there is one, and a reminder after a promise that was not kept says so, once, in both parts."""

from __future__ import annotations

from datetime import date

import pytest

from connector.domain.actions import BrokenPromise
from connector.domain.money import Money
from connector.mail.rendering import TEMPLATE_NAMES, render_reminder
from tests.unit.mail.test_reminder_wording import OVERDUE, context, step_extras

PAGE = "https://nudge.example/c/eyJjIjoxLCJrIjo0Mn0.signature"
PROMISED = "You told us you would pay £250.00 by 20 November 2026"


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_every_template_links_to_the_customer_page(name: str) -> None:
    rendered = render_reminder(name, context([OVERDUE], customer_page=PAGE, **step_extras(name)), locale="en_GB")
    assert PAGE in rendered.text
    assert rendered.html is not None
    assert f'href="{PAGE}"' in rendered.html
    assert "You told us" not in rendered.text
    plain = render_reminder(name, context([OVERDUE], **step_extras(name)), locale="en_GB")
    assert "/c/" not in plain.text  # no page, no link (an install without a secret)


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_a_broken_promise_is_named_once(name: str) -> None:
    broken = BrokenPromise(date(2026, 11, 20), Money.of("250", "GBP"))
    rendered = render_reminder(name, context([OVERDUE], broken_promise=broken, **step_extras(name)), locale="en_GB")
    assert rendered.text.count(PROMISED) == 1
    assert rendered.html is not None
    assert rendered.html.count(PROMISED) == 1
    without_amount = render_reminder(
        name, context([OVERDUE], broken_promise=BrokenPromise(date(2026, 11, 20)), **step_extras(name)), locale="en_GB"
    )
    assert "You told us you would pay by 20 November 2026" in without_amount.text


def test_a_link_that_is_not_a_web_address_is_left_out() -> None:
    rendered = render_reminder("firm", context([OVERDUE], customer_page="javascript:alert(1)"), locale="en_GB")
    assert "javascript:" not in rendered.text
    assert "javascript:" not in (rendered.html or "")
