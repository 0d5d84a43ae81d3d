"""The emulator's Flask app: identity + Accounting API + admin, with faults, latency and a call log."""

from __future__ import annotations

import contextlib
import socket
import time
from typing import Any

from flask import Blueprint, Flask, Response, g, jsonify, request

from providers._emulator import CallRecord, EmulatorCore, RateLimits, admin_blueprint
from providers.xero.emulator import render
from providers.xero.emulator.accounting import PREFIX, accounting_blueprint
from providers.xero.emulator.identity import identity_blueprint
from providers.xero.emulator.ledger import NotFound, XeroValidation
from providers.xero.emulator.state import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, XeroState
from providers.xero.emulator.wire import json_response, parse_amount, parse_date, parse_instant, problem

# Facts doc §2.4: per tenant 60/min, 5 concurrent, 5000/day; per app 10,000/min.
XERO_LIMITS = {"per_minute": 60, "concurrent": 5, "per_day": 5000, "app_per_minute": 10_000}


def _category(path: str) -> str:
    if path.startswith(PREFIX):
        return "data"
    if path.startswith("/__admin"):
        return "admin"
    if path.startswith(("/connect", "/identity", "/connections", "/Connections")):
        return "oauth"
    return "other"


def _body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ValueError("expected a JSON object body")
    return body


def xero_admin_blueprint(state: XeroState) -> Blueprint:
    """Xero-specific admin routes under /__admin: seed, generate, payments, oauth, webhooks, state."""
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
        ledger = state.ledgers.get(tenant_id)
        if ledger is None:
            raise NotFound(f"tenant {tenant_id}")
        return ledger

    @admin.post("/seed")
    def seed() -> Response:
        """{"tenants": [{"name", "tenantId"?, "tenantType"?, "currency"?, "reminders_enabled"?,
        "contacts": [...], "invoices": [...], "creditNotes": [...], "overpayments": [...],
        "prepayments": [...], "payments": [{"invoice": "<id or number>", "amount", "date"?}]}]}"""
        body = _body()
        out = []
        with state.lock:
            for spec in body.get("tenants", []):
                ledger = state.ledgers.get(str(spec.get("tenantId") or "")) or state.add_tenant(
                    str(spec.get("name") or "Demo Company"),
                    tenant_id=str(spec.get("tenantId") or ""),
                    tenant_type=str(spec.get("tenantType") or "ORGANISATION"),
                    currency=str(spec.get("currency") or "NZD"),
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
                overs = [
                    ledger.add_unapplied("Overpayment", o, now)["OverpaymentID"] for o in spec.get("overpayments", [])
                ]
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
        """{"tenant": id (or "name" to create one), "invoices": n, "contacts": m, "seed"?, "paid_every"?}"""
        body = _body()
        with state.lock:
            if body.get("tenant"):
                ledger = book(str(body["tenant"]))
            else:
                ledger = state.add_tenant(str(body.get("name") or "Bulk Company"))
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

    @admin.post("/invoices/update")
    def invoice_update() -> Response:
        """{"tenant", "invoice", "changes": {...}}: a user edited the invoice in Xero."""
        body = _body()
        with state.lock:
            ledger = book(str(body.get("tenant", "")))
            invoice = ledger.find_invoice(str(body.get("invoice", "")))
            ledger.update_invoice(invoice, dict(body.get("changes") or {}), state.now())
            state.drain_events()
            return jsonify(render.invoice(ledger, invoice))

    @admin.get("/tenants/<tenant_id>/invoices/<ref>")
    def invoice_show(tenant_id: str, ref: str) -> Response:
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
        body = _body()
        with state.lock:
            book(str(body.get("tenant", ""))).reminders_enabled = bool(body.get("enabled"))
        return jsonify({"ok": True})

    @admin.get("/oauth")
    def oauth_get() -> Response:
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
        body = _body()
        with state.lock:
            if "strict_refresh" in body:
                state.strict_refresh = bool(body["strict_refresh"])
            if body.get("client_id"):
                from providers.xero.emulator.state import Client

                state.clients[str(body["client_id"])] = Client(
                    str(body.get("client_secret") or ""), [str(u) for u in body.get("redirect_uris", [])]
                )
        return jsonify({"ok": True})

    @admin.post("/grant")
    def grant() -> Response:
        """{"tenants": [...], "client_id"?, "scope"?}: consent without the browser; returns the token response."""
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
        with state.lock:
            past = state.now()
            for token, (grant_id, _) in list(state.access_tokens.items()):
                state.access_tokens[token] = (grant_id, past)
        return jsonify({"ok": True})

    @admin.post("/revoke")
    def revoke() -> Response:
        """{"tenant"?}: the user disconnected the app in Xero (all grants reaching the tenant die)."""
        body = request.get_json(silent=True) or {}
        with state.lock:
            state.revoke_tenant(str(body.get("tenant") or ""))
        return jsonify({"ok": True})

    @admin.post("/webhooks")
    def webhooks_set() -> Response:
        """{"url", "key"}: where signed webhooks go."""
        body = _body()
        with state.lock:
            state.webhook_url = str(body.get("url") or "")
            state.webhook_key = str(body.get("key") or "")
        return jsonify({"ok": True})

    @admin.post("/webhooks/intent")
    def webhooks_intent() -> Response:
        """Run Xero's intent-to-receive validation against the configured URL."""
        body = request.get_json(silent=True) or {}
        return jsonify(state.intent_to_receive(str(body.get("url") or "")))

    @admin.post("/webhooks/flush")
    def webhooks_flush() -> Response:
        state.flush_webhooks()
        with state.lock:
            return jsonify({"deliveries": list(state.webhook_log)})

    @admin.post("/reset")
    def reset() -> Response:
        """Forget every organisation, token, connection and idempotency record."""
        with state.lock:
            state.ledgers.clear()
            state.codes.clear()
            state.grants.clear()
            state.access_tokens.clear()
            state.refresh_tokens.clear()
            state.connections.clear()
            state.idempotency.clear()
            state.refresh_count = 0
            state.webhook_log.clear()
        state.core.clear_calls()
        state.core.clear_faults()
        state.core.reset_usage()
        return jsonify({"ok": True})

    return admin


def create_app(
    core: EmulatorCore | None = None,
    *,
    client_id: str = DEFAULT_CLIENT_ID,
    client_secret: str = DEFAULT_CLIENT_SECRET,
    redirect_uris: list[str] | None = None,
    limits: dict[str, int] | None = None,
) -> Flask:
    """The emulator as a WSGI app. `app.extensions["xero_emulator"]` is its XeroState."""
    core = core or EmulatorCore(RateLimits(**(XERO_LIMITS if limits is None else limits)))
    state = XeroState(core, client_id=client_id, client_secret=client_secret, redirect_uris=list(redirect_uris or []))
    app = Flask("xero_emulator")
    app.extensions["xero_emulator"] = state

    @app.before_request
    def faults() -> Response | None:
        g.started = time.monotonic()
        g.fault = None
        if request.path.startswith("/__admin"):
            return None
        fault = core.take_fault(request.method, request.path)
        g.fault = fault
        if fault is None:
            return None
        if fault.kind == "delay":
            time.sleep(fault.seconds)
            return None
        if fault.kind == "revoke":
            with state.lock:
                state.revoke_tenant(request.headers.get("xero-tenant-id", ""))
            return None
        if fault.kind == "status":
            body = fault.body or ""
            if not body:
                answer = json_response(
                    problem(fault.status, "Error", "An error occurred in Xero (injected)"), fault.status
                )
                answer.headers.update(fault.headers)
                return answer
            return Response(body, status=fault.status, mimetype="application/json", headers=fault.headers)
        if fault.kind == "malformed":
            return Response('{"Invoices": [{"InvoiceID": "', status=200, mimetype="application/json")
        if fault.kind == "html":
            page = f"<html><body><h1>{fault.status} Service Unavailable</h1></body></html>"
            return Response(page, status=fault.status, mimetype="text/html")
        if fault.kind == "disconnect":
            sock = request.environ.get("werkzeug.socket")
            if isinstance(sock, socket.socket):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            return Response(status=500)
        return None

    @app.after_request
    def log_call(response: Response) -> Response:
        if not request.path.startswith("/__admin"):
            core.record(
                CallRecord(
                    at=state.now().isoformat(),
                    method=request.method,
                    path=request.path,
                    query=request.query_string.decode("latin-1"),
                    tenant=request.headers.get("xero-tenant-id", ""),
                    status=response.status_code,
                    category=_category(request.path),
                    request_id=request.headers.get("Idempotency-Key", ""),
                )
            )
        fault = g.get("fault")
        if fault is not None:
            fault.hold_answer()  # delay_after: the write is done, remembered and logged; the answer waits
        return response

    @app.get("/online/<tenant_id>/<token>")
    def online(tenant_id: str, token: str) -> Response:
        with state.lock:
            ledger = state.ledgers.get(tenant_id)
            invoice_id = ledger.online_tokens.get(token) if ledger else None
            if ledger is None or invoice_id is None:
                return Response("not found", 404, mimetype="text/plain")
            invoice = ledger.invoices[invoice_id]
            text = (
                f"<!doctype html><title>Invoice {invoice['InvoiceNumber']}</title>"
                f"<h1>{ledger.name}: invoice {invoice['InvoiceNumber']}</h1>"
                f"<p>Amount due {invoice['AmountDue']} {invoice['CurrencyCode']}</p>"
            )
        return Response(text, mimetype="text/html")

    app.register_blueprint(identity_blueprint(state))
    app.register_blueprint(accounting_blueprint(state))
    app.register_blueprint(admin_blueprint(core))
    app.register_blueprint(xero_admin_blueprint(state))
    return app
