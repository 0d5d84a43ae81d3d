"""Outbox actions: GET /api/v1/orgs/{org_id}/actions (by state, client, kind, scheduled range; cursor pages)
and POST .../actions/{action_id}/approve | skip | retry | mark-sent. Any member reads; owners and
accountants act."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import marshmallow as ma
from flask_smorest import Blueprint

from connector.receivables import actions as service
from connector.receivables.common import ROW_ID_MAX
from connector.receivables.views import ActionView
from connector.storage import Store
from web.api import context
from web.api.pagination import PageArgsSchema, page_request, page_schema
from web.api.receivables_pages import service_cursor, service_page
from web.api.receivables_schemas import ACTION_KINDS, ACTION_STATES, ActionSchema
from web.extensions import services

blp = Blueprint("actions", __name__, description="The outbox: what Nudge will do, did, or waits for you to decide")


class ActionArgsSchema(PageArgsSchema):
    """Filters of the action listing (all optional)."""

    state = ma.fields.String(load_default=None, validate=ma.validate.OneOf(ACTION_STATES))
    client_id = ma.fields.Integer(load_default=None, validate=ma.validate.Range(min=1, max=ROW_ID_MAX))
    kind = ma.fields.String(load_default=None, validate=ma.validate.OneOf(ACTION_KINDS))
    due_from = ma.fields.AwareDateTime(load_default=None, metadata={"description": "scheduled at or after"})
    due_to = ma.fields.AwareDateTime(load_default=None, metadata={"description": "scheduled at or before"})


@blp.get("/orgs/<int:org_id>/actions")
@blp.arguments(ActionArgsSchema, location="query")
@blp.response(200, page_schema(ActionSchema))
def actions(args: dict[str, Any], org_id: int) -> dict[str, Any]:
    """Actions of every client you may see, by scheduled instant then id."""
    page = page_request(args)
    filters = service.ActionFilter(
        state=args["state"],
        connection_id=args["client_id"],
        kind=args["kind"],
        due_from=args["due_from"],
        due_to=args["due_to"],
    )
    found = service.list_actions(
        services().store,
        org_id,
        connection_ids=context.visible_connection_ids(org_id),
        filters=filters,
        cursor=service_cursor(page),
        limit=page.limit,
    )
    return service_page(found, page)


Operation = Callable[..., ActionView]


def _operate(operation: Operation, org_id: int, action_id: int) -> ActionView:
    context.ensure_role(*context.WRITERS)
    store: Store = services().store
    now: datetime = services().clock.now()
    return operation(
        store, org_id, action_id, context.actor(), now, connection_ids=context.visible_connection_ids(org_id)
    )


@blp.post("/orgs/<int:org_id>/actions/<int:action_id>/approve")
@blp.response(200, ActionSchema)
def approve(org_id: int, action_id: int) -> ActionView:
    """Release an action awaiting approval (planned: carried out when due); the last one of a review ends it."""
    return _operate(service.approve_action, org_id, action_id)


@blp.post("/orgs/<int:org_id>/actions/<int:action_id>/skip")
@blp.response(200, ActionSchema)
def skip(org_id: int, action_id: int) -> ActionView:
    """Drop a planned action, or one awaiting approval, for good (never planned again)."""
    return _operate(service.skip_action, org_id, action_id)


@blp.post("/orgs/<int:org_id>/actions/<int:action_id>/retry")
@blp.response(200, ActionSchema)
def retry(org_id: int, action_id: int) -> ActionView:
    """Put a failed action back in the outbox: attempts reset, same idempotency key (never written twice)."""
    return _operate(service.retry_action, org_id, action_id)


@blp.post("/orgs/<int:org_id>/actions/<int:action_id>/mark-sent")
@blp.response(200, ActionSchema)
def mark_sent(org_id: int, action_id: int) -> ActionView:
    """Record that an email whose delivery was uncertain reached the customer (it then counts as sent)."""
    return _operate(service.mark_sent, org_id, action_id)
