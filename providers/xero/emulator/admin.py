"""Xero-specific admin routes of the emulator under /__admin: seed, generate, payments, invoices, tenants,
reminders, OAuth, grants, tokens, revocation, throttles, removed connections, webhooks and reset (the
shared ones live in providers._emulator.admin). Module-level views reading the app's XeroState (runtime.current)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Blueprint, Response, jsonify, request

from providers.xero.emulator import render
from providers.xero.emulator.ledger import NotFound, XeroValidation
from providers.xero.emulator.runtime import current
from providers.xero.emulator.state import Client, Throttle
from providers.xero.emulator.wire import parse_amount, parse_date, parse_instant


def _body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ValueError("expected a JSON object body")
    return body


admin = Blueprint("xero_admin", __name__, url_prefix="/__admin")


@admin.errorhandler(ValueError)
def bad_request(exc: ValueError) -> tuple[Response, int]:
    return jsonify({"error": str(exc)}), 400


@admin.errorhandler(XeroValidation)
def invalid(exc: XeroValidation) -> tuple[Response, int]:
    return jsonify({"error": "; ".join(exc.messages)}), 400


@admin.errorhandler(NotFound)
def missing(exc: NotFound) -> tuple[Response, int]:
    return jsonify({"error": f"not found: {exc}"}), 404


def book(tenant_id: str) -> Any:
    state = current()
    ledger = state.ledgers.get(tenant_id)
    if ledger is None:
        raise NotFound(f"tenant {tenant_id}")
    return ledger


@admin.post("/seed")
def seed() -> Response:
    """{"tenants": [{"name", "tenantId"?, "tenantType"?, "currency"?, "countryCode"?, "region"?, "timeZone"? (IANA),
    "reminders_enabled"?,
    "contacts": [...], "invoices": [...], "creditNotes": [...], "overpayments": [...],
    "prepayments": [...], "payments": [{"invoice": "<id or number>", "amount", "date"?}]}]}"""
    state = current()
    body = _body()
    out = []
    with state.lock:
        for spec in body.get("tenants", []):
            ledger = state.ledgers.get(str(spec.get("tenantId") or "")) or state.add_tenant(
                str(spec.get("name") or "Demo Company"),
                tenant_id=str(spec.get("tenantId") or ""),
                tenant_type=str(spec.get("tenantType") or "ORGANISATION"),
                currency=str(spec.get("currency") or "NZD"),
                country=str(spec.get("countryCode") or ""),
                region=str(spec.get("region") or ""),
                time_zone=str(spec.get("timeZone") or ""),
            )
            ledger.reminders_enabled = bool(spec.get("reminders_enabled", ledger.reminders_enabled))
            now = state.now()
            contacts = [ledger.upsert_contact(c, now)["ContactID"] for c in spec.get("contacts", [])]
            invoices = []
            for raw in spec.get("invoices", []):
                record = ledger.create_invoice(raw, now)
                if raw.get("UpdatedDateUTC"):
                    record["UpdatedDateUTC"] = parse_instant(str(raw["UpdatedDateUTC"]))
                invoices.append(record["InvoiceID"])
            credits = [ledger.create_credit_note(c, now)["CreditNoteID"] for c in spec.get("creditNotes", [])]
            overs = [ledger.add_unapplied("Overpayment", o, now)["OverpaymentID"] for o in spec.get("overpayments", [])]
            pres = [ledger.add_unapplied("Prepayment", p, now)["PrepaymentID"] for p in spec.get("prepayments", [])]
            for payment in spec.get("payments", []):
                invoice = ledger.find_invoice(str(payment["invoice"]))
                ledger.apply_payment(
                    invoice, parse_amount(payment["amount"]), parse_date(payment.get("date")) or now.date(), now
                )
            state.drain_events()
            out.append(
                {
                    "tenantId": ledger.tenant_id,
                    "name": ledger.name,
                    "contacts": contacts,
                    "invoices": invoices,
                    "creditNotes": credits,
                    "overpayments": overs,
                    "prepayments": pres,
                }
            )
    return jsonify({"tenants": out})


@admin.post("/generate")
def generate() -> Response:
    """{"tenant": id (or "name" to create one, with "countryCode"?, "region"?, "timeZone"?), "invoices": n,
    "contacts": m, "seed"?, "paid_every"?}"""
    state = current()
    body = _body()
    with state.lock:
        if body.get("tenant"):
            ledger = book(str(body["tenant"]))
        else:
            ledger = state.add_tenant(
                str(body.get("name") or "Bulk Company"),
                country=str(body.get("countryCode") or ""),
                region=str(body.get("region") or ""),
                time_zone=str(body.get("timeZone") or ""),
            )
        ledger.bulk_invoices(
            int(body.get("invoices", 0)),
            max(int(body.get("contacts", 1)), 1),
            state.now(),
            seed=int(body.get("seed", 1)),
            paid_every=int(body.get("paid_every", 0)),
        )
        ledger.events.clear()  # bulk data is history, not news
        return jsonify({"tenantId": ledger.tenant_id, "invoices": len(ledger.invoices)})


@admin.post("/payments")
def payments() -> Response:
    """{"tenant", "invoice": "<id or number>", "amount", "date"?}: a customer paid (bank feed)."""
    state = current()
    body = _body()
    with state.lock:
        ledger = book(str(body.get("tenant", "")))
        invoice = ledger.find_invoice(str(body.get("invoice", "")))
        now = state.now()
        payment = ledger.apply_payment(
            invoice, parse_amount(body.get("amount")), parse_date(body.get("date")) or now.date(), now
        )
        state.drain_events()
        return jsonify(
            {"PaymentID": payment["PaymentID"], "Status": invoice["Status"], "AmountDue": str(invoice["AmountDue"])}
        )


@admin.post("/payments/delete")
def payments_delete() -> Response:
    """{"tenant", "payment"}: a user deleted the payment in Xero (its invoice owes the money again)."""
    state = current()
    body = _body()
    with state.lock:
        ledger = book(str(body.get("tenant", "")))
        payment = ledger.delete_payment(str(body.get("payment", "")), state.now())
        state.drain_events()
        return jsonify({"PaymentID": payment["PaymentID"], "Status": payment["Status"]})


@admin.post("/credits")
def credits() -> Response:
    """{"tenant", "invoice", "amount", "date"?}: a user raised a credit note and allocated it to the invoice."""
    state = current()
    body = _body()
    with state.lock:
        ledger = book(str(body.get("tenant", "")))
        invoice = ledger.find_invoice(str(body.get("invoice", "")))
        now = state.now()
        amount = parse_amount(body.get("amount"))
        on = parse_date(body.get("date")) or now.date()
        line = {"Description": "Credit", "Quantity": 1, "UnitAmount": str(amount), "AccountCode": "200"}
        credit = ledger.create_credit_note(
            {
                "Type": "ACCRECCREDIT",
                "Status": "AUTHORISED",
                "Contact": {"ContactID": invoice["Contact"]["ContactID"]},
                "Date": on.isoformat(),
                "CurrencyCode": invoice["CurrencyCode"],
                "LineAmountTypes": "NoTax",
                "LineItems": [line],
            },
            now,
        )
        ledger.allocate_credit(
            credit, {"Invoice": {"InvoiceID": invoice["InvoiceID"]}, "Amount": str(amount), "Date": on.isoformat()}, now
        )
        state.drain_events()
        return jsonify({"CreditNoteID": credit["CreditNoteID"], "AmountDue": str(invoice["AmountDue"])})


@admin.post("/overpayments")
def overpayments() -> Response:
    """{"tenant", "contact", "amount", "date"?, "currency"?}: the customer paid money no invoice takes."""
    state = current()
    body = _body()
    with state.lock:
        ledger = book(str(body.get("tenant", "")))
        data: dict[str, Any] = {"Contact": {"ContactID": str(body.get("contact", ""))}, "Total": body.get("amount")}
        if body.get("date"):
            data["Date"] = str(body["date"])
        if body.get("currency"):
            data["CurrencyCode"] = str(body["currency"])
        record = ledger.add_unapplied("Overpayment", data, state.now())
        return jsonify({"OverpaymentID": record["OverpaymentID"]})


@admin.post("/invoices/update")
def invoice_update() -> Response:
    """{"tenant", "invoice", "changes": {...}}: a user edited the invoice in Xero."""
    state = current()
    body = _body()
    with state.lock:
        ledger = book(str(body.get("tenant", "")))
        invoice = ledger.find_invoice(str(body.get("invoice", "")))
        ledger.update_invoice(invoice, dict(body.get("changes") or {}), state.now())
        state.drain_events()
        return jsonify(render.invoice(ledger, invoice))


@admin.get("/tenants/<tenant_id>/invoices/<ref>")
def invoice_show(tenant_id: str, ref: str) -> Response:
    state = current()
    with state.lock:
        ledger = book(tenant_id)
        invoice = ledger.find_invoice(ref)
        return jsonify(
            {
                "invoice": render.invoice(ledger, invoice),
                "history": render.history(ledger.history.get(invoice["InvoiceID"], [])),
            }
        )


@admin.get("/tenants/<tenant_id>")
def tenant_show(tenant_id: str) -> Response:
    state = current()
    with state.lock:
        ledger = book(tenant_id)
        return jsonify(
            {
                "tenantId": ledger.tenant_id,
                "name": ledger.name,
                "invoices": len(ledger.invoices),
                "contacts": len(ledger.contacts),
                "creditNotes": [render.credit_note(ledger, c) for c in ledger.credit_notes.values()],
                "emails": list(ledger.emails),
                "reminders_enabled": ledger.reminders_enabled,
            }
        )


@admin.post("/reminders")
def reminders() -> Response:
    state = current()
    body = _body()
    with state.lock:
        book(str(body.get("tenant", ""))).reminders_enabled = bool(body.get("enabled"))
    return jsonify({"ok": True})


@admin.get("/oauth")
def oauth_get() -> Response:
    state = current()
    with state.lock:
        return jsonify(
            {
                "strict_refresh": state.strict_refresh,
                "refresh_count": state.refresh_count,
                "grants": len(state.grants),
                "connections": [{k: v for k, v in c.items() if not k.startswith("_")} for c in state.connections],
            }
        )


@admin.post("/oauth")
def oauth_set() -> Response:
    """{"strict_refresh"?: bool, "client_id"?, "client_secret"?, "redirect_uris"?: [...]}"""
    state = current()
    body = _body()
    with state.lock:
        if "strict_refresh" in body:
            state.strict_refresh = bool(body["strict_refresh"])
        if body.get("client_id"):
            state.clients[str(body["client_id"])] = Client(
                str(body.get("client_secret") or ""), [str(u) for u in body.get("redirect_uris", [])]
            )
    return jsonify({"ok": True})


@admin.post("/grant")
def grant() -> Response:
    """{"tenants": [...], "client_id"?, "scope"?}: consent without the browser; returns the token response."""
    state = current()
    body = _body()
    with state.lock:
        tenants = [str(t) for t in body.get("tenants") or list(state.ledgers)]
        for tenant_id in tenants:
            book(tenant_id)
        client_id = str(body.get("client_id") or next(iter(state.clients)))
        if client_id not in state.clients:
            raise ValueError(f"unknown client {client_id}")
        scope = str(
            body.get("scope")
            or "openid profile email offline_access accounting.transactions accounting.contacts "
            "accounting.settings.read"
        ).split()
        grant_ = state.approve(client_id, tenants, scope)
        return jsonify(state.issue_tokens(grant_))


@admin.post("/tokens/expire")
def tokens_expire() -> Response:
    """Every access token issued so far is now expired (refresh tokens unaffected)."""
    state = current()
    with state.lock:
        past = state.now()
        for token, (grant_id, _) in list(state.access_tokens.items()):
            state.access_tokens[token] = (grant_id, past)
    return jsonify({"ok": True})


@admin.post("/revoke")
def revoke() -> Response:
    """{"tenant"?}: the user disconnected the app in Xero (all grants reaching the tenant die)."""
    state = current()
    body = request.get_json(silent=True) or {}
    with state.lock:
        state.revoke_tenant(str(body.get("tenant") or ""))
    return jsonify({"ok": True})


@admin.post("/throttle")
def throttle() -> Response:
    """{"tenant", "problem": "minute"|"day", "retry_after": seconds, "times"?}: the tenant is over that
    limit — its Accounting calls get 429 with `X-Rate-Limit-Problem` and a `Retry-After` counting down
    on the emulator clock (`times` > 0: only that many refusals)."""
    state = current()
    body = _body()
    problem_name = str(body.get("problem") or "")
    if problem_name not in ("minute", "day"):
        raise ValueError("problem must be minute or day")
    seconds = float(body.get("retry_after") or 0)
    if seconds <= 0:
        raise ValueError("retry_after must be a positive number of seconds")
    with state.lock:
        tenant = book(str(body.get("tenant") or "")).tenant_id
        until = state.now() + timedelta(seconds=seconds)
        state.throttles[tenant] = Throttle(problem_name, until, int(body.get("times") or 0))
    return jsonify({"tenant": tenant, "until": until.isoformat()})


@admin.post("/connections/remove")
def connections_remove() -> Response:
    """{"tenant"}: the organisation's admin disconnected the app in Xero (Settings > Connected apps):
    every user's connection to that tenant is gone (calls answer 403); the grants themselves live on."""
    state = current()
    body = _body()
    with state.lock:
        tenant = book(str(body.get("tenant") or "")).tenant_id
        before = len(state.connections)
        state.connections = [c for c in state.connections if c["tenantId"] != tenant]
        removed = before - len(state.connections)
    return jsonify({"removed": removed})


@admin.post("/webhooks")
def webhooks_set() -> Response:
    """{"url", "key"}: where signed webhooks go."""
    state = current()
    body = _body()
    with state.lock:
        state.webhook_url = str(body.get("url") or "")
        state.webhook_key = str(body.get("key") or "")
    return jsonify({"ok": True})


@admin.post("/webhooks/intent")
def webhooks_intent() -> Response:
    """Run Xero's intent-to-receive validation against the configured URL."""
    state = current()
    body = request.get_json(silent=True) or {}
    return jsonify(state.intent_to_receive(str(body.get("url") or "")))


@admin.post("/webhooks/flush")
def webhooks_flush() -> Response:
    state = current()
    state.flush_webhooks()
    with state.lock:
        return jsonify({"deliveries": list(state.webhook_log)})


@admin.post("/reset")
def reset() -> Response:
    """Forget every organisation, token, connection and idempotency record."""
    state = current()
    with state.lock:
        state.ledgers.clear()
        state.codes.clear()
        state.grants.clear()
        state.access_tokens.clear()
        state.refresh_tokens.clear()
        state.connections.clear()
        state.idempotency.clear()
        state.throttles.clear()
        state.refresh_count = 0
        state.webhook_log.clear()
    state.core.clear_calls()
    state.core.clear_faults()
    state.core.reset_usage()
    return jsonify({"ok": True})
