"""Checking an organization's email template before it is saved: every part in the bounded sandbox, then a
render against sample reminders (one invoice, several, a fee warning, a discount, an installment).

A refusal is `InvalidInput` whose field is the part ("body.txt") and whose message starts with the line
("line 3: uses a value that does not exist: 'foo' is undefined"), so an editor can point at it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from typing import Any

from connector.domain.actions import FeeWarning
from connector.domain.money import Money
from connector.errors import InvalidInput, TemplateError
from connector.mail.rendering import (
    PARTS,
    TEMPLATE_DIR,
    TEMPLATE_NAMES,
    DiscountOffer,
    Installment,
    InvoiceLine,
    ReminderContext,
    ReminderHistory,
    render_reminder,
    validate_template,
)

REQUIRED_PARTS = ("subject.txt", "body.txt")
_TODAY = date(2026, 3, 16)
_PREFIX = re.compile(r"^template '[^']*' ")


def template_name_problem(name: str) -> str | None:
    """Why `name` cannot name a template (render_reminder's rule), else None."""
    if "/" in name or name.startswith((".", "_")) or any(char.isspace() for char in name):
        return "a template name has no '/', no spaces, and does not start with '.' or '_'"
    return None


def builtin_template_body(name: str) -> dict[str, str]:
    """The shipped parts of built-in template `name` as a library body."""
    return {
        part: (TEMPLATE_DIR / name / part).read_text(encoding="utf-8")
        for part in PARTS
        if (TEMPLATE_DIR / name / part).is_file()
    }


def builtin_templates() -> dict[str, dict[str, str]]:
    """Every built-in template's body, by name (the starter library's templates)."""
    return {name: builtin_template_body(name) for name in TEMPLATE_NAMES}


def check_template_body(name: str, body: Mapping[str, Any]) -> dict[str, str]:
    """`body` as a template body ({part: source}); InvalidInput naming the part, the line and the reason."""
    parts = _parts(body)
    for part, source in parts.items():
        try:
            validate_template(source, name=f"{name}/{part}")
        except TemplateError as exc:
            raise _refusal(exc, part) from None
    overrides = {f"{name}/{part}": source for part, source in parts.items()}
    # A template written for installments (or discount offers) is only sent with one: every sample carries it.
    sources = "\n".join(parts.values())
    uses = {key for key in ("installment", "discount") if re.search(rf"\b{key}\b", sources)}
    for context in sample_contexts(uses):
        try:
            render_reminder(name, context, locale="en_US", overrides=overrides)
        except TemplateError as exc:
            raise _refusal(exc, _part_of(exc.template, name)) from None
    return parts


def _parts(body: object) -> dict[str, str]:
    """The parts of a template body, each text; subject.txt and body.txt required."""
    if not isinstance(body, Mapping):
        raise InvalidInput("a template's body is a mapping of part (subject.txt, body.txt, body.html) to text", "body")
    parts: dict[str, str] = {}
    for part, source in body.items():
        if part not in PARTS:
            raise InvalidInput(f"unknown template part {part!r} (known: {', '.join(PARTS)})", str(part))
        if not isinstance(source, str):
            raise InvalidInput("expected the template's text", part)
        parts[part] = source
    for part in REQUIRED_PARTS:
        if not parts.get(part, "").strip():
            raise InvalidInput("every template needs this part", part)
    return parts


def _part_of(template: str, name: str) -> str:
    prefix = f"{name}/"
    return template[len(prefix) :] if template.startswith(prefix) else (template or "body.txt")


def _refusal(exc: TemplateError, part: str) -> InvalidInput:
    reason = _PREFIX.sub("", exc.user_message)
    where = f"line {exc.line}: " if exc.line else ""
    if exc.line:
        reason = re.sub(rf" on line {exc.line}(?=:|$)", "", reason)
    return InvalidInput(f"{where}{reason}", part)


def sample_contexts(always: set[str] | frozenset[str] = frozenset()) -> tuple[ReminderContext, ...]:
    """Sample reminders a template must render: one invoice, several (one not due yet), a fee warning,
    a discount offer, an installment of a payment plan; `always` ("discount", "installment") in every one."""

    def usd(amount: str) -> Money:
        return Money(Decimal(amount), "USD")

    one = InvoiceLine(
        "1001", date(2026, 3, 2), usd("1250.00"), 14, "https://pay.example.com/1001", usd("1250.00"), date(2026, 2, 1)
    )
    second = InvoiceLine("1002", date(2026, 3, 9), usd("80.50"), 7, None, usd("100.00"), date(2026, 2, 8))
    coming = InvoiceLine("1003", date(2026, 3, 30), usd("40.00"), -14, None, usd("40.00"), date(2026, 3, 1))
    warning = FeeWarning(
        "monthly_interest", "Interest on overdue balance", "interest", date(2026, 3, 23), None, None, Decimal("18")
    )
    warned = InvoiceLine(
        "1004", date(2026, 2, 20), usd("500.00"), 24, None, usd("500.00"), date(2026, 1, 21), fee_warning=warning
    )
    upcoming = InvoiceLine("1005", date(2026, 3, 26), usd("300.00"), -10, None, usd("300.00"), date(2026, 3, 16))
    base: dict[str, Any] = {
        "customer_name": "Blue Harbor Cafe",
        "business_name": "Acme Plumbing",
        "today": _TODAY,
        "contact_name": "Sam",
        "business_email": "accounts@acme.example.com",
        "business_phone": "+1 555 0100",
    }
    history = ReminderHistory(2, date(2026, 3, 1), date(2026, 3, 9))
    discount = DiscountOffer(Decimal("2"), usd("6.00"), usd("294.00"), date(2026, 3, 26), "1005")
    installment = Installment(2, 3, usd("100.00"), date(2026, 3, 26), usd("100.00"), None)
    if "discount" in always:
        base["discount"] = discount
    if "installment" in always:
        base["installment"] = installment
    samples = [
        ReminderContext(invoices=[one], **base),
        ReminderContext(
            invoices=[one, second, coming], history=history, payment_link="https://pay.example.com/", **base
        ),
        ReminderContext(invoices=[warned], late_fee=usd("15.00"), **base),
    ]
    if "discount" not in always:
        samples.append(ReminderContext(invoices=[upcoming], discount=discount, **base))
    if "installment" not in always:
        samples.append(ReminderContext(invoices=[upcoming], installment=installment, **base))
    return tuple(samples)
