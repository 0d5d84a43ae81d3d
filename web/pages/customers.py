"""The Customer screen: one customer of a client, what it owes, what is in effect, its history, and the actions
people take on it and its invoices; and the client's customers as a searchable list.

    GET  /orgs/<org>/clients/<cid>/customers                                 list (search, pages)
    GET  /orgs/<org>/clients/<cid>/customers/<customer>                      index (the customer)
    POST .../customers/<customer>/pause | exclude | dispute | promise | recipients | cadence | language
    GET  .../customers/<customer>/invoices/<invoice>                         invoice (its terms)
    POST .../invoices/<invoice>/pause | exclude | dispute | agreed-date
    GET  .../invoices/<invoice>/plan                                         plan wizard, step 1
    GET  .../invoices/<invoice>/plan/installments                            step 2 (the proposal, editable)
    POST .../invoices/<invoice>/plan/installments                            step 2: check, add, remove, save
    POST .../invoices/<invoice>/plan/totals                                  the running total (htmx partial)
    POST .../invoices/<invoice>/plans/<plan>/cancel                          cancel a plan
    GET  .../customers/<customer>/statement.pdf                              the statement as PDF (download)
    POST .../customers/<customer>/statement                                  email the statement (through the outbox)

Every change goes through connector.library.overrides or connector.library.payment_plans (they check each field,
audit who/when/before/after and write the timeline activity), then says what it did in a flash message and
redirects (PRG). A refused value is shown next to its field with what the user typed kept: the form is re-rendered
with status 200 and "Nothing was saved" at the top (a 4xx document is an error in the browser's console). Viewers
see everything but no forms, and get 403 on every POST and on the wizard; a customer or invoice outside the
client, or a client outside the member's scope, is 404 (web.access checks the client first).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

from babel.dates import format_time
from flask import Blueprint, Response, abort, current_app, flash, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import MultiDict

from connector.domain.model import Role
from connector.errors import ChangeRefused, InUse, InvalidInput, NotPermitted, UnknownRecord
from connector.library import overrides, payment_plans
from connector.library.items import list_items
from connector.library.resolve import CADENCE, library_for
from connector.library.settings import InstallDefaults
from connector.receivables.customers import (
    ChangeLine,
    CustomerDetail,
    InvoiceLine,
    customer_detail,
    customer_list,
    plan_totals,
)
from connector.receivables.statements import load_statement, request_statement_email, statement_filename, statement_pdf
from web.access import require_role
from web.api.context import actor
from web.extensions import services
from web.pages.ui import PAGE_SIZE, UI_LOCALE, day, money

bp = Blueprint("customers_page", __name__)

CLIENT = "/orgs/<int:org_id>/clients/<int:connection_id>"
CUSTOMER = f"{CLIENT}/customers/<int:customer_id>"
INVOICE = f"{CUSTOMER}/invoices/<int:invoice_id>"
WRITERS = (Role.OWNER, Role.ACCOUNTANT)
REFUSED = 200  # a refused form comes back as a page to correct, not as an error document
FORM_TEXT_MAX = 4000  # longer form values are refused before any service sees them
DEFAULT_INSTALLMENTS = 3
EVERY_WORDS = {"week": "Every week", "fortnight": "Every two weeks", "month": "Every month"}
COMMON_LOCALES = ("en_US", "en_GB", "en_CA", "en_AU", "en_IE", "fr_FR", "fr_CA", "de_DE", "es_ES", "it_IT", "nl_NL")
# What a refused field is called next to its input (the services name fields as the API does).
LABELS = {
    "paused_until": "The date",
    "dispute_reason": "The reason",
    "promise_to_pay_until": "The date",
    "promise_amount": "The amount",
    "promise_currency": "The currency",
    "promise_grace_days": "Grace days",
    "recipients_to": "To",
    "recipients_cc": "Copy",
    "cadence_id": "The cadence",
    "locale": "The language",
    "time_zone": "The time zone",
    "agreed_due_date": "The date",
    "count": "The number of installments",
    "first": "The first date",
    "every": "How often",
    "policy": "The plan policy",
}
# The form each field belongs to (a refusal shows next to its field, whichever form was posted).
FIELD_FORMS = {
    "paused_until": "pause",
    "dispute_reason": "dispute",
    "promise_to_pay_until": "promise",
    "promise_amount": "promise",
    "promise_currency": "promise",
    "promise_grace_days": "promise",
    "recipients_to": "recipients",
    "recipients_cc": "recipients",
    "cadence_id": "cadence",
    "locale": "language",
    "time_zone": "language",
    "agreed_due_date": "agreed",
}
_INDEXED = re.compile(r"^(?P<name>[a-z_]+)\[(?P<index>\d+)\](?:\.(?P<part>[a-z_]+))?$")
_WHOLE = re.compile(r"^\s*\d{1,12}\s*$")


# -- helpers --------------------------------------------------------------------------------------------------
def can_change() -> bool:
    """True when the signed-in member may change things (owners and accountants; viewers only read)."""
    return g.get("role") in WRITERS


def _visible_ids() -> set[int] | None:
    ids = g.member_scope.visible_connection_ids()
    return None if ids is None else set(ids)


def _defaults() -> InstallDefaults:
    return InstallDefaults.of(services().settings)


def _detail(org_id: int, connection_id: int, customer_id: int) -> CustomerDetail:
    found = services()
    try:
        return customer_detail(
            found.store,
            org_id,
            connection_id,
            customer_id,
            found.clock.now(),
            connection_ids=_visible_ids(),
            defaults=_defaults(),
        )
    except UnknownRecord:
        abort(404)


def _form(name: str) -> str:
    """A form field as text (missing: ""), refused when absurdly long (a service would refuse it anyway)."""
    value = request.form.get(name, "")
    if len(value) > FORM_TEXT_MAX:
        raise InvalidInput(f"{name} is too long", name)
    return value.strip()


def _whole(name: str, *, blank: int | None = None) -> int | None:
    """A whole number typed into `name` ("" gives `blank`); InvalidInput naming the field for anything else."""
    text = _form(name)
    if not text:
        return blank
    if not _WHOLE.match(text):
        raise InvalidInput(f"{name} must be a whole number, such as 3 ({text[:40]!r} given)", name)
    return int(text)


def _addresses(name: str) -> list[str] | None:
    """Comma- (or semicolon- or line-) separated addresses; None when left empty (the ledger's addresses)."""
    text = _form(name)
    if not text:
        return None
    return [part.strip() for part in re.split(r"[,;\n]+", text) if part.strip()]


def _field_of(field: str) -> str:
    """The form field a service's dotted field path belongs to ("recipients_to[2]" → "recipients_to")."""
    match = _INDEXED.match(field or "")
    if match is None:
        return field or "_form"
    if match.group("name") == "installments" and match.group("part"):
        return f"{match.group('part')}_{match.group('index')}"
    return match.group("name")


def _words(error: ChangeRefused) -> str:
    """The service's sentence with the field's internal name replaced by the words the form uses."""
    message, field = error.user_message, error.field or ""
    match = _INDEXED.match(field)
    if match and match.group("name") == "installments":
        number = int(match.group("index")) + 1
        label = f"Installment {number}" + (f" ({match.group('part').replace('_', ' ')})" if match.group("part") else "")
    else:
        label = LABELS.get(_field_of(field), "")
        if match and label:
            label = f"{label} (address {int(match.group('index')) + 1})"
    if field and label:
        if message.startswith(f"{field}: "):
            rest = message[len(field) + 2 :]
            return f"{label}: {rest}"
        message = message.replace(field, label, 1)
    return message[:1].upper() + message[1:]


def _refused(error: ChangeRefused, form: str = "", subject: str = "") -> dict[str, str]:
    """The refusal as {field: sentence}. A dispute recorded without a reason (before reasons were asked for)
    refuses every other change until it has one: say so next to the dispute's reason."""
    field = _field_of(error.field)
    if field == "dispute_reason" and form and form != "dispute":
        return {field: f"{subject} is marked as disputed without a reason: give the reason here (or resolve the "
                       "dispute), then try again."}  # fmt: skip
    return {field: _words(error)}


def local_time(value: datetime | None, zone: str) -> str:
    """An instant as the client's wall clock reads it ("Nov 30, 2026, 4:30 AM"); "" for none."""
    if value is None:
        return ""
    local = value.astimezone(ZoneInfo(zone))
    return f"{day(local.date())}, {format_time(local, 'short', locale=UI_LOCALE)}"


def invoice_url(org_id: int, connection_id: int, invoice_id: int) -> str:
    """The invoice detail page (the invoices screen's), built as a string when that screen is not registered."""
    if "invoices_page.detail" in current_app.view_functions:
        return url_for("invoices_page.detail", org_id=org_id, connection_id=connection_id, invoice_id=invoice_id)
    return f"/orgs/{org_id}/clients/{connection_id}/invoices/{invoice_id}"


def _endpoint(name: str, **values: Any) -> str | None:
    return url_for(name, **values) if name in current_app.view_functions else None


def _back(detail: CustomerDetail) -> ResponseReturnValue:
    """Back to the customer page (at its top, where the flash message shows)."""
    return redirect(
        url_for(".index", org_id=g.organization.id, connection_id=detail.connection_id, customer_id=detail.customer.id)
    )


PAYMENT_WORDS = {
    "payment": "Payment",
    "credit": "Credit note",
    "overpayment": "Overpayment",
    "prepayment": "Prepayment",
}
TASK_WORDS = {"call": "Call", "handoff": "Hand-over"}
STATE_WORDS = {"open": "Open", "done": "Done", "cancelled": "Cancelled"}


def _day_of(value: Any) -> str:
    if isinstance(value, date):
        return day(value)
    if isinstance(value, str) and value:
        return _day_text(value[:10])
    return ""


def _recipients_words(who: str) -> Callable[[Any], str]:
    return lambda value: f"{who} {', '.join(map(str, value)) or 'nobody'}"


# Each override as it reads once changed: (words when cleared, words for a value; "" says nothing).
_FIELD_WORDS: dict[str, tuple[str, Callable[[Any], str]]] = {
    "paused_until": ("pause ended", lambda v: f"paused until {_day_of(v)}"),
    "excluded": ("included again", lambda v: "excluded"),
    "dispute": ("dispute resolved", lambda v: "disputed"),
    "dispute_reason": ("", lambda v: f"because “{v}”"),
    "promise_to_pay_until": ("promise cleared", lambda v: f"promised to pay by {_day_of(v)}"),
    "promise_amount": ("", lambda v: f"promised amount {v}"),
    "promise_grace_days": ("", lambda v: f"{v} days of grace"),
    "cadence_id": ("the client's cadence again", lambda v: "a cadence of its own"),
    "recipients_to": ("to the ledger's addresses", _recipients_words("to")),
    "recipients_cc": ("copy to the ledger's addresses", _recipients_words("copy to")),
    "locale": ("the client's language", lambda v: f"language {v}"),
    "time_zone": ("the client's time zone", lambda v: f"time zone {v}"),
    "holiday_calendar": ("the client's holidays", lambda v: f"holidays of {v}"),
    "agreed_due_date": ("back to the ledger's due date", lambda v: f"due on {_day_of(v)} as agreed"),
}


def _field_words(name: str, value: Any) -> str:
    """One changed override in words, as it is now ("paused until Dec 15, 2026", "dispute resolved")."""
    cleared, written = _FIELD_WORDS.get(name, ("", lambda v: ""))
    if name in ("recipients_to", "recipients_cc"):
        return cleared if value is None else written(value or [])
    if name == "promise_grace_days":
        return written(value) if value is not None else ""
    return cleared if value in (None, "", [], False) else written(value)


def change_words(line: ChangeLine) -> str:
    """A decision from the history in one sentence ("Invoice HV-1001: paused until Dec 15, 2026")."""
    if line.kind.startswith("customer_page."):  # the sentence the customer page recorded (issue 17)
        return line.subject
    if line.kind.startswith("payment_plan."):
        after = line.after
        if line.kind == "payment_plan.created":
            count = len(after.get("installments") or [])
            total = money(after.get("total"), str(after.get("currency") or "")) if after.get("currency") else ""
            return f"Payment plan agreed for invoice {line.subject}: {count} installments, {total}".rstrip(", ")
        if line.kind == "payment_plan.cancelled":
            reason = f" ({after['reason']})" if after.get("reason") else ""
            return f"Payment plan for invoice {line.subject} cancelled{reason}"
        return f"Payment plan for invoice {line.subject}: {line.kind.split('.', 1)[1].replace('_', ' ')}"
    parts = [_field_words(name, line.after.get(name)) for name in line.changed if name != "legacy_cadence"]
    said = "; ".join(part for part in parts if part) or "terms changed"
    if line.kind.startswith("invoice."):
        if line.kind == "invoice.override_cleared":
            return f"Invoice {line.subject}: back to the ledger's terms"
        return f"Invoice {line.subject}: {said}"
    return said[:1].upper() + said[1:]


TEMPLATE_WORDS = {
    "gentle_nudge": "Gentle nudge",
    "due_today": "Due-today reminder",
    "firm": "Firm reminder",
    "final_notice": "Final notice",
    "installment": "Installment reminder",
    "discount_offer": "Early-payment offer",
}


def template_words(name: str) -> str:
    """A reminder template's name as people say it ("final_notice" → "Final notice")."""
    if name in TEMPLATE_WORDS:
        return TEMPLATE_WORDS[name]
    text = name.replace("_", " ").replace("-", " ").strip()
    return text[:1].upper() + text[1:] if text else "Reminder"


def _cadences(org_id: int) -> list[tuple[int, str]]:
    with services().store.unit_of_work() as uow:
        return [(item.id, item.name) for item in list_items(uow, org_id, CADENCE)]


def plan_policies(org_id: int) -> list[tuple[str, int]]:
    with services().store.unit_of_work() as uow:
        rules = library_for(uow, org_id, _defaults().rules).rules.payment_plans
    return [(name, policy.grace_days) for name, policy in sorted(rules.items())]


def _common(detail: CustomerDetail) -> dict[str, Any]:
    org_id = g.organization.id
    return {
        "detail": detail,
        "customer": detail.customer,
        "org_id": org_id,
        "can_change": can_change(),
        "local_time": lambda value: local_time(value, detail.zone),
        "change_words": change_words,
        "template_words": template_words,
        "payment_words": PAYMENT_WORDS,
        "field_forms": FIELD_FORMS,
        "task_words": TASK_WORDS,
        "state_words": STATE_WORDS,
        "invoice_url": lambda invoice_id: invoice_url(org_id, detail.connection_id, invoice_id),
        "overview_url": _endpoint("overview_page.index", org_id=org_id),
        "client_url": _endpoint("clients_page.index", org_id=org_id, connection_id=detail.connection_id),
        "list_url": url_for(".list", org_id=org_id, connection_id=detail.connection_id),
        "customer_url": url_for(
            ".index", org_id=org_id, connection_id=detail.connection_id, customer_id=detail.customer.id
        ),
    }


def _page(
    detail: CustomerDetail,
    *,
    form: str = "",
    errors: Mapping[str, str] | None = None,
    status: int = 200,
) -> ResponseReturnValue:
    """The customer page; after a refused change, `form` names the form whose `errors` show (what was typed kept)."""
    org_id = g.organization.id
    context = _common(detail)
    context.update(
        form=form,
        errors=dict(errors or {}),
        typed=request.form if form else MultiDict(),
        cadences=_cadences(org_id) if context["can_change"] else [],
        zones=sorted(available_timezones()) if context["can_change"] else [],
        locales=COMMON_LOCALES,
        statement_request=secrets.token_hex(16),  # the email form's own id: sent twice, it plans one email
    )
    return render_template("customers/customer.html", **context), status


# -- the list -------------------------------------------------------------------------------------------------
@bp.get(f"{CLIENT}/customers", endpoint="list")
def customers(org_id: int, connection_id: int) -> ResponseReturnValue:
    """The client's customers by name, each with open and overdue balances per currency; search and pages."""
    search = request.args.get("q", "")[:200]
    cursor = request.args.get("after") or None
    found = services()
    try:
        page = customer_list(
            found.store,
            org_id,
            connection_id,
            found.clock.now(),
            connection_ids=_visible_ids(),
            search=search,
            cursor=cursor,
            limit=PAGE_SIZE,
        )
        error = ""
    except UnknownRecord:
        abort(404)
    except InvalidInput as exc:  # a cursor from elsewhere, a search with control characters
        page = customer_list(
            found.store, org_id, connection_id, found.clock.now(), connection_ids=_visible_ids(), limit=PAGE_SIZE
        )
        error, search, cursor = _words(exc), "", None
    args: dict[str, Any] = {"org_id": org_id, "connection_id": connection_id}
    if search:
        args["q"] = search
    return render_template(
        "customers/list.html",
        page=page,
        search=search,
        error=error,
        org_id=org_id,
        first_url=url_for(".list", **args) if cursor else "",
        next_url=url_for(".list", after=page.next_cursor, **args) if page.next_cursor else "",
        overview_url=_endpoint("overview_page.index", org_id=org_id),
        client_url=_endpoint("clients_page.index", org_id=org_id, connection_id=connection_id),
    )


# -- the customer ---------------------------------------------------------------------------------------------
@bp.get(CUSTOMER)
def index(org_id: int, connection_id: int, customer_id: int) -> ResponseReturnValue:
    """The customer: header, what is in effect, open invoices, plans, the actions (writers) and the history."""
    return _page(_detail(org_id, connection_id, customer_id))


def _change_customer(
    detail: CustomerDetail, form: str, read: Callable[[], dict[str, Any]], said: Callable[[Any], str]
) -> ResponseReturnValue:
    """Read the form's changes, hand them to the overrides service, flash what it did and go back (PRG)."""
    found = services()
    try:
        changes = read()
        view = overrides.update_customer_overrides(
            found.store,
            g.organization.id,
            detail.connection_id,
            detail.customer.id,
            changes,
            actor(),
            found.clock.now(),
        )
    except UnknownRecord:
        abort(404)
    except NotPermitted:
        abort(403)
    except ChangeRefused as exc:
        return _page(detail, form=form, errors=_refused(exc, form, _name(detail.customer)), status=REFUSED)
    flash(said(view), "success")
    return _back(detail)


def _name(view: Any) -> str:
    return str(view.name or view.external_id)


@bp.post(f"{CUSTOMER}/pause")
@require_role(*WRITERS)
def pause(org_id: int, connection_id: int, customer_id: int) -> ResponseReturnValue:
    """Pause reminders to the customer until a date, or resume them (`resume`)."""
    detail = _detail(org_id, connection_id, customer_id)
    if request.form.get("resume"):
        return _change_customer(
            detail, "pause", lambda: {"paused_until": None}, lambda v: f"Reminders to {_name(v)} resumed."
        )

    def read() -> dict[str, Any]:
        until = _form("paused_until")
        if not until:
            raise InvalidInput("paused_until: choose the date reminders start again", "paused_until")
        return {"paused_until": until}

    return _change_customer(
        detail,
        "pause",
        read,
        lambda v: f"Reminders to {_name(v)} paused until {day(v.overrides['paused_until'])}.",
    )


@bp.post(f"{CUSTOMER}/exclude")
@require_role(*WRITERS)
def exclude(org_id: int, connection_id: int, customer_id: int) -> ResponseReturnValue:
    """Exclude the customer from chasing (`excluded=1`) or include it again (`excluded=0`)."""
    detail = _detail(org_id, connection_id, customer_id)
    excluded = request.form.get("excluded") == "1"
    return _change_customer(
        detail,
        "exclude",
        lambda: {"excluded": excluded},
        lambda v: (
            f"{_name(v)} is excluded: Nudge sends them nothing until you include them again."
            if excluded
            else f"{_name(v)} is included again: reminders follow the cadence."
        ),
    )


@bp.post(f"{CUSTOMER}/dispute")
@require_role(*WRITERS)
def dispute(org_id: int, connection_id: int, customer_id: int) -> ResponseReturnValue:
    """Mark the customer as disputing (with a reason), or resolve the dispute (`resolve`)."""
    detail = _detail(org_id, connection_id, customer_id)
    if request.form.get("resolve"):
        return _change_customer(
            detail,
            "dispute",
            lambda: {"dispute": False},
            lambda v: f"The dispute with {_name(v)} is resolved: reminders follow the cadence again.",
        )
    return _change_customer(
        detail,
        "dispute",
        lambda: {"dispute": True, "dispute_reason": _form("dispute_reason")},
        lambda v: f"{_name(v)} is marked as disputing: no reminders or fees until you resolve it.",
    )


@bp.post(f"{CUSTOMER}/promise")
@require_role(*WRITERS)
def promise(org_id: int, connection_id: int, customer_id: int) -> ResponseReturnValue:
    """Record a promise to pay (date, amount or the whole balance, currency, grace days), or clear it (`clear`)."""
    detail = _detail(org_id, connection_id, customer_id)
    if request.form.get("clear"):
        return _change_customer(
            detail,
            "promise",
            lambda: {"promise_to_pay_until": None},
            lambda v: f"The promise to pay from {_name(v)} is cleared: reminders follow the cadence again.",
        )

    def read() -> dict[str, Any]:
        until = _form("promise_to_pay_until")
        if not until:
            raise InvalidInput(
                "promise_to_pay_until: give the date the customer promised to pay by", "promise_to_pay_until"
            )
        return {
            "promise_to_pay_until": until,
            "promise_amount": _form("promise_amount") or None,
            "promise_currency": _form("promise_currency") or None,
            "promise_grace_days": _whole("promise_grace_days"),
        }

    def said(view: Any) -> str:
        values = view.overrides
        amount = (
            money(values["promise_amount"], values["promise_currency"])
            if values["promise_amount"] is not None
            else "the whole balance"
        )
        grace = values["promise_grace_days"]
        return (
            f"{_name(view)} promised to pay {amount} by {day(values['promise_to_pay_until'])}: "
            f"no reminders until then, and {grace} day{'s' if grace != 1 else ''} of grace after."
        )

    return _change_customer(detail, "promise", read, said)


@bp.post(f"{CUSTOMER}/recipients")
@require_role(*WRITERS)
def recipients(org_id: int, connection_id: int, customer_id: int) -> ResponseReturnValue:
    """Who reminders go to (to, cc: comma-separated); empty, or `ledger`, goes back to the ledger's addresses."""
    detail = _detail(org_id, connection_id, customer_id)
    if request.form.get("ledger"):

        def read() -> dict[str, Any]:
            return {"recipients_to": None, "recipients_cc": None}

    else:

        def read() -> dict[str, Any]:
            return {"recipients_to": _addresses("recipients_to"), "recipients_cc": _addresses("recipients_cc")}

    def said(view: Any) -> str:
        to = view.overrides["recipients_to"]
        cc = view.overrides["recipients_cc"]
        where = ", ".join(to) if to else "the ledger's addresses"
        copy = f" (copy to {', '.join(cc)})" if cc else ""
        return f"Reminders to {_name(view)} now go to {where}{copy}."

    return _change_customer(detail, "recipients", read, said)


@bp.post(f"{CUSTOMER}/cadence")
@require_role(*WRITERS)
def cadence(org_id: int, connection_id: int, customer_id: int) -> ResponseReturnValue:
    """Set the customer's own cadence (a library cadence's id), or "" for the client's."""
    detail = _detail(org_id, connection_id, customer_id)

    def said(view: Any) -> str:
        name = view.overrides.get("cadence_name")
        if name:
            return f"{_name(view)} now follows the cadence “{name}”."
        client = f" (“{detail.client_cadence_name}”)" if detail.client_cadence_name else ""
        return f"{_name(view)} follows the client's cadence{client} again."

    return _change_customer(detail, "cadence", lambda: {"cadence_id": _whole("cadence_id")}, said)


@bp.post(f"{CUSTOMER}/language")
@require_role(*WRITERS)
def language(org_id: int, connection_id: int, customer_id: int) -> ResponseReturnValue:
    """The customer's language (locale) and time zone for reminders ("": the client's)."""
    detail = _detail(org_id, connection_id, customer_id)

    def said(view: Any) -> str:
        locale = view.overrides["locale"] or "the client's"
        zone = view.overrides["time_zone"] or "the client's"
        return f"Reminders to {_name(view)} use language {locale} and time zone {zone}."

    return _change_customer(
        detail, "language", lambda: {"locale": _form("locale"), "time_zone": _form("time_zone")}, said
    )


# -- one invoice ----------------------------------------------------------------------------------------------
def _invoice(detail: CustomerDetail, invoice_id: int) -> InvoiceLine:
    """The customer's open invoice `invoice_id`; 404 for any other (another customer's, or not open)."""
    line = detail.invoice(invoice_id)
    if line is None:
        abort(404)
    return line


def _invoice_page(
    detail: CustomerDetail,
    invoice: InvoiceLine,
    *,
    form: str = "",
    errors: Mapping[str, str] | None = None,
    status: int = 200,
) -> ResponseReturnValue:
    context = _common(detail)
    context.update(invoice=invoice, form=form, errors=dict(errors or {}), typed=request.form if form else MultiDict())
    return render_template("customers/invoice.html", **context), status


@bp.get(INVOICE, endpoint="invoice")
def invoice_terms(org_id: int, connection_id: int, customer_id: int, invoice_id: int) -> ResponseReturnValue:
    """One open invoice of the customer: its terms (pause, exclusion, dispute, agreed date) and its plan."""
    detail = _detail(org_id, connection_id, customer_id)
    paid = next((line for line in detail.paid_invoices if line.id == invoice_id), None)
    if paid is not None:
        flash(f"Invoice {paid.number} is paid: there is nothing left to chase.", "info")
        return _back(detail)
    return _invoice_page(detail, _invoice(detail, invoice_id))


def _change_invoice(
    detail: CustomerDetail,
    invoice: InvoiceLine,
    form: str,
    read: Callable[[], dict[str, Any]],
    said: str | Callable[[overrides.InvoiceOverrideView], str],
) -> ResponseReturnValue:
    """Read the form's changes, hand them to the overrides service, flash what it did (`said`, or what `said`
    makes of the saved override) and go back to the invoice's terms (PRG)."""
    found = services()
    try:
        view = overrides.update_invoice_override(
            found.store,
            g.organization.id,
            detail.connection_id,
            invoice.id,
            read(),
            actor(),
            found.clock.now(),
        )
    except UnknownRecord:
        abort(404)
    except NotPermitted:
        abort(403)
    except ChangeRefused as exc:
        return _invoice_page(
            detail, invoice, form=form, errors=_refused(exc, form, f"Invoice {invoice.number}"), status=REFUSED
        )
    flash(said if isinstance(said, str) else said(view), "success")
    return redirect(
        url_for(
            ".invoice",
            org_id=g.organization.id,
            connection_id=detail.connection_id,
            customer_id=detail.customer.id,
            invoice_id=invoice.id,
        )
    )


@bp.post(f"{INVOICE}/pause", endpoint="invoice_pause")
@require_role(*WRITERS)
def invoice_pause(org_id: int, connection_id: int, customer_id: int, invoice_id: int) -> ResponseReturnValue:
    """Pause reminders for this invoice until a date, or resume them (`resume`)."""
    detail = _detail(org_id, connection_id, customer_id)
    invoice = _invoice(detail, invoice_id)
    if request.form.get("resume"):
        return _change_invoice(
            detail, invoice, "pause", lambda: {"paused_until": None}, f"Reminders for invoice {invoice.number} resumed."
        )

    def read() -> dict[str, Any]:
        until = _form("paused_until")
        if not until:
            raise InvalidInput("paused_until: choose the date reminders start again", "paused_until")
        return {"paused_until": until}

    return _change_invoice(
        detail,
        invoice,
        "pause",
        read,
        lambda v: f"Reminders for invoice {invoice.number} paused until {day(v.paused_until)}.",
    )


def _day_text(text: str) -> str:
    try:
        return day(date.fromisoformat(text))
    except ValueError:
        return text


@bp.post(f"{INVOICE}/exclude", endpoint="invoice_exclude")
@require_role(*WRITERS)
def invoice_exclude(org_id: int, connection_id: int, customer_id: int, invoice_id: int) -> ResponseReturnValue:
    """Exclude this invoice from chasing (`excluded=1`) or include it again."""
    detail = _detail(org_id, connection_id, customer_id)
    invoice = _invoice(detail, invoice_id)
    excluded = request.form.get("excluded") == "1"
    said = (
        f"Invoice {invoice.number} is excluded: Nudge will not chase it."
        if excluded
        else f"Invoice {invoice.number} is included again: reminders follow the cadence."
    )
    return _change_invoice(detail, invoice, "exclude", lambda: {"excluded": excluded}, said)


@bp.post(f"{INVOICE}/dispute", endpoint="invoice_dispute")
@require_role(*WRITERS)
def invoice_dispute(org_id: int, connection_id: int, customer_id: int, invoice_id: int) -> ResponseReturnValue:
    """Mark this invoice as disputed (with a reason), or resolve the dispute (`resolve`)."""
    detail = _detail(org_id, connection_id, customer_id)
    invoice = _invoice(detail, invoice_id)
    if request.form.get("resolve"):
        said = f"The dispute on invoice {invoice.number} is resolved: reminders follow the cadence again."
        return _change_invoice(detail, invoice, "dispute", lambda: {"dispute": False}, said)
    said = f"Invoice {invoice.number} is marked as disputed: no reminders or fees for it until you resolve it."
    return _change_invoice(
        detail, invoice, "dispute", lambda: {"dispute": True, "dispute_reason": _form("dispute_reason")}, said
    )


@bp.post(f"{INVOICE}/agreed-date", endpoint="invoice_agreed_date")
@require_role(*WRITERS)
def invoice_agreed_date(org_id: int, connection_id: int, customer_id: int, invoice_id: int) -> ResponseReturnValue:
    """Flexible terms: a new agreed due date the cadence counts from (the ledger's stays), or none (`clear`)."""
    detail = _detail(org_id, connection_id, customer_id)
    invoice = _invoice(detail, invoice_id)
    if request.form.get("clear"):
        cleared = f"Invoice {invoice.number} follows its due date in the ledger again."
        return _change_invoice(detail, invoice, "agreed", lambda: {"agreed_due_date": None}, cleared)

    def read() -> dict[str, Any]:
        agreed = _form("agreed_due_date")
        if not agreed:
            raise InvalidInput("agreed_due_date: choose the new date agreed with the customer", "agreed_due_date")
        return {"agreed_due_date": agreed}

    def agreed(view: overrides.InvoiceOverrideView) -> str:
        when = day(view.agreed_due_date)
        return f"Invoice {invoice.number} is now due on {when} as agreed: the cadence counts from that date."

    return _change_invoice(detail, invoice, "agreed", read, agreed)


# -- the payment plan wizard ----------------------------------------------------------------------------------
def _wizard_urls(detail: CustomerDetail, invoice: InvoiceLine) -> dict[str, str]:
    values = {
        "org_id": g.organization.id,
        "connection_id": detail.connection_id,
        "customer_id": detail.customer.id,
        "invoice_id": invoice.id,
    }
    return {
        "step1_url": url_for(".plan", **values),
        "step2_url": url_for(".plan_installments", **values),
        "save_url": url_for(".plan_save", **values),
        "totals_url": url_for(".plan_totals_partial", **values),
        "terms_url": url_for(".invoice", **values),
    }


def _step1(
    detail: CustomerDetail,
    invoice: InvoiceLine,
    args: Mapping[str, str],
    errors: Mapping[str, str] | None = None,
    status: int = 200,
) -> ResponseReturnValue:
    today = detail.today
    context = _common(detail)
    context.update(
        _wizard_urls(detail, invoice),
        invoice=invoice,
        policies=plan_policies(g.organization.id),
        every_words=EVERY_WORDS,
        errors=dict(errors or {}),
        chosen={
            "count": args.get("count", str(DEFAULT_INSTALLMENTS)),
            "every": args.get("every", "month"),
            "first": args.get("first", (today + timedelta(days=7)).isoformat()),
            "policy": args.get("policy", ""),
        },
    )
    return render_template("customers/plan_step1.html", **context), status


@bp.get(f"{INVOICE}/plan", endpoint="plan")
@require_role(*WRITERS)
def plan(org_id: int, connection_id: int, customer_id: int, invoice_id: int) -> ResponseReturnValue:
    """Step 1: how many installments, how often, from when, and which plan policy of the library."""
    detail = _detail(org_id, connection_id, customer_id)
    return _step1(detail, _invoice(detail, invoice_id), request.args)


def _step2(
    detail: CustomerDetail,
    invoice: InvoiceLine,
    policy: str,
    rows: list[tuple[str, str]],
    errors: Mapping[str, str] | None = None,
    status: int = 200,
) -> ResponseReturnValue:
    context = _common(detail)
    context.update(
        _wizard_urls(detail, invoice),
        invoice=invoice,
        policy=policy,
        rows=rows,
        totals=plan_totals(invoice.balance, [amount for _, amount in rows]),
        errors=dict(errors or {}),
        max_rows=payment_plans.MAX_INSTALLMENTS,
    )
    return render_template("customers/plan_step2.html", **context), status


@bp.get(f"{INVOICE}/plan/installments", endpoint="plan_installments")
@require_role(*WRITERS)
def plan_proposal(org_id: int, connection_id: int, customer_id: int, invoice_id: int) -> ResponseReturnValue:
    """Step 2 from step 1's choices: the proposed installments (equal, the remainder on the last), editable."""
    detail = _detail(org_id, connection_id, customer_id)
    invoice = _invoice(detail, invoice_id)
    policies = dict(plan_policies(org_id))
    policy = request.args.get("policy", "")
    found = services()
    try:
        if policy not in policies:
            listed = ", ".join(sorted(policies)) or "none: add a payment-plan policy to your library first"
            raise InvalidInput(f"policy: choose one of your library's payment-plan policies ({listed})", "policy")
        count = _whole_arg("count")
        with found.store.unit_of_work() as uow:
            proposal = payment_plans.propose_plan(
                uow,
                org_id,
                connection_id,
                invoice.id,
                count=count,
                first=request.args.get("first", "")[:40],
                every=request.args.get("every", "month")[:20],
                now=found.clock.now(),
            )
    except UnknownRecord:
        abort(404)
    except ChangeRefused as exc:
        return _step1(detail, invoice, request.args, _refused(exc), REFUSED)
    rows = [(item.due_date.isoformat(), item.amount) for item in proposal.installments]
    return _step2(detail, invoice, policy, rows)


def _whole_arg(name: str) -> int:
    text = request.args.get(name, "")
    if not _WHOLE.match(text):
        raise InvalidInput(f"{name} must be a whole number, such as 3 ({text[:40]!r} given)", name)
    return int(text)


def _typed_rows() -> list[tuple[str, str]]:
    dates = request.form.getlist("due_date")
    amounts = request.form.getlist("amount")
    if len(dates) > payment_plans.MAX_INSTALLMENTS + 1 or len(amounts) != len(dates):
        raise InvalidInput(
            f"installments: a plan has 1 to {payment_plans.MAX_INSTALLMENTS} installments, each a date and an amount",
            "installments",
        )
    return [(d.strip()[:40], a.strip()[:40]) for d, a in zip(dates, amounts, strict=True)]


@bp.post(f"{INVOICE}/plan/installments", endpoint="plan_save")
@require_role(*WRITERS)
def plan_edit(org_id: int, connection_id: int, customer_id: int, invoice_id: int) -> ResponseReturnValue:
    """Step 2 posted: `intent` save (create the plan), check (recount), add (a row) or remove-<n> (a row)."""
    detail = _detail(org_id, connection_id, customer_id)
    invoice = _invoice(detail, invoice_id)
    policy = request.form.get("policy", "")[:200].strip()  # the service refuses any name not in the library
    try:
        rows = _typed_rows()
    except InvalidInput as exc:
        return _step2(detail, invoice, policy, [], _refused(exc), REFUSED)
    intent = request.form.get("intent", "save")
    if intent == "add":
        totals = plan_totals(invoice.balance, [amount for _, amount in rows])
        left = totals.difference.amount if totals.difference.is_positive() else ""
        rows.append(("", str(left)))
        return _step2(detail, invoice, policy, rows[: payment_plans.MAX_INSTALLMENTS])
    if intent.startswith("remove-"):
        index = intent.removeprefix("remove-")
        if index.isdigit() and int(index) < len(rows) and len(rows) > 1:
            del rows[int(index)]
        return _step2(detail, invoice, policy, rows)
    if intent != "save":
        return _step2(detail, invoice, policy, rows)
    found = services()
    try:
        saved = payment_plans.create_plan(
            found.store,
            org_id,
            connection_id,
            invoice.id,
            installments=[{"due_date": d, "amount": a} for d, a in rows],
            policy=policy,
            actor=actor(),
            now=found.clock.now(),
            defaults=_defaults(),
        )
    except UnknownRecord:
        abort(404)
    except NotPermitted:
        abort(403)
    except InUse as exc:
        return _step2(detail, invoice, policy, rows, {"_form": _words(exc)}, REFUSED)
    except ChangeRefused as exc:
        return _step2(detail, invoice, policy, rows, _refused(exc), REFUSED)
    first = saved.installments[0]
    count = len(saved.installments)
    flash(
        f"Payment plan for invoice {invoice.number} saved: {count} installment{'s' if count != 1 else ''} "
        f"adding up to {money(saved.total, saved.currency)}, the first {money(first.amount, first.currency)} "
        f"on {day(first.due_date)}.",
        "success",
    )
    return _back(detail)


@bp.post(f"{INVOICE}/plan/totals", endpoint="plan_totals_partial")
@require_role(*WRITERS)
def plan_totals_partial(org_id: int, connection_id: int, customer_id: int, invoice_id: int) -> ResponseReturnValue:
    """The running total of the installments as typed, against the balance (htmx swaps it in as people type)."""
    detail = _detail(org_id, connection_id, customer_id)
    invoice = _invoice(detail, invoice_id)
    try:
        rows = _typed_rows()
    except InvalidInput:
        rows = []
    totals = plan_totals(invoice.balance, [amount for _, amount in rows])
    return render_template("customers/_plan_totals.html", totals=totals, invoice=invoice)


@bp.post(f"{INVOICE}/plans/<int:plan_id>/cancel", endpoint="plan_cancel")
@require_role(*WRITERS)
def plan_cancel(
    org_id: int, connection_id: int, customer_id: int, invoice_id: int, plan_id: int
) -> ResponseReturnValue:
    """Cancel the invoice's active or broken plan (the form asks first): the cadence chases the due date again."""
    detail = _detail(org_id, connection_id, customer_id)
    invoice = _invoice(detail, invoice_id)
    found = services()
    try:
        payment_plans.cancel_plan(found.store, org_id, connection_id, invoice.id, plan_id, actor(), found.clock.now())
    except UnknownRecord:
        abort(404)
    except ChangeRefused as exc:
        flash(_words(exc), "error")
        return _back(detail)
    flash(
        f"The payment plan for invoice {invoice.number} is cancelled: reminders follow its due date again.", "success"
    )
    return _back(detail)


# -- the statement --------------------------------------------------------------------------------------------
@bp.get(f"{CUSTOMER}/statement.pdf")
def statement_download(org_id: int, connection_id: int, customer_id: int) -> ResponseReturnValue:
    """The customer's statement as of the client's today, as a PDF download (every member who sees the customer).

    Pay links are the provider's and need a call per invoice: the downloaded copy leaves them out (the emailed
    statement, made by the worker that holds the ledger connection, carries them)."""
    found = services()
    try:
        source, statement = load_statement(
            found.store, org_id, connection_id, customer_id, found.clock.now(), connection_ids=_visible_ids()
        )
    except UnknownRecord:
        abort(404)
    pdf = statement_pdf(statement, source.locale)
    response = Response(pdf, mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'attachment; filename="{statement_filename(statement)}"'
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.post(f"{CUSTOMER}/statement")
@require_role(*WRITERS)
def statement_email(org_id: int, connection_id: int, customer_id: int) -> ResponseReturnValue:
    """Plan the statement email in the outbox (the form's request id makes a double submit one email)."""
    detail = _detail(org_id, connection_id, customer_id)
    found = services()
    try:
        planned = request_statement_email(
            found.store,
            org_id,
            connection_id,
            customer_id,
            request.form.get("request", "")[:64],
            actor(),
            found.clock.now(),
            connection_ids=_visible_ids(),
        )
    except UnknownRecord:
        abort(404)
    except InvalidInput as exc:
        flash(f"No statement was emailed: {exc.user_message}", "error")
        return _back(detail)
    who = _name(detail.customer)
    if planned:
        flash(
            f"The statement of {who} goes out with the next worker turn, inside the send window "
            "(one email to a customer a day); it shows under Reminders sent once it has.",
            "success",
        )
    else:
        flash(f"That statement of {who} was already asked for; it goes out once.", "info")
    return _back(detail)
