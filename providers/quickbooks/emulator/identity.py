"""Intuit's identity side of the QuickBooks emulator: discovery, the consent page, the token and revoke
endpoints (intuit-oauth reads the discovery document and posts form-encoded token requests, Basic auth).

The token endpoint authenticates the client either way the discovery document advertises, as Intuit does:
`client_secret_basic` (an `Authorization: Basic` header, intuit-oauth) or `client_secret_post` (client_id and
client_secret in the form body, requests-oauthlib as tap-quickbooks uses it). Neither, or a wrong secret, is
401 invalid_client.

OpenID Connect (docs/signin.md): the discovery document names Intuit's issuer, the JWKS and userinfo
endpoints and RS256; the consent page has a "Signed in to Intuit as" picker of the emulated Intuit users
and, when the accounting scope is asked for, the company (realm) picker; `nonce` and a PKCE
`code_challenge` travel with the code to the token endpoint.
"""

from __future__ import annotations

import base64
import binascii
import html
from datetime import UTC, datetime
from urllib.parse import urlencode

from flask import Blueprint, Response, redirect, request
from werkzeug.wrappers import Response as WerkzeugResponse

from providers._emulator import CallRecord
from providers.quickbooks.emulator.auth import ACCOUNTING_SCOPE, OAuthError
from providers.quickbooks.emulator.runtime import current


def _basic_auth() -> tuple[str, str]:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Basic "):
        raise OAuthError(401, "invalid_client", "Client authentication failed")
    try:
        client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise OAuthError(401, "invalid_client", "Client authentication failed") from None
    return client_id, secret


def _token_client() -> tuple[str, str]:
    """The client id and secret of a token request: the Basic header when present, else the form body."""
    if "Authorization" in request.headers:
        return _basic_auth()
    form = request.form
    if "client_id" not in form or "client_secret" not in form:
        raise OAuthError(401, "invalid_client", "Client authentication failed")
    return form["client_id"], form["client_secret"]


identity = Blueprint("qbo_oauth", __name__)


def _record(status: int) -> None:
    """Log one OAuth call."""
    emu = current()
    emu.core.record(CallRecord(datetime.now(UTC).isoformat(), request.method, request.path, "", "", status, "oauth"))


@identity.errorhandler(OAuthError)
def on_error(exc: OAuthError) -> Response:
    emu = current()
    _record(exc.status)
    return emu.json(exc.body(), exc.status)


@identity.get("/.well-known/openid_configuration")
@identity.get("/.well-known/openid_configuration/")
def discovery() -> Response:
    """Intuit's discovery document (the endpoints on this host; `issuer` as Intuit names itself)."""
    emu = current()
    base = emu.base_url or request.host_url.rstrip("/")
    return emu.json(
        {
            "issuer": emu.oauth.issuer,
            "authorization_endpoint": f"{base}/connect/oauth2",
            "token_endpoint": f"{base}/oauth2/v1/tokens/bearer",
            "userinfo_endpoint": f"{base}/v1/openid_connect/userinfo",
            "revocation_endpoint": f"{base}/v2/oauth2/tokens/revoke",
            "jwks_uri": f"{base}/op/v1/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "email", "profile", "address", "phone"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "claims_supported": ["aud", "exp", "iat", "iss", "realmid", "sub"],
        }
    )


@identity.get("/op/v1/jwks")
def jwks() -> Response:
    emu = current()
    return emu.json(emu.oauth.jwks())


_CARRIED = ("client_id", "scope", "redirect_uri", "state", "nonce", "code_challenge", "code_challenge_method")


@identity.get("/connect/oauth2")
def authorize_page() -> Response | tuple[str, int]:
    emu = current()
    args = request.args
    if args.get("client_id") not in emu.oauth.apps or args.get("response_type") != "code":
        return "<h1>Invalid request</h1><p>Unknown client or response type.</p>", 400
    if args.get("code_challenge") and args.get("code_challenge_method", "plain") not in ("S256", "plain"):
        return "<h1>Invalid request</h1><p>Unsupported code_challenge_method.</p>", 400
    scopes = args.get("scope", ACCOUNTING_SCOPE).split()
    hidden = "".join(
        f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
        for k, v in args.items()
        if k in _CARRIED
    )
    users = emu.oauth.user_list()
    user_options = "".join(
        f'<option value="{html.escape(u.sub)}"{" selected" if i == 0 else ""}>'
        f"{html.escape(u.given_name)} {html.escape(u.family_name)} &lt;{html.escape(u.email)}&gt;</option>"
        for i, u in enumerate(users)
    )
    picker = ""
    if "openid" in scopes:
        picker = f'<p><label>Signed in to Intuit as <select name="user">{user_options}</select></label></p>'
    companies = ""
    if ACCOUNTING_SCOPE in scopes:
        options = "".join(
            f'<label><input type="radio" name="realm" value="{c.realm}"{" checked" if i == 0 else ""}> '
            f"{html.escape(c.name)} ({c.realm})</label><br>"
            for i, c in enumerate(emu.store.companies.values())
        )
        companies = f"<fieldset><legend>Choose a company</legend>{options or '<p>No companies.</p>'}</fieldset>"
    page = (
        "<!DOCTYPE html><html><head><title>Connect to QuickBooks (emulator)</title></head><body>"
        "<h1>Connect your QuickBooks company</h1>"
        f"<p>Scopes: {html.escape(' '.join(scopes))}</p>"
        f'<form method="post" action="/connect/oauth2/decide">{hidden}{picker}{companies}'
        '<button name="decision" value="approve">Connect</button> '
        '<button name="decision" value="deny">Cancel</button></form></body></html>'
    )
    return page, 200


@identity.post("/connect/oauth2/decide")
def decide() -> WerkzeugResponse | tuple[str, int]:
    emu = current()
    form = request.form
    redirect_uri = form.get("redirect_uri", "")
    state = form.get("state", "")
    if form.get("client_id") not in emu.oauth.apps or not redirect_uri:
        return "<h1>Invalid request</h1>", 400
    if form.get("decision") != "approve":
        return redirect(f"{redirect_uri}?{urlencode({'error': 'access_denied', 'state': state})}", 302)
    scopes = tuple(form.get("scope", ACCOUNTING_SCOPE).split())
    realm = form.get("realm", "")
    if ACCOUNTING_SCOPE in scopes and realm not in emu.store.companies:
        return "<h1>Pick a company</h1>", 400
    if ACCOUNTING_SCOPE not in scopes:
        realm = ""  # identity only: no company is connected
    user = form.get("user", "")
    if user and user not in emu.oauth.users:
        return "<h1>Unknown Intuit user</h1>", 400
    code = emu.oauth.issue_code(
        realm,
        form["client_id"],
        scopes,
        redirect_uri,
        user=user,
        nonce=form.get("nonce", ""),
        challenge=form.get("code_challenge", ""),
        challenge_method=form.get("code_challenge_method", "plain") if form.get("code_challenge") else "",
    )
    # The callback carries code, state and realmId (docs/provider-api-facts.md §1.1).
    query = {"code": code, "state": state}
    if realm:
        query["realmId"] = realm
    return redirect(f"{redirect_uri}?{urlencode(query)}", 302)


@identity.post("/oauth2/v1/tokens/bearer")
def token() -> Response:
    emu = current()
    client_id, secret = _token_client()
    emu.oauth.check_client(client_id, secret)
    form = request.form
    grant_type = form.get("grant_type")
    if grant_type == "authorization_code":
        body = emu.oauth.exchange(
            client_id, form.get("code", ""), form.get("redirect_uri", ""), form.get("code_verifier", "")
        )
    elif grant_type == "refresh_token":
        body = emu.oauth.refresh(client_id, form.get("refresh_token", ""))
    else:
        raise OAuthError(400, "unsupported_grant_type", "Unsupported grant type")
    _record(200)
    return emu.json(body)


@identity.post("/v2/oauth2/tokens/revoke")
def revoke() -> Response:
    emu = current()
    client_id, secret = _basic_auth()
    emu.oauth.check_client(client_id, secret)
    payload = request.get_json(silent=True, force=True) or {}
    emu.oauth.revoke(client_id, str(payload.get("token", "")))
    _record(200)
    return Response(b"", status=200)


@identity.get("/v1/openid_connect/userinfo")
def userinfo() -> Response:
    """The consenting user's claims for a live bearer token with the openid scope, else 401."""
    emu = current()
    header = request.headers.get("Authorization", "")
    body = emu.oauth.userinfo(header[7:] if header.lower().startswith("bearer ") else "")
    if body is None:
        return emu.json({"error": "invalid_token"}, 401)
    return emu.json(body)
