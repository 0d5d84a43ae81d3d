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
    invoices            what the reminder is about: the lines due or overdue (`days_overdue` >= 0), each
                        {number, balance, total, due_date, issue_date, days_overdue, payment_link, fee_warning};
                        when none is due yet (a courtesy reminder), every line
    coming_up           the lines not due yet when some are due (same fields), else empty: shown apart as
                        "Coming up (not due yet)", never in a total, a subject or an overdue list
    invoice             the first of `invoices`
    total, totals       the balance of `invoices` (one currency), or the per-currency totals joined with " + "
    max_days_overdue    the largest `days_overdue` of `invoices`
    payment_link        the statement link, else the only link among `invoices`, else none
    history             {count, first_on, last_on}: the reminders actually sent before about any of these
                        invoices, and the days of the first and last (none when count is 0). Say "we wrote to
                        you" only when count says so.
    fee_warning         (per line) the late fee this reminder announces, not charged yet:
                        {number, description, kind, amount | percent | annual_rate, applies_from} or none
    fee_warnings        the lines' fee warnings, one per distinct fee, each naming its invoices (`numbers`,
                        `number` joined "1001 and 1002", `invoices_text` "invoices 1001 and 1002")
    discount            {percent, amount, pay_amount, pay_by, invoice (the line it is offered on)} or none
    installment         {number, count, amount, due_date, remaining, payment_link} or none
    late_fee            an amount or none;  has_attachment: the invoice PDF is attached;  extra: your own values
    broken_promise      {promised_by, amount (or none)}: the customer promised to pay by then and did not; the
                        shipped sign-off says so ("you told us you would pay by ..."), or none
    customer_page       the customer's own page (open invoices, promise a date, ask for a plan, dispute, already
                        paid; docs/customer-page.md) or none; the shipped sign-off prints it
A reminder carrying a fee warning counts as the customer's warning before the fee is charged, so the
statement is always in the email: a body whose template does not use `fee_warning(s)`, or whose output
lacks a warning's amount or rate and date as formatted here, gets the shipped `_fee_warning.txt` /
`_fee_warning.html` paragraph appended (see `_with_fee_warnings`).
Filters: `money` (a Money), `date` (a date, optional format: short | medium | long | full | a pattern),
`number`, `percent` (2.5 → "2.5%").

Limits (templates become user-editable): `validate_template` is what saving a template calls, and every
override is checked with it before rendering: at most `MAX_TEMPLATE_CHARS` characters, valid syntax, no
`attr`/`format` filters and no attribute or key that starts with an underscore. While rendering, a
per-render budget bounds loop iterations plus calls (`MAX_STEPS`), the characters produced anywhere
(`MAX_RENDER_CHARS`, counted as values are output and as loop bodies repeat, so nothing is built in
full before the check), the size of any one value built with `~`, `+`, `*`, `%` or a filter
(`MAX_VALUE_CHARS`), numbers passed to calls and filters, and the wall time (`MAX_RENDER_SECONDS`).
"""

from __future__ import annotations

import functools
import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import jinja2
import markupsafe
from babel import Locale, UnknownLocaleError
from babel.dates import format_date as babel_format_date
from babel.numbers import format_currency, format_decimal, format_percent, get_currency_precision
from jinja2 import meta, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from connector.domain.actions import BrokenPromise, FeeWarning
from connector.domain.money import Money
from connector.errors import TemplateError

log = logging.getLogger(__name__)

TEMPLATE_DIR = Path(__file__).parent / "templates"
TEMPLATE_NAMES = ("gentle_nudge", "due_today", "firm", "final_notice", "installment", "discount_offer")
PARTS = ("subject.txt", "body.txt", "body.html")
DEFAULT_LOCALE = "en_US"
MAX_OUTPUT_CHARS = 500_000
MAX_SUBJECT_CHARS = 250
MAX_TEMPLATE_CHARS = 64_000
MAX_STEPS = 20_000
MAX_RENDER_CHARS = 2_000_000
MAX_VALUE_CHARS = MAX_OUTPUT_CHARS
MAX_RENDER_SECONDS = 5.0
_MAX_RANGE = 1000
_MAX_REPEAT = 10_000
_MAX_EXPONENT = 100
_MAX_ARGUMENT = 100_000
_FORBIDDEN_FILTERS = frozenset({"attr", "format", "xmlattr", "pprint"})
_BIG_FORMAT_WIDTH = re.compile(r"%[^a-zA-Z%]*(?:\*|\d{5,})|\{[^{}]*[:!][^{}]*(?:\d{5,}|\{)")
_LINE_BREAKS = frozenset("\r\n\x00\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")


# -- what the executor passes in -----------------------------------------------------------------
@dataclass(frozen=True)
class InvoiceLine:
    """One invoice as a reminder shows it; `days_overdue` is negative before the due date.

    `fee_warning`: the late fee this reminder announces for the invoice (not charged yet); the email
    always states it (see `render_reminder`).
    """

    number: str
    due_date: date
    balance: Money
    days_overdue: int = 0
    payment_link: str | None = None
    total: Money | None = None
    issue_date: date | None = None
    fee_warning: FeeWarning | None = None


@dataclass(frozen=True)
class DiscountOffer:
    """Early-payment discount: pay `pay_amount` (balance minus `amount`) by `pay_by`; `percent` as in 2 for 2%.

    `invoice_number`: the invoice it is offered on (empty: the reminder's first invoice).
    """

    percent: Decimal
    amount: Money
    pay_amount: Money
    pay_by: date
    invoice_number: str = ""


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
class ReminderHistory:
    """The reminders actually sent before this one about any of its invoices: how many, first and last day.

    Days are local dates in the customer's zone. Only what was sent counts (never planned or uncertain
    ones), so a template can say "we wrote to you on ..." only when it is true.
    """

    count: int = 0
    first_on: date | None = None
    last_on: date | None = None


NO_HISTORY = ReminderHistory()


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
    history: ReminderHistory = NO_HISTORY
    customer_page: str | None = None  # the customer's own page (issue 17), None: no link
    broken_promise: BrokenPromise | None = None  # a promise to pay not kept: the "you promised" paragraph


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


def _as_line(item: InvoiceLine | Mapping[str, Any]) -> InvoiceLine:
    if isinstance(item, InvoiceLine):
        return item
    fields = dict(item)
    warning = fields.get("fee_warning")
    if isinstance(warning, Mapping):
        fields["fee_warning"] = FeeWarning(**warning)
    return InvoiceLine(**fields)


def _as_history(value: ReminderHistory | Mapping[str, Any] | None) -> ReminderHistory:
    if value is None:
        return NO_HISTORY
    return value if isinstance(value, ReminderHistory) else ReminderHistory(**value)


def _fee_warning(warning: FeeWarning | None, number: str, loc: Locale) -> dict[str, Any] | None:
    """A line's fee warning as templates see it: amounts, rates and the date formatted for `loc`."""
    if warning is None:
        return None
    return {
        "number": number,
        "description": warning.description,
        "kind": warning.kind,
        "applies_from": LocalDate(warning.applies_from, loc),
        "amount": None if warning.amount is None else Amount(warning.amount, loc),
        "percent": None if warning.percent is None else _percent(warning.percent, loc),
        "annual_rate": None if warning.annual_rate is None else _percent(warning.annual_rate, loc),
    }


def _merged_fee_warnings(warnings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per distinct fee (kind, description, amount, rate, date), naming every invoice it applies to:
    `numbers` (the list) and `number` ("1001", "1001 and 1002", "1001, 1002 and 1003"), `invoices_text`
    ("invoice 1001" / "invoices 1001 and 1002"), so six invoices under one policy make one sentence, not six."""
    merged: dict[tuple[str, ...], dict[str, Any]] = {}
    for warning in warnings:
        fields = ("kind", "description", "amount", "percent", "annual_rate", "applies_from")
        key = tuple(str(warning[name]) for name in fields)
        entry = merged.setdefault(key, {**warning, "numbers": []})
        entry["numbers"].append(warning["number"])
    for entry in merged.values():
        numbers = entry["numbers"]
        entry["number"] = numbers[0] if len(numbers) == 1 else f"{', '.join(numbers[:-1])} and {numbers[-1]}"
        entry["invoices_text"] = f"invoice{'s' if len(numbers) > 1 else ''} {entry['number']}"
    return list(merged.values())


def _line_variables(line: InvoiceLine, loc: Locale) -> dict[str, Any]:
    return {
        "number": line.number,
        "balance": Amount(line.balance, loc),
        "total": None if line.total is None else Amount(line.total, loc),
        "due_date": LocalDate(line.due_date, loc),
        "issue_date": None if line.issue_date is None else LocalDate(line.issue_date, loc),
        "days_overdue": line.days_overdue,
        "payment_link": _link(line.payment_link),
        "fee_warning": _fee_warning(line.fee_warning, line.number, loc),
    }


def _split_due(lines: Sequence[InvoiceLine]) -> tuple[list[InvoiceLine], list[InvoiceLine]]:
    """(what the reminder is about, what is only coming up): due and overdue lines apart from the
    not-yet-due ones, unless nothing is due yet (a courtesy reminder is about all of them)."""
    due = [line for line in lines if line.days_overdue >= 0]
    if not due:
        return list(lines), []
    return due, [line for line in lines if line.days_overdue < 0]


def _totals(lines: Sequence[InvoiceLine], loc: Locale) -> list[Amount]:
    sums: dict[str, Money] = {}
    for line in lines:
        sums[line.balance.currency] = sums.get(line.balance.currency, Money.zero(line.balance.currency)) + line.balance
    return [Amount(money, loc) for money in sums.values()]


def _history_variables(history: ReminderHistory, loc: Locale) -> dict[str, Any]:
    count = max(history.count, 0)
    if not count or history.first_on is None:
        return {"count": count, "first_on": None, "last_on": None}
    return {
        "count": count,
        "first_on": LocalDate(history.first_on, loc),
        "last_on": LocalDate(history.last_on or history.first_on, loc),
    }


def _discount_variables(
    discount: DiscountOffer | None, lines: Sequence[Mapping[str, Any]], loc: Locale
) -> dict[str, Any] | None:
    if discount is None:
        return None
    offered = next((line for line in lines if line["number"] == discount.invoice_number), lines[0])
    return {
        "percent": _percent(discount.percent, loc),
        "amount": Amount(discount.amount, loc),
        "pay_amount": Amount(discount.pay_amount, loc),
        "pay_by": LocalDate(discount.pay_by, loc),
        "invoice": offered,
    }


def _installment_variables(plan: Installment | None, loc: Locale) -> dict[str, Any] | None:
    if plan is None:
        return None
    return {
        "number": plan.number,
        "count": plan.count,
        "amount": Amount(plan.amount, loc),
        "due_date": LocalDate(plan.due_date, loc),
        "remaining": None if plan.remaining is None else Amount(plan.remaining, loc),
        "payment_link": _link(plan.payment_link),
    }


def _variables(context: ReminderContext, loc: Locale) -> dict[str, Any]:
    lines = [_as_line(item) for item in context.invoices]
    due, upcoming = _split_due(lines)
    invoices = [_line_variables(line, loc) for line in due]
    coming_up = [_line_variables(line, loc) for line in upcoming]
    totals = _totals(due, loc)
    links = {line["payment_link"] for line in invoices if line["payment_link"]}
    return {
        "customer_name": context.customer_name,
        "business_name": context.business_name,
        "contact_name": context.contact_name,
        "business_email": context.business_email,
        "business_phone": context.business_phone,
        "today": LocalDate(context.today, loc),
        "invoices": invoices,
        "invoice": invoices[0] if invoices else None,
        "coming_up": coming_up,
        "totals": totals,
        "total": totals[0] if len(totals) == 1 else " + ".join(totals),
        "max_days_overdue": max((line.days_overdue for line in due), default=0),
        "payment_link": _link(context.payment_link) or (next(iter(links)) if len(links) == 1 else None),
        "discount": _discount_variables(context.discount, [*invoices, *coming_up], loc),
        "installment": _installment_variables(context.installment, loc),
        "late_fee": None if context.late_fee is None else Amount(context.late_fee, loc),
        "fee_warnings": _merged_fee_warnings(
            [line["fee_warning"] for line in (*invoices, *coming_up) if line["fee_warning"]]
        ),
        "history": _history_variables(_as_history(context.history), loc),
        "has_attachment": context.has_attachment,
        "extra": dict(context.extra),
        "customer_page": _link(context.customer_page),
        "broken_promise": _broken_promise_variables(context.broken_promise, loc),
        "locale": str(loc),
    }


def _broken_promise_variables(promise: BrokenPromise | None, loc: Locale) -> dict[str, Any] | None:
    if promise is None:
        return None
    amount = Amount(promise.amount, loc) if promise.amount is not None else None
    return {"promised_by": LocalDate(promise.promised_by, loc), "amount": amount}


def _percent(value: Decimal | int | str, loc: Locale) -> str:
    return str(format_percent(Decimal(str(value)) / 100, locale=loc, decimal_quantization=False))


# -- the per-render budget ---------------------------------------------------------------------------------
@dataclass
class _Budget:
    """What one render may still spend: steps (loop iterations and calls), characters, time."""

    deadline: float
    steps: int = 0
    chars: int = 0


_BUDGET: ContextVar[_Budget | None] = ContextVar("nudge_template_budget", default=None)


def _charge(steps: int = 1, chars: int = 0) -> None:
    """Spend from the current render's budget; SecurityError once any limit is passed."""
    budget = _BUDGET.get()
    if budget is None:
        return
    budget.steps += steps
    budget.chars += chars
    if budget.steps > MAX_STEPS:
        raise SecurityError(f"it runs more than {MAX_STEPS} loop iterations and calls")
    if budget.chars > MAX_RENDER_CHARS:
        raise SecurityError(f"it produces more than {MAX_RENDER_CHARS} characters")
    if time.monotonic() > budget.deadline:
        raise SecurityError(f"it takes longer than {MAX_RENDER_SECONDS:g} seconds to render")


class _Counted:
    """A loop's iterable: each item drawn charges one step and the loop body's literal text."""

    def __init__(self, iterable: Any, weight: int) -> None:
        self._iterable = iterable
        self._weight = weight

    def __iter__(self) -> Iterator[Any]:
        for item in self._iterable:
            _charge(1, self._weight)
            yield item

    def __len__(self) -> int:
        return len(self._iterable)


def counted(iterable: Any, weight: int) -> _Counted:
    """Wraps every template loop's iterable (inserted by the sandbox's parser, not called by templates)."""
    return _Counted(iterable, weight)


def bounded(value: Any) -> Any:
    """`value` unchanged, or SecurityError when it is a string or sequence above `MAX_VALUE_CHARS`."""
    if isinstance(value, str | list | tuple | dict) and len(value) > MAX_VALUE_CHARS:
        raise SecurityError(f"a value longer than {MAX_VALUE_CHARS} characters was built")
    return value


def _literal_chars(body: Sequence[nodes.Node]) -> int:
    return sum(len(data.data) for node in body for data in node.find_all(nodes.TemplateData))


def _bound_tree(tree: nodes.Template) -> nodes.Template:
    """Every loop counts its iterations (and the text each repeats); every `~` operand is bounded."""
    for loop in tree.find_all(nodes.For):
        weight = _literal_chars(loop.body) + 1
        loop.iter = nodes.Call(
            nodes.ImportedName(f"{__name__}.counted"), [loop.iter, nodes.Const(weight)], [], None, None
        )
    for concat in tree.find_all(nodes.Concat):
        concat.nodes = [
            nodes.Call(nodes.ImportedName(f"{__name__}.bounded"), [part], [], None, None) for part in concat.nodes
        ]
    return tree


def _check_arguments(values: Sequence[Any]) -> None:
    for value in values:
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > _MAX_ARGUMENT:
            raise SecurityError(f"the number {value} is too large for a template")


def _format_string(obj: Any) -> str | None:
    """The string of a `str.format`/`format_map` method (unwrapping the sandbox's wrapper), else None."""
    target = getattr(obj, "__wrapped__", obj)
    owner = getattr(target, "__self__", None)
    return owner if getattr(target, "__name__", "") in ("format", "format_map") and isinstance(owner, str) else None


# -- the sandbox ---------------------------------------------------------------------------------------
class _Sandbox(ImmutableSandboxedEnvironment):
    """The sandbox, plus a per-render budget and limits on everything that can build a large value."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        return _bound_tree(super()._parse(source, name, filename))

    def call(__self, __context: jinja2.runtime.Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        """Every call a template makes (macros, methods, loop recursion) is charged and its numbers checked."""
        _charge()
        _check_arguments([*args, *kwargs.values()])
        if _BIG_FORMAT_WIDTH.search(_format_string(__obj) or ""):
            raise SecurityError("format widths that large are not allowed in a template")
        return bounded(super().call(__context, __obj, *args, **kwargs))

    def call_binop(self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any) -> Any:
        """`**`, `*`, `+` and `%` refuse to build values above the limits; the rest is the sandbox's."""
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
        if operator == "+" and isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple):
            bounded("" if len(left) + len(right) <= MAX_VALUE_CHARS else "x" * (MAX_VALUE_CHARS + 1))
        if operator == "%" and isinstance(left, str) and _BIG_FORMAT_WIDTH.search(left):
            raise SecurityError("format widths that large are not allowed in a template")
        return bounded(super().call_binop(context, operator, left, right))


def _guarded_filter(function: Callable[..., Any]) -> Callable[..., Any]:
    """A built-in filter whose numbers are checked and whose result is bounded (`replace`/`join` up front)."""

    @functools.wraps(function)
    def run(*args: Any, **kwargs: Any) -> Any:
        _charge()
        _check_arguments([*args, *kwargs.values()])
        strings = [value for value in args if isinstance(value, str)]
        if function.__name__ == "do_replace" and len(strings) >= 3:
            text, old, new = strings[:3]
            hits = len(text) + 1 if not old else text.count(old)
            bounded("" if len(text) + hits * len(new) <= MAX_VALUE_CHARS else "x" * (MAX_VALUE_CHARS + 1))
        return bounded(function(*args, **kwargs))

    return run


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
    """Raw Money and dates (e.g. from `extra`) print formatted; none prints as nothing; all output is counted."""
    if value is None:
        return ""
    if isinstance(value, Money):
        value = format_money(value, _locale_of(context))
    elif isinstance(value, date) and not isinstance(value, str):
        value = format_day(value, _locale_of(context))
    _charge(0, len(value) if isinstance(value, str) else 16)
    return value


def _environment(overrides: Mapping[str, str]) -> _Sandbox:
    """The sandbox for one set of overrides, built once: Jinja compiles each template once per environment,
    so building one per email would recompile every template for every reminder."""
    return _cached_environment(tuple(sorted(overrides.items())))


@functools.lru_cache(maxsize=64)
def _cached_environment(overrides: tuple[tuple[str, str], ...]) -> _Sandbox:
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
    env.filters = {
        name: _guarded_filter(function) for name, function in env.filters.items() if name not in _FORBIDDEN_FILTERS
    }
    env.filters.update(money=_money_filter, date=_date_filter, number=_number_filter, percent=_percent_filter)
    return env


# -- rendering -----------------------------------------------------------------------------------------
_T = TypeVar("_T")


def _guard(template: str, run: Callable[[], _T]) -> _T:
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
            f"template {template!r} tried something templates may not do: {exc}",
            template=template,
            line=_template_line(exc),
        ) from None
    except jinja2.UndefinedError as exc:
        raise TemplateError(
            f"template {template!r} uses a value that does not exist: {exc}",
            template=template,
            line=_template_line(exc),
        ) from None
    except Exception as exc:  # anything a user's template can raise (TypeError, ZeroDivisionError, ...)
        raise TemplateError(
            f"template {template!r} could not be rendered: {type(exc).__name__}: {exc}",
            template=template,
            line=_template_line(exc),
        ) from None
    if isinstance(output, str) and len(output) > MAX_OUTPUT_CHARS:
        raise TemplateError(
            f"template {template!r} produced more than {MAX_OUTPUT_CHARS} characters", template=template
        )
    return output


def _template_line(exc: BaseException) -> int | None:
    """The template line `exc` was raised on: Jinja rewrites tracebacks so each template frame carries its
    template's line; an organization's own parts (no file) are preferred over the shipped partials."""
    own: int | None = None
    shipped: int | None = None
    frame = exc.__traceback__
    while frame is not None:
        filename = frame.tb_frame.f_code.co_filename
        if filename == "<template>":
            own = frame.tb_lineno
        elif filename.endswith((".txt", ".html")):
            shipped = frame.tb_lineno
        frame = frame.tb_next
    return own if own is not None else shipped


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
    for name, source in overrides.items():
        validate_template(source, name=name)
    env = _environment(overrides)
    variables = _variables(ctx, parse_locale(locale))
    names = {part: f"{template_name}/{part}" for part in PARTS}

    def render(part: str) -> str:
        name = names[part]
        return _guard(name, lambda: _stream(env.get_template(name), variables, name))

    token = _BUDGET.set(_Budget(deadline=time.monotonic() + MAX_RENDER_SECONDS))
    try:
        rendered = _render_parts(env, template_name, names, overrides, render)
        return _with_fee_warnings(rendered, env, names, variables)
    finally:
        _BUDGET.reset(token)


def _stream(template: jinja2.Template, variables: Mapping[str, Any], name: str) -> str:
    """Render `template` chunk by chunk, stopping as soon as the output passes `MAX_OUTPUT_CHARS`."""
    chunks: list[str] = []
    size = 0
    for chunk in template.generate(variables):
        size += len(chunk)
        if size > MAX_OUTPUT_CHARS:
            raise TemplateError(f"template {name!r} produced more than {MAX_OUTPUT_CHARS} characters", template=name)
        chunks.append(chunk)
    return "".join(chunks)


def _render_parts(
    env: jinja2.Environment,
    template_name: str,
    names: Mapping[str, str],
    overrides: Mapping[str, str],
    render: Callable[[str], str],
) -> RenderedReminder:
    """The subject, the plain-text body and (when it applies) the HTML body of one reminder."""
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


_FEE_WARNING_NAMES = frozenset({"fee_warning", "fee_warnings"})
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)


def _with_fee_warnings(
    rendered: RenderedReminder, env: jinja2.Environment, names: Mapping[str, str], variables: Mapping[str, Any]
) -> RenderedReminder:
    """`rendered`, with the built-in fee-warning paragraph appended to each body that does not state them.

    A reminder carrying a fee warning counts as "the customer was warned" for the fee rule, so the
    statement must be in the email whatever the template: a body states the warnings when its template
    (or a template it includes or extends) uses `fee_warning`/`fee_warnings` and its output shows each
    warning's amount or rate and its date as formatted here. Otherwise the shipped `_fee_warning.txt` /
    `.html` (never an override of them) is appended (the HTML one before `</body>`).
    """
    warnings: Sequence[Mapping[str, Any]] = variables["fee_warnings"]
    if not warnings:
        return rendered
    text, html = rendered.text, rendered.html
    if not _states_fee_warnings(env, names["body.txt"], text, warnings, html=False):
        text = f"{text}\n{_shipped_partial('_fee_warning.txt', variables).strip()}\n"
    if html is not None and not _states_fee_warnings(env, names["body.html"], html, warnings, html=True):
        paragraph = _shipped_partial("_fee_warning.html", variables).strip()
        ends = list(_BODY_END.finditer(html))
        cut = ends[-1].start() if ends else len(html.rstrip())
        html = f"{html[:cut].rstrip()}\n{paragraph}\n{html[cut:].lstrip()}".rstrip() + "\n"
    return rendered._replace(text=text, html=html)


def _states_fee_warnings(
    env: jinja2.Environment, name: str, output: str, warnings: Sequence[Mapping[str, Any]], *, html: bool
) -> bool:
    """Whether the body rendered from template `name` as `output` states every one of `warnings`."""
    for warning in warnings:
        facts = [warning["applies_from"], warning["amount"], warning["percent"], warning["annual_rate"]]
        for fact in facts:
            if fact is not None and (str(markupsafe.escape(fact)) if html else str(fact)) not in output:
                return False
    return _template_uses_fee_warnings(env, name)


@functools.lru_cache(maxsize=512)
def _template_uses_fee_warnings(env: jinja2.Environment, name: str) -> bool:
    """`_uses_fee_warnings` once per (environment, template): environments are cached, and so are their templates."""
    return _uses_fee_warnings(env, name, set())


def _uses_fee_warnings(env: jinja2.Environment, name: str, seen: set[str]) -> bool:
    """Whether template `name`, or one it includes, imports or extends, refers to the fee warnings."""
    if name in seen or not _exists(env, name):
        return False
    seen.add(name)
    assert env.loader is not None
    source = env.loader.get_source(env, name)[0]
    tree = _guard(name, lambda: env.parse(source, name=name))
    for node in tree.find_all((nodes.Name, nodes.Getattr, nodes.Getitem)):
        key = getattr(node, "name", None) or getattr(node, "attr", None)
        if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            key = node.arg.value
        if key in _FEE_WARNING_NAMES:
            return True
    return any(
        _uses_fee_warnings(env, child, seen) for child in meta.find_referenced_templates(tree) if child is not None
    )


def _shipped_partial(name: str, variables: Mapping[str, Any]) -> str:
    """The shipped partial `name` rendered for `variables` (an organization's override of it is ignored)."""
    shipped = _environment({})
    return _guard(name, lambda: _stream(shipped.get_template(name), variables, name))


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
    validate_template(source, name=name)


def _forbidden_construct(tree: nodes.Template) -> tuple[str, int] | None:
    """(what, line) of the first filter or underscore name the sandbox forbids, else None."""
    for used in tree.find_all(nodes.Filter):
        if used.name in _FORBIDDEN_FILTERS:
            return f"the filter {used.name!r} is not available to templates", used.lineno
    for access in tree.find_all((nodes.Getattr, nodes.Getitem)):
        key = getattr(access, "attr", None) or getattr(getattr(access, "arg", None), "value", None)
        if isinstance(key, str) and key.startswith("_"):
            return (
                f"it reaches for {key!r}, and names starting with an underscore are not available to templates",
                access.lineno,
            )
    return None


def validate_template(source: str, *, name: str) -> None:
    """What saving a template calls: TemplateError unless `source` is small enough, parses, and uses
    nothing the sandbox forbids (the `attr`/`format` filters, attributes or keys starting with `_`)."""
    if len(source) > MAX_TEMPLATE_CHARS:
        raise TemplateError(
            f"template {name!r} is {len(source):,} characters long; the limit is {MAX_TEMPLATE_CHARS:,}", template=name
        )
    env = _environment({})
    tree = _guard(name, lambda: env.parse(source, name=name))
    problem = _forbidden_construct(tree)
    if problem is not None:
        what, line = problem
        raise TemplateError(
            f"template {name!r} tried something templates may not do: {what} on line {line}", template=name, line=line
        )
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
    "validate_template",
]
