"""Xero identity: authorize page, token endpoint (rotation, grace, invalid_grant), revocation, /connections.

Facts doc §2.1. The authorize page lists every organisation of the emulated user with checkboxes;
"Allow access" redirects back with `code` and `state`, "Cancel" with `error=access_denied`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

from flask import Blueprint, Response, redirect, render_template_string, request

from providers.xero.emulator.runtime import current
from providers.xero.emulator.state import CODE_TTL, ISSUER, REFRESH_GRACE, REFRESH_TTL, Grant, RefreshRecord, XeroState
from providers.xero.emulator.wire import json_response, problem

_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Xero (emulator) - authorise {{ app }}</title></head>
<body>
<h1>{{ app }} wants to access your Xero organisations</h1>
<p>Scopes: {{ scope }}</p>
<form method="post" action="{{ action }}">
  {% for name, value in hidden %}<input type="hidden" name="{{ name }}" value="{{ value }}">{% endfor %}
  <label>Signed in to Xero as <select name="user">
  {% for user in users %}<option value="{{ user.user_id }}"{% if user.user_id == default_user %} selected{% endif %}>
    {{ user.given_name }} {{ user.family_name }} &lt;{{ user.email }}&gt;</option>{% endfor %}
  </select></label>
  {% if needs_tenant %}<fieldset><legend>Choose organisations</legend>
  {% for ledger in ledgers %}
    <label><input type="checkbox" name="tenant" value="{{ ledger.tenant_id }}"{% if loop.first %} checked{% endif %}>
    {{ ledger.name }} ({{ ledger.tenant_type }})</label><br>
  {% endfor %}
  </fieldset>{% endif %}
  <button type="submit" name="decision" value="approve">Allow access</button>
  <button type="submit" name="decision" value="deny">Cancel</button>
</form>
</body></html>"""

_AUTH_PARAMS = (
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
    "nonce",
)


# Scopes that identify the user only: consent for them alone picks no organisation ("Sign in with Xero").
IDENTITY_SCOPES = frozenset({"openid", "profile", "email"})


def _oauth_error(error: str, status: int = 400, description: str = "") -> Response:
    body = {"error": error}
    if description:
        body["error_description"] = description
    return json_response(body, status)


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


bp = Blueprint("xero_identity", __name__)


def client_ok(client_id: str, secret: str) -> bool:
    state = current()
    client = state.clients.get(client_id)
    return client is not None and hmac.compare_digest(client.secret.encode(), secret.encode())


def redirect_ok(client_id: str, uri: str) -> bool:
    state = current()
    client = state.clients.get(client_id)
    if client is None or urlsplit(uri).scheme not in ("http", "https"):
        return False
    return not client.redirect_uris or uri in client.redirect_uris


def params() -> dict[str, str]:
    source = request.form if request.method == "POST" else request.args
    return {name: source.get(name, "") for name in _AUTH_PARAMS}


def _back(p: dict[str, str], **extra: str) -> Any:
    """Redirect to the client's redirect URI with `extra` (empty values left out) and its state."""
    query = {k: v for k, v in extra.items() if v}
    if p["state"]:
        query["state"] = p["state"]
    sep = "&" if "?" in p["redirect_uri"] else "?"
    return redirect(p["redirect_uri"] + sep + urlencode(query), code=302)


def _request_problem(p: dict[str, str]) -> dict[str, str] | None:
    """The OAuth error an authorize request earns before consent, or None."""
    if p["response_type"] != "code":
        return {"error": "unsupported_response_type"}
    if not p["scope"].split():
        return {"error": "invalid_scope"}
    if p["code_challenge"] and p["code_challenge_method"] not in ("S256", "plain", ""):
        return {"error": "invalid_request", "error_description": "unsupported code_challenge_method"}
    return None


def _consent_page(state: XeroState, p: dict[str, str], needs_tenant: bool) -> str:
    with state.lock:
        ledgers = list(state.ledgers.values())
        users = list(state.users.values())
    return render_template_string(
        _PAGE,
        app=p["client_id"],
        scope=p["scope"],
        action=request.path,
        hidden=[(k, v) for k, v in p.items() if v],
        ledgers=ledgers,
        users=users,
        default_user=state.default_user.user_id,
        needs_tenant=needs_tenant,
    )


def _decide(state: XeroState, p: dict[str, str], needs_tenant: bool) -> Any:
    """The user's answer on the consent page: a code for the chosen organisations, or access_denied."""
    if request.form.get("decision") != "approve":
        return _back(p, error="access_denied")
    tenants = request.form.getlist("tenant") if needs_tenant else []
    with state.lock:
        unknown = [t for t in tenants if t not in state.ledgers]
        if (needs_tenant and not tenants) or unknown:
            return Response("choose at least one organisation", 400, mimetype="text/plain")
        user_id = request.form.get("user") or state.default_user.user_id
        if user_id not in state.users:
            return Response("unknown user", 400, mimetype="text/plain")
        code = secrets.token_urlsafe(24)
        state.codes[code] = {
            "client_id": p["client_id"],
            "redirect_uri": p["redirect_uri"],
            "scope": p["scope"].split(),
            "tenants": tenants,
            "challenge": p["code_challenge"],
            "method": p["code_challenge_method"] or "plain",
            "nonce": p["nonce"],
            "user_id": user_id,
            "expires": state.now() + CODE_TTL,
        }
    return _back(p, code=code, scope=p["scope"], session_state=secrets.token_urlsafe(8))


@bp.route("/connect/authorize", methods=["GET", "POST"])
@bp.route("/identity/connect/authorize", methods=["GET", "POST"])
def authorize() -> Any:
    """The consent page (GET) and the user's decision (POST)."""
    state = current()
    p = params()
    if p["client_id"] not in state.clients:
        return Response("unauthorized_client: unknown client_id", 400, mimetype="text/plain")
    if not redirect_ok(p["client_id"], p["redirect_uri"]):
        # Never redirect to an unregistered URI: answer here instead.
        return Response("invalid redirect_uri", 400, mimetype="text/plain")
    problem = _request_problem(p)
    if problem is not None:
        return _back(p, **problem)
    needs_tenant = not set(p["scope"].split()) <= IDENTITY_SCOPES
    if request.method == "GET":
        return _consent_page(state, p, needs_tenant)
    return _decide(state, p, needs_tenant)


@bp.get("/.well-known/openid-configuration")
def discovery() -> Response:
    """The OpenID Provider metadata; endpoints on this host, `issuer` as real Xero names itself."""
    base = request.host_url.rstrip("/")
    return json_response(
        {
            "issuer": ISSUER,
            "authorization_endpoint": f"{base}/identity/connect/authorize",
            "token_endpoint": f"{base}/connect/token",
            "revocation_endpoint": f"{base}/connect/revocation",
            "jwks_uri": f"{base}/.well-known/openid-configuration/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "code_challenge_methods_supported": ["plain", "S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        }
    )


@bp.get("/.well-known/openid-configuration/jwks")
def jwks() -> Response:
    state = current()
    with state.lock:
        return json_response(state.jwks())


def _client_credentials() -> tuple[str, str]:
    """The client id and secret of a token or revocation request (Basic auth, else the form)."""
    form = request.form
    if request.authorization and request.authorization.type == "basic":
        return request.authorization.username or "", request.authorization.password or ""
    return form.get("client_id", ""), form.get("client_secret", "")


def _exchange_code(state: XeroState, client_id: str, now: datetime) -> Response:
    """grant_type=authorization_code: one use per code, same redirect URI, PKCE verifier checked."""
    form = request.form
    entry = state.codes.pop(form.get("code", ""), None)
    if entry is None or entry["client_id"] != client_id or now >= entry["expires"]:
        return _oauth_error("invalid_grant")
    if form.get("redirect_uri", "") != entry["redirect_uri"]:
        return _oauth_error("invalid_grant")
    if entry["challenge"]:
        verifier = form.get("code_verifier", "")
        expected = _s256(verifier) if entry["method"] == "S256" else verifier
        if not verifier or not hmac.compare_digest(expected, entry["challenge"]):
            return _oauth_error("invalid_grant")
    grant = state.approve(client_id, entry["tenants"], entry["scope"], entry.get("user_id", ""))
    return json_response(state.issue_tokens(grant, nonce=entry["nonce"]))


def _refresh_refused(state: XeroState, record: RefreshRecord | None, client_id: str, now: datetime) -> bool:
    """Whether Xero answers invalid_grant: unknown, revoked, expired, or superseded past the grace period."""
    if record is None or record.revoked:
        return True
    live = state.grants.get(record.grant_id)
    if live is None or live.revoked or live.client_id != client_id:
        return True
    if now - record.issued_at > REFRESH_TTL:
        return True
    return record.superseded_at is not None and (state.strict_refresh or now - record.superseded_at > REFRESH_GRACE)


def _refresh(state: XeroState, client_id: str, now: datetime) -> Response:
    """grant_type=refresh_token: rotation (the old token stays usable for the grace period)."""
    form = request.form
    record = state.refresh_tokens.get(form.get("refresh_token", ""))
    if record is None or _refresh_refused(state, record, client_id, now):
        return _oauth_error("invalid_grant")
    live = state.grants[record.grant_id]
    wanted = (form.get("scope") or "").split()
    if any(s not in live.scope for s in wanted):
        return _oauth_error("invalid_scope")
    if record.superseded_at is None:
        record.superseded_at = now
    state.refresh_count += 1
    body = state.issue_tokens(live, with_id_token=False)
    body["scope"] = " ".join(wanted or live.scope)
    return json_response(body)


@bp.post("/connect/token")
def token() -> Response:
    """The token endpoint: code exchange and refresh."""
    state = current()
    client_id, secret = _client_credentials()
    if not client_ok(client_id, secret):
        return _oauth_error("invalid_client", 400)
    grant_type = request.form.get("grant_type", "")
    with state.lock:
        now = state.now()
        if grant_type == "authorization_code":
            return _exchange_code(state, client_id, now)
        if grant_type == "refresh_token":
            return _refresh(state, client_id, now)
        return _oauth_error("unsupported_grant_type")


@bp.post("/connect/revocation")
def revocation() -> Response:
    state = current()
    form = request.form
    client_id, secret = _client_credentials()
    if not client_ok(client_id, secret):
        return _oauth_error("invalid_client", 400)
    with state.lock:
        token_value = form.get("token", "")
        record = state.refresh_tokens.get(token_value)
        grant_id = record.grant_id if record else (state.access_tokens.get(token_value) or ("", None))[0]
        grant = state.grants.get(grant_id) if grant_id else None
        if grant is not None and grant.client_id == client_id:
            # Facts doc §2.1: revoking a refresh token removes all of that user's connections.
            state.revoke_grant(grant)
    return Response(status=200)


def bearer_grant() -> tuple[Grant | None, Response | None]:
    state = current()
    header = request.headers.get("Authorization", "")
    token_value = header[7:] if header.lower().startswith("bearer ") else ""
    with state.lock:
        grant, reason = state.grant_for_access(token_value)
    if grant is None:
        return None, json_response(problem(401, "Unauthorized", reason), 401)
    return grant, None


@bp.get("/connections")
@bp.get("/Connections")
def connections() -> Response:
    state = current()
    grant, error = bearer_grant()
    if error or grant is None:
        return error or Response(status=401)
    event = request.args.get("authEventId", "")
    with state.lock:
        rows = [
            {k: v for k, v in c.items() if not k.startswith("_")}
            for c in state.connections
            if c["_client"] == grant.client_id
            and c["_user"] == grant.user_id
            and (not event or c["authEventId"] == event)
        ]
    return json_response(rows)


@bp.delete("/connections/<connection_id>")
@bp.delete("/Connections/<connection_id>")
def disconnect(connection_id: str) -> Response:
    state = current()
    grant, error = bearer_grant()
    if error or grant is None:
        return error or Response(status=401)
    with state.lock:
        before = len(state.connections)
        state.connections = [
            c
            for c in state.connections
            if not (c["id"] == connection_id and c["_client"] == grant.client_id and c["_user"] == grant.user_id)
        ]
        if len(state.connections) == before:
            return json_response(problem(404, "Not Found", "Connection not found"), 404)
    return Response(status=204)
