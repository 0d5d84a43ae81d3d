"""QuickBooks-specific admin routes of the emulator under /__admin: companies and their entities, seed
data, payments, tokens, OAuth settings, apps and webhooks (the shared ones live in providers._emulator.admin)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from flask import Blueprint, Response, request

from providers.quickbooks.emulator.runtime import current, fault_response
from providers.quickbooks.emulator.store import _PATHS, QboFault, _public

admin = Blueprint("qbo_admin", __name__, url_prefix="/__admin")


def _body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    return data if isinstance(data, dict) else {}


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
    emu = current()
    store = emu.store
    data = _body()
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
            "CustomerRef": invoice["CustomerRef"],
            "TotalAmt": amount,
            "TxnDate": data.get("date") or None,
            "Line": [{"Amount": amount, "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}],
        },
    )
    return emu.json({"Payment": _public(payment)})


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
