"""People's tasks: GET /api/v1/orgs/{org_id}/tasks (state, client, assignee; cursor pages) and
POST .../tasks/{task_id}/complete with a note. Any member reads; owners and accountants complete."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask_smorest import Blueprint

from connector.receivables.common import ROW_ID_MAX
from connector.receivables.tasks import STATES, complete, list_tasks_page
from connector.tasks.service import OUTCOME_MAX, TaskView
from web.api import context
from web.api.pagination import PageArgsSchema, page_request, page_schema
from web.api.receivables_pages import service_cursor, service_page
from web.api.receivables_schemas import TaskSchema
from web.extensions import services

blp = Blueprint("tasks", __name__, description="Calls to make and debts to take over")


class TaskArgsSchema(PageArgsSchema):
    """Filters of the task listing."""

    state = ma.fields.String(
        load_default="open", validate=ma.validate.OneOf([*STATES, "all"]), metadata={"description": "default open"}
    )
    client_id = ma.fields.Integer(load_default=None, validate=ma.validate.Range(min=1, max=ROW_ID_MAX))
    assignee_id = ma.fields.Integer(
        load_default=None,
        validate=ma.validate.Range(min=1, max=ROW_ID_MAX),
        metadata={"description": "the assignee's user id"},
    )


class CompleteTaskSchema(ma.Schema):
    """What happened: kept with the task, in the timeline and, when its step says so, as a ledger note."""

    note = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=OUTCOME_MAX))


@blp.get("/orgs/<int:org_id>/tasks")
@blp.arguments(TaskArgsSchema, location="query")
@blp.response(200, page_schema(TaskSchema))
def tasks(args: dict[str, Any], org_id: int) -> dict[str, Any]:
    """Tasks of the clients you may see, by due date then id (open ones unless `state` says otherwise)."""
    page = page_request(args)
    found = list_tasks_page(
        services().store,
        org_id,
        connection_ids=context.visible_connection_ids(org_id),
        state=None if args["state"] == "all" else args["state"],
        connection_id=args["client_id"],
        assignee_user_id=args["assignee_id"],
        cursor=service_cursor(page),
        limit=page.limit,
    )
    return service_page(found, page)


@blp.post("/orgs/<int:org_id>/tasks/<int:task_id>/complete")
@blp.arguments(CompleteTaskSchema)
@blp.response(200, TaskSchema)
def complete_task(body: dict[str, Any], org_id: int, task_id: int) -> TaskView:
    """Complete an open task with what happened."""
    context.ensure_role(*context.WRITERS)
    return complete(
        services().store,
        org_id,
        task_id,
        context.actor(),
        body["note"],
        services().clock.now(),
        connection_ids=context.visible_connection_ids(org_id),
    )
