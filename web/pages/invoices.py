"""The invoices screen: one client's invoices (search, filters, pages), an invoice's whole story, and each email
exactly as it was sent.

Routes (client-scoped: web.access checks the organization, the client and a client-limited member's clients):
- `index`   GET /orgs/<org_id>/clients/<connection_id>/invoices — search (number, customer), filters (status,
  aging bucket, due range, payment plan, dispute) as a GET form, keyset pages both ways; an htmx request gets
  the results table alone (the form swaps it in place without reloading the page).
- `detail`  GET .../invoices/<invoice_id> — the header (amounts, due, status, what holds it, the plan) and the
  story newest first (connector.receivables.invoices.invoice_detail).
- `email`   GET .../invoices/<invoice_id>/emails/<email_id> — a kept email: its header fields, text part and
  HTML part; `email_html` serves the HTML part alone under `Content-Security-Policy: sandbox` (no script, no
  request anywhere, shown in a sandboxed iframe); `email_raw` downloads the .eml exactly as sent.
Another organization's or client's invoice or email is a 404, as is an email about another invoice.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from html.parser import HTMLParser
from typing import Any

from flask import Blueprint, Response, abort, current_app, g, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.routing import BuildError

from connector.errors import InvalidInput, UnknownRecord
from connector.receivables.handoffs import packs_of_invoice
from connector.receivables.invoices import (
    BUCKETS,
    CustomerView,
    InvoiceDetail,
    InvoiceFilter,
    InvoiceView,
    OverrideView,
    TimelineEntry,
    invoice_detail,
    invoice_page,
    sent_email,
)
from web.extensions import services
from web.pages.handoffs import pack_rows
from web.pages.ui import PAGE_SIZE, day

bp = Blueprint("invoices_page", __name__)

BASE = "/orgs/<int:org_id>/clients/<int:connection_id>/invoices"
STATUS_WORDS = {
    "open": "Open",
    "paid": "Paid",
    "voided": "Voided",
    "deleted": "Deleted in the ledger",
    "draft": "Draft",
}
AGING_WORDS = {
    "current": "Not yet due",
    "1-30": "1 to 30 days late",
    "31-60": "31 to 60 days late",
    "61-90": "61 to 90 days late",
    "90+": "More than 90 days late",
}
EMAIL_STATES = {"sent": ("Sent", "ok"), "uncertain": ("Delivery unknown", "danger"), "sending": ("Being sent", "warn")}
MAILERS = {"smtp": "the mail server (SMTP)", "maildir": "the local outbox folder"}
CHOICES = {"": "Any", "yes": "Yes", "no": "No"}
MAX_SEARCH = 200
# The HTML part of a kept email is customer-facing content Nudge rendered from data a ledger (and so anyone who
# can edit a customer's name there) controls: it runs in a sandbox with no script, no plugin, no form, no
# navigation of the page, and may load nothing but inline styles and data: images.
EMAIL_HTML_POLICY = (
    "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:; "
    "frame-ancestors 'self'; base-uri 'none'; form-action 'none'"
)

# No script may size the sandboxed frame to the email (the page's CSP), so its height is estimated here from the HTML:
# lines of text at the email's usual width, and the frame takes the first of these steps that holds them (their
# heights, taller on a phone where more lines wrap, are in web/static/pages/invoices.css). A longer email scrolls
# inside the largest frame, and the page links to the email alone in its own tab.
EMAIL_FRAME_STEPS = (16, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96, 120)
EMAIL_CHARS_PER_LINE = 64  # a 560 px email column with its padding, at 15 px type
EMAIL_CHROME_LINES = 7  # the margins around the email and its footer line
_EMAIL_SPACED = frozenset({"blockquote", "h1", "h2", "h3", "h4", "h5", "h6", "ol", "p", "pre", "table", "ul"})
_EMAIL_BLOCKS = _EMAIL_SPACED | frozenset(
    {"address", "article", "br", "dd", "div", "dl", "dt", "footer", "header", "hr", "li", "section", "tr"}
)
_EMAIL_UNSEEN = frozenset({"head", "script", "style", "template", "title"})


class _EmailLines(HTMLParser):
    """Counts the lines an email's HTML shows: each block's text wrapped at EMAIL_CHARS_PER_LINE, and the margin
    after a paragraph, heading, list or table."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines = 0.0
        self.unseen = 0
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _EMAIL_UNSEEN:
            self.unseen += 1
        elif tag == "br":
            if not self.end_block():
                self.lines += 1  # an empty line
        elif tag in _EMAIL_BLOCKS:
            self.end_block()
            if tag == "hr":
                self.lines += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in _EMAIL_UNSEEN:
            self.unseen = max(0, self.unseen - 1)
        elif tag in _EMAIL_BLOCKS and self.end_block() and tag in _EMAIL_SPACED:
            self.lines += 0.7

    def handle_data(self, data: str) -> None:
        if not self.unseen:
            self.text.append(data)

    def end_block(self) -> bool:
        """Count the text since the last block's edge; False when there was none."""
        words = " ".join("".join(self.text).split())
        self.text.clear()
        self.lines += math.ceil(len(words) / EMAIL_CHARS_PER_LINE)
        return bool(words)


def email_frame_lines(html: str) -> int:
    """The smallest of EMAIL_FRAME_STEPS that holds the email's estimated lines (the largest when none does)."""
    counter = _EmailLines()
    counter.feed(html)
    counter.close()
    counter.end_block()
    needed = counter.lines + EMAIL_CHROME_LINES
    return next((step for step in EMAIL_FRAME_STEPS if step >= needed), EMAIL_FRAME_STEPS[-1])


@dataclass
class Filters:
    """The listing's GET form: what was typed (to show again) and the problems found, by field."""

    values: dict[str, str]
    problems: dict[str, str] = field(default_factory=dict)
    service: InvoiceFilter = field(default_factory=InvoiceFilter)

    @property
    def active(self) -> bool:
        """Whether any filter or search narrows the list."""
        return any(self.values.get(name) for name in FORM_FIELDS)


FORM_FIELDS = ("q", "status", "aging", "due_from", "due_to", "plan", "dispute")


def _read_filters(args: Mapping[str, str], connection_id: int) -> Filters:
    """The form's values checked one by one: a bad value is left out of the search and explained next to its
    field, so the rest of the filters still apply."""
    values = {name: (args.get(name) or "").strip() for name in FORM_FIELDS}
    problems: dict[str, str] = {}
    search = values["q"]
    if len(search) > MAX_SEARCH:
        problems["q"] = f"Search for at most {MAX_SEARCH} characters."
    elif any((ord(char) < 32 and char not in "\t") or ord(char) == 127 for char in search):
        problems["q"] = "Search for text without control characters."
    status = values["status"]
    if status and status not in STATUS_WORDS:
        problems["status"] = "Choose a status from the list."
    aging = values["aging"]
    if aging and aging not in BUCKETS:
        problems["aging"] = "Choose how late from the list."
    days = {}
    for name, label in (("due_from", "Due from"), ("due_to", "Due until")):
        days[name] = _day(values[name], name, label, problems)
    if days["due_from"] and days["due_to"] and days["due_from"] > days["due_to"]:
        problems["due_to"] = "“Due until” is before “Due from”: nothing can be due in between."
        days["due_to"] = None
    flags = {}
    for name in ("plan", "dispute"):
        if values[name] not in CHOICES:
            problems[name] = "Choose Any, Yes or No."
        flags[name] = {"yes": True, "no": False}.get(values[name])
    service = InvoiceFilter(
        connection_id=connection_id,
        status=status if status and "status" not in problems else None,
        aging=aging if aging and "aging" not in problems else None,
        due_from=days["due_from"],
        due_to=days["due_to"],
        search=search if search and "q" not in problems else None,
        has_plan=flags["plan"],
        disputed=flags["dispute"],
    )
    return Filters(values, problems, service)


def _day(text: str, name: str, label: str, problems: dict[str, str]) -> date | None:
    if not text:
        return None
    try:
        found = date.fromisoformat(text)
    except ValueError:
        problems[name] = f"“{label}” must be a date like 2026-11-30."
        return None
    if not 1900 <= found.year <= 9000:
        problems[name] = f"“{label}” must be a date between the years 1900 and 9000."
        return None
    return found


@bp.get(BASE)
def index(org_id: int, connection_id: int) -> ResponseReturnValue:
    """One client's invoices: search, filters, pages; the results table alone for an htmx request."""
    filters = _read_filters(request.args, connection_id)
    cursor = request.args.get("cursor") or None
    before = request.args.get("before") or None
    scope = g.member_scope.visible_connection_ids()
    try:
        page = invoice_page(
            services().store,
            org_id,
            services().clock.now(),
            connection_ids=scope,
            filters=filters.service,
            cursor=cursor,
            before=before if cursor is None else None,
            limit=PAGE_SIZE,
        )
    except UnknownRecord:
        abort(404)
    except InvalidInput as exc:  # a cursor from elsewhere (or an old link): start again from the first page
        filters.problems.setdefault("page", f"{exc.user_message}.")
        page = invoice_page(
            services().store, org_id, services().clock.now(), connection_ids=scope, filters=filters.service
        )
    query: dict[str, Any] = {name: value for name, value in filters.values.items() if value}
    context = {
        "client_name": page.client_name,
        "rows": [_row(item, org_id) for item in page.items],
        "filters": filters,
        "next_url": url_for(".index", org_id=org_id, connection_id=connection_id, cursor=page.next_cursor, **query)
        if page.next_cursor
        else "",
        "prev_url": url_for(".index", org_id=org_id, connection_id=connection_id, before=page.prev_cursor, **query)
        if page.prev_cursor
        else "",
        "clear_url": url_for(".index", org_id=org_id, connection_id=connection_id),
        "status_words": STATUS_WORDS,
        "aging_words": AGING_WORDS,
        "choices": CHOICES,
        "client_url": _endpoint_url("clients_page.index", org_id=org_id, connection_id=connection_id),
        "overview_url": _endpoint_url("overview_page.index", org_id=org_id),
    }
    if request.headers.get("HX-Request") == "true" and request.headers.get("HX-Target") == "invoice-results":
        response = current_app.make_response(render_template("invoices/_results.html", **context))
    else:
        response = current_app.make_response(render_template("invoices/index.html", **context))
    response.vary.add("HX-Request")
    return response


def _row(item: InvoiceView, org_id: int) -> dict[str, Any]:
    """One table row as the template shows it: words, tones and links."""
    late = item.days_past_due
    overdue = item.status == "open" and late is not None and late > 0 and item.balance.amount > 0
    if overdue:
        status, tone = "Overdue", ("danger" if late is not None and late > 60 else "warn")
    else:
        status = STATUS_WORDS.get(item.status, item.status.replace("_", " ").capitalize())
        tone = {"paid": "ok", "voided": "", "deleted": "", "draft": "info"}.get(item.status, "")
    if late is None or item.status != "open":
        lateness = ""
    elif late > 0:
        lateness = f"{late} day{'s' if late != 1 else ''} late"
    elif late == 0:
        lateness = "due today"
    else:
        lateness = f"due in {-late} day{'s' if late != -1 else ''}"
    badges = []
    if item.has_plan:
        badges.append(("Payment plan", "info"))
    if item.disputed:
        badges.append(("In dispute", "danger"))
    if item.paused_until is not None:
        badges.append((f"Paused until {item.paused_until.isoformat()}", "warn"))
    if item.excluded:
        badges.append(("Not chased", ""))
    return {
        "item": item,
        "url": url_for(".detail", org_id=org_id, connection_id=item.connection_id, invoice_id=item.id),
        "customer_url": customer_url(org_id, item.connection_id, item.customer_id),
        "status": status,
        "tone": tone,
        "lateness": lateness,
        "late": overdue,
        "badges": badges,
    }


def customer_url(org_id: int, connection_id: int, customer_id: int | None) -> str:
    """The customer's page (the customers screen), or "" without a customer row."""
    if customer_id is None:
        return ""
    # The customers screen (`customers_page.index`) serves one customer at the URL shape; built as text so
    # this screen does not depend on that blueprint's argument names.
    return f"{request.script_root}/orgs/{org_id}/clients/{connection_id}/customers/{customer_id}"


def _endpoint_url(endpoint: str, **values: Any) -> str:
    """The URL of another screen's endpoint when this app serves it with these arguments, else ""."""
    if endpoint not in current_app.view_functions:
        return ""
    try:
        return url_for(endpoint, **values)
    except BuildError:  # another screen's rule takes other arguments: no link rather than a 500
        return ""


@bp.get(f"{BASE}/<int:invoice_id>")
def detail(org_id: int, connection_id: int, invoice_id: int) -> ResponseReturnValue:
    """One invoice: its header and its story, newest first."""
    now = services().clock.now()
    try:
        found = invoice_detail(
            services().store,
            org_id,
            connection_id,
            invoice_id,
            now,
            connection_ids=g.member_scope.visible_connection_ids(),
            registry=services().registry,
        )
    except UnknownRecord:
        abort(404)
    story = [entry for entry in found.timeline if not entry.repeats]
    coming = [entry for entry in story if entry.at > now and entry.type == "action"]
    past = [entry for entry in story if entry not in coming]
    return render_template(
        "invoices/detail.html",
        found=found,
        row=_row(found.invoice, org_id),
        coming=[_entry(entry, org_id, connection_id, invoice_id) for entry in reversed(coming)],
        past=[_entry(entry, org_id, connection_id, invoice_id) for entry in past],
        holds=_holds(found),
        list_url=url_for(".index", org_id=org_id, connection_id=connection_id),
        customer_url=customer_url(org_id, connection_id, found.invoice.customer_id),
        client_url=_endpoint_url("clients_page.index", org_id=org_id, connection_id=connection_id),
        overview_url=_endpoint_url("overview_page.index", org_id=org_id),
        handoff_packs=_handoff_packs(org_id, connection_id, invoice_id),
    )


def _handoff_packs(org_id: int, connection_id: int, invoice_id: int) -> list[dict[str, Any]]:
    """The hand-off packs covering the invoice, with their download links (docs/handoff.md)."""
    packs = packs_of_invoice(
        services().store, org_id, connection_id, invoice_id, connection_ids=g.member_scope.visible_connection_ids()
    )
    return pack_rows(packs, org_id)


def _holds(found: InvoiceDetail) -> list[str]:
    """What people decided that is in effect for the invoice (its override, its customer's), in sentences."""
    today = found.today or date.min
    return _invoice_holds(found.override, today) + _customer_holds(found.customer, today)


def _invoice_holds(override: OverrideView | None, today: date) -> list[str]:
    if override is None:
        return []
    sentences = []
    if override.dispute:
        reason = f": {override.dispute_reason}" if override.dispute_reason else ""
        sentences.append(f"This invoice is in dispute{reason}. Nothing goes out about it.")
    if override.excluded:
        sentences.append("This invoice is excluded from chasing.")
    if override.paused_until is not None and today < override.paused_until:
        sentences.append(f"Chasing of this invoice is paused until {day(override.paused_until)}.")
    if override.agreed_due_date is not None:
        sentences.append(f"A new due date was agreed: {day(override.agreed_due_date)}. Reminders count from it.")
    return sentences


def _customer_holds(customer: CustomerView | None, today: date) -> list[str]:
    if customer is None:
        return []
    sentences = []
    if customer.dispute:
        reason = f": {customer.dispute_reason}" if customer.dispute_reason else ""
        sentences.append(f"The customer is in dispute{reason}. Nothing goes out to them.")
    if customer.excluded:
        sentences.append("The customer is excluded from chasing.")
    if customer.paused_until is not None and today < customer.paused_until:
        sentences.append(f"Chasing of the customer is paused until {day(customer.paused_until)}.")
    if customer.promise_to_pay_until is not None and today <= customer.promise_to_pay_until:
        sentences.append(f"The customer promised to pay by {day(customer.promise_to_pay_until)}.")
    return sentences


_LABELS = {
    "payment": ("Payment", "ok"),
    "hold": ("Held", "warn"),
    "task": ("Task", "info"),
    "audit": ("Change", ""),
    "reply": ("Reply", "info"),
}
_ACTION_LABELS = {"remind": "Email", "note": "Ledger note", "late_fee": "Late fee", "fee_reversal": "Fee reversed",
                  "discount_credit": "Discount", "discount_offer": "Discount offer", "call_task": "Call",
                  "escalate": "Hand-over", "plan_broken": "Plan broken"}  # fmt: skip
_ACTIVITY_LABELS = {
    "action.approved": ("Approved", "ok"),
    "action.skipped": ("Skipped", ""),
    "action.retried": ("Tried again", "info"),
    "action.marked_sent": ("Marked sent", "ok"),
    "action.deferred": ("Moved", ""),
    "action.failed": ("Failed", "danger"),
    "action.uncertain": ("Delivery unknown", "danger"),
    "action.cancelled": ("Not carried out", ""),
    "action.superseded": ("Replaced", ""),
    "sync.quarantined": ("Sync problem", "danger"),
    "customer.promise_broken": ("Promise broken", "danger"),
    "customer.promise_kept": ("Promise kept", "ok"),
    "payment_plan": ("Payment plan", "info"),
    "invoice": ("Change", ""),
    "customer": ("Customer", ""),
    "task": ("Task", "info"),
    "review": ("Review", ""),
}
_STATE_TONES = {"failed": "danger", "uncertain": "danger", "cancelled": "", "skipped": "", "superseded": "",
                "planned": "info", "awaiting_approval": "warn"}  # fmt: skip


def _entry(entry: TimelineEntry, org_id: int, connection_id: int, invoice_id: int) -> dict[str, Any]:
    """A story entry as the template shows it: a label and tone, its words, and its links."""
    if entry.type == "action":
        label = _ACTION_LABELS.get(entry.kind, "Action")
        state = str(entry.detail.get("state", ""))
        tone = _STATE_TONES.get(state, "ok" if state == "done" else "")
        if entry.kind in ("plan_broken", "escalate"):
            tone = "danger"
    elif entry.type == "activity":
        label, tone = _ACTIVITY_LABELS.get(entry.kind) or _ACTIVITY_LABELS.get(
            entry.kind.split(".")[0], ("Activity", "")
        )
    else:
        label, tone = _LABELS.get(entry.type, (entry.type.capitalize(), ""))
    email_url = (
        url_for(".email", org_id=org_id, connection_id=connection_id, invoice_id=invoice_id, email_id=entry.email_id)
        if entry.email_id is not None
        else ""
    )
    return {"entry": entry, "label": label, "tone": tone, "email_url": email_url}


@bp.get(f"{BASE}/<int:invoice_id>/emails/<int:email_id>")
def email(org_id: int, connection_id: int, invoice_id: int, email_id: int) -> ResponseReturnValue:
    """One kept email: header fields, text and HTML parts (the HTML in a sandboxed frame), the .eml to download."""
    found = _sent(org_id, connection_id, invoice_id, email_id)
    args: dict[str, Any] = {"org_id": org_id, "connection_id": connection_id, "invoice_id": invoice_id}
    return render_template(
        "invoices/email.html",
        found=found,
        message=found.message,
        invoice_url=url_for(".detail", **args),
        list_url=url_for(".index", org_id=org_id, connection_id=connection_id),
        html_url=url_for(".email_html", email_id=email_id, **args) if found.message.html is not None else "",
        frame_lines=email_frame_lines(found.message.html) if found.message.html is not None else 0,
        raw_url=url_for(".email_raw", email_id=email_id, **args),
        state_words=EMAIL_STATES.get(found.state, (found.state, "")),
        via=MAILERS.get(found.mailer, found.mailer),
    )


@bp.get(f"{BASE}/<int:invoice_id>/emails/<int:email_id>/body.html")
def email_html(org_id: int, connection_id: int, invoice_id: int, email_id: int) -> ResponseReturnValue:
    """The email's HTML part alone, in a sandbox: no script runs, nothing is fetched, no link navigates the page."""
    found = _sent(org_id, connection_id, invoice_id, email_id)
    if found.message.html is None:
        abort(404)
    response = Response(found.message.html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = EMAIL_HTML_POLICY
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.get(f"{BASE}/<int:invoice_id>/emails/<int:email_id>/message.eml")
def email_raw(org_id: int, connection_id: int, invoice_id: int, email_id: int) -> ResponseReturnValue:
    """The email exactly as it was handed to the mail server, as an .eml file."""
    found = _sent(org_id, connection_id, invoice_id, email_id)
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", f"reminder-{found.invoice_number or invoice_id}-{found.id}").strip("-")
    response = Response(found.raw, mimetype="message/rfc822")
    response.headers["Content-Disposition"] = f'attachment; filename="{name}.eml"'
    response.headers["Content-Security-Policy"] = "sandbox; default-src 'none'"
    return response


def _sent(org_id: int, connection_id: int, invoice_id: int, email_id: int) -> Any:
    try:
        return sent_email(
            services().store,
            org_id,
            connection_id,
            invoice_id,
            email_id,
            connection_ids=g.member_scope.visible_connection_ids(),
        )
    except UnknownRecord:
        abort(404)
