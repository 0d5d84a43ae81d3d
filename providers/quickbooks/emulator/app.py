"""Flask app of the QuickBooks Online emulator: OAuth + discovery, the v3 accounting API, admin routes.

Wire behaviour follows docs/provider-api-facts.md §1 and §3.2: python-quickbooks posts queries as
`application/text`, sends `minorversion` and `requestid` as query parameters, reads Faults from 200s
too; intuit-oauth reads the discovery document and posts form-encoded token requests with Basic auth.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import html
import json
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Flask, Response, g, redirect, request
from werkzeug.wrappers import Response as WerkzeugResponse

from providers._emulator import CallRecord, EmulatorCore, RateLimits, admin_blueprint
from providers.quickbooks.emulator.auth import ACCOUNTING_SCOPE, OAuthError, OAuthSettings, OAuthState
from providers.quickbooks.emulator.notify import Notifier, WebhookConfig
from providers.quickbooks.emulator.query import QuerySyntaxError
from providers.quickbooks.emulator.store import _PATHS, QboFault, Store, _public, parse_changed_since

DEFAULT_CLIENT_ID = "emulator-client-id"
DEFAULT_CLIENT_SECRET = "emulator-client-secret"


class Emulator:
    """Everything one running QuickBooks emulator holds: core (clock, faults, calls, limits), data, OAuth."""

    def __init__(
        self,
        *,
        clients: dict[str, str] | None = None,
        limits: RateLimits | None = None,
        oauth: OAuthSettings | None = None,
        webhook: WebhookConfig | None = None,
    ) -> None:
        # QBO limits: 500 requests/min per realm, 10 concurrent (docs/provider-api-facts.md §1.6).
        self.core = EmulatorCore(limits or RateLimits(per_minute=500, concurrent=10))
        self.store = Store(self.core.clock)
        self.oauth = OAuthState(self.core.clock, oauth or OAuthSettings())
        self.oauth.apps.update(clients or {DEFAULT_CLIENT_ID: DEFAULT_CLIENT_SECRET})
        self.notifier = Notifier(webhook or WebhookConfig())
        self.store.listeners.append(self.notifier)
        self.base_url = ""  # set once serving; used in discovery and links

    def json(self, body: Any, status: int = 200) -> Response:
        response = Response(json.dumps(body, separators=(",", ":")), status=status, mimetype="application/json")
        response.headers["intuit_tid"] = uuid.uuid4().hex[:24]
        return response


def _basic_auth() -> tuple[str, str]:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Basic "):
        raise OAuthError(401, "invalid_client", "Client authentication failed")
    try:
        client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise OAuthError(401, "invalid_client", "Client authentication failed") from None
    return client_id, secret


def _fault_response(emu: Emulator, fault: QboFault, realm: str = "") -> Response:
    company = emu.store.companies.get(realm)
    return emu.json(fault.body(emu.store.response_time(company)), fault.status)


def _html_page(status: int) -> Response:
    page = (
        f"<!DOCTYPE html><html><head><title>{status} Error</title></head><body><h1>Service Unavailable</h1>"
        "<p>We're sorry, QuickBooks Online is temporarily unavailable.</p></body></html>"
    )
    return Response(page, status=status, mimetype="text/html")


def _unauthorized(emu: Emulator, why: str) -> Response:
    # Shape of the real 401 body (lower-case "fault"; code 3200, docs/provider-api-facts.md §1.5 [3p]).
    body = {
        "warnings": None,
        "intuitObject": None,
        "fault": {
            "error": [
                {
                    "message": "message=AuthenticationFailed; errorCode=003200; statusCode=401",
                    "detail": f"{why}: the access token is not valid",
                    "code": "3200",
                    "element": None,
                }
            ],
            "type": "AUTHENTICATION",
        },
        "report": None,
        "time": int(time.time() * 1000),
    }
    response = emu.json(body, 401)
    response.headers["WWW-Authenticate"] = 'Bearer realm="Intuit", error="invalid_token"'
    return response


def _throttled(emu: Emulator, retry_after: int, problem: str) -> Response:
    body = QboFault(
        429,
        "3001",
        "message=ThrottleExceeded; errorCode=003001; statusCode=429",
        f"The request limit was exceeded ({problem}); retry after {retry_after} seconds.",
        "ThrottleExceeded",
    ).body(emu.store.response_time())
    response = emu.json(body, 429)
    response.headers["Retry-After"] = str(retry_after)
    return response


def _minimal_pdf(text: str) -> bytes:
    content = f"BT /F1 18 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(content)).encode() + b" >>\nstream\n" + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, obj in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + obj + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def _api_blueprint(emu: Emulator) -> Blueprint:
    api = Blueprint("qbo_api", __name__, url_prefix="/v3/company/<realm>")
    store = emu.store

    @api.before_request
    def guard() -> Response | None:
        realm = (request.view_args or {}).get("realm", "")
        g.realm = realm
        g.admitted = False
        emu.core.pause()
        fault = emu.core.take_fault(request.method, request.path)
        g.fault = fault
        if fault is not None:
            if fault.kind == "delay":
                time.sleep(fault.seconds)
            elif fault.kind == "revoke":
                emu.oauth.revoke_realm(realm)
            elif fault.kind == "status":
                return Response(
                    fault.body or json.dumps(_default_fault_body(emu, fault.status)),
                    status=fault.status,
                    mimetype="application/json",
                    headers=fault.headers,
                )
            elif fault.kind == "html":
                return _html_page(fault.status)
            elif fault.kind == "disconnect":
                sock = request.environ.get("werkzeug.socket")
                if sock is not None:  # drop the connection without an answer
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
                return Response(
                    _broken_stream(), status=200, mimetype="application/json", headers={"Content-Length": "4096"}
                )
        decision = emu.core.admit(realm)
        if not decision.allowed:
            return _throttled(emu, decision.retry_after, decision.problem)
        g.admitted = True
        header = request.headers.get("Authorization", "")
        why = emu.oauth.authorize(header[7:], realm) if header.startswith("Bearer ") else "Token missing"
        if why:
            return _unauthorized(emu, why)
        if request.method == "POST" and (rid := request.args.get("requestid")):
            company = store.companies.get(realm)
            if company is not None:
                with company.lock:
                    saved = company.replies.get(rid)
                if saved is not None:  # same requestid: the original answer, nothing re-executed (§1.2)
                    return Response(saved[1], status=saved[0], mimetype="application/json")
        return None

    @api.after_request
    def after(response: Response) -> Response:
        realm = g.get("realm", "")
        if g.get("admitted"):
            emu.core.release(realm)
        fault = g.get("fault")
        if fault is not None and fault.kind == "malformed" and response.status_code == 200:
            data = response.get_data()
            response.set_data(data[: max(1, len(data) // 2)])
        rid = request.args.get("requestid", "")
        carried_out = fault is None or fault.kind == "delay_after"  # delay_after: done, answer held back
        if request.method == "POST" and rid and response.status_code == 200 and carried_out:
            company = store.companies.get(realm)
            if company is not None:
                with company.lock:
                    company.replies.setdefault(rid, (200, response.get_data()))
        emu.core.record(
            CallRecord(
                at=datetime.now(UTC).isoformat(),
                method=request.method,
                path=request.path,
                query=request.query_string.decode(),
                tenant=realm,
                status=response.status_code,
                category="data",
                request_id=rid,
            )
        )
        if fault is not None:
            fault.hold_answer()  # delay_after: the write is done and logged; the answer waits
        return response

    @api.errorhandler(QboFault)
    def on_fault(fault: QboFault) -> Response:
        return _fault_response(emu, fault, g.get("realm", ""))

    @api.errorhandler(QuerySyntaxError)
    def on_query_error(exc: QuerySyntaxError) -> Response:
        fault = QboFault(400, "4000", "Error parsing query", f"QueryParserError: {exc}")
        return _fault_response(emu, fault, g.get("realm", ""))

    def _time(realm: str) -> str:
        return store.response_time(store.company(realm))

    @api.route("/query", methods=["GET", "POST"])
    def query(realm: str) -> Response:
        text = request.args.get("query") if request.method == "GET" else request.get_data(as_text=True)
        if not text:
            raise QboFault(400, "4000", "Error parsing query", "QueryParserError: empty query")
        return emu.json({"QueryResponse": store.run_query(realm, text), "time": _time(realm)})

    @api.get("/cdc")
    def cdc(realm: str) -> Response:
        company = store.company(realm)
        names = [n.strip() for n in request.args.get("entities", "").split(",") if n.strip()]
        unknown = [n for n in names if n not in _PATHS.values()]
        if not names or unknown:
            raise QboFault(400, "4000", "Error processing the request", f"Unsupported CDC entities: {unknown}")
        since = parse_changed_since(request.args.get("changedSince", ""), company)
        now = store.response_time(company)
        blocks = store.cdc(realm, names, since)
        return emu.json({"CDCResponse": [{"QueryResponse": blocks}], "time": now})

    @api.post("/batch")
    def batch(realm: str) -> Response:
        body = request.get_json(silent=True) or {}
        items = body.get("BatchItemRequest") or []
        if not isinstance(items, list) or not items or len(items) > 30:  # max 30 (docs/provider-api-facts.md §1.6)
            raise QboFault(400, "4000", "Error processing the request", "BatchItemRequest must hold 1 to 30 items")
        out = []
        for item in items:
            bid = str(item.get("bId", ""))
            try:
                if "Query" in item:
                    out.append({"bId": bid, "QueryResponse": store.run_query(realm, str(item["Query"]))})
                    continue
                operation = item.get("operation", "create")
                entity = next((n for n in _PATHS.values() if n in item), None)
                if entity is None:
                    raise QboFault(400, "2010", "Request has invalid or unsupported property", "no entity in item")
                if operation == "create":
                    result = store.create(realm, entity, item[entity])
                elif operation == "update":
                    result = store.update(realm, entity, item[entity])
                elif operation == "delete":
                    result = store.delete(realm, entity, item[entity])
                else:
                    raise QboFault(400, "2170", "Invalid Enumeration", f"operation {operation}")
                out.append({"bId": bid, entity: _public(result)})
            except QboFault as fault:
                out.append({"bId": bid, "Fault": fault.body("")["Fault"]})
            except QuerySyntaxError as exc:
                parse_fault = QboFault(400, "4000", "Error parsing query", f"QueryParserError: {exc}")
                out.append({"bId": bid, "Fault": parse_fault.body("")["Fault"]})
        return emu.json({"BatchItemResponse": out, "time": _time(realm)})

    @api.get("/preferences")
    def preferences(realm: str) -> Response:
        company = store.company(realm)
        currency = {"MultiCurrencyEnabled": company.multicurrency, "HomeCurrency": {"value": company.currency}}
        return emu.json({"Preferences": {"CurrencyPrefs": currency, "Id": "1", "SyncToken": "0"}, "time": _time(realm)})

    @api.get("/companyinfo/<ident>")
    def company_info(realm: str, ident: str) -> Response:
        company = store.company(realm)
        return emu.json({"CompanyInfo": store.company_info(company), "time": _time(realm)})

    @api.get("/<path>/<ident>")
    def read(realm: str, path: str, ident: str) -> Response:
        entity = _PATHS.get(path)
        if entity is None:
            raise QboFault(400, "4000", "Unsupported entity", f"Unsupported entity {path}")
        obj = _public(store.read(realm, entity, ident))
        if entity == "Invoice" and "invoicelink" in request.args.get("include", "").lower():
            obj["InvoiceLink"] = store.invoice_link(realm, ident, emu.base_url)
        return emu.json({entity: obj, "time": _time(realm)})

    @api.get("/invoice/<ident>/pdf")
    def pdf(realm: str, ident: str) -> Response:
        invoice = store.read(realm, "Invoice", ident)
        return Response(_minimal_pdf(f"Invoice {invoice.get('DocNumber', ident)}"), mimetype="application/pdf")

    @api.post("/invoice/<ident>/send")
    def send(realm: str, ident: str) -> Response:
        invoice = store.send(realm, ident, request.args.get("sendTo"))
        return emu.json({"Invoice": invoice, "time": _time(realm)})

    @api.post("/<path>")
    def write(realm: str, path: str) -> Response:
        entity = _PATHS.get(path)
        if entity is None:
            raise QboFault(400, "4000", "Unsupported entity", f"Unsupported entity {path}")
        body = request.get_json(silent=True, force=True)
        if not isinstance(body, dict):
            raise QboFault(400, "2010", "Request has invalid or unsupported property", "Request body is not JSON")
        operation = request.args.get("operation", "")
        if operation == "delete":
            result = store.delete(realm, entity, body)
        elif operation == "void" or (operation == "update" and request.args.get("include") == "void"):
            result = store.void(realm, entity, body)
        elif body.get("Id"):
            result = store.update(realm, entity, body)
        else:
            result = store.create(realm, entity, body)
        return emu.json({entity: _public(result), "time": _time(realm)})

    return api


def _default_fault_body(emu: Emulator, status: int) -> dict[str, Any]:
    if status >= 500:
        fault = QboFault(
            status,
            "10000",
            "An application error has occurred while processing your request",
            "System Failure Error: An unexpected error occurred while accessing or saving your data.",
            "SystemFault",
        )
    else:
        fault = QboFault(
            status,
            "6000",
            "A business validation error has occurred while processing your request",
            "Business Validation Error: injected fault",
        )
    return fault.body(emu.store.response_time())


def _broken_stream() -> Iterator[bytes]:
    yield b'{"QueryResponse":'
    raise ConnectionAbortedError("emulator fault: connection dropped")


def _oauth_blueprint(emu: Emulator) -> Blueprint:
    oauth = Blueprint("qbo_oauth", __name__)

    def record(status: int) -> None:
        emu.core.record(
            CallRecord(datetime.now(UTC).isoformat(), request.method, request.path, "", "", status, "oauth")
        )

    @oauth.errorhandler(OAuthError)
    def on_error(exc: OAuthError) -> Response:
        record(exc.status)
        return emu.json(exc.body(), exc.status)

    @oauth.get("/.well-known/openid_configuration")
    @oauth.get("/.well-known/openid_configuration/")
    def discovery() -> Response:
        base = emu.base_url or request.host_url.rstrip("/")
        return emu.json(
            {
                "issuer": base,
                "authorization_endpoint": f"{base}/connect/oauth2",
                "token_endpoint": f"{base}/oauth2/v1/tokens/bearer",
                "userinfo_endpoint": f"{base}/v1/openid_connect/userinfo",
                "revocation_endpoint": f"{base}/v2/oauth2/tokens/revoke",
                "jwks_uri": f"{base}/op/v1/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": ["openid", "email", "profile", "address", "phone"],
                "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
                "claims_supported": ["aud", "exp", "iat", "iss", "realmid", "sub"],
            }
        )

    @oauth.get("/op/v1/jwks")
    def jwks() -> Response:
        return emu.json({"keys": []})

    @oauth.get("/connect/oauth2")
    def authorize_page() -> Response | tuple[str, int]:
        args = request.args
        if args.get("client_id") not in emu.oauth.apps or args.get("response_type") != "code":
            return "<h1>Invalid request</h1><p>Unknown client or response type.</p>", 400
        companies = list(emu.store.companies.values())
        hidden = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
            for k, v in args.items()
            if k in ("client_id", "scope", "redirect_uri", "state")
        )
        options = "".join(
            f'<label><input type="radio" name="realm" value="{c.realm}"{" checked" if i == 0 else ""}> '
            f"{html.escape(c.name)} ({c.realm})</label><br>"
            for i, c in enumerate(companies)
        )
        page = (
            "<!DOCTYPE html><html><head><title>Connect to QuickBooks (emulator)</title></head><body>"
            "<h1>Connect your QuickBooks company</h1>"
            f'<form method="post" action="/connect/oauth2/decide">{hidden}{options or "<p>No companies.</p>"}'
            '<button name="decision" value="approve">Connect</button> '
            '<button name="decision" value="deny">Cancel</button></form></body></html>'
        )
        return page, 200

    @oauth.post("/connect/oauth2/decide")
    def decide() -> WerkzeugResponse | tuple[str, int]:
        form = request.form
        redirect_uri = form.get("redirect_uri", "")
        state = form.get("state", "")
        if form.get("client_id") not in emu.oauth.apps or not redirect_uri:
            return "<h1>Invalid request</h1>", 400
        if form.get("decision") != "approve":
            return redirect(f"{redirect_uri}?{urlencode({'error': 'access_denied', 'state': state})}", 302)
        realm = form.get("realm", "")
        if realm not in emu.store.companies:
            return "<h1>Pick a company</h1>", 400
        scopes = tuple(form.get("scope", ACCOUNTING_SCOPE).split())
        code = emu.oauth.issue_code(realm, form["client_id"], scopes, redirect_uri)
        # The callback carries code, state and realmId (docs/provider-api-facts.md §1.1).
        return redirect(f"{redirect_uri}?{urlencode({'code': code, 'state': state, 'realmId': realm})}", 302)

    @oauth.post("/oauth2/v1/tokens/bearer")
    def token() -> Response:
        client_id, secret = _basic_auth()
        emu.oauth.check_client(client_id, secret)
        form = request.form
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            body = emu.oauth.exchange(client_id, form.get("code", ""), form.get("redirect_uri", ""))
        elif grant_type == "refresh_token":
            body = emu.oauth.refresh(client_id, form.get("refresh_token", ""))
        else:
            raise OAuthError(400, "unsupported_grant_type", "Unsupported grant type")
        record(200)
        return emu.json(body)

    @oauth.post("/v2/oauth2/tokens/revoke")
    def revoke() -> Response:
        client_id, secret = _basic_auth()
        emu.oauth.check_client(client_id, secret)
        payload = request.get_json(silent=True, force=True) or {}
        emu.oauth.revoke(client_id, str(payload.get("token", "")))
        record(200)
        return Response(b"", status=200)

    @oauth.get("/v1/openid_connect/userinfo")
    def userinfo() -> Response:
        return emu.json({"sub": "emulator-user", "email": "owner@example.com", "emailVerified": True})

    return oauth


def _admin_blueprint(emu: Emulator) -> Blueprint:
    admin = Blueprint("qbo_admin", __name__, url_prefix="/__admin")
    store = emu.store

    def body() -> dict[str, Any]:
        data = request.get_json(silent=True)
        return data if isinstance(data, dict) else {}

    @admin.errorhandler(QboFault)
    def on_fault(fault: QboFault) -> Response:
        return _fault_response(emu, fault)

    @admin.errorhandler(ValueError)
    def on_value(exc: ValueError) -> Response:
        return emu.json({"error": str(exc)}, 400)

    @admin.get("/companies")
    def companies() -> Response:
        return emu.json([{"realm": c.realm, "name": c.name, "currency": c.currency} for c in store.companies.values()])

    @admin.post("/companies")
    def add_company() -> Response:
        data = body()
        company = store.add_company(
            str(data.get("name") or "Emulated Company"),
            realm=str(data.get("realm") or ""),
            currency=str(data.get("currency") or "USD"),
            multicurrency=bool(data.get("multicurrency", False)),
            utc_offset_hours=int(data.get("utc_offset_hours", -7)),
        )
        return emu.json({"realm": company.realm, "name": company.name})

    @admin.post("/companies/<realm>/<path>")
    def add_entity(realm: str, path: str) -> Response:
        entity = _PATHS.get(path.rstrip("s"))
        if entity is None:
            raise ValueError(f"unknown entity collection {path}")
        return emu.json({entity: _public(store.create(realm, entity, body()))})

    @admin.post("/companies/<realm>/<path>/<ident>")
    def change_entity(realm: str, path: str, ident: str) -> Response:
        """Sparse-update an entity as a user in QuickBooks would (bumps SyncToken, notifies)."""
        entity = _PATHS.get(path.rstrip("s"))
        if entity is None:
            raise ValueError(f"unknown entity collection {path}")
        current = store.read(realm, entity, ident)
        changes = {**body(), "Id": ident, "SyncToken": current["SyncToken"], "sparse": True}
        return emu.json({entity: _public(store.update(realm, entity, changes))})

    @admin.get("/companies/<realm>/<path>")
    def list_entities(realm: str, path: str) -> Response:
        entity = _PATHS.get(path.rstrip("s"))
        if entity is None:
            raise ValueError(f"unknown entity collection {path}")
        company = store.company(realm)
        with company.lock:
            items = [_public(o) for o in company.entities[entity].values()]
        return emu.json({"count": len(items), entity: items})

    @admin.post("/companies/<realm>/seed")
    def seed_route(realm: str) -> Response:
        from providers.quickbooks.emulator.seed import seed

        data = body()
        return emu.json(
            seed(
                store,
                realm,
                customers=int(data.get("customers", 10)),
                invoices=int(data.get("invoices", 0)),
                paid_every=int(data.get("paid_every", 0)),
                currency=str(data.get("currency") or ""),
            )
        )

    @admin.post("/companies/<realm>/pay")
    def record_payment(realm: str) -> Response:
        """Record a customer payment against one invoice: {invoice_id, amount?} (default: the balance)."""
        data = body()
        invoice = store.read(realm, "Invoice", str(data.get("invoice_id", "")))
        amount = data.get("amount", invoice["Balance"])
        payment = store.create(
            realm,
            "Payment",
            {
                "CustomerRef": invoice["CustomerRef"],
                "TotalAmt": amount,
                "TxnDate": data.get("date") or None,
                "Line": [{"Amount": amount, "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}],
            },
        )
        return emu.json({"Payment": _public(payment)})

    @admin.post("/companies/<realm>/tokens")
    def tokens(realm: str) -> Response:
        store.company(realm)
        client_id = str(body().get("client_id") or next(iter(emu.oauth.apps)))
        return emu.json(emu.oauth.grant_tokens(realm, client_id))

    @admin.post("/companies/<realm>/expire-access")
    def expire(realm: str) -> Response:
        emu.oauth.expire_access(realm)
        return emu.json({"ok": True})

    @admin.post("/companies/<realm>/revoke")
    def revoke(realm: str) -> Response:
        emu.oauth.revoke_realm(realm)
        return emu.json({"ok": True})

    @admin.post("/oauth")
    def oauth_settings() -> Response:
        data = body()
        for name in ("access_ttl_s", "refresh_ttl_s", "grace_s"):
            if name in data:
                setattr(emu.oauth.settings, name, int(data[name]))
        if "strict" in data:
            emu.oauth.settings.strict = bool(data["strict"])
        return emu.json(asdict(emu.oauth.settings))

    @admin.post("/apps")
    def apps() -> Response:
        data = body()
        emu.oauth.apps[str(data["client_id"])] = str(data["client_secret"])
        return emu.json({"ok": True})

    @admin.post("/webhooks")
    def webhooks() -> Response:
        data = body()
        config = emu.notifier.config
        config.url = str(data.get("url", config.url))
        config.verifier_token = str(data.get("verifier_token", config.verifier_token))
        if data.get("format") not in (None, "legacy", "cloudevents"):
            raise ValueError("format is legacy or cloudevents")
        config.format = str(data.get("format") or config.format)
        return emu.json({"url": config.url, "format": config.format})

    @admin.get("/webhooks")
    def deliveries() -> Response:
        emu.notifier.wait_idle(2.0)
        return emu.json({"deliveries": [asdict(d) for d in emu.notifier.deliveries]})

    return admin


def build_app(emu: Emulator) -> Flask:
    app = Flask("providers.quickbooks.emulator")
    app.config["MAX_CONTENT_LENGTH"] = 4 * 1024 * 1024
    app.register_blueprint(_api_blueprint(emu))
    app.register_blueprint(_oauth_blueprint(emu))
    app.register_blueprint(admin_blueprint(emu.core))
    app.register_blueprint(_admin_blueprint(emu))
    app.extensions["qbo_emulator"] = emu
    return app
