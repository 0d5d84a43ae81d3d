"""Reminder emails from Jinja2 templates, rendered in a sandbox, with amounts and dates in the customer's locale.

A template is three parts under one name: `<name>/subject.txt`, `<name>/body.txt` and (optional)
`<name>/body.html`. The defaults live in `connector/mail/templates/`; an organization's edited
versions come in as `overrides` keyed the same way (`{"firm/subject.txt": "..."}`), and may also
replace the shared HTML frame `_layout.html` or add new template names. If an override replaces
`body.txt` but not `body.html`, the message goes out as plain text only (so the two never disagree);
an HTML part without a plain-text part is refused.

Templates run in Jinja2's `ImmutableSandboxedEnvironment` with `StrictUndefined`: no attribute that
starts with an underscore, no mutation of the values passed in, no unknown names. Anything that
fails — syntax, an unsafe access, a missing value — raises `connector.errors.TemplateError` naming
the template part. The subject must come out as one line.

What a template sees (amounts and dates are already formatted for the customer's locale; they are
strings with `.money`/`.amount`/`.currency` or `.value` for the raw value):
    customer_name, business_name, contact_name, business_email, business_phone, today
    invoices            list of {number, balance, total, due_date, issue_date, days_overdue, payment_link}
    invoice             the first of `invoices`
    total, totals       the balance due (one currency), or the per-currency totals joined with " + "
    max_days_overdue    the largest `days_overdue`
    payment_link        the statement link, else the only invoice's link, else none
    discount            {percent, amount, pay_amount, pay_by} or none
    installment         {number, count, amount, due_date, remaining, payment_link} or none
    late_fee            an amount or none;  has_attachment: the invoice PDF is attached;  extra: your own values
Filters: `money` (a Money), `date` (a date, optional format: short | medium | long | full | a pattern),
`number`, `percent` (2.5 → "2.5%").
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, NamedTuple

import jinja2
from babel import Locale, UnknownLocaleError
from babel.dates import format_date as babel_format_date
from babel.numbers import format_currency, format_decimal, format_percent, get_currency_precision
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from connector.domain.money import Money
from connector.errors import TemplateError

log = logging.getLogger(__name__)

TEMPLATE_DIR = Path(__file__).parent / "templates"
TEMPLATE_NAMES = ("gentle_nudge", "due_today", "firm", "final_notice", "installment", "discount_offer")
PARTS = ("subject.txt", "body.txt", "body.html")
DEFAULT_LOCALE = "en_US"
MAX_OUTPUT_CHARS = 500_000
MAX_SUBJECT_CHARS = 250
_MAX_RANGE = 1000
_MAX_REPEAT = 10_000
_MAX_EXPONENT = 100
_LINE_BREAKS = frozenset("\r\n\x00\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")


# -- what the executor passes in -----------------------------------------------------------------
@dataclass(frozen=True)
class InvoiceLine:
    """One invoice as a reminder shows it; `days_overdue` is negative before the due date."""

    number: str
    due_date: date
    balance: Money
    days_overdue: int = 0
    payment_link: str | None = None
    total: Money | None = None
    issue_date: date | None = None


@dataclass(frozen=True)
class DiscountOffer:
    """Early-payment discount: pay `pay_amount` (balance minus `amount`) by `pay_by`; `percent` as in 2 for 2%."""

    percent: Decimal
    amount: Money
    pay_amount: Money
    pay_by: date


@dataclass(frozen=True)
class Installment:
    """Installment `number` of `count` of a payment plan; `remaining` is what is left after it."""

    number: int
    count: int
    amount: Money
    due_date: date
    remaining: Money | None = None
    payment_link: str | None = None


@dataclass(frozen=True)
class ReminderContext:
    """Everything a reminder can say. `today` is the date the customer reads it (their time zone)."""

    customer_name: str
    business_name: str
    invoices: Sequence[InvoiceLine]
    today: date
    contact_name: str = ""
    business_email: str = ""
    business_phone: str = ""
    payment_link: str | None = None
    discount: DiscountOffer | None = None
    installment: Installment | None = None
    late_fee: Money | None = None
    has_attachment: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)


class RenderedReminder(NamedTuple):
    """A rendered reminder: one-line subject, plain text, and HTML (None: send plain text only)."""

    subject: str
    text: str
    html: str | None


# -- locale-aware values ------------------------------------------------------------------------------
class Amount(str):
    """A Money formatted for a locale; still a str, with `.money`, `.amount` and `.currency`."""

    money: Money
    amount: Decimal
    currency: str

    def __new__(cls, money: Money, locale: Locale) -> Amount:
        """An amount formatted for `locale`, keeping the Money it came from."""
        self = super().__new__(cls, format_money(money, locale))
        self.money, self.amount, self.currency = money, money.amount, money.currency
        return self


class LocalDate(str):
    """A date formatted for a locale (long form); still a str, with `.value` (the date) and `.iso`."""

    value: date
    iso: str

    def __new__(cls, value: date, locale: Locale) -> LocalDate:
        """A date written out in `locale`'s long form, keeping the date and its ISO form."""
        self = super().__new__(cls, babel_format_date(value, format="long", locale=locale))
        self.value, self.iso = value, value.isoformat()
        return self


def parse_locale(locale: str | Locale) -> Locale:
    """A Babel Locale from `en_US` / `de-DE` / `ja`; unknown or malformed ones fall back to en_US."""
    if isinstance(locale, Locale):
        return locale
    try:
        return Locale.parse((locale or DEFAULT_LOCALE).replace("-", "_"))
    except (ValueError, TypeError, UnknownLocaleError):
        log.warning("unknown locale %r; formatting for %s", locale, DEFAULT_LOCALE)
        return Locale.parse(DEFAULT_LOCALE)


def format_money(money: Money, locale: str | Locale) -> str:
    """`money` as the locale writes it (en_US "$1,234.50", de_DE "1.234,50 €"), rounded half-up."""
    digits = get_currency_precision(money.currency)
    amount = money.amount.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)
    return str(format_currency(amount, money.currency, locale=parse_locale(locale)))


def format_day(value: date, locale: str | Locale, form: str = "long") -> str:
    """`value` as the locale writes it; `form` is short | medium | long | full or a CLDR pattern."""
    return str(babel_format_date(value, format=form, locale=parse_locale(locale)))


def _link(value: str | None) -> str | None:
    if not value:
        return None
    if value.lower().startswith(("https://", "http://")) and not any(char in _LINE_BREAKS for char in value):
        return value
    log.warning("ignoring a payment link that is not an http(s) URL")
    return None


def _variables(context: ReminderContext, loc: Locale) -> dict[str, Any]:
    def amount(value: Money | None) -> Amount | None:
        return None if value is None else Amount(value, loc)

    def day(value: date | None) -> LocalDate | None:
        return None if value is None else LocalDate(value, loc)

    lines = [item if isinstance(item, InvoiceLine) else InvoiceLine(**item) for item in context.invoices]
    invoices = [
        {
            "number": line.number,
            "balance": amount(line.balance),
            "total": amount(line.total),
            "due_date": day(line.due_date),
            "issue_date": day(line.issue_date),
            "days_overdue": line.days_overdue,
            "payment_link": _link(line.payment_link),
        }
        for line in lines
    ]
    sums: dict[str, Money] = {}
    for line in lines:
        sums[line.balance.currency] = sums.get(line.balance.currency, Money.zero(line.balance.currency)) + line.balance
    totals = [Amount(money, loc) for money in sums.values()]
    links = {line["payment_link"] for line in invoices if line["payment_link"]}
    discount = context.discount
    plan = context.installment
    return {
        "customer_name": context.customer_name,
        "business_name": context.business_name,
        "contact_name": context.contact_name,
        "business_email": context.business_email,
        "business_phone": context.business_phone,
        "today": LocalDate(context.today, loc),
        "invoices": invoices,
        "invoice": invoices[0] if invoices else None,
        "totals": totals,
        "total": totals[0] if len(totals) == 1 else " + ".join(totals),
        "max_days_overdue": max((line.days_overdue for line in lines), default=0),
        "payment_link": _link(context.payment_link) or (next(iter(links)) if len(links) == 1 else None),
        "discount": None
        if discount is None
        else {
            "percent": _percent(discount.percent, loc),
            "amount": amount(discount.amount),
            "pay_amount": amount(discount.pay_amount),
            "pay_by": day(discount.pay_by),
        },
        "installment": None
        if plan is None
        else {
            "number": plan.number,
            "count": plan.count,
            "amount": amount(plan.amount),
            "due_date": day(plan.due_date),
            "remaining": amount(plan.remaining),
            "payment_link": _link(plan.payment_link),
        },
        "late_fee": amount(context.late_fee),
        "has_attachment": context.has_attachment,
        "extra": dict(context.extra),
        "locale": str(loc),
    }


def _percent(value: Decimal | int | str, loc: Locale) -> str:
    return str(format_percent(Decimal(str(value)) / 100, locale=loc, decimal_quantization=False))


# -- the sandbox ---------------------------------------------------------------------------------------
class _Sandbox(ImmutableSandboxedEnvironment):
    """The sandbox, plus limits on `*` and `**` so a template cannot build huge values."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int | float) and abs(right) > _MAX_EXPONENT:
            raise SecurityError(f"exponent {right} is too large for a template")
        if operator == "*":
            for sequence, count in ((left, right), (right, left)):
                if (
                    isinstance(sequence, str | list | tuple)
                    and isinstance(count, int)
                    and len(sequence) * count > _MAX_REPEAT
                ):
                    raise SecurityError("repeating a value that many times is not allowed in a template")
        return super().call_binop(context, operator, left, right)


def _limited_range(*args: int) -> range:
    result = range(*args)
    if len(result) > _MAX_RANGE:
        raise SecurityError(f"range() is limited to {_MAX_RANGE} items in a template")
    return result


def _locale_of(context: jinja2.runtime.Context) -> Locale:
    return parse_locale(str(context.get("locale") or DEFAULT_LOCALE))


@jinja2.pass_context
def _money_filter(context: jinja2.runtime.Context, value: Any) -> str:
    if isinstance(value, Amount):
        return str(value)
    if isinstance(value, Money):
        return format_money(value, _locale_of(context))
    raise TypeError(f"the money filter needs an amount, got {type(value).__name__}")


@jinja2.pass_context
def _date_filter(context: jinja2.runtime.Context, value: Any, form: str = "long") -> str:
    raw = value.value if isinstance(value, LocalDate) else value
    if not isinstance(raw, date):
        raise TypeError(f"the date filter needs a date, got {type(value).__name__}")
    return format_day(raw, _locale_of(context), form)


@jinja2.pass_context
def _number_filter(context: jinja2.runtime.Context, value: Any) -> str:
    return str(format_decimal(Decimal(str(value)), locale=_locale_of(context), decimal_quantization=False))


@jinja2.pass_context
def _percent_filter(context: jinja2.runtime.Context, value: Any) -> str:
    return _percent(value, _locale_of(context))


@jinja2.pass_context
def _finalize(context: jinja2.runtime.Context, value: Any) -> Any:
    """Raw Money and dates (e.g. from `extra`) print formatted; none prints as nothing."""
    if value is None:
        return ""
    if isinstance(value, Money):
        return format_money(value, _locale_of(context))
    if isinstance(value, date) and not isinstance(value, str):
        return format_day(value, _locale_of(context))
    return value


def _environment(overrides: Mapping[str, str]) -> _Sandbox:
    env = _Sandbox(
        loader=jinja2.ChoiceLoader([jinja2.DictLoader(dict(overrides)), jinja2.FileSystemLoader(TEMPLATE_DIR)]),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        finalize=_finalize,
        auto_reload=False,
    )
    env.globals = {name: env.globals[name] for name in ("dict", "cycler", "joiner", "namespace")}
    env.globals["range"] = _limited_range
    env.filters.update(money=_money_filter, date=_date_filter, number=_number_filter, percent=_percent_filter)
    return env


# -- rendering -----------------------------------------------------------------------------------------
_Render = Callable[[], str]


def _guard(template: str, run: _Render) -> str:
    """Run one render step, turning every failure into a TemplateError that names the template."""
    try:
        output = run()
    except TemplateError:
        raise
    except jinja2.TemplateSyntaxError as exc:
        where = exc.name or template
        raise TemplateError(
            f"template {where!r} has a syntax error on line {exc.lineno}: {exc.message}",
            template=where,
            line=exc.lineno,
        ) from None
    except jinja2.TemplateNotFound as exc:
        raise TemplateError(
            f"template {template!r} refers to {exc.name!r}, which does not exist", template=template
        ) from None
    except SecurityError as exc:
        raise TemplateError(
            f"template {template!r} tried something templates may not do: {exc}", template=template
        ) from None
    except jinja2.UndefinedError as exc:
        raise TemplateError(
            f"template {template!r} uses a value that does not exist: {exc}", template=template
        ) from None
    except Exception as exc:  # anything a user's template can raise (TypeError, ZeroDivisionError, ...)
        raise TemplateError(
            f"template {template!r} could not be rendered: {type(exc).__name__}: {exc}", template=template
        ) from None
    if len(output) > MAX_OUTPUT_CHARS:
        raise TemplateError(
            f"template {template!r} produced more than {MAX_OUTPUT_CHARS} characters", template=template
        )
    return output


def _exists(env: jinja2.Environment, name: str) -> bool:
    assert env.loader is not None
    try:
        env.loader.get_source(env, name)
    except jinja2.TemplateNotFound:
        return False
    return True


def render_reminder(
    template_name: str,
    context: ReminderContext | Mapping[str, Any],
    *,
    locale: str | Locale,
    overrides: Mapping[str, str] | None = None,
) -> RenderedReminder:
    """Render template `template_name` for `context` in `locale`; raises TemplateError naming the part."""
    if not template_name or "/" in template_name or template_name.startswith((".", "_")):
        raise TemplateError(f"{template_name!r} is not a template name", template=template_name)
    overrides = overrides or {}
    ctx = context if isinstance(context, ReminderContext) else ReminderContext(**context)
    if not ctx.invoices:
        raise TemplateError("a reminder needs at least one invoice", template=template_name)
    env = _environment(overrides)
    variables = _variables(ctx, parse_locale(locale))
    names = {part: f"{template_name}/{part}" for part in PARTS}

    def render(part: str) -> str:
        name = names[part]
        return _guard(name, lambda: env.get_template(name).render(variables))

    _require_plain_text_body(env, template_name, names, overrides)
    subject = _checked_subject(render("subject.txt").strip(), names["subject.txt"])
    text = render("body.txt").strip() + "\n"
    text_overridden = names["body.txt"] in overrides
    html_overridden = names["body.html"] in overrides
    if html_overridden and not text_overridden and template_name in TEMPLATE_NAMES:
        raise TemplateError(
            f"template {names['body.html']!r} is customized but {names['body.txt']!r} is not; "
            "customize both so the plain-text and HTML versions say the same thing",
            template=names["body.html"],
        )
    html: str | None = None
    if (html_overridden or not text_overridden) and _exists(env, names["body.html"]):
        html = render("body.html").strip() + "\n"
    return RenderedReminder(subject, text, html)


def _require_plain_text_body(
    env: jinja2.Environment, template_name: str, names: Mapping[str, str], overrides: Mapping[str, str]
) -> None:
    """TemplateError unless the template exists and has its plain-text body (every reminder needs one)."""
    if _exists(env, names["body.txt"]):
        return
    if not _exists(env, names["subject.txt"]):
        known = ", ".join(sorted({*TEMPLATE_NAMES, *(key.split("/")[0] for key in overrides if "/" in key)}))
        raise TemplateError(f"unknown template {template_name!r} (known: {known})", template=template_name)
    raise TemplateError(
        f"template {names['body.txt']!r} is missing: every reminder needs a plain-text body",
        template=names["body.txt"],
    )


def _checked_subject(subject: str, name: str) -> str:
    """`subject` as rendered by template part `name`, which must give one non-empty line of bounded length."""
    if any(char in _LINE_BREAKS for char in subject):
        raise TemplateError(
            f"template {name!r} produced a subject with a line break; a subject must be one line", template=name
        )
    if not subject:
        raise TemplateError(f"template {name!r} produced an empty subject", template=name)
    if len(subject) > MAX_SUBJECT_CHARS:
        raise TemplateError(
            f"template {name!r} produced a subject longer than {MAX_SUBJECT_CHARS} characters", template=name
        )
    return subject


def default_template_source(template_name: str, part: str) -> str:
    """The shipped source of one default template part (for the editor's "reset to default")."""
    if template_name not in TEMPLATE_NAMES or part not in PARTS:
        raise TemplateError(f"no default template {template_name}/{part}", template=f"{template_name}/{part}")
    return (TEMPLATE_DIR / template_name / part).read_text(encoding="utf-8")


def check_template(source: str, *, name: str) -> None:
    """Compile `source` in the sandbox; TemplateError (with the line) if it is not a valid template."""
    env = _environment({})
    _guard(name, lambda: str(env.from_string(source)))


__all__ = [
    "PARTS",
    "TEMPLATE_NAMES",
    "Amount",
    "DiscountOffer",
    "Installment",
    "InvoiceLine",
    "LocalDate",
    "ReminderContext",
    "RenderedReminder",
    "check_template",
    "default_template_source",
    "format_day",
    "format_money",
    "parse_locale",
    "render_reminder",
]
