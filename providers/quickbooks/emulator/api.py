"""The v3 accounting API of the QuickBooks emulator under /v3/company/<realm>: query, CDC, batch, reads,
writes, PDFs; every call passes the guard (faults, limits, bearer token, requestid replay).

Wire behaviour follows docs/provider-api-facts.md §1 and §3.2: python-quickbooks posts queries as
`application/text`, sends `minorversion` and `requestid` as query parameters, reads Faults from 200s too.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, g, request

from providers._emulator import CallRecord, Fault
from providers.quickbooks.emulator.query import QuerySyntaxError
from providers.quickbooks.emulator.runtime import Emulator, current, fault_response
from providers.quickbooks.emulator.store import _PATHS, QboFault, Store, _public, parse_changed_since


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


api = Blueprint("qbo_api", __name__, url_prefix="/v3/company/<realm>")


def _fault_answer(emu: Emulator, fault: Fault, realm: str) -> Response | None:
    """What an armed fault does before the call is served: an answer in place of it, or None to go on."""
    if fault.kind == "delay":
        time.sleep(fault.seconds)
    elif fault.kind == "revoke":
        emu.oauth.revoke_realm(realm)
    elif fault.kind == "status":
        headers = {k: v for k, v in fault.headers.items() if k.lower() != "content-type"}
        mimetype = next((v for k, v in fault.headers.items() if k.lower() == "content-type"), "application/json")
        return Response(
            fault.body or json.dumps(_default_fault_body(emu, fault.status)),
            status=fault.status,
            mimetype=mimetype,
            headers=headers,
        )
    elif fault.kind == "html":
        return _html_page(fault.status)
    elif fault.kind == "disconnect":
        sock = request.environ.get("werkzeug.socket")
        if sock is not None:  # drop the connection without an answer
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        return Response(_broken_stream(), status=200, mimetype="application/json", headers={"Content-Length": "4096"})
    return None


def _replayed(store: Store, realm: str) -> Response | None:
    """The saved answer of a POST whose requestid was seen before: nothing is re-executed (§1.2)."""
    rid = request.args.get("requestid")
    company = store.companies.get(realm) if request.method == "POST" and rid else None
    if company is None:
        return None
    with company.lock:
        saved = company.replies.get(rid or "")
    return None if saved is None else Response(saved[1], status=saved[0], mimetype="application/json")


@api.before_request
def guard() -> Response | None:
    """Faults, then limits, then the bearer token, then requestid replay: in the order QBO applies them."""
    emu = current()
    realm = (request.view_args or {}).get("realm", "")
    g.realm = realm
    g.admitted = False
    emu.usage.arrive(realm)  # concurrency as the client sends it, before any limit refuses (RS-20)
    g.arrived = True
    emu.core.pause()
    fault = emu.core.take_fault(request.method, request.path)
    g.fault = fault
    if fault is not None and (answer := _fault_answer(emu, fault, realm)) is not None:
        return answer
    decision = emu.core.admit(realm)
    if not decision.allowed:
        return _throttled(emu, decision.retry_after, decision.problem)
    g.admitted = True
    header = request.headers.get("Authorization", "")
    why = emu.oauth.authorize(header[7:], realm) if header.startswith("Bearer ") else "Token missing"
    if why:
        return _unauthorized(emu, why)
    return _replayed(emu.store, realm)


@api.teardown_request
def leave(_exc: BaseException | None) -> None:
    if g.get("arrived"):
        current().usage.leave(g.get("realm", ""))


@api.after_request
def after(response: Response) -> Response:
    emu = current()
    store = emu.store
    realm = g.get("realm", "")
    if g.get("admitted"):
        emu.core.release(realm)
    fault = g.get("fault")
    if fault is not None and fault.kind == "malformed" and response.status_code == 200:
        data = response.get_data()
        response.set_data(data[: max(1, len(data) // 2)])
    rid = request.args.get("requestid", "")
    # delay_after and drop_after: the write is done and remembered; only its answer is held back or lost
    carried_out = fault is None or fault.kind in ("delay_after", "drop_after")
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
        fault.hold_answer()  # delay_after: the answer waits; drop_after: the connection closes without it
    return response


@api.errorhandler(QboFault)
def on_fault(fault: QboFault) -> Response:
    emu = current()
    return fault_response(emu, fault, g.get("realm", ""))


@api.errorhandler(QuerySyntaxError)
def on_query_error(exc: QuerySyntaxError) -> Response:
    emu = current()
    fault = QboFault(400, "4000", "Error parsing query", f"QueryParserError: {exc}")
    return fault_response(emu, fault, g.get("realm", ""))


def _time(realm: str) -> str:
    store = current().store
    return store.response_time(store.company(realm))


@api.route("/query", methods=["GET", "POST"])
def query(realm: str) -> Response:
    emu = current()
    store = emu.store
    text = request.args.get("query") if request.method == "GET" else request.get_data(as_text=True)
    if not text:
        raise QboFault(400, "4000", "Error parsing query", "QueryParserError: empty query")
    return emu.json({"QueryResponse": store.run_query(realm, text), "time": _time(realm)})


@api.get("/cdc")
def cdc(realm: str) -> Response:
    emu = current()
    store = emu.store
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
    emu = current()
    store = emu.store
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
    emu = current()
    store = emu.store
    company = store.company(realm)
    currency = {"MultiCurrencyEnabled": company.multicurrency, "HomeCurrency": {"value": company.currency}}
    return emu.json({"Preferences": {"CurrencyPrefs": currency, "Id": "1", "SyncToken": "0"}, "time": _time(realm)})


@api.get("/companyinfo/<ident>")
def company_info(realm: str, ident: str) -> Response:
    emu = current()
    store = emu.store
    company = store.company(realm)
    return emu.json({"CompanyInfo": store.company_info(company), "time": _time(realm)})


@api.get("/<path>/<ident>")
def read(realm: str, path: str, ident: str) -> Response:
    emu = current()
    store = emu.store
    entity = _PATHS.get(path)
    if entity is None:
        raise QboFault(400, "4000", "Unsupported entity", f"Unsupported entity {path}")
    obj = _public(store.read(realm, entity, ident))
    if entity == "Invoice" and "invoicelink" in request.args.get("include", "").lower():
        obj["InvoiceLink"] = store.invoice_link(realm, ident, emu.base_url)
    answer = emu.json({entity: obj, "time": _time(realm)})
    store.edit_after_read(realm, entity, ident)  # the "SyncToken bump between read and write" knob (RS-22)
    return answer


@api.get("/invoice/<ident>/pdf")
def pdf(realm: str, ident: str) -> Response:
    store = current().store
    invoice = store.read(realm, "Invoice", ident)
    return Response(_minimal_pdf(f"Invoice {invoice.get('DocNumber', ident)}"), mimetype="application/pdf")


@api.post("/invoice/<ident>/send")
def send(realm: str, ident: str) -> Response:
    emu = current()
    store = emu.store
    invoice = store.send(realm, ident, request.args.get("sendTo"))
    return emu.json({"Invoice": invoice, "time": _time(realm)})


@api.post("/<path>")
def write(realm: str, path: str) -> Response:
    emu = current()
    store = emu.store
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
