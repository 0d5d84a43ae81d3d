"""GET /api/v1/orgs/{org_id}: one organization (membership checked by web.access)."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from web.api import context
from web.api.schemas import OrganizationSchema

blp = Blueprint("organizations", __name__, description="Organizations")


@blp.get("/orgs/<int:org_id>")
@blp.response(200, OrganizationSchema)
def organization(org_id: int) -> dict[str, Any]:
    """The organization, and your role in it (an API token's role where it is lower)."""
    org = context.organization()
    return {"id": org.id, "name": org.name, "role": context.role().value}
