"""Who is calling the API: the web session (Flask-Login) or `Authorization: Bearer <personal API token>`.

Two before-request hooks, in this order around web.access's membership check:

1. `authenticate` (installed before web.access): for an API route other than the public documentation,
   a bearer token is checked (connector.accounts.tokens) and, when valid, becomes the request's user for
   Flask-Login and `g.api_token` (its one organization and capped role, which web.access applies); with
   no Authorization header the session must be signed in. Anything else is 401 (problem+json with
   `WWW-Authenticate: Bearer`). A request that carries both uses the token and ignores the cookie.
2. `after_membership` (installed after CSRFProtect): session-authenticated unsafe methods must carry the
   session's CSRF token (X-CSRFToken header); token requests are exempt (no ambient credential to
   forge). Then the caller's rate limit is counted (web.api.ratelimit).
"""

from __future__ import annotations

from flask import Flask, abort, g, request
from flask.typing import ResponseReturnValue
from flask_login import current_user  # type: ignore[import-untyped, unused-ignore]

from connector.accounts import tokens
from web.api.problems import is_api_request
from web.extensions import csrf, services
from web.users import WebUser

UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Served without authentication: the OpenAPI document and its rendered docs.
PUBLIC_ENDPOINTS = frozenset({"api-docs.openapi_json", "api_docs.page"})
INVALID_TOKEN = "The API token is not valid (unknown, revoked, or its member left the organization)."


def _needs_auth() -> bool:
    return is_api_request() and request.url_rule is not None and request.endpoint not in PUBLIC_ENDPOINTS


def _bearer(header: str) -> str | None:
    scheme, _, secret = header.partition(" ")
    return secret.strip() if scheme.lower() == "bearer" and secret.strip() else None


def authenticate() -> ResponseReturnValue | None:
    """Before-request hook (ahead of web.access): a valid token or a signed-in session, else 401."""
    if not _needs_auth():
        return None
    header = request.headers.get("Authorization")
    if header is None:
        if not current_user.is_authenticated:
            abort(401)
        return None
    secret = _bearer(header)
    if secret is None:
        abort(401, description="Use `Authorization: Bearer <token>`.")
    svc = services()
    with svc.store.unit_of_work() as uow:
        identity = tokens.authenticate(uow, secret, svc.clock.now())
        user = uow.users.get(identity.user_id) if identity is not None else None
        if identity is None or user is None:
            abort(401, description=INVALID_TOKEN)
        web_user = WebUser.from_model(user)
        uow.commit()  # last_used_at
    g.api_token = identity
    # Flask-Login reads the request's user from g._login_user before it looks at the session: the token's
    # user is the request's user, whatever cookie came along.
    g._login_user = web_user
    return None


def after_membership() -> ResponseReturnValue | None:
    """Before-request hook (after web.access and CSRFProtect): CSRF for session writes, then the rate limit."""
    if not _needs_auth():
        return None
    if g.get("api_token") is None and request.method in UNSAFE:
        csrf.protect()
    from web.api import ratelimit

    ratelimit.hit()
    return None


def init_auth(app: Flask) -> None:
    """Install `authenticate`; call before web.access.init_app so the membership check sees the token."""
    app.before_request(authenticate)


def init_checks(app: Flask) -> None:
    """Install `after_membership`; call after CSRFProtect.init_app (API blueprints are exempt from its hook)."""
    app.before_request(after_membership)
