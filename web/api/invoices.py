"""Invoices: GET /api/v1/orgs/{org_id}/invoices (filtered, cursor pages) and one invoice's detail with its
timeline, GET /api/v1/orgs/{org_id}/clients/{connection_id}/invoices/{invoice_id}. Any member reads."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask_smorest import Blueprint

from connector.receivables.common import ROW_ID_MAX
from connector.receivables.invoices import BUCKETS, InvoiceFilter, invoice_detail, list_invoices
from web.api import context
from web.api.pagination import PageArgsSchema, page_request, page_schema
from web.api.receivables_pages import service_cursor, service_page
from web.api.receivables_schemas import INVOICE_STATUSES, InvoiceDetailSchema, InvoiceSchema
from web.extensions import services

blp = Blueprint("invoices", __name__, description="Invoices across the clients you may see, and their timelines")


class InvoiceArgsSchema(PageArgsSchema):
    """Filters of the invoice listing (all optional)."""

    client_id = ma.fields.Integer(load_default=None, validate=ma.validate.Range(min=1, max=ROW_ID_MAX))
    customer_id = ma.fields.Integer(
        load_default=None,
        validate=ma.validate.Range(min=1, max=ROW_ID_MAX),
        metadata={"description": "the customer's internal id"},
    )
    status = ma.fields.String(load_default=None, validate=ma.validate.OneOf(INVOICE_STATUSES))
    aging = ma.fields.String(
        load_default=None,
        validate=ma.validate.OneOf(BUCKETS),
        metadata={"description": "days past due on the client's calendar; open invoices with a balance"},
    )
    due_from = ma.fields.Date(load_default=None)
    due_to = ma.fields.Date(load_default=None)
    search = ma.fields.String(
        load_default=None,
        validate=ma.validate.Length(min=1, max=200),
        metadata={"description": "part of the number or of the customer's name, any case"},
    )
    has_plan = ma.fields.Boolean(
        load_default=None, metadata={"description": "true: with an active payment plan; false: without"}
    )
    disputed = ma.fields.Boolean(
        load_default=None, metadata={"description": "true: the invoice or its customer is in dispute; false: neither"}
    )


@blp.get("/orgs/<int:org_id>/invoices")
@blp.arguments(InvoiceArgsSchema, location="query")
@blp.response(200, page_schema(InvoiceSchema))
def invoices(args: dict[str, Any], org_id: int) -> dict[str, Any]:
    """Invoices of every client you may see, by due date (none last) then id; filter by client, customer,
    status, aging bucket, due range, payment plan, dispute, or search the number and customer name."""
    page = page_request(args)
    filters = InvoiceFilter(
        connection_id=args["client_id"],
        customer_id=args["customer_id"],
        status=args["status"],
        aging=args["aging"],
        due_from=args["due_from"],
        due_to=args["due_to"],
        search=args["search"],
        has_plan=args["has_plan"],
        disputed=args["disputed"],
    )
    found = list_invoices(
        services().store,
        org_id,
        services().clock.now(),
        connection_ids=context.visible_connection_ids(org_id),
        filters=filters,
        cursor=service_cursor(page),
        limit=page.limit,
    )
    return service_page(found, page)


@blp.get("/orgs/<int:org_id>/clients/<int:connection_id>/invoices/<int:invoice_id>")
@blp.response(200, InvoiceDetailSchema)
def invoice(org_id: int, connection_id: int, invoice_id: int) -> Any:
    """One invoice (internal id) with its customer, payments, actions and timeline, newest first (each entry in
    plain words, reminders with the id of their email as sent, ledger writes with a link into the ledger)."""
    context.connection_or_404(org_id, connection_id)
    return invoice_detail(
        services().store,
        org_id,
        connection_id,
        invoice_id,
        services().clock.now(),
        connection_ids=context.visible_connection_ids(org_id),
        registry=services().registry,
    )
