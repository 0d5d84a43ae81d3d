"""GET /api/v1/me: the caller, and the organizations they can reach (a token: its one organization)."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask_smorest import Blueprint

from connector.accounts.members import lesser_role
from web.api import context
from web.api.schemas import OrganizationSchema
from web.extensions import services

blp = Blueprint("me", __name__, description="The signed-in user or the API token's owner")


class MeSchema(ma.Schema):
    """The caller."""

    id = ma.fields.Integer(required=True)
    email = ma.fields.String(required=True)
    display_name = ma.fields.String(required=True)
    token = ma.fields.String(
        required=True, allow_none=True, metadata={"description": "the API token's prefix; null for a session"}
    )
    organizations = ma.fields.List(ma.fields.Nested(OrganizationSchema), required=True)


@blp.get("/me")
@blp.response(200, MeSchema)
def me() -> dict[str, Any]:
    """Who is calling, and the organizations they may use here."""
    token = context.api_token()
    with services().store.unit_of_work() as uow:
        user = uow.users.get(context.user_id())
        assert user is not None  # web.api.auth loaded this user for the request
        organizations = [
            {
                "id": org.id,
                "name": org.name,
                "role": (lesser_role(token.role, role) if token is not None else role).value,
            }
            for org, role in uow.organizations.for_user(user.id)
            if token is None or org.id == token.organization_id
        ]
        return {
            "id": user.id,
            "email": user.email,
            "display_name": user.display_name or "",
            "token": token.prefix if token is not None else None,
            "organizations": organizations,
        }
