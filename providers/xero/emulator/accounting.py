"""The Accounting API under /api.xro/2.0: invoices, contacts, credit notes, payments, history, email.

Every call is checked in this order: bearer token (401), `xero-tenant-id` connected to the token's
grant (403), limits (429 with `X-Rate-Limit-Problem` / `Retry-After`), `Idempotency-Key` replay.
Responses carry `X-MinLimit-Remaining`, `X-DayLimit-Remaining`, `X-AppMinLimit-Remaining`
(docs/provider-api-facts.md §2.4).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any

from flask import Blueprint, Response, g, request

from providers._emulator import LimitDecision
from providers.xero.emulator import render
from providers.xero.emulator.ledger import Ledger, NotFound, XeroValidation
from providers.xero.emulator.query import QueryError, csv_set, order, paginate, select, where
from providers.xero.emulator.runtime import current
from providers.xero.emulator.state import StoredResponse, XeroState
from providers.xero.emulator.wire import (
    envelope,
    json_response,
    ms_date,
    parse_amount,
    parse_date,
    parse_instant,
    problem,
    validation_error,
)

PREFIX = "/api.xro/2.0"
IDEMPOTENCY_KEY_MAX = 128  # docs/provider-api-facts.md §2.4
NO_DOCUMENT = "The document with the supplied id was not found for this endpoint."  # xero_validation_error.json


def _pdf(lines: list[str]) -> bytes:
    """A small valid one-page PDF showing `lines`."""
    text = (
        "BT /F1 12 Tf 72 760 Td 14 TL "
        + " ".join("(" + line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ") '" for line in lines)
        + " ET"
    )
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(text) + text.encode("latin-1", "replace") + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


bp = Blueprint("xero_accounting", __name__, url_prefix=PREFIX)


# -- the gate every call passes ---------------------------------------------------------------
def _throttled(decision: LimitDecision) -> Response:
    """The 429 of a refused call, with the headers naming the limit hit."""
    headers = {"X-Rate-Limit-Problem": decision.problem}
    retry = max(decision.retry_after, 1) if decision.problem == "day" else decision.retry_after
    if decision.problem in ("minute", "day", "appminute"):
        headers["Retry-After"] = str(retry)
    if decision.problem == "day":
        headers["X-DayLimit-Remaining"] = "0"
    elif decision.problem == "minute":
        headers["X-MinLimit-Remaining"] = "0"
    return json_response({"Title": "Too Many Requests", "Status": 429}, 429, headers)


def _idempotent_replay(state: XeroState, tenant: str) -> Response | None:
    """Remember a write's Idempotency-Key; the first answer again when the key was seen before."""
    key = request.headers.get("Idempotency-Key", "")
    g.idempotency = ""
    if not key or request.method not in ("PUT", "POST"):
        return None
    if len(key) > IDEMPOTENCY_KEY_MAX:
        return json_response(
            validation_error([{"ValidationErrors": [{"Message": "Idempotency-Key exceeds 128 characters"}]}]),
            400,
        )
    g.idempotency = key
    g.fingerprint = hashlib.sha256(
        request.method.encode() + request.path.encode() + (request.get_data() or b"")
    ).hexdigest()
    with state.lock:
        stored = state.idempotency.get((tenant, key))
    if stored is None:
        return None
    # Replay the first answer ([unverified]: a different body under the same key is also replayed).
    g.idempotency = ""
    response = Response(stored.body, status=stored.status, content_type=stored.content_type)
    response.headers["Idempotency-Replayed"] = "true"
    return response


@bp.before_request
def gate() -> Response | None:
    """Bearer token (401), tenant connected (403), limits (429), then Idempotency-Key replay."""
    state = current()
    g.admitted = ""
    header = request.headers.get("Authorization", "")
    token = header[7:] if header.lower().startswith("bearer ") else ""
    with state.lock:
        grant, reason = state.grant_for_access(token)
    if grant is None:
        return json_response(problem(401, "Unauthorized", reason), 401)
    tenant = request.headers.get("xero-tenant-id", "")
    with state.lock:
        ok = tenant in state.ledgers and state.connected(grant, tenant)
    if not ok:
        # [unverified] body; docs/provider-api-facts.md §2.5: 403 when the tenant is not connected.
        return json_response(problem(403, "Forbidden", "AuthorizationUnsuccessful"), 403)
    with state.lock:
        throttled = state.throttled(tenant)
    if throttled is not None:
        problem_name, retry_after = throttled
        return _throttled(LimitDecision(allowed=False, problem=problem_name, retry_after=retry_after))
    decision = state.core.admit(tenant)
    if not decision.allowed:
        return _throttled(decision)
    g.admitted = tenant
    g.decision = decision
    state.core.pause()
    return _idempotent_replay(state, tenant)


@bp.after_request
def headers_and_replay(response: Response) -> Response:
    state = current()
    decision = getattr(g, "decision", None)
    if decision is not None:
        if decision.remaining_minute >= 0:
            response.headers["X-MinLimit-Remaining"] = str(decision.remaining_minute)
        if decision.remaining_day >= 0:
            response.headers["X-DayLimit-Remaining"] = str(decision.remaining_day)
        if decision.remaining_app_minute >= 0:
            response.headers["X-AppMinLimit-Remaining"] = str(decision.remaining_app_minute)
    if getattr(g, "idempotency", "") and response.status_code < 500:
        with state.lock:
            state.idempotency[(g.admitted, g.idempotency)] = StoredResponse(
                response.status_code, response.get_data(), response.content_type or "", g.fingerprint
            )
    with state.lock:
        state.drain_events()
    return response


@bp.teardown_request
def release(_exc: BaseException | None) -> None:
    core = current().core
    tenant = getattr(g, "admitted", "")
    if tenant:
        core.release(tenant)


# -- helpers ----------------------------------------------------------------------------------
def ledger() -> Ledger:
    state = current()
    return state.ledgers[g.admitted]


def flag(name: str) -> bool:
    return request.args.get(name, "").lower() == "true"  # SDK sends True/False (docs/provider-api-facts.md §3.3)


def body_items(collection: str) -> list[dict[str, Any]]:
    body = request.get_json(silent=True)
    if isinstance(body, dict) and isinstance(body.get(collection), list):
        return [item for item in body[collection] if isinstance(item, dict)]
    if isinstance(body, dict) and body:
        return [body]
    raise XeroValidation({}, [f"The request body must contain {collection}"])


def listing(
    records: list[dict[str, Any]],
    *,
    id_field: str,
    ids_param: str,
    collection: str,
    renderer: Callable[[dict[str, Any]], dict[str, Any]],
    default_order: str = "",
) -> Response:
    state = current()
    args = request.args
    try:
        since_header = request.headers.get("If-Modified-Since")
        since = parse_instant(since_header) if since_header else None
        predicate = where(args["where"]) if args.get("where") else None
        selected = select(
            records,
            id_field=id_field,
            ids=csv_set(args.get(ids_param)),
            statuses=csv_set(args.get("Statuses")),
            contact_ids=csv_set(args.get("ContactIDs")),
            since=since,
            predicate=predicate,
        )
        if args.get("order") or default_order:
            selected = order(selected, args.get("order") or default_order)
        page, block = paginate(selected, args.get("page"), args.get("pageSize"))
    except (QueryError, ValueError) as exc:
        return json_response(validation_error([{"ValidationErrors": [{"Message": str(exc)}]}]), 400)
    body = envelope(state.now(), **{collection: [renderer(r) for r in page]})
    if block is not None:
        body["pagination"] = block
    return json_response(body)


def invalid(exc: XeroValidation) -> Response:
    element = dict(exc.element)
    element["ValidationErrors"] = [{"Message": m} for m in exc.messages]
    return json_response(validation_error([element]), 400)


# -- invoices ---------------------------------------------------------------------------------
@bp.get("/Invoices")
def invoices_get() -> Response:
    state = current()
    with state.lock:
        book = ledger()
        records = list(book.invoices.values())
        if not flag("includeArchived"):
            records = [r for r in records if r["Status"] != "ARCHIVED"]
        summary = flag("summaryOnly")
        # Without `page`, Xero lists every match without line items ([unverified]).
        no_lines = summary or request.args.get("page") is None
        search = request.args.get("searchTerm", "").lower()
        if search:
            records = [r for r in records if search in r["InvoiceNumber"].lower() or search in r["Reference"].lower()]
        numbers = csv_set(request.args.get("InvoiceNumbers"))
        if numbers is not None:
            records = [r for r in records if r["InvoiceNumber"].lower() in numbers]
        return listing(
            records,
            id_field="InvoiceID",
            ids_param="IDs",
            collection="Invoices",
            renderer=lambda r: render.invoice(book, r, summary=no_lines),
        )


@bp.get("/Invoices/<ref>")
def invoice_get(ref: str) -> Response:
    state = current()
    with state.lock:
        book = ledger()
        try:
            record = book.find_invoice(ref)
        except NotFound:
            return json_response(problem(404, "Not Found", "The resource you're looking for cannot be found"), 404)
        if "application/pdf" in request.headers.get("Accept", ""):
            pdf = _pdf(
                [
                    f"{book.name}",
                    f"Tax invoice {record['InvoiceNumber']}",
                    f"To: {record['Contact']['Name']}",
                    f"Due: {record['DueDate']}",
                    f"Total: {record['Total']} {record['CurrencyCode']}",
                    f"Amount due: {record['AmountDue']} {record['CurrencyCode']}",
                ]
            )
            return Response(pdf, mimetype="application/pdf")
        return json_response(envelope(state.now(), Invoices=[render.invoice(book, record)]))


def write_invoices(create_only: bool, ref: str = "") -> Response:
    state = current()
    summarize = request.args.get("summarizeErrors", "true").lower() != "false"
    try:
        items = body_items("Invoices")
    except XeroValidation as exc:
        return invalid(exc)
    out: list[dict[str, Any]] = []
    with state.lock:
        book = ledger()
        now = state.now()
        for item in items:
            try:
                target = ref or str(item.get("InvoiceID") or "")
                existing = None
                if target:
                    try:
                        existing = book.find_invoice(target)
                    except NotFound:
                        if ref:
                            return json_response(problem(404, "Not Found", "Invoice not found"), 404)
                        raise XeroValidation(item, ["Invoice could not be found"]) from None
                elif not create_only and item.get("InvoiceNumber"):
                    existing = next(
                        (i for i in book.invoices.values() if i["InvoiceNumber"] == item["InvoiceNumber"]), None
                    )
                if existing is not None and create_only:
                    raise XeroValidation(item, ["Invoice # must be unique."])
                record = book.update_invoice(existing, item, now) if existing else book.create_invoice(item, now)
                out.append(render.invoice(book, record))
            except XeroValidation as exc:
                if summarize:
                    return invalid(exc)
                element = dict(exc.element)
                element.update(HasErrors=True, ValidationErrors=[{"Message": m} for m in exc.messages])
                out.append(element)
        return json_response(envelope(now, Invoices=out))


@bp.put("/Invoices")
def invoices_put() -> Response:
    return write_invoices(create_only=True)


@bp.post("/Invoices")
def invoices_post() -> Response:
    return write_invoices(create_only=False)


@bp.post("/Invoices/<ref>")
def invoice_post(ref: str) -> Response:
    return write_invoices(create_only=False, ref=ref)


def _history_get(ref: str, lookup: Callable[[Ledger, str], dict[str, Any]], id_field: str) -> Response:
    """GET …/<ref>/History: the document's history and notes."""
    state = current()
    with state.lock:
        book = ledger()
        try:
            record = lookup(book, ref)
        except NotFound:
            return json_response(problem(404, "Not Found", "Document not found"), 404)
        return json_response(
            envelope(state.now(), HistoryRecords=render.history(book.history.get(record[id_field], [])))
        )


def _history_put(ref: str, lookup: Callable[[Ledger, str], dict[str, Any]], id_field: str) -> Response:
    """PUT …/<ref>/History: add notes to the document."""
    state = current()
    try:
        items = body_items("HistoryRecords")
    except XeroValidation as exc:
        return invalid(exc)
    with state.lock:
        book = ledger()
        try:
            record = lookup(book, ref)
        except NotFound:
            return json_response(validation_error([{"ValidationErrors": [{"Message": NO_DOCUMENT}]}]), 400)
        written = []
        try:
            for item in items:
                written.append(book.add_note(record[id_field], str(item.get("Details") or ""), state.now()))
        except XeroValidation as exc:
            return invalid(exc)
        rows = render.history(written)
        for row in rows:
            row.pop("Changes", None)
            row.pop("User", None)
            row["ValidationErrors"] = []
        return json_response(envelope(state.now(), HistoryRecords=rows))


def find_credit(book: Ledger, ref: str) -> dict[str, Any]:
    record = book.credit_notes.get(ref) or next(
        (c for c in book.credit_notes.values() if c["CreditNoteNumber"] == ref), None
    )
    if record is None:
        raise NotFound(ref)
    return record


def _find_invoice(book: Ledger, ref: str) -> dict[str, Any]:
    return book.find_invoice(ref)


@bp.get("/Invoices/<ref>/History")
def invoice_history_get(ref: str) -> Response:
    return _history_get(ref, _find_invoice, "InvoiceID")


@bp.put("/Invoices/<ref>/History")
def invoice_history_put(ref: str) -> Response:
    return _history_put(ref, _find_invoice, "InvoiceID")


@bp.get("/CreditNotes/<ref>/History")
def credit_note_history_get(ref: str) -> Response:
    return _history_get(ref, find_credit, "CreditNoteID")


@bp.put("/CreditNotes/<ref>/History")
def credit_note_history_put(ref: str) -> Response:
    return _history_put(ref, find_credit, "CreditNoteID")


@bp.post("/Invoices/<ref>/Email")
def invoice_email(ref: str) -> Response:
    state = current()
    with state.lock:
        book = ledger()
        try:
            record = book.find_invoice(ref)
        except NotFound:
            return json_response(problem(404, "Not Found", "Invoice not found"), 404)
        element = {"InvoiceID": record["InvoiceID"]}
        # Facts doc §2.3 [3p]: only ACCREC in SUBMITTED, AUTHORISED or PAID can be emailed; recipients
        # are the contact's primary email plus persons flagged "include in emails".
        if record["Type"] != "ACCREC" or record["Status"] not in ("SUBMITTED", "AUTHORISED", "PAID"):
            return invalid(XeroValidation(element, ["Invoice must be approved before it can be emailed"]))
        contact = book.contacts.get(record["Contact"]["ContactID"], {})
        to = [contact.get("EmailAddress", "")] if contact.get("EmailAddress") else []
        to += [
            p["EmailAddress"]
            for p in contact.get("ContactPersons", [])
            if p.get("IncludeInEmails") and p.get("EmailAddress")
        ]
        if not to:
            return invalid(XeroValidation(element, ["The contact does not have a valid email address"]))
        now = state.now()
        book.emails.append({"InvoiceID": record["InvoiceID"], "to": to, "at": now.isoformat()})
        record["SentToContact"] = True
        record["UpdatedDateUTC"] = now
        book.history.setdefault(record["InvoiceID"], []).append(
            {"Changes": "Emailed", "DateUTC": now, "User": "Nudge (API)", "Details": f"Emailed to {', '.join(to)}"}
        )
        book.events.append(("INVOICE", record["InvoiceID"], "UPDATE"))
    return Response(status=204)


@bp.get("/Invoices/<ref>/OnlineInvoice")
def online_invoice(ref: str) -> Response:
    state = current()
    with state.lock:
        book = ledger()
        try:
            record = book.find_invoice(ref)
        except NotFound:
            return json_response(problem(404, "Not Found", "Invoice not found"), 404)
        if record["Type"] != "ACCREC" or record["Status"] in ("DRAFT", "DELETED"):
            return invalid(
                XeroValidation({"InvoiceID": record["InvoiceID"]}, ["Online invoice not available for this invoice"])
            )
        token = next((t for t, i in book.online_tokens.items() if i == record["InvoiceID"]), "")
        if not token:
            token = secrets.token_urlsafe(16)
            book.online_tokens[token] = record["InvoiceID"]
    url = f"{request.host_url}online/{book.tenant_id}/{token}"
    return json_response(envelope(state.now(), OnlineInvoices=[{"OnlineInvoiceUrl": url}]))


# -- contacts -----------------------------------------------------------------------------------
@bp.get("/Contacts")
def contacts_get() -> Response:
    state = current()
    with state.lock:
        book = ledger()
        records = list(book.contacts.values())
        if not flag("includeArchived"):
            records = [r for r in records if r["ContactStatus"] != "ARCHIVED"]
        summary = flag("summaryOnly")
        return listing(
            records,
            id_field="ContactID",
            ids_param="IDs",
            collection="Contacts",
            renderer=lambda r: render.contact(book, r, summary=summary),
        )


@bp.get("/Contacts/<contact_id>")
def contact_get(contact_id: str) -> Response:
    state = current()
    with state.lock:
        book = ledger()
        record = book.contacts.get(contact_id)
        if record is None:
            return json_response(problem(404, "Not Found", "Contact not found"), 404)
        return json_response(envelope(state.now(), Contacts=[render.contact(book, record)]))


def write_contacts(ref: str = "") -> Response:
    state = current()
    try:
        items = body_items("Contacts")
    except XeroValidation as exc:
        return invalid(exc)
    with state.lock:
        book = ledger()
        out = []
        for item in items:
            if ref:
                item = {**item, "ContactID": ref}
            if item.get("ContactID") and item["ContactID"] not in book.contacts:
                return json_response(problem(404, "Not Found", "Contact not found"), 404)
            try:
                out.append(render.contact(book, book.upsert_contact(item, state.now())))
            except XeroValidation as exc:
                return invalid(exc)
        return json_response(envelope(state.now(), Contacts=out))


@bp.route("/Contacts", methods=["PUT", "POST"])
def contacts_put() -> Response:
    return write_contacts()


@bp.post("/Contacts/<ref>")
def contact_post(ref: str) -> Response:
    return write_contacts(ref)


# -- items, accounts, organisation, reminders -------------------------------------------------------
@bp.get("/Items")
def items_get() -> Response:
    state = current()
    with state.lock:
        return json_response(envelope(state.now(), Items=list(ledger().items.values())))


@bp.route("/Items", methods=["PUT", "POST"])
def items_put() -> Response:
    state = current()
    try:
        items = body_items("Items")
    except XeroValidation as exc:
        return invalid(exc)
    with state.lock:
        book = ledger()
        out = []
        for item in items:
            code = str(item.get("Code") or "")
            if not code:
                return invalid(XeroValidation(item, ["Item code must be specified"]))
            record = book.items.get(code) or {"ItemID": secrets.token_hex(16), "Code": code}
            record.update({k: v for k, v in item.items() if k in ("Name", "Description", "SalesDetails", "IsSold")})
            book.items[code] = record
            out.append(record)
        return json_response(envelope(state.now(), Items=out))


@bp.get("/Accounts")
def accounts_get() -> Response:
    state = current()
    with state.lock:
        rows = [
            {"Code": code, "Name": name, "Type": "REVENUE" if code >= "200" else "BANK", "Status": "ACTIVE"}
            for code, name in ledger().accounts.items()
        ]
    return json_response(envelope(state.now(), Accounts=rows))


def xero_timezone_name(iana: str) -> str:
    """Xero's `Timezone` for an IANA zone: the Windows id upper-cased without spaces (`NEWZEALANDSTANDARDTIME`)."""
    from tzlocal.windows_tz import tz_win

    return "".join(ch for ch in tz_win.get(iana, "UTC").upper() if ch.isalnum())


@bp.get("/Organisation")
def organisation_get() -> Response:
    state = current()
    with state.lock:
        book = ledger()
        # The shape of Xero's "Example response for GET Organisation" (docs/provider-api-facts.md §2.8).
        address: dict[str, Any] = {"AddressType": "STREET", "AddressLine1": "1 Emulator Way", "City": "Emulated"}
        if book.region:
            address["Region"] = book.region
        row = {
            "OrganisationID": book.tenant_id,
            "Name": book.name,
            "BaseCurrency": book.currency,
            "CountryCode": book.country_code,
            "ShortCode": book.short_code,
            "OrganisationType": "COMPANY",
            "Timezone": xero_timezone_name(book.time_zone),
            "Addresses": [address],
        }
    return json_response(envelope(state.now(), Organisations=[row]))


@bp.get("/InvoiceReminders/Settings")
def reminders_get() -> Response:
    state = current()
    # Facts doc §2.7: the API exposes only {"Enabled": bool}.
    with state.lock:
        enabled = ledger().reminders_enabled
    return json_response(envelope(state.now(), InvoiceReminders=[{"Enabled": enabled}]))


# -- credit notes, payments, overpayments, prepayments -----------------------------------------------
@bp.get("/CreditNotes")
def credit_notes_get() -> Response:
    state = current()
    with state.lock:
        book = ledger()
        return listing(
            list(book.credit_notes.values()),
            id_field="CreditNoteID",
            ids_param="IDs",
            collection="CreditNotes",
            renderer=lambda r: render.credit_note(book, r),
        )


@bp.get("/CreditNotes/<ref>")
def credit_note_get(ref: str) -> Response:
    state = current()
    with state.lock:
        book = ledger()
        try:
            record = find_credit(book, ref)
        except NotFound:
            return json_response(problem(404, "Not Found", "Credit note not found"), 404)
        return json_response(envelope(state.now(), CreditNotes=[render.credit_note(book, record)]))


@bp.route("/CreditNotes", methods=["PUT", "POST"])
def credit_notes_put() -> Response:
    state = current()
    try:
        items = body_items("CreditNotes")
    except XeroValidation as exc:
        return invalid(exc)
    with state.lock:
        book = ledger()
        out = []
        for item in items:
            try:
                out.append(render.credit_note(book, book.create_credit_note(item, state.now())))
            except XeroValidation as exc:
                return invalid(exc)
        return json_response(envelope(state.now(), CreditNotes=out))


@bp.put("/CreditNotes/<ref>/Allocations")
def credit_note_allocate(ref: str) -> Response:
    state = current()
    try:
        items = body_items("Allocations")
    except XeroValidation as exc:
        return invalid(exc)
    with state.lock:
        book = ledger()
        try:
            credit = find_credit(book, ref)
        except NotFound:
            return json_response(problem(404, "Not Found", "Credit note not found"), 404)
        out = []
        for item in items:
            try:
                allocation = book.allocate_credit(credit, item, state.now())
            except (XeroValidation, ValueError) as exc:
                if isinstance(exc, ValueError):
                    exc = XeroValidation(item, [str(exc)])
                return invalid(exc)
            row = dict(allocation)
            row["Date"] = ms_date(allocation["Date"])
            out.append(row)
        return json_response(envelope(state.now(), Allocations=out))


@bp.get("/Payments")
def payments_get() -> Response:
    state = current()
    with state.lock:
        book = ledger()
        return listing(
            list(book.payments.values()),
            id_field="PaymentID",
            ids_param="IDs",
            collection="Payments",
            renderer=lambda r: render.payment(book, r),
        )


@bp.route("/Payments", methods=["PUT", "POST"])
def payments_put() -> Response:
    state = current()
    try:
        items = body_items("Payments")
    except XeroValidation as exc:
        return invalid(exc)
    with state.lock:
        book = ledger()
        return _apply_to_invoices(
            items,
            "Payments",
            lambda invoice, amount, on: render.payment(book, book.apply_payment(invoice, amount, on, state.now())),
        )


@bp.post("/Payments/<ref>")
def payment_delete(ref: str) -> Response:
    """Xero deletes a payment by posting `{"Status": "DELETED"}` to it (the SDK's delete_payment)."""
    state = current()
    body = request.get_json(silent=True) or {}
    item = (body.get("Payments") or [body])[0] if isinstance(body, dict) else {}
    if str((item or {}).get("Status") or "").upper() != "DELETED":
        return invalid(XeroValidation(dict(item or {}), ["Payments can only be updated to a status of DELETED"]))
    with state.lock:
        book = ledger()
        try:
            payment = book.delete_payment(ref, state.now())
        except NotFound:
            return json_response(problem(404, "Not Found", "Payment not found"), 404)
        return json_response(envelope(state.now(), Payments=[render.payment(book, payment)]))


def _apply_to_invoices(
    items: list[dict[str, Any]], collection: str, apply: Callable[[Any, Decimal, date], dict[str, Any]]
) -> Response:
    """Apply money item by item (`Invoice.InvoiceID`, `Amount`, `Date`) with `apply`; the first bad item answers
    Xero's validation error. Called under the state lock with the book in hand."""
    state = current()
    book = ledger()
    out = []
    for item in items:
        try:
            invoice = book.find_invoice(str((item.get("Invoice") or {}).get("InvoiceID") or ""))
            amount = parse_amount(item.get("Amount"), "Amount")
            on = parse_date(item.get("Date")) or state.now().date()
            out.append(apply(invoice, amount, on))
        except NotFound:
            return invalid(XeroValidation(item, ["Invoice could not be found"]))
        except ValueError as exc:
            return invalid(XeroValidation(item, [str(exc)]))
        except XeroValidation as exc:
            return invalid(exc)
    return json_response(envelope(state.now(), **{collection: out}))


def _allocate_unapplied(ref: str, attr: str) -> Response:
    """PUT /Overpayments|Prepayments/{id}/Allocations."""
    state = current()
    try:
        items = body_items("Allocations")
    except XeroValidation as exc:
        return invalid(exc)
    with state.lock:
        book = ledger()
        record = getattr(book, attr).get(ref)
        if record is None:
            return json_response(problem(404, "Not Found", "Not found"), 404)
        return _apply_to_invoices(
            items,
            "Allocations",
            lambda invoice, amount, on: render._nested_dates(
                book.allocate_unapplied(record, invoice, amount, on, state.now())
            ),
        )


@bp.put("/Overpayments/<ref>/Allocations")
def overpayment_allocate(ref: str) -> Response:
    return _allocate_unapplied(ref, "overpayments")


@bp.put("/Prepayments/<ref>/Allocations")
def prepayment_allocate(ref: str) -> Response:
    return _allocate_unapplied(ref, "prepayments")


def _unapplied(kind: str, attr: str) -> Response:
    """A listing of the ledger's overpayments or prepayments."""
    state = current()
    with state.lock:
        book = ledger()
        return listing(
            list(getattr(book, attr).values()),
            id_field=f"{kind[:-1]}ID",
            ids_param="IDs",
            collection=kind,
            renderer=lambda r: render.unapplied(book, r),
        )


@bp.get("/Overpayments")
def overpayments_get() -> Response:
    return _unapplied("Overpayments", "overpayments")


@bp.get("/Prepayments")
def prepayments_get() -> Response:
    return _unapplied("Prepayments", "prepayments")
