"""`/c/<token>`: the customer page every reminder links to (issue 17, docs/customer-page.md). No sign-in.

The token (connector.mail.customer_link) names one customer of one client and the last day it works; every route
reads it first: a token changed in any way is refused (403), an expired one too (410), each with a page telling
the customer to use the link in their latest email. Under it, an invoice id in the path must be one of that
customer's open invoices of that client (connector.receivables.customer_page.customer_invoice), else 404 — the
same answer as for an id that does not exist, so nothing in the URL reaches another customer's data.

Routes (all rate-limited per link and per address, `web.customer_page_limit`; forms carry the CSRF token):

- `GET  /c/<token>`: open invoices, promise, requests, forms;
- `GET  /c/<token>/statement.pdf`: the customer's statement (connector.receivables.statements);
- `GET  /c/<token>/invoices/<invoice_id>/pdf`: the ledger's PDF of the invoice;
- `GET  /c/<token>/invoices/<invoice_id>/pay`: to the ledger's online payment page of the invoice;
- `POST /c/<token>/promise`, `POST /c/<token>/invoices/<invoice_id>/plan | dispute | paid`: the customer's choices.

The page is in the customer's locale (money and dates) under the client's business name; what the customer types
is shown back escaped (Jinja autoescaping) and checked by the service (length, dates, amounts).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from datetime import date
from functools import partial
from typing import Any

from flask import Blueprint, Flask, Response, abort, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from limits import parse_many
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from connector.bootstrap import customer_links
from connector.config import WebSettings
from connector.domain.model import InvoiceSnapshot
from connector.domain.money import Money
from connector.errors import ChangeRefused, InvalidInput, NudgeError, UnknownRecord
from connector.mail.customer_link import CustomerClaim, LinkRefused
from connector.mail.rendering import format_day, format_money
from connector.ports import AccountingAdapter
from connector.receivables import customer_page as service
from connector.receivables.statements import load_statement_by_external_id, statement_filename, statement_pdf
from connector.worker.turn import adapter_for
from web.extensions import services

bp = Blueprint("customer_page", __name__)
PAGE = "/c/<token>"
INVOICE = f"{PAGE}/invoices/<int:invoice_id>"
THROTTLE_KEY = "nudge.customer_page_throttle"
FORM_ERRORS = 200  # a form sent back with its errors is the page itself
PLAN_COUNTS = range(2, 13)
EVERY = (("month", "Every month"), ("fortnight", "Every two weeks"), ("week", "Every week"))


class PageThrottle:
    """Requests to customer pages, counted per link (a hash of its token) and per client address."""

    def __init__(self, storage_uri: str, limit: str) -> None:
        self._limiter = MovingWindowRateLimiter(storage_from_string(storage_uri))
        self._items = parse_many(limit)

    def allow(self, token: str, address: str) -> int:
        """Count this request; 0 when it may go ahead, else the seconds to wait."""
        link = hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()
        wait = 0
        for item in self._items:
            for scope, key in (("customer-link", link), ("customer-address", address or "unknown")):
                if not self._limiter.hit(item, scope, key):
                    reset = self._limiter.get_window_stats(item, scope, key).reset_time
                    wait = max(wait, int(reset - time.time()) + 1)
        return wait


def init_app(app: Flask, settings: WebSettings) -> None:
    """Register the page with its own throttle (storage: `web.ratelimit_storage_uri`)."""
    app.extensions[THROTTLE_KEY] = PageThrottle(settings.ratelimit_storage_uri, settings.customer_page_limit)
    app.register_blueprint(bp)


@bp.before_request
def _limit() -> ResponseReturnValue | None:
    """Over the limit: 429 with Retry-After, before the token is even read."""
    throttle: PageThrottle = current_app.extensions[THROTTLE_KEY]
    token = str((request.view_args or {}).get("token", ""))
    wait = throttle.allow(token, request.remote_addr or "")
    if not wait:
        return None
    message = "Too many requests from here. Wait a few minutes, then open the link again."
    response = Response(render_template("customer_page/refused.html", title="Please wait", message=message), 429)
    response.headers["Retry-After"] = str(wait)
    return response


@bp.after_request
def _private(response: Response) -> Response:
    """The token is in the path: no page of it is sent as a Referer anywhere, nor kept in a shared cache."""
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "private, no-cache, no-store"
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    return response


def _claim(token: str) -> CustomerClaim:
    """The link's claim, or the refusal page (403 changed, 410 expired) in place of any answer."""
    links = customer_links(services().settings)
    if links is None:
        abort(404)
    try:
        return links.read(token, services().clock.now())
    except LinkRefused as refused:
        if refused.expired:
            title = "This link has expired"
            message = (
                "Links to this page work for a limited time. Please use the link in the latest email we sent you, "
                "or reply to that email and we will send a new one."
            )
        else:
            title = "This link does not work"
            message = (
                "The address is not complete or was changed. Please use the link in the latest email we sent you "
                "exactly as it is (copy the whole address if clicking it does not work)."
            )
        page = render_template("customer_page/refused.html", title=title, message=message)
        abort(Response(page, 410 if refused.expired else 403))


def _page(
    token: str, *, errors: dict[str, str] | None = None, typed: dict[str, str] | None = None, status: int = 200
) -> ResponseReturnValue:
    claim = _claim(token)
    found = services()
    try:
        view = service.load_page(
            found.store, claim.connection_id, claim.customer_id, found.clock.now(), default_locale="en_US"
        )
    except UnknownRecord:
        abort(404)
    locale = view.locale
    return (
        render_template(
            "customer_page/page.html",
            view=view,
            token=token,
            errors=errors or {},
            typed=typed or {},
            money=partial(_money, locale=locale),
            when=partial(_day, locale=locale),
            lang=locale.split("_")[0] or "en",
            plan_counts=PLAN_COUNTS,
            every=EVERY,
            valid_until=claim.valid_until,
        ),
        status,
    )


def _money(value: Money | None, *, locale: str) -> str:
    return format_money(value, locale) if value is not None else ""


def _day(value: Any, *, locale: str) -> str:
    """A date (or the ISO text a request stored) as the customer's locale writes it."""
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value)
        except ValueError:
            return value
    return format_day(value, locale, "medium") if isinstance(value, date) else ""


@bp.get(PAGE)
def page(token: str) -> ResponseReturnValue:
    """The customer's page: what they owe this client, and what they can tell or ask."""
    return _page(token)


@bp.get(f"{PAGE}/statement.pdf")
def statement(token: str) -> ResponseReturnValue:
    """The customer's statement as a PDF (open invoices, aging, payments received), in their locale."""
    claim = _claim(token)
    found = services()
    view = _view_or_404(claim)
    made = load_statement_by_external_id(
        found.store, claim.connection_id, view.customer_external_id, view.today, default_locale=view.locale
    )
    if made is None:
        abort(404)
    source, built = made
    return _pdf(statement_pdf(built, source.locale), statement_filename(built))


def _view_or_404(claim: CustomerClaim) -> service.CustomerPage:
    try:
        return service.load_page(services().store, claim.connection_id, claim.customer_id, services().clock.now())
    except UnknownRecord:
        abort(404)


def _pdf(content: bytes, filename: str) -> Response:
    safe = "".join(char for char in filename if char.isalnum() or char in " .-_")[:120] or "document.pdf"
    response = Response(content, mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'attachment; filename="{safe}"'
    return response


def _invoice(claim: CustomerClaim, invoice_id: int) -> InvoiceSnapshot:
    """One of the link's customer's open invoices, else 404 (another customer's, paid, unknown: all the same)."""
    try:
        return service.invoice_for_documents(services().store, claim.connection_id, claim.customer_id, invoice_id)
    except UnknownRecord:
        abort(404)


def _from_ledger(claim: CustomerClaim, ask: Callable[[AccountingAdapter], Any]) -> Any:
    """What the ledger answers (a PDF, a pay link), None when it cannot now: the page offers the statement."""
    found = services()
    with found.store.unit_of_work() as uow:
        connection = uow.connections.by_id(claim.connection_id)
        if connection is None:
            abort(404)
        uow.session.expunge(connection)
    try:
        return ask(adapter_for(found, connection))
    except NudgeError:
        return None


@bp.get(f"{INVOICE}/pdf")
def invoice_pdf(token: str, invoice_id: int) -> ResponseReturnValue:
    """The invoice as the ledger renders it (a PDF), when the ledger gives one."""
    claim = _claim(token)
    invoice = _invoice(claim, invoice_id)
    content = _from_ledger(claim, lambda adapter: adapter.invoice_pdf(invoice))
    if not content:
        return _unavailable(token, "The invoice PDF cannot be fetched right now. Download your statement instead.")
    return _pdf(content, f"Invoice {invoice.number}.pdf")


@bp.get(f"{INVOICE}/pay")
def pay(token: str, invoice_id: int) -> ResponseReturnValue:
    """To the ledger's own online payment page of the invoice (asked of the ledger when the customer clicks)."""
    claim = _claim(token)
    invoice = _invoice(claim, invoice_id)
    link = _from_ledger(claim, lambda adapter: adapter.payment_link(invoice))
    if not isinstance(link, str) or not link.lower().startswith(("https://", "http://")) or "\n" in link:
        return _unavailable(
            token,
            f"Invoice {invoice.number} cannot be paid online right now: please pay it as the "
            "invoice says (bank details are on the invoice and the statement).",
        )
    return redirect(link, 303)


def _unavailable(token: str, message: str) -> ResponseReturnValue:
    flash(message, "error")
    return redirect(url_for("customer_page.page", token=token), 303)


def _form(*names: str) -> dict[str, str]:
    return {name: str(request.form.get(name, ""))[:4000] for name in names}


def _done(token: str, message: str) -> ResponseReturnValue:
    flash(message, "success")
    return redirect(url_for("customer_page.page", token=token) + "#done", 303)


def _refused(token: str, exc: NudgeError, typed: dict[str, str], form: str) -> ResponseReturnValue:
    field = getattr(exc, "field", "") or form
    text = exc.user_message.strip()
    text = text[:1].upper() + text[1:]
    return _page(token, errors={f"{form}.{field}": text, form: text}, typed={**typed, "form": form}, status=FORM_ERRORS)


def _act(
    token: str,
    form: str,
    names: tuple[str, ...],
    invoice_id: int | None,
    do: Callable[[CustomerClaim, dict[str, str]], service.RequestView],
    said: Callable[[service.RequestView], str],
) -> ResponseReturnValue:
    """One of the customer's forms: read it, hand it to the service, then thank them (a redirect) or show the page
    again with what was wrong under the form and what they typed kept; 404 for an invoice that is not theirs."""
    claim = _claim(token)
    typed = _form(*names)
    if invoice_id is not None:
        typed["invoice_id"] = str(invoice_id)
    try:
        view = do(claim, typed)
    except UnknownRecord:
        abort(404)
    except (InvalidInput, ChangeRefused) as exc:
        return _refused(token, exc, typed, form)
    return _done(token, said(view))


@bp.post(f"{PAGE}/promise")
def promise(token: str) -> ResponseReturnValue:
    """Promise to pay by a date (and, if they wish, how much)."""
    found = services()
    return _act(
        token,
        "promise",
        ("promise_date", "promise_amount"),
        None,
        lambda claim, typed: service.promise_to_pay(
            found.store,
            claim.connection_id,
            claim.customer_id,
            until=typed["promise_date"],
            amount=typed["promise_amount"],
            now=found.clock.now(),
        ),
        lambda view: (
            f"Thank you: we noted that you will pay by {view.detail['until']}. We will not send reminders before then."
        ),
    )


def _plan_count(text: str) -> int:
    count = int(text) if text.isdigit() and len(text) < 4 else -1
    if count not in PLAN_COUNTS:
        raise InvalidInput(f"choose from {PLAN_COUNTS[0]} to {PLAN_COUNTS[-1]} installments", "count")
    return count


@bp.post(f"{INVOICE}/plan")
def plan(token: str, invoice_id: int) -> ResponseReturnValue:
    """Ask for a payment plan: so many installments, the first on a date, then every week, fortnight or month."""
    found = services()

    def ask(claim: CustomerClaim, typed: dict[str, str]) -> service.RequestView:
        installments = service.proposed_installments(
            found.store,
            claim.connection_id,
            claim.customer_id,
            invoice_id,
            count=_plan_count(typed["count"]),
            first=typed["first"],
            every=typed["every"],
            now=found.clock.now(),
        )
        return service.ask_for_plan(
            found.store,
            claim.connection_id,
            claim.customer_id,
            invoice_id,
            installments=installments,
            now=found.clock.now(),
        )

    return _act(
        token,
        f"plan-{invoice_id}",
        ("count", "first", "every"),
        invoice_id,
        ask,
        lambda view: (
            f"Thank you: we received your request for a payment plan on invoice {view.invoice_number}. "
            "We will answer by email."
        ),
    )


@bp.post(f"{INVOICE}/dispute")
def dispute(token: str, invoice_id: int) -> ResponseReturnValue:
    """Dispute an invoice, saying why: reminders and fees stop for it while it is looked into."""
    found = services()
    return _act(
        token,
        f"dispute-{invoice_id}",
        ("reason",),
        invoice_id,
        lambda claim, typed: service.dispute_invoice(
            found.store,
            claim.connection_id,
            claim.customer_id,
            invoice_id,
            reason=typed["reason"],
            now=found.clock.now(),
        ),
        lambda view: (
            f"Thank you: invoice {view.invoice_number} is marked as disputed. We will not send "
            "reminders about it while we look into what you told us."
        ),
    )


@bp.post(f"{INVOICE}/paid")
def paid(token: str, invoice_id: int) -> ResponseReturnValue:
    """Say the invoice is paid, with the date and a reference: reminders about it hold while it is looked for."""
    found = services()
    return _act(
        token,
        f"paid-{invoice_id}",
        ("paid_on", "reference"),
        invoice_id,
        lambda claim, typed: service.report_paid(
            found.store,
            claim.connection_id,
            claim.customer_id,
            invoice_id,
            paid_on=typed["paid_on"],
            reference=typed["reference"],
            now=found.clock.now(),
        ),
        lambda view: (
            f"Thank you: we will look for your payment for invoice {view.invoice_number}. No reminders "
            f"about it until {view.hold_until.isoformat() if view.hold_until else 'we have looked'}."
        ),
    )
