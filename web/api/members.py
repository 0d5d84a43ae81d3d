"""Members of an organization: /api/v1/orgs/{org_id}/members (list; owners change role and client limits)."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask_smorest import Blueprint

from connector.accounts import members
from connector.accounts.members import MemberView
from connector.domain.model import Role
from web.api import context
from web.api.pagination import PageArgsSchema, page_of, page_request, page_schema
from web.api.schemas import ROLES
from web.extensions import services

blp = Blueprint("members", __name__, description="Members of the organization, their roles and clients")


class MemberSchema(ma.Schema):
    """A member (`id` is the membership's id)."""

    id = ma.fields.Integer(required=True)
    user_id = ma.fields.Integer(required=True)
    email = ma.fields.String(required=True)
    display_name = ma.fields.String(required=True)
    role = ma.fields.String(required=True, validate=ma.validate.OneOf(ROLES))
    client_limited = ma.fields.Boolean(required=True, metadata={"description": "sees only `connection_ids`"})
    connection_ids = ma.fields.List(ma.fields.Integer(), required=True)


class MemberChangeSchema(ma.Schema):
    """What an owner may change; omitted fields stay as they are."""

    role = ma.fields.String(validate=ma.validate.OneOf(ROLES))
    client_limited = ma.fields.Boolean()
    connection_ids = ma.fields.List(
        ma.fields.Integer(strict=True, validate=ma.validate.Range(min=1)),
        validate=ma.validate.Length(max=1000),
        metadata={"description": "the clients a client-limited member sees"},
    )


MemberPage = page_schema(MemberSchema)


def _dump(view: MemberView, visible: set[int] | None) -> dict[str, Any]:
    # A client-limited caller learns nothing about clients outside their own.
    ids = [cid for cid in view.connection_ids if visible is None or cid in visible]
    return {
        "id": view.id,
        "user_id": view.user_id,
        "email": view.email,
        "display_name": view.display_name,
        "role": view.role.value,
        "client_limited": view.client_limited,
        "connection_ids": ids,
    }


@blp.get("/orgs/<int:org_id>/members")
@blp.arguments(PageArgsSchema, location="query")
@blp.response(200, MemberPage)
def list_members(args: dict[str, Any], org_id: int) -> dict[str, Any]:
    """The organization's members in order of joining."""
    page = page_request(args)
    after = page.position if isinstance(page.position, int) else None
    visible = context.visible_connection_ids(org_id)
    with services().store.unit_of_work() as uow:
        rows = members.members_of(uow, org_id, after_id=after, limit=page.limit + 1)
    return page_of(rows, page, position=lambda view: view.id, item=lambda view: _dump(view, visible))


@blp.patch("/orgs/<int:org_id>/members/<int:member_id>")
@blp.arguments(MemberChangeSchema)
@blp.response(200, MemberSchema)
@context.require_role(Role.OWNER)
def update_member(body: dict[str, Any], org_id: int, member_id: int) -> dict[str, Any]:
    """Change a member's role, client limit or clients (owners only; the last owner stays an owner)."""
    svc = services()
    with svc.store.unit_of_work() as uow:
        view = members.update_member(
            uow,
            organization_id=org_id,
            member_id=member_id,
            acting_user_id=context.user_id(),
            now=svc.clock.now(),
            actor=context.actor(),
            role=body.get("role"),
            client_limited=body.get("client_limited"),
            connection_ids=body.get("connection_ids"),
        )
        uow.commit()
    return _dump(view, None)
