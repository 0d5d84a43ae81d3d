"""Schemas shared by API resources."""

from __future__ import annotations

import marshmallow as ma

from connector.domain.model import Role

ROLES = [role.value for role in Role]


class OrganizationSchema(ma.Schema):
    """An organization as one of its members sees it."""

    id = ma.fields.Integer(required=True)
    name = ma.fields.String(required=True)
    role = ma.fields.String(required=True, validate=ma.validate.OneOf(ROLES), metadata={"description": "your role"})
