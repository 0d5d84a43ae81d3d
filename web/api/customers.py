"""A client's customers with their overrides (connector.library.overrides). Customers are named by their row
id (`id`); the ledger's id is the field `external_id`. Every member reads; owners and accountants change.

    GET   /api/v1/orgs/{org_id}/clients/{connection_id}/customers?search=&cursor=&limit=
    GET   /api/v1/orgs/{org_id}/clients/{connection_id}/customers/{customer_id}/overrides
    PATCH /api/v1/orgs/{org_id}/clients/{connection_id}/customers/{customer_id}/overrides
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask_smorest import Blueprint

from connector.errors import InvalidInput
from connector.library import overrides as service
from web.api import context
from web.api.pagination import PageArgsSchema, encode_cursor, page_request, page_schema
from web.extensions import services

blp = Blueprint("customers", __name__, description="Customers of a client and their overrides")


def _override_fields(*, for_input: bool) -> dict[str, ma.fields.Field]:
    options: dict[str, Any] = {"allow_none": True} if for_input else {"required": True, "allow_none": True}
    fields: dict[str, ma.fields.Field] = {
        "paused_until": ma.fields.Date(metadata={"description": "nothing goes out before this date"}, **options),
        "excluded": ma.fields.Boolean(metadata={"description": "never chased"}, **options),
        "dispute": ma.fields.Boolean(metadata={"description": "no reminders or fees while true"}, **options),
        "dispute_reason": ma.fields.String(metadata={"description": "required while disputed"}, **options),
        "promise_to_pay_until": ma.fields.Date(metadata={"description": "the date the customer promised"}, **options),
        "promise_amount": ma.fields.String(
            metadata={"description": "amount promised as text (null: the whole balance)"}, **options
        ),
        "promise_currency": ma.fields.String(
            metadata={"description": "the currency of the customer's invoices (asked when several)"}, **options
        ),
        "promise_grace_days": ma.fields.Integer(
            strict=True, metadata={"description": "0..30 days after the promised date"}, **options
        ),
        "cadence_id": ma.fields.Integer(strict=True, metadata={"description": "null: the client's cadence"}, **options),
        "recipients_to": ma.fields.List(
            ma.fields.String(), metadata={"description": "null: the ledger's addresses"}, **options
        ),
        "recipients_cc": ma.fields.List(ma.fields.String(), metadata={"description": "null: the ledger's"}, **options),
        "locale": ma.fields.String(metadata={"description": "e.g. fr_FR; empty: the client's"}, **options),
        "time_zone": ma.fields.String(metadata={"description": "IANA zone; empty: the client's"}, **options),
        "holiday_calendar": ma.fields.String(metadata={"description": '"CC" or "CC-REGION"'}, **options),
    }
    if not for_input:
        fields["cadence_name"] = ma.fields.String(required=True, allow_none=True)
        fields["legacy_cadence"] = ma.fields.String(
            required=True, metadata={"description": "a cadence named before the library (read only)"}
        )
    return fields


CustomerOverridesPatchSchema = ma.Schema.from_dict(_override_fields(for_input=True), name="CustomerOverridesPatch")
CustomerOverridesSchema = ma.Schema.from_dict(_override_fields(for_input=False), name="CustomerOverrides")


class CustomerSchema(ma.Schema):
    """A customer of a client and its overrides."""

    id = ma.fields.Integer(required=True)
    connection_id = ma.fields.Integer(required=True)
    external_id = ma.fields.String(required=True, metadata={"description": "the ledger's id"})
    name = ma.fields.String(required=True)
    emails = ma.fields.List(ma.fields.String(), required=True, metadata={"description": "the ledger's addresses"})
    cc_emails = ma.fields.List(ma.fields.String(), required=True)
    overrides = ma.fields.Nested(CustomerOverridesSchema, required=True)
    updated_at = ma.fields.AwareDateTime(required=True, allow_none=True)


class CustomerListArgsSchema(PageArgsSchema):
    """Paging plus a search in the customers' names."""

    search = ma.fields.String(
        load_default="", validate=ma.validate.Length(max=200), metadata={"description": "part of the name, any case"}
    )


CustomerPageSchema = page_schema(CustomerSchema)


def customer_body(view: service.CustomerView) -> dict[str, Any]:
    """A customer view as a response body."""
    return {
        "id": view.id,
        "connection_id": view.connection_id,
        "external_id": view.external_id,
        "name": view.name,
        "emails": list(view.emails),
        "cc_emails": list(view.cc_emails),
        "overrides": dict(view.overrides),
        "updated_at": view.updated_at,
    }


def _position(value: Any) -> tuple[str, int] | None:
    if value is None:
        return None
    if (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], int)
        and not isinstance(value[1], bool)
    ):
        return value[0], value[1]
    raise InvalidInput("the cursor belongs to another list", "cursor")


@blp.get("/orgs/<int:org_id>/clients/<int:connection_id>/customers")
@blp.arguments(CustomerListArgsSchema, location="query")
@blp.response(200, CustomerPageSchema)
@blp.alt_response(404, response="NOT_FOUND")
def list_customers(args: dict[str, Any], org_id: int, connection_id: int) -> dict[str, Any]:
    """The client's customers by name, with their overrides; `search` filters by part of the name."""
    context.connection_or_404(org_id, connection_id)
    page = page_request(args)
    with services().store.unit_of_work() as uow:
        found = service.list_customers(
            uow, org_id, connection_id, search=args["search"], after=_position(page.position), limit=page.limit
        )
    return {
        "items": [customer_body(view) for view in found.items],
        "next_cursor": encode_cursor(list(found.next_position), page.scope) if found.next_position else None,
    }


@blp.get("/orgs/<int:org_id>/clients/<int:connection_id>/customers/<int:customer_id>/overrides")
@blp.response(200, CustomerSchema)
@blp.alt_response(404, response="NOT_FOUND")
def get_customer_overrides(org_id: int, connection_id: int, customer_id: int) -> dict[str, Any]:
    """One customer of the client with its overrides."""
    context.connection_or_404(org_id, connection_id)
    with services().store.unit_of_work() as uow:
        return customer_body(service.customer_overrides(uow, org_id, connection_id, customer_id))


@blp.patch("/orgs/<int:org_id>/clients/<int:connection_id>/customers/<int:customer_id>/overrides")
@context.require_role(*context.WRITERS)
@blp.arguments(CustomerOverridesPatchSchema)
@blp.response(200, CustomerSchema)
@blp.alt_response(403, response="FORBIDDEN")
@blp.alt_response(404, response="NOT_FOUND")
def patch_customer_overrides(
    changes: dict[str, Any], org_id: int, connection_id: int, customer_id: int
) -> dict[str, Any]:
    """Change some overrides (null clears one). Audited and on the customer's timeline."""
    context.connection_or_404(org_id, connection_id)
    found = services()
    view = service.update_customer_overrides(
        found.store, org_id, connection_id, customer_id, changes, context.actor(), found.clock.now()
    )
    return customer_body(view)
