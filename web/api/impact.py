"""POST /api/v1/orgs/{org_id}/library/{kind}/impact: what saving a cadence or policy would change, before it is saved.

The body proposes the change: `item_id` and `body` (an edit: the item's new definition, in the config file's
format), `body` and `name` without `item_id` (a new item), or `item_id` and `delete: true`. The answer lists every
client that uses the item (now or with the change) with its reminders added and removed (by day, customer and
step), its late fees added, removed or changed (amounts per currency, never mixed) and other actions by count, over
the next `days` days (14 by default), and the same summed over those clients. Nothing is saved: the change, once
saved through the library, applies from the next plan (connector.outbox.impact). Owners and accountants only; a
client-limited member sees only their clients.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import marshmallow as ma
from flask_smorest import Blueprint

from connector.domain.fees import ReferenceRates
from connector.domain.impact import ActionsDiff
from connector.domain.money import Money
from connector.errors import InvalidInput
from connector.outbox.impact import DEFAULT_DAYS, KINDS, MAX_DAYS, NAME_LENGTH, Impact, impact_of_change
from web.api import context
from web.extensions import services

blp = Blueprint("impact", __name__, description="Impact preview of a library change")

CHANGES = ["added", "removed", "changed"]


class ImpactRequestSchema(ma.Schema):
    """A proposed change of one library cadence or policy."""

    item_id = ma.fields.Integer(
        load_default=None, allow_none=True, metadata={"description": "the item changed or deleted; absent: a new item"}
    )
    name = ma.fields.String(
        load_default=None,
        allow_none=True,
        validate=ma.validate.Length(min=1, max=NAME_LENGTH),
        metadata={"description": "a new item's name, or an item's new name; absent: unchanged"},
    )
    body = ma.fields.Dict(
        keys=ma.fields.String(),
        load_default=None,
        allow_none=True,
        metadata={"description": "the item's proposed definition, as under `cadences.<name>` or `policies.*.<name>`"},
    )
    delete = ma.fields.Boolean(load_default=False, metadata={"description": "true: the impact of deleting the item"})
    days = ma.fields.Integer(
        load_default=DEFAULT_DAYS,
        validate=ma.validate.Range(min=1, max=MAX_DAYS),
        metadata={"description": "how many days ahead to compare"},
    )


class MoneySchema(ma.Schema):
    """An amount in one currency (a decimal string, rounded to the currency's minor unit)."""

    amount = ma.fields.String(required=True, metadata={"example": "25.00"})
    currency = ma.fields.String(required=True, metadata={"example": "GBP"})


class ReminderChangeSchema(ma.Schema):
    """A reminder the proposal adds or no longer sends."""

    change = ma.fields.String(required=True, validate=ma.validate.OneOf(CHANGES[:2]))
    day = ma.fields.Date(required=True, metadata={"description": "the customer's local date"})
    customer = ma.fields.String(required=True, metadata={"description": "the customer's id in the ledger"})
    customer_name = ma.fields.String(required=True)
    step = ma.fields.String(required=True)
    invoices = ma.fields.List(ma.fields.String(), required=True)


class FeeChangeSchema(ma.Schema):
    """A late fee the proposal adds, removes or charges at another amount."""

    change = ma.fields.String(required=True, validate=ma.validate.OneOf(CHANGES))
    day = ma.fields.Date(required=True)
    invoice = ma.fields.String(required=True)
    customer = ma.fields.String(required=True)
    customer_name = ma.fields.String(required=True)
    step = ma.fields.String(required=True)
    before = ma.fields.Nested(MoneySchema, required=True, allow_none=True)
    after = ma.fields.Nested(MoneySchema, required=True, allow_none=True)


class KindCountSchema(ma.Schema):
    """How many actions of one other kind (note, call task, escalation, hold …) each plan has, where they differ."""

    kind = ma.fields.String(required=True)
    current = ma.fields.Integer(required=True)
    proposed = ma.fields.Integer(required=True)


class ChangesSchema(ma.Schema):
    """The difference between the plan with the current library and with the proposed one."""

    unchanged = ma.fields.Boolean(required=True)
    reminders_added = ma.fields.Integer(required=True)
    reminders_removed = ma.fields.Integer(required=True)
    reminders = ma.fields.List(ma.fields.Nested(ReminderChangeSchema), required=True)
    fees = ma.fields.List(ma.fields.Nested(FeeChangeSchema), required=True)
    fees_current = ma.fields.List(
        ma.fields.Nested(MoneySchema), required=True, metadata={"description": "late fees per currency, current plan"}
    )
    fees_proposed = ma.fields.List(
        ma.fields.Nested(MoneySchema), required=True, metadata={"description": "… and with the proposal"}
    )
    fees_change = ma.fields.List(
        ma.fields.Nested(MoneySchema), required=True, metadata={"description": "proposed minus current, per currency"}
    )
    other_actions = ma.fields.List(ma.fields.Nested(KindCountSchema), required=True)


class ClientImpactSchema(ma.Schema):
    """What the proposal changes for one client."""

    connection_id = ma.fields.Integer(required=True)
    name = ma.fields.String(required=True)
    changes = ma.fields.Nested(ChangesSchema, required=True)


class ImpactSchema(ma.Schema):
    """What the proposal changes over the next `days` days, per client that uses the item and in total."""

    organization_id = ma.fields.Integer(required=True)
    kind = ma.fields.String(required=True, validate=ma.validate.OneOf(list(KINDS)))
    item_id = ma.fields.Integer(required=True, allow_none=True)
    name = ma.fields.String(required=True)
    change = ma.fields.String(required=True, validate=ma.validate.OneOf(["create", "update", "delete"]))
    start = ma.fields.DateTime(required=True)
    days = ma.fields.Integer(required=True)
    clients = ma.fields.List(ma.fields.Nested(ClientImpactSchema), required=True)
    total = ma.fields.Nested(ChangesSchema, required=True)


@blp.post("/orgs/<int:org_id>/library/<kind>/impact")
@blp.arguments(ImpactRequestSchema)
@blp.response(200, ImpactSchema)
@context.require_role(*context.WRITERS)
def impact(proposal: dict[str, Any], org_id: int, kind: str) -> dict[str, Any]:
    """Preview a cadence or policy change: what it adds, removes and changes for each client using it."""
    if kind not in KINDS:
        raise InvalidInput(f"expected one of {', '.join(KINDS)}", "kind")
    if proposal["delete"]:
        if proposal["item_id"] is None:
            raise InvalidInput("a deletion names the item to delete", "item_id")
        if proposal["body"] is not None:
            raise InvalidInput("a deletion carries no body", "body")
    elif proposal["body"] is None:
        raise InvalidInput("the proposed definition is required (or delete: true)", "body")
    found = services()
    settings = found.settings
    result = impact_of_change(
        found.store,
        org_id,
        settings.rules,
        kind,
        proposal["item_id"],
        None if proposal["delete"] else proposal["body"],
        found.clock.now(),
        proposal["days"],
        name=proposal["name"],
        rates=ReferenceRates(settings.statutory.uk_base_rate, settings.statutory.eu_reference_rate),
        connection_ids=context.visible_connection_ids(org_id),
    )
    return _impact_json(result)


def _impact_json(result: Impact) -> dict[str, Any]:
    return {
        "organization_id": result.organization_id,
        "kind": result.kind,
        "item_id": result.item_id,
        "name": result.name,
        "change": result.change,
        "start": result.start,
        "days": result.days,
        "clients": [
            {"connection_id": client.connection_id, "name": client.name, "changes": _changes_json(client.diff)}
            for client in result.clients
        ],
        "total": _changes_json(result.total),
    }


def _money(amount: Money | None) -> dict[str, str] | None:
    return None if amount is None else {"amount": str(amount.amount), "currency": amount.currency}


def _amounts(totals: Mapping[str, Money]) -> list[dict[str, str] | None]:
    return [_money(totals[currency]) for currency in sorted(totals)]


def _changes_json(diff: ActionsDiff) -> dict[str, Any]:
    return {
        "unchanged": diff.unchanged,
        "reminders_added": diff.reminders_added,
        "reminders_removed": diff.reminders_removed,
        "reminders": [
            {
                "change": r.change,
                "day": r.day,
                "customer": r.customer,
                "customer_name": r.customer_name,
                "step": r.step,
                "invoices": list(r.invoices),
            }
            for r in diff.reminders
        ],
        "fees": [
            {
                "change": f.change,
                "day": f.day,
                "invoice": f.invoice,
                "customer": f.customer,
                "customer_name": f.customer_name,
                "step": f.step,
                "before": _money(f.before),
                "after": _money(f.after),
            }
            for f in diff.fees
        ],
        "fees_current": _amounts(diff.fees_before),
        "fees_proposed": _amounts(diff.fees_after),
        "fees_change": _amounts(diff.fee_change),
        "other_actions": [
            {"kind": kind, "current": current, "proposed": proposed}
            for kind, (current, proposed) in sorted(diff.counts.items())
        ],
    }
