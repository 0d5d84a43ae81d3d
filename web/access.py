"""The membership check every organization-scoped route goes through.

A route is organization-scoped when its rule carries `<int:org_id>`. `enforce_membership` runs before
every request (ahead of CSRF and the view) and, for such routes, requires a signed-in user who is a
member of that organization; anyone else gets 404 — the same answer as for an organization that does
not exist, so ids reveal nothing. The organization and the user's role are left in `g.organization`
and `g.role`; `require_role` narrows a view to some roles (403: the member already knows the org).
`check_rules` refuses, at start-up, a rule that could slip past the check — `org_id` without the int
converter, or the organization under another name such as `organization_id` (RuntimeError: a bug).

A route that also carries `<int:connection_id>` is client-scoped: the connection must belong to the
organization and, for a member limited to some clients, be one of theirs (else 404, as for a missing one).
`check_rules` refuses a client under another name (`client_id`, `conn_id`, ...) or without the int converter,
and a client route without the organization.

API requests (web.api.auth) may act through a personal API token, left in `g.api_token`: it works in its
one organization only (404 elsewhere) and with its own role capped by the member's current role.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

from flask import Flask, abort, g, request
from flask.typing import ResponseReturnValue
from flask_login import current_user  # type: ignore[import-untyped, unused-ignore]
from werkzeug.routing import IntegerConverter, Rule

from connector.accounts.members import lesser_role
from connector.accounts.members import scope as member_scope
from connector.domain.model import Role
from web.extensions import login_manager, services

ORG_ARG = "org_id"
CONNECTION_ARG = "connection_id"
_ORG_LIKE = re.compile(r"(^|_)org(_|$)|organi[sz]ation", re.IGNORECASE)
_CLIENT_LIKE = re.compile(r"(^|_)(client|conn|connection)s?(_|$)", re.IGNORECASE)

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class OrganizationView:
    """The organization of the current request, detached from the database session."""

    id: int
    name: str


MAX_ROW_ID = 2**31 - 1  # ids are 32-bit INTEGER columns; a larger number names no row (and SQLite cannot bind it)


def enforce_membership() -> ResponseReturnValue | None:
    """Before-request hook: for an organization-scoped route, sign-in and membership or 404 (and the client).
    Any id in the path beyond what a row can have is 404 on every route, before a query could choke on it."""
    view_args = request.view_args or {}
    if any(isinstance(value, int) and not 0 <= value <= MAX_ROW_ID for value in view_args.values()):
        abort(404)
    if ORG_ARG not in view_args:
        return None
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    org_id = view_args[ORG_ARG]
    if not isinstance(org_id, int) or isinstance(org_id, bool):
        abort(404)
    token = g.get("api_token")  # web.api.auth: a personal API token acts in its one organization only
    if token is not None and token.organization_id != org_id:
        abort(404)
    with services().store.unit_of_work() as uow:
        scope = member_scope(uow, current_user.user_id, org_id)
        organization = uow.organizations.get(org_id) if scope is not None else None
        if scope is None or organization is None:
            abort(404)
        if CONNECTION_ARG in view_args:
            connection_id = view_args[CONNECTION_ARG]
            if not isinstance(connection_id, int) or not scope.sees(connection_id):
                abort(404)
            if uow.connections.get(org_id, connection_id) is None:
                abort(404)
        g.organization = OrganizationView(id=organization.id, name=organization.name)
        g.role = scope.role if token is None else lesser_role(token.role, scope.role)
        g.member_scope = scope
    return None


def require_role(*roles: Role | str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Limit an organization-scoped view to members holding one of `roles` (others get 403)."""
    allowed = frozenset(Role(role) for role in roles)
    if not allowed:
        raise ValueError("require_role needs at least one role")

    def decorate(view: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(view)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            role = g.get("role")
            if role is None:
                raise RuntimeError(f"require_role on {view.__name__}, which is not an organization-scoped route")
            if role not in allowed:
                abort(403)
            return view(*args, **kwargs)

        return wrapper

    return decorate


def organization_rules(app: Flask) -> list[Rule]:
    """Every URL rule of `app` that names `org_id` (the routes the membership check guards)."""
    return [rule for rule in app.url_map.iter_rules() if ORG_ARG in rule.arguments]


def check_rules(app: Flask) -> None:
    """Fail start-up if a rule could escape the checks: `org_id` or `connection_id` not an int, the organization
    or a client under another name, or a client route outside an organization."""
    loose = [
        rule.rule for rule in organization_rules(app) if not isinstance(rule._converters.get(ORG_ARG), IntegerConverter)
    ]
    loose += [
        rule.rule
        for rule in app.url_map.iter_rules()
        if CONNECTION_ARG in rule.arguments and not isinstance(rule._converters.get(CONNECTION_ARG), IntegerConverter)
    ]
    if loose:
        raise RuntimeError(
            f"organization- and client-scoped routes must use <int:{ORG_ARG}> and <int:{CONNECTION_ARG}>: "
            f"{', '.join(sorted(loose))}"
        )
    renamed = [
        rule.rule
        for rule in app.url_map.iter_rules()
        if any(_ORG_LIKE.search(name) for name in rule.arguments if name != ORG_ARG)
    ]
    if renamed:
        raise RuntimeError(
            f"name the organization <int:{ORG_ARG}> so the membership check applies: {', '.join(sorted(renamed))}"
        )
    clients = [
        rule.rule
        for rule in app.url_map.iter_rules()
        if any(_CLIENT_LIKE.search(name) for name in rule.arguments if name != CONNECTION_ARG)
        or (CONNECTION_ARG in rule.arguments and ORG_ARG not in rule.arguments)
    ]
    if clients:
        raise RuntimeError(
            f"name a client <int:{CONNECTION_ARG}> under <int:{ORG_ARG}> so the client check applies: "
            f"{', '.join(sorted(clients))}"
        )


def init_app(app: Flask) -> None:
    """Install the membership check; call before CSRFProtect so non-members get 404 on any method."""
    app.before_request(enforce_membership)
