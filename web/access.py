"""The membership check every organization-scoped route goes through.

A route is organization-scoped when its rule carries `<int:org_id>`. `enforce_membership` runs before
every request (ahead of CSRF and the view) and, for such routes, requires a signed-in user who is a
member of that organization; anyone else gets 404 — the same answer as for an organization that does
not exist, so ids reveal nothing. The organization and the user's role are left in `g.organization`
and `g.role`; `require_role` narrows a view to some roles (403: the member already knows the org).
`check_rules` refuses, at start-up, a rule that could slip past the check — `org_id` without the int
converter, or the organization under another name such as `organization_id` (RuntimeError: a bug).
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

from connector.domain.model import Role
from web.extensions import login_manager, services

ORG_ARG = "org_id"
_ORG_LIKE = re.compile(r"(^|_)org(_|$)|organi[sz]ation", re.IGNORECASE)

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class OrganizationView:
    """The organization of the current request, detached from the database session."""

    id: int
    name: str


def enforce_membership() -> ResponseReturnValue | None:
    """Before-request hook: for an organization-scoped route, sign-in and membership or 404."""
    view_args = request.view_args or {}
    if ORG_ARG not in view_args:
        return None
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    org_id = view_args[ORG_ARG]
    if not isinstance(org_id, int) or isinstance(org_id, bool):
        abort(404)
    with services().store.unit_of_work() as uow:
        role = uow.memberships.role(current_user.user_id, org_id)
        organization = uow.organizations.get(org_id) if role is not None else None
        if role is None or organization is None:
            abort(404)
        g.organization = OrganizationView(id=organization.id, name=organization.name)
        g.role = Role(role)
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
    """Fail start-up if a rule could escape the check: `org_id` not an int, or the org under another name."""
    loose = [
        rule.rule for rule in organization_rules(app) if not isinstance(rule._converters.get(ORG_ARG), IntegerConverter)
    ]
    if loose:
        raise RuntimeError(f"organization-scoped routes must use <int:{ORG_ARG}>: {', '.join(sorted(loose))}")
    renamed = [
        rule.rule
        for rule in app.url_map.iter_rules()
        if any(_ORG_LIKE.search(name) for name in rule.arguments if name != ORG_ARG)
    ]
    if renamed:
        raise RuntimeError(
            f"name the organization <int:{ORG_ARG}> so the membership check applies: {', '.join(sorted(renamed))}"
        )


def init_app(app: Flask) -> None:
    """Install the membership check; call before CSRFProtect so non-members get 404 on any method."""
    app.before_request(enforce_membership)
