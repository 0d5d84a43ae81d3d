"""What a resource view needs to know about the caller: who acts, with which role, on which clients.

Everything here reads what web.api.auth and web.access left on `flask.g` for the current request:
`g.organization` and `g.role` (the role already capped by the API token, if any), `g.member_scope`
(connector.accounts.members.MemberScope), and `g.api_token` for token requests.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

from flask import abort, g
from flask_login import current_user  # type: ignore[import-untyped, unused-ignore]

from connector.accounts import members
from connector.accounts.tokens import TokenIdentity
from connector.domain.model import Role
from web.access import OrganizationView
from web.extensions import services

P = ParamSpec("P")
R = TypeVar("R")

WRITERS = (Role.OWNER, Role.ACCOUNTANT)


@dataclass(frozen=True, slots=True)
class ConnectionRef:
    """A connection (client) the caller may see, detached from the database session."""

    id: int
    organization_id: int
    provider: str
    name: str
    status: str


def user_id() -> int:
    """The acting user's id (the token's owner for token requests)."""
    return int(current_user.user_id)


def api_token() -> TokenIdentity | None:
    """The API token of this request, or None for a session request."""
    token: TokenIdentity | None = g.get("api_token")
    return token


def actor() -> str:
    """Who acts, for the audit log: the user's email, plus " (API token <prefix>)" for token requests."""
    token = api_token()
    email = str(current_user.email)
    return f"{email} (API token {token.prefix})" if token is not None else email


def organization() -> OrganizationView:
    """The organization of an organization-scoped route (membership already checked)."""
    found: OrganizationView | None = g.get("organization")
    if found is None:
        raise RuntimeError("not an organization-scoped route: its rule must carry <int:org_id>")
    return found


def role() -> Role:
    """The caller's role in the route's organization (the token's role, capped by the member's)."""
    found: Role | None = g.get("role")
    if found is None:
        raise RuntimeError("not an organization-scoped route: its rule must carry <int:org_id>")
    return found


def ensure_role(*roles: Role | str) -> None:
    """403 (problem) unless the caller holds one of `roles` (viewers only read: pass WRITERS for changes)."""
    if role() not in {Role(r) for r in roles}:
        abort(403, description="Your role in this organization (or your API token's) does not allow this.")


def require_role(*roles: Role | str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorator: the view runs only for callers holding one of `roles`, others get a 403 problem."""
    if not roles:
        raise ValueError("require_role needs at least one role")

    def decorate(view: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(view)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            ensure_role(*roles)
            return view(*args, **kwargs)

        return wrapper

    return decorate


def _scope(org_id: int) -> members.MemberScope | None:
    scope: members.MemberScope | None = g.get("member_scope")
    if scope is not None and scope.organization_id == org_id:
        return scope
    with services().store.unit_of_work() as uow:
        return members.scope(uow, user_id(), org_id)


def visible_connection_ids(org_id: int) -> set[int] | None:
    """The connections the caller may see in `org_id`: None for all, else the client-limited member's set."""
    scope = _scope(org_id)
    if scope is None:
        return set()
    ids = scope.visible_connection_ids()
    return None if ids is None else set(ids)


def connection_or_404(org_id: int, connection_id: int) -> ConnectionRef:
    """The connection `connection_id` of `org_id` if the caller may see it; else a 404 problem."""
    scope = _scope(org_id)
    if scope is None or not scope.sees(connection_id):
        abort(404)
    with services().store.unit_of_work() as uow:
        row = uow.connections.get(org_id, connection_id)
        if row is None:
            abort(404)
        return ConnectionRef(row.id, row.organization_id, row.provider, row.name or row.tenant_id, row.status)
