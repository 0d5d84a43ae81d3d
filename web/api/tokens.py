"""Personal API tokens: /api/v1/orgs/{org_id}/tokens (list mine, create, revoke).

A token is created from a signed-in session only (a token cannot mint tokens), is shown once, and acts in
this organization with at most its member's role. Revoking works from the session or from a token (one
of your own, e.g. the token itself).
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import abort
from flask_smorest import Blueprint

from connector.accounts import tokens
from connector.accounts.tokens import TokenView
from web.api import context
from web.api.pagination import PageArgsSchema, page_of, page_request, page_schema
from web.api.schemas import ROLES
from web.extensions import services

blp = Blueprint("tokens", __name__, description="Personal API tokens (yours, in this organization)")


class TokenSchema(ma.Schema):
    """A token as its owner sees it: never the secret."""

    id = ma.fields.Integer(required=True)
    name = ma.fields.String(required=True)
    prefix = ma.fields.String(required=True, metadata={"description": "the secret's first characters"})
    role = ma.fields.String(required=True, validate=ma.validate.OneOf(ROLES))
    created_at = ma.fields.AwareDateTime(required=True)
    last_used_at = ma.fields.AwareDateTime(required=True, allow_none=True)


class NewTokenSchema(ma.Schema):
    """What to create: a name, and a role no higher than yours (default: yours)."""

    name = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=tokens.NAME_MAX))
    role = ma.fields.String(load_default=None, validate=ma.validate.OneOf(ROLES))


class CreatedTokenSchema(TokenSchema):
    """A new token with its secret: shown in this answer only, never again."""

    secret = ma.fields.String(required=True)


TokenPage = page_schema(TokenSchema)


def _dump(view: TokenView) -> dict[str, Any]:
    return {
        "id": view.id,
        "name": view.name,
        "prefix": view.prefix,
        "role": view.role.value,
        "created_at": view.created_at,
        "last_used_at": view.last_used_at,
    }


@blp.get("/orgs/<int:org_id>/tokens")
@blp.arguments(PageArgsSchema, location="query")
@blp.response(200, TokenPage)
def list_tokens(args: dict[str, Any], org_id: int) -> dict[str, Any]:
    """Your tokens in this organization that are not revoked, oldest first (never the secrets)."""
    page = page_request(args)
    after = page.position if isinstance(page.position, int) else None
    with services().store.unit_of_work() as uow:
        rows = tokens.for_member(uow, context.user_id(), org_id, after_id=after, limit=page.limit + 1)
    return page_of(rows, page, position=lambda view: view.id, item=_dump)


@blp.post("/orgs/<int:org_id>/tokens")
@blp.arguments(NewTokenSchema)
@blp.response(201, CreatedTokenSchema)
def create_token(body: dict[str, Any], org_id: int) -> dict[str, Any]:
    """Create a token for this organization; the answer holds the secret, which is never shown again."""
    if context.api_token() is not None:
        abort(403, description="Create tokens while signed in: a token cannot create tokens.")
    svc = services()
    with svc.store.unit_of_work() as uow:
        created = tokens.create(
            uow,
            user_id=context.user_id(),
            organization_id=org_id,
            name=body["name"],
            role=body["role"] or context.role(),
            now=svc.clock.now(),
            actor=context.actor(),
        )
        uow.commit()
    return {**_dump(created.token), "secret": created.secret}


@blp.delete("/orgs/<int:org_id>/tokens/<int:token_id>")
@blp.response(204)
def revoke_token(org_id: int, token_id: int) -> None:
    """Revoke one of your tokens: it stops working at once."""
    svc = services()
    with svc.store.unit_of_work() as uow:
        tokens.revoke(
            uow,
            user_id=context.user_id(),
            organization_id=org_id,
            token_id=token_id,
            now=svc.clock.now(),
            actor=context.actor(),
        )
        uow.commit()
