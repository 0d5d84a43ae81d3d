"""The Xero emulator's Flask app: identity (identity.py), the Accounting API (accounting.py) and the admin
routes (admin.py, plus the shared ones), module-level views reading the app's XeroState from
`app.extensions`; every call but the admin API passes the fault plan and is written to the call log."""

from __future__ import annotations

import contextlib
import socket
import time

from flask import Blueprint, Flask, Response, g, request

from providers._emulator import CallRecord, EmulatorCore, Fault, RateLimits, register_admin
from providers.xero.emulator.accounting import PREFIX
from providers.xero.emulator.accounting import bp as accounting
from providers.xero.emulator.admin import admin
from providers.xero.emulator.identity import bp as identity
from providers.xero.emulator.runtime import EXTENSION, current
from providers.xero.emulator.state import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, XeroState
from providers.xero.emulator.wire import json_response, problem

# docs/provider-api-facts.md §2.4: per tenant 60/min, 5 concurrent, 5000/day; per app 10,000/min.
XERO_LIMITS = {"per_minute": 60, "concurrent": 5, "per_day": 5000, "app_per_minute": 10_000}

gateway = Blueprint("xero_gateway", __name__)


def _category(path: str) -> str:
    if path.startswith(PREFIX):
        return "data"
    if path.startswith("/__admin"):
        return "admin"
    if path.startswith(("/connect", "/identity", "/connections", "/Connections")):
        return "oauth"
    return "other"


def _status_answer(fault: Fault) -> Response:
    """An injected error status: the fault's own body, or Xero's problem shape."""
    if fault.body:
        return Response(fault.body, status=fault.status, mimetype="application/json", headers=fault.headers)
    answer = json_response(problem(fault.status, "Error", "An error occurred in Xero (injected)"), fault.status)
    answer.headers.update(fault.headers)
    return answer


def _disconnect() -> Response:
    sock = request.environ.get("werkzeug.socket")
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    return Response(status=500)


def _fault_answer(state: XeroState, fault: Fault) -> Response | None:
    """What an armed fault does before the call is served: an answer in place of it, or None to go on."""
    if fault.kind == "delay":
        time.sleep(fault.seconds)
    elif fault.kind == "revoke":
        with state.lock:
            state.revoke_tenant(request.headers.get("xero-tenant-id", ""))
    elif fault.kind == "status":
        return _status_answer(fault)
    elif fault.kind == "malformed":
        return Response('{"Invoices": [{"InvoiceID": "', status=200, mimetype="application/json")
    elif fault.kind == "html":
        page = f"<html><body><h1>{fault.status} Service Unavailable</h1></body></html>"
        return Response(page, status=fault.status, mimetype="text/html")
    elif fault.kind == "disconnect":
        return _disconnect()
    return None


@gateway.before_app_request
def faults() -> Response | None:
    """The fault plan, for every call but the admin API's."""
    g.started = time.monotonic()
    g.fault = None
    if request.path.startswith("/__admin"):
        return None
    state = current()
    fault = state.core.take_fault(request.method, request.path)
    g.fault = fault
    return None if fault is None else _fault_answer(state, fault)


@gateway.after_app_request
def log_call(response: Response) -> Response:
    """The call log (admin calls are not logged), then a `delay_after` fault holds the answer."""
    if not request.path.startswith("/__admin"):
        state = current()
        state.core.record(
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


@gateway.get("/online/<tenant_id>/<token>")
def online(tenant_id: str, token: str) -> Response:
    """The online invoice page a customer opens from a reminder."""
    state = current()
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
    app.extensions[EXTENSION] = state
    app.register_blueprint(gateway)
    app.register_blueprint(identity)
    app.register_blueprint(accounting)
    register_admin(app, core)
    app.register_blueprint(admin)
    return app
