"""The activity timeline: GET /api/v1/orgs/{org_id}/activity, newest first, of the organization or one client,
customer or invoice (internal ids); cursor pages. Any member reads."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask_smorest import Blueprint

from connector.receivables.activity import list_activity
from connector.receivables.common import ROW_ID_MAX
from web.api import context
from web.api.pagination import PageArgsSchema, page_request, page_schema
from web.api.receivables_pages import service_cursor, service_page
from web.api.receivables_schemas import ActivitySchema
from web.extensions import services

blp = Blueprint("activity", __name__, description="What happened, newest first")


class ActivityArgsSchema(PageArgsSchema):
    """Whose timeline (all optional; a customer's or an invoice's, not both)."""

    client_id = ma.fields.Integer(load_default=None, validate=ma.validate.Range(min=1, max=ROW_ID_MAX))
    customer_id = ma.fields.Integer(load_default=None, validate=ma.validate.Range(min=1, max=ROW_ID_MAX))
    invoice_id = ma.fields.Integer(load_default=None, validate=ma.validate.Range(min=1, max=ROW_ID_MAX))


@blp.get("/orgs/<int:org_id>/activity")
@blp.arguments(ActivityArgsSchema, location="query")
@blp.response(200, page_schema(ActivitySchema))
def activity(args: dict[str, Any], org_id: int) -> dict[str, Any]:
    """The activity log, newest first (a client-limited member: their clients' entries only)."""
    page = page_request(args)
    found = list_activity(
        services().store,
        org_id,
        connection_ids=context.visible_connection_ids(org_id),
        connection_id=args["client_id"],
        customer_id=args["customer_id"],
        invoice_id=args["invoice_id"],
        cursor=service_cursor(page),
        limit=page.limit,
    )
    return service_page(found, page)
