"""QuickBooks-specific admin routes of the emulator under /__admin: companies and their entities, seed
data, payments, tokens, OAuth settings, apps and webhooks (the shared ones live in providers._emulator.admin)."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from flask import Blueprint, Response, request

from providers._emulator import Fault
from providers.quickbooks.emulator.runtime import current, fault_response
from providers.quickbooks.emulator.store import _PATHS, QboFault, _public

admin = Blueprint("qbo_admin", __name__, url_prefix="/__admin")


def _body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    return data if isinstance(data, dict) else {}


def _currency_of(invoice: dict[str, Any]) -> dict[str, Any]:
    """The invoice's CurrencyRef for a payment or credit of it (none: the home currency)."""
    ref = invoice.get("CurrencyRef")
    return {"CurrencyRef": {"value": ref["value"]}} if isinstance(ref, dict) and ref.get("value") else {}


@admin.errorhandler(QboFault)
def on_fault(fault: QboFault) -> Response:
    emu = current()
    return fault_response(emu, fault)


@admin.errorhandler(ValueError)
def on_value(exc: ValueError) -> Response:
    emu = current()
    return emu.json({"error": str(exc)}, 400)


@admin.get("/companies")
def companies() -> Response:
    emu = current()
    store = emu.store
    return emu.json([{"realm": c.realm, "name": c.name, "currency": c.currency} for c in store.companies.values()])


@admin.post("/companies")
def add_company() -> Response:
    """{"name"?, "realm"?, "currency"?, "multicurrency"?, "utc_offset_hours"?, "country"?, "subdivision"?,
    "time_zone"? (IANA; replaces the fixed offset)}: a new company."""
    emu = current()
    store = emu.store
    data = _body()
    company = store.add_company(
        str(data.get("name") or "Emulated Company"),
        realm=str(data.get("realm") or ""),
        currency=str(data.get("currency") or "USD"),
        multicurrency=bool(data.get("multicurrency", False)),
        utc_offset_hours=int(data.get("utc_offset_hours", -7)),
        country=str(data.get("country") or "US"),
        subdivision=str(data.get("subdivision") or ""),
        time_zone=str(data.get("time_zone") or ""),
    )
    return emu.json({"realm": company.realm, "name": company.name})


@admin.post("/companies/<realm>/<path>")
def add_entity(realm: str, path: str) -> Response:
    emu = current()
    store = emu.store
    entity = _PATHS.get(path.rstrip("s"))
    if entity is None:
        raise ValueError(f"unknown entity collection {path}")
    return emu.json({entity: _public(store.create(realm, entity, _body()))})


@admin.post("/companies/<realm>/<path>/<ident>")
def change_entity(realm: str, path: str, ident: str) -> Response:
    """Sparse-update an entity as a user in QuickBooks would (bumps SyncToken, notifies)."""
    emu = current()
    store = emu.store
    entity = _PATHS.get(path.rstrip("s"))
    if entity is None:
        raise ValueError(f"unknown entity collection {path}")
    existing = store.read(realm, entity, ident)
    changes = {**_body(), "Id": ident, "SyncToken": existing["SyncToken"], "sparse": True}
    return emu.json({entity: _public(store.update(realm, entity, changes))})


@admin.get("/companies/<realm>/<path>")
def list_entities(realm: str, path: str) -> Response:
    emu = current()
    store = emu.store
    entity = _PATHS.get(path.rstrip("s"))
    if entity is None:
        raise ValueError(f"unknown entity collection {path}")
    company = store.company(realm)
    with company.lock:
        items = [_public(o) for o in company.entities[entity].values()]
    return emu.json({"count": len(items), entity: items})


@admin.post("/companies/<realm>/seed")
def seed_route(realm: str) -> Response:
    emu = current()
    store = emu.store
    from providers.quickbooks.emulator.seed import seed

    data = _body()
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
    emu = current()
    store = emu.store
    data = _body()
    invoice = store.read(realm, "Invoice", str(data.get("invoice_id", "")))
    amount = data.get("amount", invoice["Balance"])
    payment = store.create(
        realm,
        "Payment",
        {
            **_currency_of(invoice),
            "CustomerRef": invoice["CustomerRef"],
            "TotalAmt": amount,
            "TxnDate": data.get("date") or None,
            "Line": [{"Amount": amount, "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}],
        },
    )
    return emu.json({"Payment": _public(payment)})


@admin.post("/companies/<realm>/credit")
def record_credit(realm: str) -> Response:
    """A user credits an invoice: {invoice_id, amount, date?} → a CreditMemo applied to it by a zero Payment."""
    emu = current()
    store = emu.store
    data = _body()
    invoice = store.read(realm, "Invoice", str(data.get("invoice_id", "")))
    amount = data.get("amount")
    when = data.get("date") or None
    line = {
        "DetailType": "SalesItemLineDetail",
        "Amount": amount,
        "Description": "Credit",
        "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "Qty": 1, "UnitPrice": amount},
    }
    currency = _currency_of(invoice)
    memo = store.create(
        realm, "CreditMemo", {"CustomerRef": invoice["CustomerRef"], "TxnDate": when, "Line": [line], **currency}
    )
    store.create(
        realm,
        "Payment",
        {
            **currency,
            "CustomerRef": invoice["CustomerRef"],
            "TotalAmt": 0,
            "TxnDate": when,
            "Line": [
                {"Amount": amount, "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]},
                {"Amount": amount, "LinkedTxn": [{"TxnId": memo["Id"], "TxnType": "CreditMemo"}]},
            ],
        },
    )
    return emu.json({"CreditMemo": _public(store.read(realm, "CreditMemo", memo["Id"]))})


@admin.post("/companies/<realm>/overpay")
def record_overpayment(realm: str) -> Response:
    """A customer pays money no invoice takes: {customer_id, amount, date?} → a Payment left unapplied."""
    emu = current()
    data = _body()
    body: dict[str, Any] = {
        "CustomerRef": {"value": str(data.get("customer_id", ""))},
        "TotalAmt": data.get("amount"),
        "TxnDate": data.get("date") or None,
        "Line": [],
    }
    return emu.json({"Payment": _public(emu.store.create(realm, "Payment", body))})


@admin.post("/companies/<realm>/payments/<ident>/<operation>")
def remove_payment(realm: str, ident: str, operation: str) -> Response:
    """A user voids (`void`) or deletes (`delete`) a Payment: its invoices owe that money again."""
    emu = current()
    store = emu.store
    if operation not in ("void", "delete"):
        raise ValueError(f"unknown payment operation {operation!r}: void or delete")
    current_payment = store.read(realm, "Payment", ident)
    body = {"Id": ident, "SyncToken": current_payment["SyncToken"]}
    result = store.void(realm, "Payment", body) if operation == "void" else store.delete(realm, "Payment", body)
    return emu.json({"Payment": _public(result)})


@admin.post("/companies/<realm>/tokens")
def tokens(realm: str) -> Response:
    emu = current()
    store = emu.store
    store.company(realm)
    client_id = str(_body().get("client_id") or next(iter(emu.oauth.apps)))
    return emu.json(emu.oauth.grant_tokens(realm, client_id))


@admin.post("/companies/<realm>/expire-access")
def expire(realm: str) -> Response:
    emu = current()
    emu.oauth.expire_access(realm)
    return emu.json({"ok": True})


@admin.post("/companies/<realm>/revoke")
def revoke(realm: str) -> Response:
    emu = current()
    emu.oauth.revoke_realm(realm)
    return emu.json({"ok": True})


@admin.post("/oauth")
def oauth_settings() -> Response:
    emu = current()
    data = _body()
    for name in ("access_ttl_s", "refresh_ttl_s", "grace_s"):
        if name in data:
            setattr(emu.oauth.settings, name, int(data[name]))
    if "strict" in data:
        emu.oauth.settings.strict = bool(data["strict"])
    return emu.json(asdict(emu.oauth.settings))


@admin.post("/apps")
def apps() -> Response:
    emu = current()
    data = _body()
    emu.oauth.apps[str(data["client_id"])] = str(data["client_secret"])
    return emu.json({"ok": True})


@admin.post("/users")
def add_user() -> Response:
    """A new emulated Intuit user for the consent page's "Signed in to Intuit as" picker."""
    emu = current()
    data = _body()
    email = str(data.get("email") or "")
    if "@" not in email:
        raise ValueError("email is required")
    user = emu.oauth.add_user(
        email,
        str(data.get("given_name") or "Intuit"),
        str(data.get("family_name") or "User"),
        email_verified=bool(data.get("email_verified", True)),
    )
    return emu.json({"sub": user.sub, "email": user.email, "email_verified": user.email_verified})


@admin.post("/webhooks")
def webhooks() -> Response:
    emu = current()
    data = _body()
    config = emu.notifier.config
    config.url = str(data.get("url", config.url))
    config.verifier_token = str(data.get("verifier_token", config.verifier_token))
    if data.get("format") not in (None, "legacy", "cloudevents"):
        raise ValueError("format is legacy or cloudevents")
    config.format = str(data.get("format") or config.format)
    return emu.json({"url": config.url, "format": config.format})


@admin.get("/webhooks")
def deliveries() -> Response:
    emu = current()
    emu.notifier.wait_idle(2.0)
    return emu.json({"deliveries": [asdict(d) for d in emu.notifier.deliveries]})


def throttle_body(fmt: str, status: int, retry_after: int) -> tuple[str, str]:
    """(body, content type) of a ThrottleExceeded (3001) answer in QuickBooks' JSON or XML Fault format."""
    message = f"message=ThrottleExceeded; errorCode=003001; statusCode={status}"
    detail = f"The request limit was exceeded; retry after {retry_after} seconds."
    if fmt == "xml":
        body = (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<IntuitResponse xmlns="http://schema.intuit.com/finance/v3" time="2026-01-01T00:00:00.000-07:00">'
            f'<Fault type="ThrottleExceeded"><Error code="3001"><Message>{message}</Message>'
            f"<Detail>{detail}</Detail></Error></Fault></IntuitResponse>"
        )
        return body, "application/xml"
    if fmt != "json":
        raise ValueError("format is json or xml")
    fault = {"Error": [{"Message": message, "Detail": detail, "code": "3001"}], "type": "ThrottleExceeded"}
    return json.dumps({"Fault": fault, "time": "2026-01-01T00:00:00.000-07:00"}), "application/json"


@admin.post("/throttle")
def throttle() -> Response:
    """Arm ThrottleExceeded answers: {status: 429|403|200, format: json|xml, retry_after?, headers?, times?,
    every?, path?, method?} (RS-20). Nothing is carried out for a throttled call."""
    emu = current()
    data = _body()
    status = int(data.get("status", 429))
    if status not in (200, 403, 429):
        raise ValueError("status is 429, 403 or 200")
    retry_after = int(data.get("retry_after", 1))
    body, content_type = throttle_body(str(data.get("format") or "json"), status, retry_after)
    headers = {str(k): str(v) for k, v in dict(data.get("headers") or {}).items()}
    if data.get("retry_after") is not None:
        headers.setdefault("Retry-After", str(retry_after))
    headers["Content-Type"] = content_type
    emu.core.add_fault(
        Fault(
            kind="status",
            status=status,
            body=body,
            headers=headers,
            times=int(data.get("times", 1)),
            every=int(data.get("every", 1)),
            path=str(data.get("path", "/v3/company/")),
            method=str(data.get("method", "")),
        )
    )
    return emu.json({"ok": True})


@admin.get("/companies/<realm>/usage")
def usage(realm: str) -> Response:
    """The realm's peak concurrency and peak requests in any minute, as clients sent them."""
    emu = current()
    return emu.json(emu.usage.describe(realm))


@admin.post("/companies/<realm>/<path>/<ident>/edit-after-read")
def edit_after_read(realm: str, path: str, ident: str) -> Response:
    """{edits: [{field: value, ...}, ...]}: after each of the next reads of the object, a user applies one
    edit (sparse update: SyncToken bumps, as a Payment would) — a stale write follows (RS-22)."""
    emu = current()
    entity = _PATHS.get(path.rstrip("s"))
    if entity is None:
        raise ValueError(f"unknown entity collection {path}")
    edits = _body().get("edits")
    if not isinstance(edits, list) or not all(isinstance(e, dict) for e in edits):
        raise ValueError("edits is a list of objects")
    emu.store.edit_after_next_reads(realm, entity, ident, edits)
    return emu.json({"ok": True})
